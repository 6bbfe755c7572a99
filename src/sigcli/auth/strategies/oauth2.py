"""OAuth2 login. Arrives with its own issue; until then it says so instead of pretending."""

from __future__ import annotations

from ...core.errors import ErrorCode, SigError
from ...core.model import Credential, Provider
from ..base import LoginContext, StaticStrategy


class OAuth2Strategy(StaticStrategy):
    name = "oauth2"

    def authenticate(self, provider: Provider, ctx: LoginContext) -> Credential:
        raise SigError(
            ErrorCode.NOT_AVAILABLE,
            "OAuth2 login is not available yet in this version of sig",
            f"if you hold an access token, store it with: sig login {provider.login_target()} --token-stdin",
        )
