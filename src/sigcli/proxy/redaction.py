"""Response redaction for the proxy: secrets sig injected into a request never come back to the client.

An upstream may echo what it received (error pages, debug endpoints, "who am I" answers quoting the
token). The proxy passes responses to requests it injected into through here: header values and the body
(decoded when it is gzip, deflate or br) get every form of the injected secrets replaced by `****`, as
`sig request` and `sig run` show them. Sans-IO: `server.py` feeds bytes in and writes what comes out.

Memory stays bounded whatever the body: decoders hand out at most PIECE bytes per step (a few kilobytes
of gzip can hold gigabytes), the streaming redactor holds back only a possible secret's beginning, and
the caller writes each piece before asking for the next.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator

from ..core.redactor import MASK, StreamRedactor

PIECE = 64 * 1024  # the most decoded output produced in one step
# A body (as sent, and once decoded) up to this size is redacted whole before anything is written: the
# client gets an exact Content-Length, and the original bytes (still compressed) when nothing was found.
# Bigger or unknown-length bodies stream through and are re-framed (chunked to HTTP/1.1 clients).
BUFFER_MAX = 1024 * 1024
_FRAMING = frozenset((b"content-length", b"transfer-encoding"))
_DECODABLE = (b"gzip", b"x-gzip", b"deflate", b"br")


class CannotInspect(Exception):
    """A body sig cannot decode, so cannot check for secrets (an unknown coding, a corrupt stream). The
    text names the coding only; never body bytes."""


_BROTLI: list[bool] = []  # [whether brotli imports], once known


def brotli_available() -> bool:
    """Whether the brotli module imports (br bodies can be decoded); found out once."""
    if not _BROTLI:
        try:
            import brotli  # noqa: F401  (a dependency; imported only when needed)
        except ImportError:
            _BROTLI.append(False)
        else:
            _BROTLI.append(True)
    return _BROTLI[0]


def content_codings(headers: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
    """The codings of Content-Encoding in the order they were applied (identity dropped), lower-case."""
    out: list[bytes] = []
    for name, value in headers:
        if name == b"content-encoding":
            out += [t.strip().lower() for t in value.split(b",") if t.strip() and t.strip().lower() != b"identity"]
    return out


def undecodable(codings: Iterable[bytes]) -> bytes | None:
    """The first coding sig cannot decode, or None."""
    for coding in codings:
        if coding not in _DECODABLE or (coding == b"br" and not brotli_available()):
            return coding
    return None


_ACCEPT: dict[bytes, bytes] = {}  # Accept-Encoding value → what sig sends (clients repeat theirs)


def _accepted(value: bytes) -> bytes:
    known = {b"gzip", b"x-gzip", b"deflate", b"identity"} | ({b"br"} if brotli_available() else set())
    kept = [t.strip() for t in value.split(b",") if t.strip() and t.split(b";")[0].strip().lower() in known]
    return b", ".join(kept) or b"identity"


def limit_accept_encoding(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A request's Accept-Encoding cut to the codings sig can decode (so a server that honours it never
    answers in one sig could not check): `*`, zstd and the like are dropped; nothing left → identity."""
    values = [v for n, v in headers if n == b"accept-encoding"]
    if not values:
        return headers
    value = values[0] if len(values) == 1 else b", ".join(values)
    limited = _ACCEPT.get(value)
    if limited is None:
        limited = _accepted(value)
        if len(_ACCEPT) >= 256:
            _ACCEPT.clear()
        _ACCEPT[value] = limited
    if limited == value and len(values) == 1:
        return headers
    out = [(n, v) for n, v in headers if n != b"accept-encoding"]
    out.append((b"accept-encoding", limited))
    return out


