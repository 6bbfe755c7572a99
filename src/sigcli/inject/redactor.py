"""Streaming redaction of a child's output: every secret form becomes `****`, even when split across reads.

Bytes in, bytes out. The redactor holds back only the shortest tail that could still grow into a secret
(a proper prefix of one of the forms) and emits everything else at once, so interactive output is not
delayed unless it ends in what looks like the start of a secret. Text that is not a secret passes through
byte for byte (binary output stays exact). Overlapping matches are merged into one mask, so no piece of
either secret is shown.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

MASK = b"****"


class StreamRedactor:
    def __init__(self, secrets: Iterable[str | bytes], mask: bytes = MASK, min_len: int = 4) -> None:
        forms = {s.encode("utf-8") if isinstance(s, str) else bytes(s) for s in secrets}
        self.forms = sorted((f for f in forms if len(f) >= min_len), key=lambda f: (-len(f), f))
        self.mask = mask
        self.max_len = max((len(f) for f in self.forms), default=0)
        self._prefixes = {f[:k] for f in self.forms for k in range(1, len(f))}
        self._held = b""
        self.hold_limit = max(65536, 4 * self.max_len)
        self._ctx = b""
        self._ends_with_mask = False
        self.redacted = 0  # how many secrets were masked so far

    @property
    def active(self) -> bool:
        return bool(self.forms)

    def _spans(self, buf: bytes) -> list[list[int]]:
        """Every complete occurrence of every form, merged where they overlap or touch."""
        if not any(form in buf for form in self.forms):  # the usual case: one fast pass per form
            return []
        spans: list[tuple[int, int]] = []
        for form in self.forms:
            start = buf.find(form)
            while start != -1:
                spans.append((start, start + len(form)))
                start = buf.find(form, start + 1)
        spans.sort()
        merged: list[list[int]] = []
        for s, e in spans:
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        return merged

    def _emit(self, buf: bytes, start: int, stop: int, spans: list[list[int]]) -> bytes:
        """buf[start:stop] with spans masked. A span that continues one already masked (touching or
        overlapping what was emitted before) adds no second mask, so the output never depends on how
        the input was split."""
        out = []
        last = start
        ends_with_mask = self._ends_with_mask
        for s, e in spans:
            if e <= start or s >= stop:
                continue
            s, e = max(s, start), min(e, stop)
            if s > last:
                out.append(buf[last:s])
                ends_with_mask = False
            if not (s == start and self._ends_with_mask and not out):
                out.append(self.mask)
                self.redacted += 1
            ends_with_mask = True
            last = e
        if last < stop:
            out.append(buf[last:stop])
            ends_with_mask = False
        if stop > start:
            self._ends_with_mask = ends_with_mask
        return b"".join(out)

    def _prefix_start(self, buf: bytes) -> int:
        """Start of the longest tail of `buf` that is a proper prefix of a form (len(buf) if none)."""
        for k in range(min(self.max_len - 1, len(buf)), 0, -1):
            if buf[-k:] in self._prefixes:
                return len(buf) - k
        return len(buf)

    def feed(self, data: bytes) -> bytes:
        """Bytes safe to emit now; a possible secret's beginning is kept until the next feed or flush.

        The buffer is: context (the last bytes already emitted, for matching only) + held + data.
        No incomplete secret can start before the longest "could still become a secret" tail, and every
        secret that starts before it is complete in the buffer, so masking up to there is final.
        """
        if not self.forms:
            return data
        ctx = self._ctx
        buf = ctx + self._held + data
        offset = len(ctx)
        cut = max(self._prefix_start(buf), offset)
        spans = self._spans(buf)
        for s, e in spans:
            if s < cut < e:
                # A complete secret overlaps what may become another: hold both so the union is masked
                # once — unless that grows too big, or it began in what was already emitted.
                cut = s if s >= offset and len(buf) - s <= self.hold_limit else e
                break
        out = self._emit(buf, offset, cut, spans)
        self._held = buf[cut:]
        self._ctx = buf[max(0, cut - self.max_len + 1) : cut]
        return out

    def flush(self) -> bytes:
        """End of stream (or the caller gave up waiting): the held tail is not a whole secret."""
        if not self._held:
            return b""
        buf = self._ctx + self._held
        out = self._emit(buf, len(self._ctx), len(buf), self._spans(buf))
        self._held = b""
        self._ctx = b""
        return out

    @property
    def holding(self) -> bool:
        return bool(self._held)
