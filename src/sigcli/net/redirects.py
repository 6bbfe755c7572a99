"""Redirects over one exchange, origin-safe: what sig added to a request goes only to the origin it was for.

The HTTP client is layered as httpx's is, each layer over the one below:
  inject/request.py   credentials: the providers' apply rules, one retry after a 401 with a renewed credential
  net/redirects.py    redirects (here): 301/302/303/307/308, at most MAX_REDIRECTS hops
  net/http.py         one exchange (`send`): TLS, a networkProxy (http or SOCKS), a streamed body
Nothing here knows a provider or a credential: the layer above hands over `Additions` (plain names and
values) and this one decides, hop by hop, whether they may go along (same scheme, host and port only).
"""

from __future__ import annotations

from ..core.errors import ErrorCode, SigError
from .http import Url, send

TYPE_CHECKING = False
if TYPE_CHECKING:
    import http.client
    from collections.abc import Callable

    from .network_proxy import NetworkProxy

REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 10


class Additions:
    """What sig adds to a request for its first origin: headers, query parameters, body fields."""

    __slots__ = ("body", "headers", "query")

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.query: dict[str, str] = {}
        self.body: dict[str, str] = {}

    def __repr__(self) -> str:  # names only: the values are secrets
        return f"Additions(headers={sorted(self.headers)}, query={sorted(self.query)}, body={sorted(self.body)})"


class Exchange:
    """The last response of a request and its redirects; the caller reads the body and closes it."""

    def __init__(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse, url: Url,
                 redirects: int) -> None:
        self.conn = conn
        self.response = response
        self.url = url
        self.redirects = redirects

    @property
    def status(self) -> int:
        """The HTTP status of the last response."""
        return self.response.status

    def close(self) -> None:
        """Close the response and its connection."""
        self.response.close()
        self.conn.close()


def with_query(url: Url, extra: dict[str, str]) -> Url:
    """`url` with the query parameters `extra` set (replacing same-named ones)."""
    if not extra:
        return url
    from urllib.parse import parse_qsl, urlencode

    pairs = [(k, v) for k, v in parse_qsl(url.query, keep_blank_values=True) if k not in extra]
    pairs += list(extra.items())
    return Url(url.scheme, url.host, url.port, url.path, urlencode(pairs))


def with_body(body: bytes | None, content_type: str, extra: dict[str, str]) -> bytes | None:
    """`body` with the fields `extra` merged in: a form body stays a form, anything else must be a JSON object."""
    if not extra:
        return body
    kind = content_type.split(";")[0].strip().lower()
    text = (body or b"").decode("utf-8", "replace")
    if kind == "application/x-www-form-urlencoded":
        from urllib.parse import parse_qsl, urlencode

        pairs = [(k, v) for k, v in parse_qsl(text, keep_blank_values=True) if k not in extra]
        return urlencode([*pairs, *extra.items()]).encode("utf-8")
    import json

    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise SigError(ErrorCode.USAGE_ERROR, "the provider adds body fields, but the body is not a JSON object",
                       "send a JSON object (or a form body with Content-Type: application/x-www-form-urlencoded)")
    data.update(extra)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def header(headers: list[tuple[str, str]], name: str) -> str | None:
    """The value of header `name` (any case) in `headers`, or None."""
    low = name.lower()
    for n, v in headers:
        if n.lower() == low:
            return v
    return None


def send_following(method: str, url: Url, headers: list[tuple[str, str]], body: bytes | None,
                   added: Additions, *, ca: list[str], proxy: NetworkProxy | None, timeout: float,
                   user_agent: str, log: Callable[[str], None]) -> Exchange:
    """Send `method url` and follow its redirects. `added` goes into every hop at the first origin and into
    none elsewhere; a 303 (and a 301/302 after a POST) turns into a body-less GET, as browsers do."""
    from .tls import client_context

    user_headers = list(headers)
    origin = url.origin
    current, current_method, current_body = url, method, body
    for hop in range(MAX_REDIRECTS + 1):
        inject = current.origin == origin
        sent_headers = [("User-Agent", user_agent), ("Accept", "*/*")]
        names = {n.lower() for n, _ in user_headers}
        if inject:
            sent_headers += [(n, v) for n, v in added.headers.items() if n.lower() not in names]
            target = with_query(current, added.query)
            payload = with_body(current_body, header(user_headers, "Content-Type") or "", added.body) \
                if current_body is not None or added.body else current_body
        else:
            target, payload = current, current_body
        sent_headers = [(n, v) for n, v in sent_headers if n.lower() not in names] + user_headers
        if current_method in ("GET", "HEAD") and payload is not None and not inject:
            payload = None
        context = client_context(ca) if target.scheme == "https" else None
        log(f"{current_method} {target.scheme}://{target.netloc()}{target.path}"
            + ("" if inject else " (no credentials: another origin)")
            + (f" via {proxy.label}" if proxy is not None else ""))
        conn, response = send(current_method, target, sent_headers, payload, context=context, timeout=timeout,
                              proxy=proxy)
        location = response.getheader("Location")
        if response.status not in REDIRECTS or not location or hop == MAX_REDIRECTS:
            return Exchange(conn, response, current, hop)
        response.read(1 << 20)
        response.close()
        conn.close()
        nxt = current.join(location)
        if response.status == 303 or (response.status in (301, 302) and current_method == "POST"):
            current_method, current_body = ("GET" if current_method != "HEAD" else "HEAD"), None
            user_headers = [(n, v) for n, v in user_headers if n.lower() not in ("content-type",)]
        if current.scheme == "https" and nxt.scheme == "http":
            log("redirect downgrades https to http: nothing sig added is sent")
        current = nxt
    raise AssertionError("unreachable")
