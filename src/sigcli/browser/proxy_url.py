"""The browser's view of a provider's ``networkProxy``.

The URL itself is read by the one parser every part of sig shares (``net/network_proxy.py``: the last ``@``
ends the user info, ambiguous input refused, errors never quote the URL). What is Chromium's alone lives
here:

* the browser sees ``scheme://host:port`` only (``--proxy-server=``, never the user name or password, which
  are answered over CDP when the proxy asks), and Chromium spells ``socks5h`` as ``socks5`` (it resolves
  names through a SOCKS5 proxy either way);
* Chromium cannot authenticate to a SOCKS proxy, so a SOCKS URL with a user is refused here (sig's own
  requests accept it).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import ErrorCode, SigError
from ..core.secret import Secret

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..net.network_proxy import NetworkProxy


@dataclass(frozen=True)
class BrowserProxy:
    """A networkProxy as Chromium takes it: scheme, host and port on the command line, credentials answered."""

    scheme: str  # as Chromium spells it: http or socks5
    host: str  # brackets kept around an IPv6 address
    port: int
    username: str | None = None
    password: Secret | None = None

    @property
    def server(self) -> str:
        """What goes on a command line (--proxy-server=): no user name, no password."""
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def has_auth(self) -> bool:
        """Whether the proxy needs a user name and password."""
        return self.username is not None


def browser_proxy(proxy: NetworkProxy, owner: str = "") -> BrowserProxy:
    """Chromium's view of a parsed networkProxy; CONFIG_ERROR for what the browser cannot use."""
    if proxy.is_socks and proxy.has_auth:
        where = f"networkProxy of {owner}" if owner else "networkProxy"
        raise SigError(ErrorCode.CONFIG_ERROR,
                       f"{where} has a user name and password, and the browser cannot authenticate to a SOCKS "
                       "proxy", "use an http:// proxy that asks for the password, or a local forwarder without one")
    host = f"[{proxy.host}]" if ":" in proxy.host else proxy.host
    scheme = "socks5" if proxy.is_socks else proxy.scheme
    return BrowserProxy(scheme, host, proxy.port, proxy.username, proxy.password)


def parse_proxy_url(raw: str, owner: str = "") -> BrowserProxy:
    """Parse with net/network_proxy.py's parser, then take the browser's view. `owner` names it in errors."""
    from ..net.network_proxy import NetworkProxy

    return browser_proxy(NetworkProxy.parse(raw, owner), owner)
