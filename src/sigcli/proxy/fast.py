"""A fast path for the common HTTP/1.1 message heads, in front of h11.

h11 costs ~100 µs of Python per event on the daemon's hot path (an event state machine, a regex per
line, Headers objects), several times what one keep-alive GET through the proxy may cost in total. Most
traffic is plain: HTTP/1.1, one Host, a Content-Length body or none, no Expect / Upgrade / chunking.
These parsers accept exactly that and answer FALLBACK for anything else, so every unusual, ambiguous or
invalid message still goes through h11 and gets h11's verdict (and the proxy's existing error answers).

Soundness rule: whatever is accepted here h11 would accept too, and h11 would parse it to the same
method, target, status, reason and header list. The grammar below is h11's (RFC 9112) with a narrower
character set: h11 lets some control characters through in values; those fall back to h11 here. The
unit tests check the rule against h11 itself, adversarial inputs included.
"""

from __future__ import annotations

import re
from typing import Final

from . import h1

Headers = list[tuple[bytes, bytes]]

# The end of a head as h11 finds it (a bare LF counts there); only a CRLF CRLF end is taken here.
_BLANK_LINE: Final = re.compile(rb"\n\r?\n")
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_VCHAR = rb"[\x21-\x7e\x80-\xff]"  # h11 accepts [^\x00\s]: anything else (controls, DEL) falls back
# One header line with its CRLF. A block of them is validated by one fullmatch and split by one findall
# (values hold no CR or LF, so each match ends exactly at its line's CRLF): two C calls per head instead
# of a match per line.
_FIELD_LINE = _TOKEN + rb":[ \t]*(?:" + _VCHAR + rb"+(?:[ \t]+" + _VCHAR + rb"+)*)?[ \t]*\r\n"
_FIELDS = re.compile(rb"(?:" + _FIELD_LINE + rb")*")
_FIELD = re.compile(rb"(" + _TOKEN + rb"):[ \t]*((?:" + _VCHAR + rb"+(?:[ \t]+" + _VCHAR + rb"+)*)?)[ \t]*\r\n")
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/1\.1")
_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([0-9]{3})(?: ((?:[ \t]|" + _VCHAR + rb")*))?")
_DIGITS = re.compile(rb"[0-9]{1,18}")


