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
    from ..inject.request import Result
    from ..net.network_proxy import NetworkProxy


def proxy() -> NetworkProxy:
    """The sandbox's door as a networkProxy (HTTPS_PROXY as `sig run --sandbox` set it)."""
    from ..net.network_proxy import NetworkProxy
    from .env import PROXY_PORT

    url = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or f"http://127.0.0.1:{PROXY_PORT}"
    try:
        return NetworkProxy.parse(url, "HTTPS_PROXY")
    except SigError:
        raise SigError(ErrorCode.GENERAL_ERROR, "HTTPS_PROXY does not name the sandbox's proxy",
                       f"leave HTTPS_PROXY as sig run --sandbox set it (http://127.0.0.1:{PROXY_PORT})") from None


def through_proxy(url_text: str, *, method: str, headers: list[tuple[str, str]], body: bytes | None,
                  cafiles: list[str], timeout: float, user_agent: str) -> Result:
    """Send the request as it is through the proxy (redirects followed: the proxy decides, hop by hop,
    what each host gets); the caller reads and closes the Result."""
    from ..inject.request import Prepared, Result
    from ..net.http import Url
    from ..net.redirects import Additions, send_following
    from .env import BUNDLE, CA

    cas = [p for p in (os.environ.get("SSL_CERT_FILE") or BUNDLE, CA) if os.path.exists(p)] + cafiles
    sent = list(headers)
    if body is not None and not any(n.lower() == "content-type" for n, _v in sent):
        sent.append(("Content-Type", "application/json"))
    exchange = send_following(method.upper(), Url.parse(url_text), sent, body, Additions(), ca=cas,
                              proxy=proxy(), timeout=timeout, user_agent=user_agent, log=lambda _m: None)
    return Result(exchange, Prepared())
