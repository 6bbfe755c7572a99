"""`sig watch …`: arrives with the sync/watch issue."""

from __future__ import annotations

from ..app import App
from ..args import Args
from ..common import not_available

FLAGS = {"auto-sync": "multi", "format": "value"}


def run(args: Args, app: App) -> int:
    raise not_available("`sig watch`")