class Detector:
    """Finds the secret forms in a client connection's answers, with one redactor kept per connection
    (built once per set of forms: building one costs more than a pass).

    spans() / mask_message() ask about whole messages, a stateless question. found() streams header
    values and body through the redactor: it is reused while it finds nothing (a keep-alive connection's
    answers then cost one feed each, not a new redactor each). Reuse cannot hide a secret: what a used
    redactor keeps is the tail of the previous message as context, which can only add a match, and a
    redactor that masked anything is dropped. A match across two parts (a form would have to contain a
    newline) or across messages only costs the caller the exact per-part pass."""

    __slots__ = ("_find", "_forms", "_redactor")

    def __init__(self) -> None:
        self._forms: tuple[bytes, ...] = ()
        self._redactor: StreamRedactor | None = None
        self._find: Callable[[bytes], list[list[int]]] | None = None  # spans() of _redactor, once spans() ran

    def found(self, forms: tuple[bytes, ...], headers: Iterable[tuple[bytes, bytes]], body: bytes = b"") -> bool:
        """True when a secret form is in the header values (Content-Length and Transfer-Encoding aside)
        or the body."""
        blob = b"\n".join([v for n, v in headers if n not in _FRAMING] + [body])
        redactor = self._redactor
        if redactor is None or forms != self._forms:
            redactor = self._redactor = StreamRedactor(forms)
            self._forms = forms
            self._find = None
        if redactor.feed(blob) + redactor.flush() == blob:
            return False
        self._redactor = self._find = None
        return True


    def mask_message(self, forms: tuple[bytes, ...], head: bytes, body: bytes) -> bytes | None:
        """A whole message (its head as received, then its body) with every secret form masked, in one
        redactor pass; None when nothing was masked (the usual answer)."""
        blob = head + body
        return mask_spans(blob, self.spans(forms, blob))

    def spans(self, forms: tuple[bytes, ...], blob: bytes) -> list[list[int]]:
        """Where the secret forms are in `blob`, a whole message (sorted, merged; [] when nowhere), as
        mask_spans() masks them.

        The redactor is kept even after it found something: it is asked about whole buffers only and
        keeps nothing from one to the next."""
        find = self._find
        if find is None or (forms is not self._forms and forms != self._forms):
            redactor = self._redactor = StreamRedactor(forms)
            self._forms = forms
            find = self._find = redactor.spans
        return find(blob)


def mask_spans(blob: bytes, spans: list[list[int]]) -> bytes | None:
    """`blob` with each span (sorted, merged: what StreamRedactor finds in a whole buffer) replaced by the
    mask; None without spans. The same bytes a fresh StreamRedactor's feed(blob) + flush() gives, in one
    matcher pass and no held-tail bookkeeping (tests/unit check it against that)."""
    if not spans:
        return None
    out: list[bytes] = []
    last = 0
    for start, end in spans:
        if start > last:
            out.append(blob[last:start])
        out.append(MASK)
        last = end
    out.append(blob[last:])
    return b"".join(out)


def found(forms: tuple[bytes, ...], headers: Iterable[tuple[bytes, bytes]], body: bytes = b"") -> bool:
    """Detector.found with a fresh redactor."""
    return Detector().found(forms, headers, body)


def redact_headers(forms: tuple[bytes, ...], headers: Iterable[tuple[bytes, bytes]]
                   ) -> tuple[list[tuple[bytes, bytes]], bool]:
    """(headers with secrets in their values masked, whether any was). Framing headers are left alone:
    the proxy rewrites those itself when the body changes."""
    headers = list(headers)
    values = [v for n, v in headers if n not in _FRAMING]
    if not values:
        return headers, False
    blob = b"\n".join(values)  # one pass for the usual case: no header holds a secret
    redactor = StreamRedactor(forms)
    if redactor.feed(blob) + redactor.flush() == blob:
        return headers, False
    out = []
    for name, value in headers:
        if name not in _FRAMING:
            one = StreamRedactor(forms)
            value = one.feed(value) + one.flush()
        out.append((name, value))
    return out, True


# -- decoders ----------------------------------------------------------------------------------------


class _Zlib:
    """gzip (several members too) or deflate (zlib-wrapped as RFC 9110 says, or raw as some servers send)."""

    def __init__(self, coding: bytes) -> None:
        self._gzip = coding in (b"gzip", b"x-gzip")
        self._d: zlib._Decompress | None = zlib.decompressobj(16 + zlib.MAX_WBITS) if self._gzip else None
        self._ended = False
        self._first = b""  # deflate: the first byte, until the second tells zlib-wrapped from raw

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._d is None and len(self._first) + len(data) < 2:
            self._first += data
            return
        if self._first:
            data, self._first = self._first + data, b""
        while data:
            if self._d is None:  # deflate: zlib header (CMF/FLG, a multiple of 31) or raw
                raw = len(data) < 2 or (data[0] & 0x0F) != 8 or ((data[0] << 8) | data[1]) % 31 != 0
                self._d = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
            if self._ended:
                if not (self._gzip and data[:2] == b"\x1f\x8b"):
                    return  # bytes after the end of the stream: nothing a client would decode
                self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)  # the next gzip member
                self._ended = False
            d = self._d
            try:
                out = d.decompress(data, PIECE)
                if out:
                    yield out
                while len(out) == PIECE:  # more output pending for the input already taken
                    out = d.decompress(d.unconsumed_tail, PIECE)
                    if out:
                        yield out
            except zlib.error:
                raise CannotInspect("the body's compressed data is corrupt") from None
            data = d.unconsumed_tail
            if d.eof:
                self._ended = True
                data = d.unused_data
            elif data:
                continue

    def finish(self) -> Iterator[bytes]:
        if self._first:  # a one-byte deflate body: nothing a client could decode either
            raise CannotInspect("the body's compressed data is corrupt")
        if self._d is not None and not self._ended:
            try:
                out = self._d.flush()
            except zlib.error:
                raise CannotInspect("the body's compressed data is corrupt") from None
            if out:
                yield out


