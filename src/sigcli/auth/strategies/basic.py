"""HTTP Basic: user name and password; the header value is derived and stored as `basic_auth`."""

from __future__ import annotations

import base64

from ...core.errors import ErrorCode, SigError
from ...core.model import Credential, Provider
from ...core.secret import Secret
from ..base import LoginContext, StaticStrategy
from .api_token import require_answer


class BasicStrategy(StaticStrategy):
    """HTTP Basic: user name and password handed over by the user."""

    name = "basic"

    def authenticate(self, provider: Provider, ctx: LoginContext) -> Credential:
        """User name and password (given or asked for), stored with their Basic header value."""
        user = ctx.username if ctx.username else require_answer(ctx, provider, "Username", False, "--username")
        password = ctx.password.reveal() if ctx.password is not None else ""
        if not password:
            password = require_answer(ctx, provider, "Password", True, "--password-stdin or --password")
        if ":" in user:
            raise SigError(ErrorCode.USAGE_ERROR, "a Basic user name cannot contain ':'", "check --username")
        if any(c in user + password for c in "\r\n\0"):
            raise SigError(ErrorCode.USAGE_ERROR, "user name or password contains a line break", "")
        encoded = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        values = {"username": Secret(user), "password": Secret(password), "basic_auth": Secret(encoded)}
        return Credential(provider.id, self.name, values, extra={"credentialType": "basic"})


TYPE_CHECKING = False

if TYPE_CHECKING:
    from ..base import Strategy

    _check: type[Strategy] = BasicStrategy  # mypy: the class satisfies the strategy protocol
