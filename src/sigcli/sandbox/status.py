"""`sig status` / `sig providers` inside the sandbox: names and validity, asked from the proxy.

The proxy answers `GET http://sig.invalid/status` itself, only on a connection that came through a
sandbox's door (`.invalid` never resolves anywhere, RFC 6761): one JSON object
{"providers": [{id, name, strategy, configured, valid, expiresAt?, expiresInMinutes?}]} for the
providers the run may use. Never a value: the proxy builds it from the store's status, as `sig status`
does outside.
"""

from __future__ import annotations

from ..core.errors import ErrorCode, SigError

STATUS_HOST = "sig.invalid"
STATUS_PATH = "/status"
FIELDS = ("id", "name", "strategy", "configured", "valid", "expiresAt", "expiresInMinutes", "renewable")


def statuses(timeout: float = 10.0) -> list[dict[str, object]]:
    """The providers' statuses as the proxy gives them to this sandbox."""
    from ..core.jsonio import loads
    from ..net.http import Url, send
    from .request import proxy

    try:
        conn, response = send("GET", Url.parse(f"http://{STATUS_HOST}{STATUS_PATH}"), [("Accept", "application/json")],
                              None, timeout=timeout, proxy=proxy())
    except SigError:
        raise SigError(ErrorCode.GENERAL_ERROR, "the sandbox's proxy did not answer",
                       "the proxy may have stopped: ask the person outside to run sig proxy start") from None
    try:
        body = response.read(1 << 20)
        status = response.status
    finally:
        conn.close()
    try:
        data = loads(body) if status == 200 else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("providers"), list):
        raise SigError(ErrorCode.GENERAL_ERROR, f"the proxy did not give the sandbox's status (HTTP {status})",
                       "restart the proxy outside the sandbox (an older proxy does not know the sandbox)")
    return [{k: p[k] for k in FIELDS if k in p} for p in data["providers"] if isinstance(p, dict) and "id" in p]
