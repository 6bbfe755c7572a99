"""A provider's networkProxy: http://, socks5:// (names resolved here) or socks5h:// (names resolved by the
proxy), with optional user:password that never appears in messages, logs or repr. One parser for every user:
sig's own requests (here), the config check at load (config/schema.py) and the browser (browser/proxy_url.py,
which keeps only Chromium's view of it).

How a proxy URL is read (README, "Configuration" and "Browser login"):

* ``scheme://[user[:password]@]host[:port][/]``; no scheme means ``http://``. Schemes: http, socks5, socks5h.
* The user info ends at the **last** ``@`` and a proxy URL has no path, query or fragment, so a password may
  hold ``/``, ``#``, ``?`` or ``@`` as typed (``http://bob:pa/ss#1@proxy:3128``), which a generic URL parser
  would cut at the first ``/ ? #``. Percent-escapes in the user name and password are decoded.
* Refused as ambiguous, with a CONFIG_ERROR that says to percent-encode: a ``%`` that does not start a
  ``%XX`` escape (literal, or an escape?), and a URL that a standard parser reads as another valid proxy
  (``http://u:8080/x@host:3128``: host ``u`` port 8080, or host ``host``?). Whoever else reads the same
  setting (a shell's curl, another tool) must not reach a different proxy, or see the password as a host.

Error messages never quote the URL: it may hold the password.

SOCKS goes through python-socks (imported only when a SOCKS proxy is used): it hands back a connected
socket, which http.client then uses as its own (TLS wrapped on top for https, end to end).
"""

from __future__ import annotations

from ..core.errors import ErrorCode, SigError
from ..core.secret import Secret

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

    from ..core.model import Provider

SCHEMES = ("http", "socks5", "socks5h")
DEFAULT_PORTS = {"http": 80, "socks5": 1080, "socks5h": 1080}
# (Patterns as text: `re` is imported only when a proxy URL is parsed, off the start-up path.)
# A host (name, IPv4 or bracketed IPv6) and an optional port: all a proxy URL's host part may hold.
_HOST_PORT = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::([0-9]{1,5}))?/?"
# The same, as a standard (RFC 3986 / WHATWG) parser reads an authority: an empty port is allowed.
_STD_HOST_PORT = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::[0-9]{0,5})?"
_BAD_PERCENT = r"%(?![0-9A-Fa-f]{2})"
SCHEME_HINT = "use http://host:port, socks5://host:port or socks5h://host:port (optionally user:password@)"
ENCODE_HINT = ("write networkProxy as scheme://user:password@host:port and percent-encode the user name and "
               "password where they hold % (%25), / (%2F), # (%23), ? (%3F) or @ (%40)")


def _error(where: str, what: str, hint: str = ENCODE_HINT) -> SigError:
    return SigError(ErrorCode.CONFIG_ERROR, f"{where} {what}", hint)


