"""One HTTP exchange over the standard library (http.client): no redirects, no credentials, a streamed body."""

from __future__ import annotations

from ..core.errors import ErrorCode, SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import http.client
    import ssl

    from .network_proxy import NetworkProxy


class Url:
    """A parsed absolute http(s) URL."""

    __slots__ = ("host", "path", "port", "query", "scheme")

    def __init__(self, scheme: str, host: str, port: int, path: str, query: str) -> None:
        self.scheme, self.host, self.port, self.path, self.query = scheme, host, port, path, query

    @classmethod
    def parse(cls, text: str) -> Url:
        """The URL of `text`; USAGE_ERROR for anything but a valid absolute http(s) URL."""
        from urllib.parse import urlsplit

        from ..core.hosts import canonical_host, is_valid_host

        try:
            parts = urlsplit(text.strip())
            port = parts.port
        except ValueError as exc:
            raise SigError(ErrorCode.USAGE_ERROR, f'"{text}" is not a valid URL ({exc})',
                           "use a full URL such as https://api.example.com/path") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise SigError(ErrorCode.USAGE_ERROR, f'"{text}" is not an http(s) URL',
                           "use a full URL such as https://api.example.com/path")
        if any(c in text for c in "\r\n\0 "):
            raise SigError(ErrorCode.USAGE_ERROR, "the URL contains spaces or control characters",
                           "percent-encode them (%20)")
        host = canonical_host(parts.hostname)
        if not is_valid_host(host):
            raise SigError(ErrorCode.USAGE_ERROR, f'the host of "{text}" is not a valid internationalised '
                           "domain name", "check the spelling; browsers would refuse this name too")
        return cls(scheme, host, port or (443 if scheme == "https" else 80), parts.path or "/", parts.query)

    @property
    def origin(self) -> tuple[str, str, int]:
        """(scheme, host, port): what credentials are bound to."""
        return (self.scheme, self.host, self.port)

    def netloc(self) -> str:
        """host[:port] as a Host header says it (default port left out, IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def target(self) -> str:
        """The request target: path and query."""
        return self.path + (f"?{self.query}" if self.query else "")

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc()}{self.target()}"

    def join(self, location: str) -> Url:
        """The URL a redirect's Location names, relative to this one."""
        from urllib.parse import urljoin

        return Url.parse(urljoin(str(self), location))


def send(
    method: str,
    url: Url,
    headers: list[tuple[str, str]],
    body: bytes | None,
    *,
    context: ssl.SSLContext | None = None,
    timeout: float = 30.0,
    proxy: NetworkProxy | None = None,
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """Send one request (through `proxy` when given); the caller reads the response (streamed) and closes
    the connection. https through any proxy is TLS end to end with the origin: the proxy sees only bytes."""
    import http.client
    import ssl

    conn, target, extra = _connection(url, context, timeout, proxy)
    via = f" through networkProxy {proxy.label}" if proxy is not None else ""
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", url.netloc())
        for name, value in [*extra, *headers]:
            try:
                if "\x00" in value or "\x00" in name:  # RFC 9110 §5.5; http.client lets NUL through
                    raise ValueError("NUL")
                conn.putheader(name, value)
            except ValueError:  # line breaks, NUL, text outside Latin-1 (the value is never quoted: it may
                # be a credential)
                from ..core.text import printable

                raise SigError(ErrorCode.GENERAL_ERROR,
                               f'cannot send the header "{printable(name[:80], one_line=True)}": its name or value '
                               "holds a line break, a NUL or a character HTTP headers cannot carry",
                               "if it comes from a stored credential, log in again (`sig login <provider>`); "
                               "if from --header, fix that value") from None
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        return conn, conn.getresponse()
    except ssl.SSLCertVerificationError as exc:
        conn.close()
        raise SigError(ErrorCode.GENERAL_ERROR,
                       f"TLS verification of {url.host} failed: {exc.verify_message or exc.reason}",
                       "if the server uses a private CA, pass it with --cacert FILE or set caFile on the provider"
                       ) from None
    except SigError:
        conn.close()
        raise
    except TimeoutError:
        conn.close()
        raise SigError(ErrorCode.GENERAL_ERROR, f"{url.host} did not answer within {timeout:g}s{via}",
                       "check the URL, or raise the limit with --timeout SECONDS") from None
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise SigError(ErrorCode.GENERAL_ERROR, f"request to {url.host}:{url.port} failed{via}: {reason}",
                       "check the URL and that the server is reachable"
                       + (" through the proxy" if proxy is not None else "")) from None


def _connection(url: Url, context: ssl.SSLContext | None, timeout: float, proxy: NetworkProxy | None
                ) -> tuple[http.client.HTTPConnection, str, list[tuple[str, str]]]:
    """(connection, request target, extra headers) for a direct, HTTP-proxied or SOCKS-proxied request."""
    import http.client

    conn: http.client.HTTPConnection
    if proxy is not None and not proxy.is_socks:
        auth = proxy.basic_auth()
        if url.scheme == "http":  # absolute-form to the proxy, which forwards it
            conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=timeout)
            return conn, str(url), [("Proxy-Authorization", auth)] if auth else []
        # a CONNECT tunnel: only the proxy sees Proxy-Authorization, the origin never does
        conn = http.client.HTTPSConnection(proxy.host, proxy.port, timeout=timeout, context=context)
        conn.set_tunnel(url.host, url.port, headers={"Proxy-Authorization": auth} if auth else None)
        return conn, url.target(), []
    if url.scheme == "https":
        conn = http.client.HTTPSConnection(url.host, url.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(url.host, url.port, timeout=timeout)
    if proxy is not None:
        socks = proxy

        def through_socks(address: tuple[str, int], timeout: float | None = None, *_: object) -> object:
            return socks.open_socket(address[0], address[1], timeout)

        # http.client opens its socket with this attribute; the SOCKS socket replaces it (TLS on top).
        conn._create_connection = through_socks  # type: ignore[attr-defined]
    return conn, url.target(), []