class _Fallback:
    """Marker: hand this message to h11."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "FALLBACK"


FALLBACK: Final = _Fallback()


class RequestHead:
    """A request head the fast path took. `headers` are (lower-case name, value) pairs as h11 yields
    them; `size` is the head's length in the buffer (body bytes follow), `length` the Content-Length
    (`framed`: whether there was one); `block` the header lines as received (equal blocks mean equal
    headers: callers memoize on it). Read-only once made: a head equal to the last one (a keep-alive
    client repeating a request) is handed out again, so callers may also memoize on its identity."""

    __slots__ = ("block", "framed", "headers", "length", "method", "name", "size", "target")

    def __init__(self, method: bytes, target: bytes, headers: Headers, size: int, length: int,
                 block: bytes = b"", framed: bool = False) -> None:
        self.method = method
        self.name = method.decode("ascii")  # (a token: ASCII) the method as log lines and hooks use it
        self.target = target
        self.headers = headers
        self.size = size
        self.length = length
        self.block = block
        self.framed = framed


class ResponseHead:
    """`hop`: a hop-by-hop header is among `headers` (the client's copy is rebuilt without it)."""

    __slots__ = ("block", "headers", "hop", "length", "reason", "size", "status_code")

    def __init__(self, status_code: int, reason: bytes, headers: Headers, size: int, length: int,
                 hop: bool | None = None, block: bytes = b"") -> None:
        self.status_code = status_code
        self.reason = reason
        self.headers = headers
        self.size = size
        self.length = length
        self.hop = any(n in h1.HOP_BY_HOP for n, _ in headers) if hop is None else hop
        self.block = block


class Memo:
    """The last header block one side of a connection sent, parsed: clients and servers repeat their
    headers, so a keep-alive connection usually parses them once. Holds what the parser derived from
    exactly these bytes, and (`answer`, an upstream's) the client's copy exchange.py made of the last
    answer, which it reuses only for the same bytes and the same secret forms."""

    __slots__ = ("answer", "block", "codings", "headers", "hop", "length", "length_span", "request", "request_head",
                 "whole", "whole_head")

    def __init__(self) -> None:
        self.block: bytes | None = None
        self.headers: Headers = []
        self.length = -1
        self.hop = False
        self.codings: list[bytes] | None = None  # Content-Encoding of the block (redaction), once asked
        self.length_span: tuple[int, int] | None = None  # where the Content-Length value is in the block
        self.whole: bytes | None = None  # the last whole response head (status line too) ...
        self.whole_head: ResponseHead | None = None  # ... and what it parsed to
        self.request = b""  # the last whole request head taken (request line too) ...
        self.request_head: RequestHead | None = None  # ... and what it parsed to
        # the last redacted answer (exchange.py): (forms, its ResponseHead, its body, the client's copy, note)
        self.answer: tuple[tuple[bytes, ...], ResponseHead, bytes, bytes, str] | None = None


def _head_end(buf: bytes, max_head: int) -> int | _Fallback | None:
    """Index just past the CRLF CRLF ending the head; None while incomplete; FALLBACK for what h11 must
    judge (a bare-LF end, a first byte h11 rejects early, a head over the size bound)."""
    if not buf:
        return None
    if buf[0] < 0x21:  # h11 refuses this before the head is complete: let it
        return FALLBACK
    match = _BLANK_LINE.search(buf)
    if match is None:
        return FALLBACK if len(buf) > max_head else None
    start, end = match.span()
    if end - start != 3 or buf[start - 1] != 0x0D or end > max_head:
        return FALLBACK
    return end


def _fields(block: bytes) -> Headers | _Fallback:
    """Header lines, each with its CRLF, → (lower-case name, value) pairs."""
    if _FIELDS.fullmatch(block) is None:  # obs-fold, bare CR/LF, NUL, other controls, a bad name: h11 decides
        return FALLBACK
    return [(name.lower(), value) for name, value in _FIELD.findall(block)]


_H11_HEADERS: Final = frozenset((b"transfer-encoding", b"expect", b"upgrade"))


def _keep_alive_only(value: bytes) -> bool:
    return all(t.strip().lower() == b"keep-alive" for t in value.split(b","))


def _length_and_connection(headers: Headers) -> int | _Fallback:
    """-1 (no Content-Length) or the single plain Content-Length; FALLBACK when framing or connection
    management needs h11 (Transfer-Encoding, Expect, Upgrade, a Connection header other than keep-alive,
    repeated or list-valued Content-Length)."""
    length = -1
    for name, value in headers:
        if name == b"content-length":
            if length != -1 or _DIGITS.fullmatch(value) is None:
                return FALLBACK
            length = int(value)
        elif name in _H11_HEADERS or (name == b"connection" and not _keep_alive_only(value)):
            return FALLBACK
    return length


def parse_request(buf: bytes, max_head: int, memo: Memo | None = None) -> RequestHead | _Fallback | None:
    """The request head at the start of `buf`: RequestHead, None (need more bytes) or FALLBACK. With a
    memo, a header block equal to the last one taken is not parsed again, and a whole head equal to the
    last one gives the same RequestHead."""
    if memo is not None and memo.request_head is not None and buf.startswith(memo.request):
        # The same bytes as the last head taken, up to its CRLF CRLF: that head is complete and was
        # accepted, and its first blank line is its end, so buf's head is exactly it.
        return memo.request_head
    end = _head_end(buf, max_head)
    if end is None or end is FALLBACK:
        return end
    assert isinstance(end, int)
    eol = buf.find(b"\r\n")
    m = _REQUEST_LINE.fullmatch(buf, 0, eol)
    if m is None:
        return FALLBACK
    block = buf[eol + 2 : end - 2]
    if memo is not None and memo.block == block:
        headers, length = memo.headers, memo.length
    else:
        fields = _fields(block)
        if fields is FALLBACK:
            return FALLBACK
        assert isinstance(fields, list)
        headers = fields
        if sum(1 for n, _ in headers if n == b"host") != 1:  # h11: 400 for none or several
            return FALLBACK
        found = _length_and_connection(headers)
        if found is FALLBACK:
            return FALLBACK
        assert isinstance(found, int)
        length = found
        if memo is not None:
            memo.block, memo.headers, memo.length = block, headers, length
    method = m.group(1)
    if method == b"CONNECT" and length != -1:
        return FALLBACK
    head = RequestHead(method, m.group(2), headers, end, max(length, 0), block, length != -1)
    if memo is not None:
        memo.request, memo.request_head = buf[:end], head
    return head


def parse_response(buf: bytes, max_head: int, *, head_request: bool,
                   memo: Memo | None = None) -> ResponseHead | _Fallback | None:
    """A final response with a Content-Length body at the start of `buf`; FALLBACK for 1xx, 204, 304,
    responses to HEAD, chunked or close-delimited bodies, `Connection: close`, and anything odd."""
    if memo is not None and memo.whole is not None and not head_request and buf.startswith(memo.whole):
        # the same head as last time (status line and headers, up to its CRLF CRLF, where it ends: see
        # parse_request): parsed already
        return memo.whole_head
    end = _head_end(buf, max_head)
    if end is None or end is FALLBACK:
        return end
    assert isinstance(end, int)
    if head_request:
        return FALLBACK
    eol = buf.find(b"\r\n")
    m = _STATUS_LINE.fullmatch(buf, 0, eol)
    if m is None:
        return FALLBACK
    status = int(m.group(1))
    if status < 200 or status in (204, 304):
        return FALLBACK
    block = buf[eol + 2 : end - 2]
    if memo is not None and memo.block == block:
        head = ResponseHead(status, m.group(2) or b"", memo.headers, end, memo.length, memo.hop, block)
        memo.whole, memo.whole_head = buf[:end], head
        return head
    headers = _fields(block)
    if headers is FALLBACK:
        return FALLBACK
    assert isinstance(headers, list)
    length = _length_and_connection(headers)
    if length is FALLBACK or length == -1:
        return FALLBACK
    assert isinstance(length, int)
    head = ResponseHead(status, m.group(2) or b"", headers, end, length, None, block)
    if memo is not None:
        memo.block, memo.headers, memo.length, memo.hop = block, headers, length, head.hop
        memo.codings, memo.length_span = None, None
        memo.whole, memo.whole_head = buf[:end], head
    return head


# -- writers (the bytes h11 would produce for the same events) ---------------------------------------

_HEADER_NAME = re.compile(_TOKEN)
_HEADER_VALUE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")  # h11's outgoing rule, exactly


def valid_header(name: bytes, value: bytes) -> bool:
    """A header h11 would send: a token name, a value without CR, LF, NUL or edge whitespace (an injected
    value failing this is refused, never sent, as the h11 path refuses it)."""
    return _HEADER_NAME.fullmatch(name) is not None and _HEADER_VALUE.fullmatch(value) is not None


def request_bytes(method: bytes, target: bytes, headers: Headers) -> bytes:
    """A request head; `headers` must put Host first (h11 does the same)."""
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def response_bytes(status_code: int, reason: bytes, headers: Headers) -> bytes:
    """A response head (status line, headers, blank line) as it goes on the wire."""
    parts = [b"HTTP/1.1 %d %s\r\n" % (status_code, reason)]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def downstream_head(resp: ResponseHead) -> bytes:
    """The client's copy of a fast-path response head: hop-by-hop headers dropped, the rest (each
    Set-Cookie line included) as it came, Content-Length kept."""
    return response_bytes(resp.status_code, resp.reason, h1.downstream_response_headers(resp.headers))


def downstream_head_bytes(buf: bytes, resp: ResponseHead) -> bytes:
    """The client's copy of a fast-path response head from the buffer it was parsed from: the upstream's
    own bytes when it has no hop-by-hop header (the fast parser validated them; nothing to rebuild),
    else rebuilt without those."""
    if resp.hop:
        return downstream_head(resp)
    return buf[: resp.size]


_CONTENT_LENGTH = re.compile(rb"(?:^|\r\n)content-length:[ \t]*([0-9]+)", re.IGNORECASE)


def with_length(head: bytes, resp: ResponseHead, length: int, memo: Memo | None = None) -> bytes:
    """The client's copy of a fast-path response head (`head`: the upstream's bytes of it; rebuilt instead
    when it has hop-by-hop headers) with a new Content-Length (the parser took exactly one). Where the
    value sits in the upstream's own header block is found once per distinct block."""
    if head is not None and not resp.hop:
        span = memo.length_span if memo is not None and memo.block == resp.block else None
        if span is None:
            m = _CONTENT_LENGTH.search(resp.block)
            assert m is not None
            span = m.span(1)
            if memo is not None and memo.block == resp.block:
                memo.length_span = span
        at = resp.size - 2 - len(resp.block)
        return head[: at + span[0]] + str(length).encode("ascii") + head[at + span[1] :]
    headers = [(n, v) for n, v in h1.downstream_response_headers(resp.headers) if n != b"content-length"]
    headers.append((b"content-length", str(length).encode("ascii")))
    return response_bytes(resp.status_code, resp.reason, headers)
