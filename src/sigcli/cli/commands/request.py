"""`sig request URL`: arrives with the delivery issue."""

from __future__ import annotations

from ..app import App
from ..args import Args
from ..common import not_available

FLAGS = {"method": "value", "body": "value", "header": "multi", "format": "value", "provider": "multi",
         "cacert": "value", "no-redaction": "bool", "timeout": "value"}


def run(args: Args, app: App) -> int:
    raise not_available("`sig request`")
