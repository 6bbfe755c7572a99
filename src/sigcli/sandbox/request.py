"""`sig request URL` inside the sandbox: the request goes out through the proxy, which adds the credential.

Inside there is no config, key or credential to apply: sig sends the request as it is through
HTTPS_PROXY (the sandbox's door, 127.0.0.1:PROXY_PORT) trusting the CA bundle bound in at /run/sig, and
the proxy applies the provider's rules on the way out and redacts the answer. Redirects are followed
(the proxy decides, per host, what each hop gets). Nothing here reads SIG_HOME.
"""

from __future__ import annotations

import os

from ..core.errors import ErrorCode, SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..net.fetch import Result

REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 10


def _proxy() -> object:
    from ..net.proxy import NetworkProxy
    from .env import PROXY_PORT

    url = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or f"http://127.0.0.1:{PROXY_PORT}"
    try:
        return NetworkProxy.parse(url, "HTTPS_PROXY")
    except SigError:
        raise SigError(ErrorCode.GENERAL_ERROR, "HTTPS_PROXY does not name the sandbox's proxy",
                       f"leave HTTPS_PROXY as sig run --sandbox set it (http://127.0.0.1:{PROXY_PORT})") from None


def through_proxy(url_text: str, *, method: str, headers: list[tuple[str, str]], body: bytes | None,
                  cafiles: list[str], timeout: float, user_agent: str) -> Result:
    from ..net.fetch import Prepared, Result
    from ..net.http import Url, send
    from ..net.tls import client_context
    from .env import BUNDLE, CA

    proxy = _proxy()
    cas = [p for p in (os.environ.get("SSL_CERT_FILE") or BUNDLE, CA) if os.path.exists(p)] + cafiles
    current, current_method, current_body = Url.parse(url_text), method.upper(), body
    sent = [("User-Agent", user_agent), ("Accept", "*/*")]
    names = {n.lower() for n, _v in headers}
    sent = [(n, v) for n, v in sent if n.lower() not in names] + list(headers)
    if body is not None and "content-type" not in names:
        sent.append(("Content-Type", "application/json"))
    for hop in range(MAX_REDIRECTS + 1):
        context = client_context(cas) if current.scheme == "https" else None
        conn, response = send(current_method, current, sent, current_body, context=context, timeout=timeout,
                              proxy=proxy)  # type: ignore[arg-type]
        location = response.getheader("Location")
        if response.status not in REDIRECTS or not location or hop == MAX_REDIRECTS:
            return Result(conn, response, current, Prepared(), hop)
        response.read(1 << 20)
        response.close()
        conn.close()
        if response.status == 303 or (response.status in (301, 302) and current_method == "POST"):
            current_method, current_body = ("GET" if current_method != "HEAD" else "HEAD"), None
            sent = [(n, v) for n, v in sent if n.lower() != "content-type"]
        current = current.join(location)
    raise AssertionError("unreachable")
