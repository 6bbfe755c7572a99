"""Sans-IO pieces of the proxy: targets, header rewriting, injection into query and body. (Proxy auth is
profiles.TokenTable.check.)

Nothing here touches a socket; `server.py` feeds bytes and h11 events through these functions. Header
names are lower-case bytes (as h11 hands them over); values stay bytes.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from ..core.hosts import canonical_host

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

Headers = list[tuple[bytes, bytes]]

# Hop-by-hop headers (RFC 9110 §7.6.1, plus the de-facto Proxy-Connection and Keep-Alive). `expect` is
# answered by the proxy itself (it sends 100 Continue), so it does not travel upstream either.
HOP_BY_HOP = frozenset((
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"proxy-connection",
    b"te", b"trailer", b"trailers", b"transfer-encoding", b"upgrade",
))
# Request headers that never go upstream as the client sent them: hop-by-hop ones, Host and Content-Length
# (set by the proxy), Expect (answered by the proxy). routes.py builds its per-route set from it.
REQUEST_DROP = HOP_BY_HOP | {b"host", b"content-length", b"expect"}

# Character checks as regexes: the proxy runs them on every request (Host header), and one C-level match
# costs a fraction of a per-byte generator.
_PRINTABLE = re.compile(rb"[\x21-\x7e]*")
_HOST_CHARS = re.compile(rb"[a-zA-Z0-9._-]+")
_HEX_COLON = re.compile(rb"[0-9a-fA-F:.%]+")


class BadTarget(ValueError):
    """A request target or authority the proxy refuses (the text is safe to show: no header values)."""


def reason(status: int) -> bytes:
    """The status's standard reason phrase (b"" for a code HTTP does not name)."""
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


# -- targets -----------------------------------------------------------------------------------------


