"""`sig remote add|remove|list`: arrives with the sync issue."""

from __future__ import annotations

from ..app import App
from ..args import Args
from ..common import not_available

FLAGS = {"user": "value", "ssh-key": "value", "path": "value", "port": "value", "format": "value"}


def run(args: Args, app: App) -> int:
    raise not_available("`sig remote`")
