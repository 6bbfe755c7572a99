"""From a token response to a stored Credential: values, expiry (expires_in, JWT exp, ttl), secrets."""

from __future__ import annotations

from ...core.secret import Secret
from ...core.timeutil import iso_from_ms, now_ms

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ...core.model import Credential, Provider
    from .settings import OAuth2Settings
    from .token import TokenResponse

CLOCK_WARN_MS = 5 * 60_000


def jwt_exp_ms(token: str) -> int | None:
    """The `exp` claim of a JWT access token (not verified: it only tells when to refresh), else None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    import base64

    from ...core.jsonio import loads

    try:
        payload = loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    if isinstance(exp, int | float) and not isinstance(exp, bool) and exp > 0:
        return int(exp * 1000)
    return None


def to_credential(provider: Provider, response: TokenResponse, settings: OAuth2Settings,
                  previous: Credential | None = None, log: Callable[[str], None] | None = None) -> Credential:
    """A token endpoint's answer as a credential (values, expiry, refresh token, client settings kept)."""
    from ...core.errors import ErrorCode, SigError
    from ...core.model import Credential

    data = response.data
    access = data.get("access_token")
    if not isinstance(access, str) or not access:
        raise SigError(ErrorCode.REFRESH_FAILED if previous is not None else ErrorCode.GENERAL_ERROR,
                       "the token endpoint answered without an access_token",
                       "check tokenUrl and the grant; the server's answer was not a token")
    now = now_ms()
    if response.server_date_ms is not None and abs(response.server_date_ms - now) > CLOCK_WARN_MS and log:
        log(f"warning: this machine's clock differs from the token server's by "
            f"{abs(response.server_date_ms - now) // 60000} min; expiry is computed from expires_in")
    expires_at = None
    expires_in = data.get("expires_in")
    try:
        seconds = float(expires_in) if expires_in is not None else None
    except (TypeError, ValueError):
        seconds = None
    if seconds is not None and seconds > 0:
        expires_at = now + int(seconds * 1000)
    else:
        expires_at = jwt_exp_ms(access)
        if expires_at is None and provider.ttl_ms:
            expires_at = now + provider.ttl_ms
    values = {"access_token": Secret(access)}
    oauth2: dict[str, Secret] = {}
    if settings.client_id:
        oauth2["clientId"] = Secret(settings.client_id)
    if settings.client_secret is not None:
        oauth2["clientSecret"] = settings.client_secret
    refresh = data.get("refresh_token")
    if isinstance(refresh, str) and refresh:
        oauth2["refreshToken"] = Secret(refresh)
    elif previous is not None and previous.oauth2 and "refreshToken" in previous.oauth2:
        oauth2["refreshToken"] = previous.oauth2["refreshToken"]  # not rotated: keep using the old one
    extra = {"credentialType": "bearer", "oauth2Grant": settings.grant}
    if isinstance(data.get("scope"), str):
        extra["oauth2Scope"] = data["scope"]
    if isinstance(data.get("token_type"), str):
        extra["oauth2TokenType"] = data["token_type"]
    return Credential(provider.id, "oauth2", values, expires_at=iso_from_ms(expires_at) if expires_at else None,
                      oauth2=oauth2 or None, extra=extra)
