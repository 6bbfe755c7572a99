"""Talking to a token endpoint: form POST, client authentication, and turning answers into values or errors."""

from __future__ import annotations

from ...core.errors import ErrorCode, SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .settings import OAuth2Settings


class TokenError(SigError):
    """The endpoint answered with an OAuth2 error (`error` is e.g. invalid_grant, authorization_pending)."""

    def __init__(self, code: str, message: str, hint: str, error: str, status: int) -> None:
        super().__init__(code, message, hint)
        self.error = error
        self.status = status


class TokenResponse:
    """A token endpoint's JSON answer and the server's Date (to warn when this machine's clock is far off)."""

    def __init__(self, data: dict[str, Any], server_date_ms: int | None) -> None:
        self.data = data
        self.server_date_ms = server_date_ms


def post_form(url: str, fields: dict[str, str], settings: OAuth2Settings, *, authenticate: bool = True,
              error_code: str = ErrorCode.GENERAL_ERROR, what: str = "token endpoint",
              field: str = "tokenUrl") -> TokenResponse:
    """POST fields to `url` (the setting oauth2.`field`), through the provider's networkProxy; return the
    JSON answer, or raise TokenError / SigError with a message that helps. Nothing is sent to a URL the
    transport rule refuses (cleartext to a host that is not loopback, without allowHttp)."""
    import base64
    from urllib.parse import quote, urlencode

    from ...core.jsonio import loads
    from ...net.http import Url, send
    from ...net.tls import client_context

    settings.check_endpoint(url, field)
    proxy = settings.network_proxy
    body = dict(fields)
    headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json"),
               ("User-Agent", "sig")]
    if authenticate and settings.client_id:
        secret = settings.client_secret.reveal() if settings.client_secret is not None else None
        if secret is not None and settings.client_auth != "client_secret_post":
            pair = f"{quote(settings.client_id, safe='')}:{quote(secret, safe='')}"
            headers.append(("Authorization", "Basic " + base64.b64encode(pair.encode()).decode("ascii")))
        else:
            body["client_id"] = settings.client_id
            if secret is not None:
                body["client_secret"] = secret
    try:
        target = Url.parse(url)
    except SigError as err:
        raise SigError(ErrorCode.CONFIG_ERROR, f'oauth2.{field} of provider "{settings.provider_id}": '
                       f"{err.message}", "write a full https:// URL in the provider's oauth2 section") from None
    cafile = settings.provider.get("caFile")
    context = client_context([str(cafile)] if cafile else []) if target.scheme == "https" else None
    try:
        conn, response = send("POST", target, headers, urlencode(body).encode("ascii"), context=context,
                              timeout=settings.timeout, proxy=proxy)
    except SigError as err:
        raise SigError(error_code, f"the {what} at {target.host} could not be reached: {err.message}",
                       "check the URL and your network, then try again") from None
    try:
        raw = response.read(1 << 20)
        status = response.status
        ctype = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        date = response.getheader("Date")
    finally:
        response.close()
        conn.close()
    server_ms = None
    if date:
        from email.utils import parsedate_to_datetime

        try:
            server_ms = int(parsedate_to_datetime(date).timestamp() * 1000)
        except (TypeError, ValueError):
            server_ms = None
    try:
        data = loads(raw) if raw.strip() else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        kind = ctype or "an unknown type"
        raise SigError(error_code, f"the {what} answered HTTP {status} with {kind}, not an OAuth2 JSON response",
                       f"check that {url} is the token endpoint (not a login page)")
    if status >= 400 or "error" in data:
        error = str(data.get("error") or f"http_{status}")
        described = str(data.get("error_description") or "").strip()
        # a server may quote what it refused: never let a secret we sent reach a message
        sent = [v for k, v in body.items() if k in ("client_secret", "refresh_token", "code", "code_verifier",
                                                      "device_code")]
        for value in sent:
            if len(value) >= 4:
                described = described.replace(value, "****")
        detail = f" ({described})" if described and len(described) < 300 else ""
        hints = {
            "invalid_client": "check the client id and secret (sig login … --client-secret-stdin)",
            "invalid_grant": "the grant is no longer valid: log in again",
            "invalid_scope": "check the scopes (--scope) the client may ask for",
            "unauthorized_client": "this client may not use this grant; check --grant",
            "access_denied": "the request was denied; log in again and approve it",
            "expired_token": "the code expired before it was approved; log in again",
        }
        raise TokenError(error_code, f"the {what} refused the request: {error}{detail}",
                         hints.get(error, "check the OAuth2 settings of the provider"), error, status)
    return TokenResponse(data, server_ms)