def parse_authority(raw: bytes | str, default_port: int | None = None) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) → (canonical host, port). Rejects CR/LF/NUL, spaces, userinfo, paths,
    bad ports; the port may be omitted only when `default_port` is given."""
    data = raw.encode("latin-1") if isinstance(raw, str) else bytes(raw)
    if not data or len(data) > 300:
        raise BadTarget("empty or overlong host")
    if _PRINTABLE.fullmatch(data) is None:
        raise BadTarget("control characters or spaces in the target")
    if data.startswith(b"["):
        end = data.find(b"]")
        if end == -1:
            raise BadTarget("unclosed [ in the target")
        host_b, rest = data[1:end], data[end + 1 :]
        if _HEX_COLON.fullmatch(host_b) is None or b":" not in host_b:
            raise BadTarget("bad IPv6 address")
        if rest and not rest.startswith(b":"):
            raise BadTarget("junk after the IPv6 address")
        port_b = rest[1:] if rest else None
    else:
        host_b, sep, port_b_ = data.rpartition(b":")
        if not sep:
            host_b, port_b = data, None
        else:
            port_b = port_b_
        if _HOST_CHARS.fullmatch(host_b) is None:
            raise BadTarget("bad host name")
        if host_b.startswith((b".", b"-")) or b".." in host_b:
            raise BadTarget("bad host name")
    if port_b is None:
        if default_port is None:
            raise BadTarget("the target has no port")
        port = default_port
    else:
        if not port_b.isdigit() or len(port_b) > 5:
            raise BadTarget("bad port")
        port = int(port_b)
        if not 0 < port < 65536:
            raise BadTarget("bad port")
    host = canonical_host(host_b.decode("ascii"))
    if not host:
        raise BadTarget("bad host name")
    return host, port


def authority(host: str, port: int, default_port: int) -> bytes:
    """The Host header value for host:port (port left out when it is the scheme's default)."""
    h = f"[{host}]" if ":" in host else host
    return (h if port == default_port else f"{h}:{port}").encode("ascii")


def parse_absolute(target: bytes) -> tuple[str, str, int, bytes]:
    """`http://host[:port]/path?q` → (scheme, host, port, origin-form target). BadTarget otherwise."""
    lower = bytes(target[:8]).lower()
    if lower.startswith(b"http://"):
        scheme, default, rest = "http", 80, bytes(target[7:])
    elif lower.startswith(b"https://"):
        scheme, default, rest = "https", 443, bytes(target[8:])
    else:
        raise BadTarget("not an absolute http(s) URL")
    cut = len(rest)
    for sep in (b"/", b"?", b"#"):
        i = rest.find(sep)
        if i != -1:
            cut = min(cut, i)
    auth, path = rest[:cut], rest[cut:]
    if b"@" in auth:  # userinfo never travels (it would be sent as-is in no header anyway)
        auth = auth.rpartition(b"@")[2]
    host, port = parse_authority(auth, default)
    path = path.partition(b"#")[0]
    if not path.startswith(b"/"):
        path = b"/" + path
    return scheme, host, port, path


def host_matches(value: bytes, host: str, port: int, default_port: int) -> bool:
    """Does a Host header (or an absolute URL's authority) name exactly host:port?"""
    try:
        h, p = parse_authority(value, default_port)
    except BadTarget:
        return False
    return h == host and p == port


def loggable_path(target: bytes, limit: int = 200) -> str:
    """The path without query or fragment, printable ASCII only (the query may hold secrets)."""
    path = bytes(target).partition(b"?")[0].partition(b"#")[0]
    head = path[:limit]
    if _PRINTABLE.fullmatch(head) is not None:
        text = head.decode("ascii")
    else:
        text = "".join(chr(b) if 0x20 < b < 0x7F else "?" for b in head)
    return text + ("…" if len(path) > limit else "")


# -- headers -----------------------------------------------------------------------------------------


def get_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header `name` (lower-case), or None."""
    for n, v in headers:
        if n == name:
            return v
    return None


def comma_tokens(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> set[bytes]:
    """The comma-separated tokens of every `name` header, lower-cased (for Connection and the like)."""
    out: set[bytes] = set()
    for n, v in headers:
        if n == name:
            out.update(t.strip().lower() for t in v.split(b",") if t.strip())
    return out


def is_upgrade(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether the request asks for a protocol switch (Connection: upgrade with an Upgrade header)."""
    headers = list(headers)
    return b"upgrade" in comma_tokens(headers, b"connection") and get_header(headers, b"upgrade") is not None


def request_framing(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, int]:
    """("chunked", -1), ("length", n) or ("none", 0): how the client's request body is framed (h11 has
    already rejected conflicting or malformed framing)."""
    headers = list(headers)
    if get_header(headers, b"transfer-encoding") is not None:
        return "chunked", -1
    cl = get_header(headers, b"content-length")
    if cl is not None:
        return "length", int(cl)
    return "none", 0


def upstream_request_headers(
    headers: Iterable[tuple[bytes, bytes]],
    *,
    host_value: bytes,
    add: Mapping[str, str],
    framing: tuple[str, int],
    upgrade: bool,
) -> Headers:
    """The client's headers minus hop-by-hop ones (and those its Connection header lists), Host set to the
    real target, sig's headers replacing any of the same name, framing and Upgrade put back explicitly."""
    headers = list(headers)
    listed = comma_tokens(headers, b"connection") - {b"close", b"keep-alive", b"upgrade"}
    replaced = {name.lower().encode("latin-1") for name in add}
    out: Headers = [(b"host", host_value)]
    for n, v in headers:
        if n in REQUEST_DROP or n in listed or n in replaced:
            continue
        out.append((n, v))
    for name, value in add.items():
        out.append((name.encode("latin-1"), value.encode("utf-8")))
    kind, length = framing
    if kind == "chunked":
        out.append((b"transfer-encoding", b"chunked"))
    elif kind == "length":
        out.append((b"content-length", str(length).encode("ascii")))
    if upgrade:
        protocol = get_header(headers, b"upgrade")
        out.append((b"connection", b"upgrade"))
        out.append((b"upgrade", protocol or b""))
    return out


def downstream_response_headers(headers: Iterable[tuple[bytes, bytes]], *, upgrade: bool = False) -> Headers:
    """Upstream response headers for the client: hop-by-hop removed (h11 re-frames the body), every
    repeated header (Set-Cookie) kept as its own line. A 101 keeps Connection/Upgrade."""
    headers = list(headers)
    listed = comma_tokens(headers, b"connection") - {b"close", b"keep-alive", b"upgrade"}
    chunked = get_header(headers, b"transfer-encoding") is not None
    out: Headers = []
    for n, v in headers:
        if n in HOP_BY_HOP or n in listed or (chunked and n == b"content-length"):
            continue
        out.append((n, v))
    if upgrade:
        out.append((b"connection", b"upgrade"))
        out.append((b"upgrade", get_header(headers, b"upgrade") or b""))
    return out


# -- injection ---------------------------------------------------------------------------------------


def _replace_pairs(raw: bytes, extra: Mapping[str, str], *, plus: bool) -> bytes:
    """`a=1&b=2` with each key of `extra` set (replacing every pair of that name, added at the end).
    Pairs sig does not touch are kept byte for byte."""
    from urllib.parse import quote, quote_plus, unquote, unquote_plus

    decode = unquote_plus if plus else unquote
    encode = quote_plus if plus else quote
    kept = []
    for pair in raw.split(b"&"):
        if not pair:
            continue
        key = decode(pair.partition(b"=")[0].decode("latin-1"))
        if key not in extra:
            kept.append(pair)
    added = [f"{encode(k, safe='')}={encode(v, safe='')}".encode("ascii") for k, v in extra.items()]
    return b"&".join(kept + added)


def with_query(target: bytes, extra: Mapping[str, str]) -> bytes:
    """Set (replace) query parameters on an origin-form target."""
    if not extra:
        return target
    path, _, query = bytes(target).partition(b"?")
    return path + b"?" + _replace_pairs(query, extra, plus=False)


def body_kind(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """"json" or "form" when sig knows how to add fields to this body; None leaves it alone."""
    ct = get_header(headers, b"content-type")
    if ct is None:
        return None
    base = ct.split(b";")[0].strip().lower()
    if base == b"application/x-www-form-urlencoded":
        return "form"
    if base == b"application/json" or (base.startswith(b"application/") and base.endswith(b"+json")):
        return "json"
    return None


def inject_body(body: bytes, kind: str, extra: Mapping[str, str]) -> bytes | None:
    """The body with sig's fields set, or None when it is not a JSON object / form (left unchanged).
    An empty body counts as `{}` / an empty form (the original's rule)."""
    if kind == "form":
        return _replace_pairs(body, extra, plus=True)
    if kind != "json":
        return None
    import json

    try:
        text = body.decode("utf-8")
        data = json.loads(text) if text.strip() else {}
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    data.update(extra)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# -- canned responses --------------------------------------------------------------------------------


def text_response_head(status: int, text: str, extra: Iterable[tuple[bytes, bytes]] = ()) -> tuple[Headers, bytes]:
    """(headers, body) of a short text/plain answer from the proxy itself; it closes the connection."""
    body = (text.rstrip("\n") + "\n").encode("utf-8")
    headers: Headers = [(b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode("ascii"))]
    headers += list(extra)
    headers.append((b"connection", b"close"))
    return headers, body


def raw_response(status: int, text: str, extra: Iterable[tuple[bytes, bytes]] = ()) -> bytes:
    """A complete `Connection: close` response, for when there is no usable h11 state."""
    headers, body = text_response_head(status, text, extra)
    lines = [b"HTTP/1.1 %d %s" % (status, reason(status))] + [n + b": " + v for n, v in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