class _Brotli:
    def __init__(self) -> None:
        import brotli

        self._brotli = brotli
        self._d = brotli.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        d = self._d
        try:
            out = d.process(data, output_buffer_limit=PIECE)
            if out:
                yield out
            while not d.can_accept_more_data():
                out = d.process(b"", output_buffer_limit=PIECE)
                if not out:
                    break
                yield out
        except self._brotli.error:
            raise CannotInspect("the body's compressed data is corrupt") from None

    def finish(self) -> Iterator[bytes]:
        return iter(())


class BodyFilter:
    """Body bytes as received (Content-Encoding applied) → the client's bytes: decoded, then redacted.

    feed() and finish() are generators: each piece is at most a few PIECEs; write it before pulling the
    next. `changed` tells whether any secret was masked so far; `decoded` whether codings were undone."""

    def __init__(self, forms: tuple[bytes, ...], codings: list[bytes]) -> None:
        bad = undecodable(codings)
        if bad is not None:
            raise CannotInspect(f"Content-Encoding {bad.decode('latin-1', 'replace')[:40]}")
        self._decoders = [_Brotli() if c == b"br" else _Zlib(c) for c in reversed(codings)]
        self._redactor = StreamRedactor(forms)
        self.decoded = bool(self._decoders)
        self.changed = False
        self._in = 0  # decoded bytes fed to the redactor
        self._out = 0

    def _decode(self, pieces: Iterable[bytes], start: int) -> Iterator[bytes]:
        for decoder in self._decoders[start:]:
            pieces = _through(decoder, pieces)
        return iter(pieces)

    def _redact(self, pieces: Iterable[bytes]) -> Iterator[bytes]:
        for piece in pieces:
            self._in += len(piece)
            out = self._redactor.feed(piece)
            if out:
                self._out += len(out)
                yield out

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Received body bytes → bytes for the client: decoded and with secrets masked."""
        yield from self._redact(self._decode((data,), 0))

    def decode_whole(self, body: bytes) -> Iterator[bytes]:
        """A whole body decoded (not redacted), piece by piece."""
        yield from self._decode((body,), 0)
        for i, decoder in enumerate(self._decoders):
            yield from self._decode(decoder.finish(), i + 1)

    def finish(self) -> Iterator[bytes]:
        """The rest once the body ended: what the decoders and the redactor still held. Sets `changed`."""
        for i, decoder in enumerate(self._decoders):
            yield from self._redact(self._decode(decoder.finish(), i + 1))
        out = self._redactor.flush()
        self._out += len(out)
        # A mask is 4 bytes and a secret at least 4: output as long as the input means nothing was masked
        # unless a 4-byte form was; comparing lengths needs no copy of the body.
        self.changed = self._out != self._in or self._masked_same_length
        if out:
            yield out

    @property
    def _masked_same_length(self) -> bool:
        return bool(getattr(self._redactor, "redacted", 0))


def _through(decoder: _Zlib | _Brotli, pieces: Iterable[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield from decoder.feed(piece)


def whole(forms: tuple[bytes, ...], codings: list[bytes], body: bytes, limit: int = BUFFER_MAX
          ) -> tuple[bytes, bool] | None:
    """(the client's body, whether anything was masked) for a body held whole: decoded and redacted.
    None when its decoded size passes `limit` (the caller streams it instead). CannotInspect as above."""
    if codings:
        flt = BodyFilter(forms, codings)
        parts: list[bytes] = []
        size = 0
        for piece in flt.decode_whole(body):
            size += len(piece)
            if size > limit:
                return None
            parts.append(piece)
        body = b"".join(parts)
    redactor = StreamRedactor(forms)
    out = redactor.feed(body) + redactor.flush()
    return out, out != body
