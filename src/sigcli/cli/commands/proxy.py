"""`sig proxy start|stop|status|trust|env`: arrives with the proxy issue."""

from __future__ import annotations

from ..app import App
from ..args import Args
from ..common import not_available

FLAGS = {"port": "value", "format": "value", "foreground": "bool"}


def run(args: Args, app: App) -> int:
    raise not_available("`sig proxy`")
