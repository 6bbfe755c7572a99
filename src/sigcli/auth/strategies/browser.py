"""Browser SSO login. Arrives with its own issue; until then it says so instead of pretending."""

from __future__ import annotations

from ...core.errors import ErrorCode, SigError
from ...core.model import Credential, Provider
from ..base import LoginContext, StaticStrategy


class BrowserStrategy(StaticStrategy):
    name = "browser"

    def authenticate(self, provider: Provider, ctx: LoginContext) -> Credential:
        raise SigError(
            ErrorCode.NOT_AVAILABLE,
            "browser login is not available yet in this version of sig",
            f"log in without a browser: sig login {provider.login_target()} --token-stdin | --cookie-stdin | "
            "--username U --password-stdin",
        )
