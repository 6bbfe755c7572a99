"""The strategy table: one entry per login method, imported only when used."""

from __future__ import annotations

import importlib

from ...core.errors import ErrorCode, SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..base import Strategy

_TABLE = {
    "api-token": ("api_token", "ApiTokenStrategy"),
    "cookie": ("cookie", "CookieStrategy"),
    "basic": ("basic", "BasicStrategy"),
    "prompt": ("prompt", "PromptStrategy"),
    "browser": ("browser", "BrowserStrategy"),
    "oauth2": ("oauth2", "OAuth2Strategy"),
}


def strategy_for(name: str) -> Strategy:
    entry = _TABLE.get(name)
    if entry is None:
        raise SigError(
            ErrorCode.CONFIG_ERROR,
            f'no strategy named "{name}"',
            f"use one of: {', '.join(_TABLE)}",
        )
    module = importlib.import_module(f"{__name__}.{entry[0]}")
    return getattr(module, entry[1])()
