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
    import re
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
        self._rx: re.Pattern[bytes] | None = None
        self.redacted = 0  # how many secrets were masked so far

    @property
    def active(self) -> bool:
        return bool(self.forms)

    def _spans(self, buf: bytes) -> list[list[int]]:
        """Every complete occurrence of every form, merged where they overlap or touch."""
        if len(buf) >= 4096:
            # Large chunks: one regex pass (≈1 GB/s) rules out the usual case of no secret at all.
            # Small ones skip it so short-lived commands never pay for importing `re`.
            if self._rx is None:
                import re

                self._rx = re.compile(b"|".join(re.escape(f) for f in self.forms))
            if self._rx.search(buf) is None:
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

    def _mask(self, buf: bytes, spans: list[list[int]]) -> bytes:
        if not spans:
            return buf
        out = []
        last = 0
        for s, e in spans:
            out.append(buf[last:s])
            out.append(self.mask)
            last = e
        out.append(buf[last:])
        self.redacted += len(spans)
        return b"".join(out)

    def _prefix_start(self, buf: bytes) -> int:
        """Start of the longest tail of `buf` that is a proper prefix of a form (len(buf) if none)."""
        for k in range(min(self.max_len - 1, len(buf)), 0, -1):
            if buf[-k:] in self._prefixes:
                return len(buf) - k
        return len(buf)

    def feed(self, data: bytes) -> bytes:
        """Bytes safe to emit now; a possible secret's beginning is kept until the next feed or flush.

        No incomplete secret can start before the longest "could still become a secret" tail, and every
        secret that starts before it is complete in the buffer, so masking up to there is final.
        """
        if not self.forms:
            return data
        buf = self._held + data
        cut = self._prefix_start(buf)
        spans = self._spans(buf)
        for s, e in spans:
            if s < cut < e:
                # A complete secret overlaps the start of what may become another: keep both, so the
                # union is masked as one (no byte of the second one shown) — unless that grows too big.
                cut = s if len(buf) - s <= self.hold_limit else e
                break
        self._held = buf[cut:]
        return self._mask(buf[:cut], [sp for sp in spans if sp[1] <= cut])

    def flush(self) -> bytes:
        """End of stream (or the caller gave up waiting): the held tail is not a whole secret."""
        held, self._held = self._held, b""
        return self._mask(held, self._spans(held)) if held else b""

    @property
    def holding(self) -> bool:
        return bool(self._held)
