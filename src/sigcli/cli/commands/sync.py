"""`sig sync push|pull`: arrives with the sync issue."""

from __future__ import annotations

from ..app import App
from ..args import Args
from ..common import not_available

FLAGS = {"provider": "multi", "force": "bool", "format": "value"}


def run(args: Args, app: App) -> int:
    raise not_available("`sig sync`")
