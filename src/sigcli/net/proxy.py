"""A provider's networkProxy: http://, socks5:// (names resolved here) or socks5h:// (names resolved by the
proxy), with optional user:password that never appears in messages, logs or repr.

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


class NetworkProxy:
    """A parsed proxy URL. `label` (scheme://host:port) is the only form that reaches a message."""

    __slots__ = ("host", "password", "port", "scheme", "username")

    def __init__(self, scheme: str, host: str, port: int, username: str | None = None,
                 password: Secret | None = None) -> None:
        self.scheme, self.host, self.port = scheme, host, port
        self.username, self.password = username, password

    @classmethod
    def parse(cls, text: str, owner: str = "") -> NetworkProxy:
        """`http://[user:pass@]host:port`, `socks5://…`, `socks5h://…`, or a bare `host:port` (http).
        The user info ends at the last "@", so a password may hold "/", "#" or "@" as it is (percent-
        encoding works too). CONFIG_ERROR (naming `owner`, never the password) for anything else."""
        from urllib.parse import unquote, urlsplit

        where = f"networkProxy of {owner}" if owner else "networkProxy"
        hint = "use http://host:port, socks5://host:port or socks5h://host:port (optionally user:password@)"
        scheme, sep, rest = text.strip().partition("://")
        if not sep:
            scheme, rest = "http", text.strip()
        scheme = scheme.lower()
        if scheme not in SCHEMES:
            shown = f"{scheme}://" if scheme.isalnum() and len(scheme) <= 10 else "a scheme"  # never a password
            raise SigError(ErrorCode.CONFIG_ERROR, f"{where} uses {shown}, which sig does not support", hint)
        userinfo, at, hostport = rest.rpartition("@")
        try:
            parts = urlsplit("//" + hostport)
            port = parts.port
            host = parts.hostname or ""
        except ValueError:
            raise SigError(ErrorCode.CONFIG_ERROR, f"{where} is not a valid proxy URL", hint) from None
        if not host or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise SigError(ErrorCode.CONFIG_ERROR, f"{where} is not a valid proxy URL (it needs host:port only)",
                           hint)
        username = password = None
        if at:
            name, _colon, secret = userinfo.partition(":")
            username, password = unquote(name), Secret(unquote(secret))
        return cls(scheme, host, port or DEFAULT_PORTS[scheme], username, password)

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def __repr__(self) -> str:
        return f"NetworkProxy({self.label})"

    @property
    def is_socks(self) -> bool:
        return self.scheme != "http"

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