class NetworkProxy:
    """A parsed proxy URL. `label` (scheme://host:port) is the only form that reaches a message."""

    __slots__ = ("host", "password", "port", "scheme", "username")

    def __init__(self, scheme: str, host: str, port: int, username: str | None = None,
                 password: Secret | None = None) -> None:
        self.scheme, self.host, self.port = scheme, host, port  # host: no brackets around an IPv6 address
        self.username, self.password = username, password

    @classmethod
    def parse(cls, text: str, owner: str = "") -> NetworkProxy:
        """Read a proxy URL as the module docstring says. CONFIG_ERROR naming `owner` (e.g. 'provider "x"'),
        never the URL, for anything else."""
        import re
        from urllib.parse import unquote

        where = f"networkProxy of {owner}" if owner else "networkProxy"
        raw = text.strip()
        if not raw:
            raise _error(where, "is empty", "remove it, or write scheme://host:port")
        if any(ord(c) < 0x21 or ord(c) == 0x7F for c in raw):
            raise _error(where, "contains spaces or control characters")
        scheme, sep, rest = raw.partition("://")
        if not sep:
            scheme, rest = "http", raw
        scheme = scheme.lower()
        if scheme not in SCHEMES:
            shown = f'"{scheme}://"' if scheme.isalnum() and len(scheme) <= 10 else "a scheme"  # never a password
            raise _error(where, f"uses {shown}, which sig does not support", SCHEME_HINT)
        userinfo, at, host_part = rest.rpartition("@")
        match = re.fullmatch(_HOST_PORT, host_part)
        if match is None:
            raise _error(where, "is not scheme://[user:password@]host:port (a proxy URL has no path, query or "
                                "fragment)")
        host, port_text = match.group(1).strip("[]").lower(), match.group(2)
        port = int(port_text) if port_text else DEFAULT_PORTS[scheme]
        if not 0 < port < 65536:
            raise _error(where, "has a port outside 1-65535", "write scheme://host:port")
        if not at:
            return cls(scheme, host, port)
        if re.search(_BAD_PERCENT, userinfo):
            raise _error(where, "has a % in its user name or password that is not a %XX escape (ambiguous)")
        if any(c in userinfo for c in "/?#"):
            # A standard parser ends the authority at the first / ? #: if what it would read there is a valid
            # proxy as well, the URL means two different things depending on who reads it.
            authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
            if re.fullmatch(_STD_HOST_PORT, authority.rpartition("@")[2]):
                raise _error(where, "can be read as two different proxies (a / # or ? in the user name or "
                                    "password)")
        user, _, password = userinfo.partition(":")
        return cls(scheme, host, port, unquote(user), Secret(unquote(password)))

    @property
    def label(self) -> str:
        """scheme://host:port, without credentials (safe for logs)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def __repr__(self) -> str:
        return f"NetworkProxy({self.label})"

    @property
    def is_socks(self) -> bool:
        """Whether it is a SOCKS proxy (socks5 or socks5h)."""
        return self.scheme != "http"

    @property
    def has_auth(self) -> bool:
        """Whether it needs a user name and password."""
        return self.username is not None

    def basic_auth(self) -> str | None:
        """The Proxy-Authorization value for an http:// proxy with credentials."""
        if self.username is None:
            return None
        import base64

        pair = f"{self.username}:{self.password.reveal() if self.password else ''}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def open_socket(self, host: str, port: int, timeout: float | None) -> socket.socket:
        """A TCP connection to host:port through this SOCKS proxy. socks5h sends the name to the proxy;
        socks5 resolves it here and sends the address. Errors are SigError / OSError / TimeoutError
        whose text names the proxy by its label only."""
        from python_socks import ProxyError, ProxyTimeoutError, ProxyType
        from python_socks.sync import Proxy

        proxy = Proxy(ProxyType.SOCKS5, self.host, self.port, username=self.username,
                      password=self.password.reveal() if self.password is not None else None,
                      rdns=self.scheme == "socks5h")
        try:
            return proxy.connect(dest_host=host, dest_port=port, timeout=timeout)
        except ProxyTimeoutError:
            raise TimeoutError(f"the SOCKS proxy {self.label} did not answer in time") from None
        except ProxyError as exc:
            raise SigError(ErrorCode.GENERAL_ERROR,
                           f"the SOCKS proxy {self.label} refused the connection to {host}:{port}: {exc}",
                           "check networkProxy (address, and user:password@ if the proxy needs them) and that "
                           "the proxy may reach this host") from None
        except OSError as exc:
            raise OSError(exc.errno, f"cannot connect to the SOCKS proxy {self.label}"
                          + (f" ({exc.strerror})" if exc.strerror else "")) from None
        except AssertionError:  # python-socks asserts when the proxy wants a password we do not have
            raise SigError(ErrorCode.GENERAL_ERROR, f"the SOCKS proxy {self.label} asks for a user name and "
                           "password", "give them in networkProxy: socks5://user:password@host:port") from None
        except ValueError as exc:  # e.g. a user name or password longer than SOCKS5's 255 bytes
            raise SigError(ErrorCode.CONFIG_ERROR, f"the SOCKS request to {self.label} could not be built "
                           f"({type(exc).__name__})", "check networkProxy's host, user and password") from None


def for_provider(provider: Provider) -> NetworkProxy | None:
    """The provider's networkProxy, parsed; None when it has none."""
    raw = str(provider.get("networkProxy") or "").strip()
    return NetworkProxy.parse(raw, f'provider "{provider.id}"') if raw else None
