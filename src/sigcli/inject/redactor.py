"""Streaming redaction of a child's output: every secret form becomes `****`, even when split across reads.

Bytes in, bytes out. The redactor holds back only the shortest tail that could still grow into a secret
(a proper prefix of one of the forms) and emits everything else at once, so interactive output is not
delayed unless it ends in what looks like the start of a secret. Text that is not a secret passes through
byte for byte (binary output stays exact). Overlapping matches are merged into one mask, so no piece of
either secret is shown.

Finding the secrets is one multi-pattern pass per feed with ahocorasick-rs when it is installed (imported
only once a redactor with secrets first scans, so `sig run -- true` never pays for it); without it, one
`bytes.find` scan per form, as the fallback. Both give exactly the same output.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from types import ModuleType

MASK = b"****"
ENGINES = ("ahocorasick", "find")


def _load_ahocorasick() -> ModuleType | None:
    """The ahocorasick_rs module, or None when it is not installed (tests replace this to force the fallback)."""
    try:
        import ahocorasick_rs
    except ImportError:
        return None
    return ahocorasick_rs


class _Automata:
    """Both automata for one set of forms: leftmost-longest to find whether (and roughly where) any form
    occurs, at prefilter speed, then the standard overlapping one to list every occurrence near those hits."""

    def __init__(self, module: ModuleType, forms: list[bytes]) -> None:
        self._module = module
        self._forms = forms
        first = module.BytesAhoCorasick(forms, matchkind=module.MatchKind.LeftmostLongest)
        self.first: Callable[[bytes], list[tuple[int, int, int]]] = first.find_matches_as_indexes
        self._every: Callable[[bytes, bool], list[tuple[int, int, int]]] | None = None

    def every(self, haystack: bytes) -> list[tuple[int, int, int]]:
        """Every occurrence of every form, overlapping ones included, as (form, start, end)."""
        if self._every is None:  # built at the first hit: most streams never contain a secret
            module = self._module
            every = module.BytesAhoCorasick(self._forms, matchkind=module.MatchKind.Standard)
            self._every = every.find_matches_as_indexes
        return self._every(haystack, True)


# Built once per set of forms: the stdout and stderr redactors of `sig run` share them.
_AUTOMATA: dict[tuple[bytes, ...], _Automata] = {}
_PREFIXES: dict[tuple[bytes, ...], list[tuple[bytes, ...]]] = {}


def _automata(forms: list[bytes]) -> _Automata | None:
    module = _load_ahocorasick()
    if module is None:
        return None
    key = tuple(forms)
    automata = _AUTOMATA.get(key)
    if automata is None:
        if len(_AUTOMATA) >= 8:
            _AUTOMATA.clear()
        automata = _AUTOMATA[key] = _Automata(module, forms)
    return automata


def _prefixes_by_last(forms: list[bytes]) -> list[tuple[bytes, ...]]:
    """The proper prefixes of the forms, grouped by their last byte, longest first (see _prefix_start)."""
    key = tuple(forms)
    table = _PREFIXES.get(key)
    if table is None:
        groups: list[list[bytes]] = [[] for _ in range(256)]
        for prefix in sorted({f[:k] for f in forms for k in range(1, len(f))}, key=len, reverse=True):
            groups[prefix[-1]].append(prefix)
        if len(_PREFIXES) >= 8:
            _PREFIXES.clear()
        table = _PREFIXES[key] = [tuple(group) for group in groups]
    return table


class StreamRedactor:
    def __init__(self, secrets: Iterable[str | bytes], mask: bytes = MASK, min_len: int = 4) -> None:
        forms = {s.encode("utf-8") if isinstance(s, str) else bytes(s) for s in secrets}
        self.forms = sorted((f for f in forms if len(f) >= min_len), key=lambda f: (-len(f), f))
        self.mask = mask
        self.max_len = max((len(f) for f in self.forms), default=0)
        self._min_len = min((len(f) for f in self.forms), default=0)
        self._prefixes_by_last = _prefixes_by_last(self.forms)
        self._held = b""
        self.hold_limit = max(65536, 4 * self.max_len)
        self._ctx = b""
        self._ends_with_mask = False
        self.redacted = 0  # how many secrets were masked so far
        self._automata: _Automata | bool | None = False  # False: not chosen yet; None: the find fallback

    @property
    def active(self) -> bool:
        return bool(self.forms)

    @property
    def engine(self) -> str:
        """"ahocorasick" (one pass for all forms) or "find" (one pass per form); chosen on first use."""
        return "find" if self._matcher() is None else "ahocorasick"

    def _matcher(self) -> _Automata | None:
        if self._automata is False:
            self._automata = _automata(self.forms) if self.forms else None
        return self._automata  # type: ignore[return-value]

    def _spans(self, buf: bytes) -> list[list[int]]:
        """Every complete occurrence of every form, merged where they overlap or touch."""
        if len(buf) < self._min_len:  # no room for any form (and no matcher to load for an empty feed)
            return []
        automata = self._matcher()
        spans: list[tuple[int, int]] = []
        if automata is not None:
            hits = automata.first(buf)
            if not hits:  # the usual case: one pass, nothing found
                return []
            # Leftmost-longest hits never overlap each other, but every occurrence of every form overlaps
            # at least one of them, so it lies within max_len - 1 bytes of a hit: list them all there.
            reach = self.max_len - 1
            windows: list[list[int]] = []
            for _, s, e in hits:
                lo = s - reach if s > reach else 0
                if windows and lo <= windows[-1][1]:
                    windows[-1][1] = e + reach
                else:
                    windows.append([lo, e + reach])
            for lo, hi in windows:
                spans += [(lo + s, lo + e) for _, s, e in automata.every(buf[lo:hi])]
        else:
            if not any(form in buf for form in self.forms):  # the usual case: one fast pass per form
                return []
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
        if not buf:
            return 0
        candidates = self._prefixes_by_last[buf[-1]]  # only prefixes ending in buf's last byte can fit
        if candidates and buf.endswith(candidates):
            for prefix in candidates:
                if buf.endswith(prefix):
                    return len(buf) - len(prefix)
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
