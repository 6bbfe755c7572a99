"""A cookie header copied from a browser ("name=value; other=value")."""

from __future__ import annotations

from ...core.errors import ErrorCode, SigError
from ...core.model import Credential, Provider
from ...core.secret import Secret
from ..base import LoginContext, StaticStrategy
from .api_token import require_answer


def normalise_cookie(text: str) -> str:
    """A Cookie header value ("a=1; b=2") from what was pasted; USAGE_ERROR when it is not name=value pairs."""
    text = text.strip()
    if text.lower().startswith("cookie:"):
        text = text[7:].strip()
    pairs = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, eq, value = part.partition("=")
        if not eq or not name.strip() or any(c in part for c in "\r\n\0"):
            raise SigError(
                ErrorCode.USAGE_ERROR,
                "the cookie is not in the form name=value; name2=value2",
                'copy the Cookie header from the browser, e.g. --cookie-stdin <<< "SESSION=…; csrf=…"',
            )
        pairs.append(f"{name.strip()}={value.strip()}")
    if not pairs:
        raise SigError(ErrorCode.USAGE_ERROR, "the cookie is empty", "pass name=value pairs")
    return "; ".join(pairs)


class CookieStrategy(StaticStrategy):
    """A Cookie header copied from a browser, or captured in one when none is given."""

    name = "cookie"

    def authenticate(self, provider: Provider, ctx: LoginContext) -> Credential:
        """The cookie given (or asked for); without one and with a browser, capture the jar there."""
        text = ctx.cookie.reveal() if ctx.cookie is not None else ""
        if not text.strip() and ctx.browser:
            return self._from_browser(provider, ctx)
        if not text.strip():
            text = require_answer(ctx, provider, "Cookie", True, "--cookie-stdin or --cookie")
        cookie = normalise_cookie(text)
        return Credential(provider.id, self.name, {"cookie": Secret(cookie)}, extra={"credentialType": "cookie"})

    def _from_browser(self, provider: Provider, ctx: LoginContext) -> Credential:
        """A cookie provider logged in without --cookie: capture the jar from a browser login (README
        "Browser login")."""
        from .browser import capture_as

        return capture_as(provider, ctx, self.name, "cookie", [{"from": "cookies", "as": "cookie", "match": "*"}],
                          keep_extract=bool(provider.extract))


TYPE_CHECKING = False

if TYPE_CHECKING:
    from ..base import Strategy

    _check: type[Strategy] = CookieStrategy  # mypy: the class satisfies the strategy protocol
