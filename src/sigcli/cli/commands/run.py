"""`sig run [provider...] -- cmd`: arrives with the delivery issue."""

from __future__ import annotations

from ..app import App
from ..args import Args
from ..common import not_available

FLAGS = {"expand-cookies": "bool", "mount": "value", "mount-format": "value", "command": "value",
         "no-redaction": "bool", "proxy": "bool", "format": "value"}


def run(args: Args, app: App) -> int:
    raise not_available("`sig run`")
