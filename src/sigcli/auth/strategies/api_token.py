"""API token / bearer token given on the command line, stdin or an environment variable."""

from __future__ import annotations

from ...core.errors import ErrorCode, SigError
from ...core.model import Credential, Provider
from ...core.secret import Secret
from ..base import LoginContext, StaticStrategy


def require_answer(ctx: LoginContext, provider: Provider, label: str, secret: bool, flags: str) -> str:
    """Ask for a missing value (when someone can answer), else MANUAL_SETUP_REQUIRED naming the flags."""
    answer = ctx.ask(label, secret) if ctx.ask is not None else None
    if not answer:
        raise SigError(
            ErrorCode.MANUAL_SETUP_REQUIRED,
            f'provider "{provider.id}" needs {label.lower()} and none was given',
            f"pass it with {flags}",
        )
    return answer.strip()


class ApiTokenStrategy(StaticStrategy):
    """An API or bearer token handed over by the user (--token-stdin, --token-env, --token)."""

    name = "api-token"

    def authenticate(self, provider: Provider, ctx: LoginContext) -> Credential:
        """The token given (or asked for), checked for line breaks, as the credential's `token`."""
        token = ctx.token.reveal().strip() if ctx.token is not None else ""
        if not token:
            token = require_answer(ctx, provider, "API token", True, "--token-stdin, --token-env VAR or --token")
        if any(c in token for c in "\r\n\0"):
            raise SigError(ErrorCode.USAGE_ERROR, "the token contains a line break", "pass the token alone")
        custom_header = provider.get("headerName") not in (None, "", "Authorization")
        kind = "api-key" if custom_header and not provider.get("headerPrefix") else "bearer"
        return Credential(provider.id, self.name, {"token": Secret(token)}, extra={"credentialType": kind})


TYPE_CHECKING = False

if TYPE_CHECKING:
    from ..base import Strategy

    _check: type[Strategy] = ApiTokenStrategy  # mypy: the class satisfies the strategy protocol
