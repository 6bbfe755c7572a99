"""One HTTP exchange over the standard library (http.client): no redirects, no credentials, a streamed body."""

from __future__ import annotations

from ..core.errors import ErrorCode, SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import http.client
    import ssl


class Url:
    """A parsed absolute http(s) URL."""

    __slots__ = ("host", "path", "port", "query", "scheme")

    def __init__(self, scheme: str, host: str, port: int, path: str, query: str) -> None:
        self.scheme, self.host, self.port, self.path, self.query = scheme, host, port, path, query

    @classmethod
    def parse(cls, text: str) -> Url:
        from urllib.parse import urlsplit

        from ..core.hosts import canonical_host

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
        return cls(scheme, host, port or (443 if scheme == "https" else 80), parts.path or "/", parts.query)

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def target(self) -> str:
        return self.path + (f"?{self.query}" if self.query else "")

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc()}{self.target()}"

    def join(self, location: str) -> Url:
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
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """Send one request; the caller reads the response (streamed) and closes the connection."""
    import http.client
    import ssl

    if url.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            url.host, url.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(url.host, url.port, timeout=timeout)
    try:
        conn.putrequest(method, url.target(), skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", url.netloc())
        for name, value in headers:
            conn.putheader(name, value)
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
    except TimeoutError:
        conn.close()
        raise SigError(ErrorCode.GENERAL_ERROR, f"{url.host} did not answer within {timeout:g}s",
                       "check the URL, or raise the limit with --timeout SECONDS") from None
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise SigError(ErrorCode.GENERAL_ERROR, f"request to {url.host}:{url.port} failed: {reason}",
                       "check the URL and that the server is reachable") from None
