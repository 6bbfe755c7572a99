"""Streaming redaction of a child's output: every secret form becomes `****`, even when split across reads.

Bytes in, bytes out. The redactor holds back only the shortest tail that could still grow into a secret
(a proper prefix of one of the forms) and emits everything else at once, so interactive output is not
delayed unless it ends in what looks like the start of a secret; when the writer goes quiet, the caller
calls `flush_idle`, which lets the held tail out (masked if it is 4 bytes or more of a possible secret).
Text that is not a secret passes through byte for byte (binary output stays exact). Overlapping matches
are merged into one mask, so no piece of either secret is shown.

Hex digits are matched in either case where a form has them as hex: in `%XX` and `\\uXXXX` escapes and
in a form made only of hex digits (the hex form of a secret). The matchers run over a copy of the
buffer with `a-f` folded to `A-F` (same length, so offsets carry over) and every hit is then checked
against the original bytes, where only those hex digits may differ in case.

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
# After a pause, at most this many leading bytes of what may be a secret are let out in clear; a longer
# held tail is masked (so a secret written across pauses never appears whole, see flush_idle).
IDLE_CLEAR_MAX = 3

_FOLD = bytes.maketrans(b"abcdef", b"ABCDEF")
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _load_ahocorasick() -> ModuleType | None:
    """The ahocorasick_rs module, or None when it is not installed (tests replace this to force the fallback)."""
    try:
        import ahocorasick_rs
    except ImportError:
        return None
    return ahocorasick_rs


def _case_free(form: bytes) -> list[int]:
    """Positions of `form` whose hex letter may come in either case: the digits of `%XX` and `\\uXXXX`
    escapes, or every position of a form made only of hex digits."""
    if all(byte in _HEX for byte in form):
        return list(range(len(form)))
    free: list[int] = []
    i, n = 0, len(form)
    while i < n:
        byte = form[i]
        if byte == 0x25 and i + 2 < n and form[i + 1] in _HEX and form[i + 2] in _HEX:  # %XX
            free += [i + 1, i + 2]
            i += 3
        elif byte == 0x5C and i + 1 < n:  # a backslash escape: \uXXXX, or a two-character one such as \"
            if form[i + 1] == 0x75 and i + 5 < n and all(b in _HEX for b in form[i + 2 : i + 6]):
                free += [i + 2, i + 3, i + 4, i + 5]
                i += 6
            else:
                i += 2
        else:
            i += 1
    return free


class _Forms:
    """A set of forms compiled for matching: the folded keys the matchers look for, how to check a hit
    on the original bytes, the proper prefixes (for the held tail) and, lazily, the automata."""

    def __init__(self, forms: list[bytes]) -> None:
        by_key: dict[bytes, list[tuple[int, int]]] = {}
        for form in forms:
            free = _case_free(form)
            # A hit's bytes XOR the form's: zero at every position that must match exactly.
            exact = bytearray(b"\xff" * len(form))
            for i in free:
                exact[i] = 0
            by_key.setdefault(form.translate(_FOLD), []).append(
                (int.from_bytes(form, "big"), int.from_bytes(exact, "big")))
        self.keys = sorted(by_key, key=lambda k: (-len(k), k))
        self.checks = [by_key[key] for key in self.keys]
        # Keys whose every hit is a real one (no position needs an exact-case check).
        self.always = [any(mask == 0 for _f, mask in checks) for checks in self.checks]
        self.max_len = max((len(k) for k in self.keys), default=0)
        self.min_len = min((len(k) for k in self.keys), default=0)
        groups: list[list[bytes]] = [[] for _ in range(256)]
        for prefix in sorted({k[:i] for k in self.keys for i in range(1, len(k))}, key=len, reverse=True):
            groups[prefix[-1]].append(prefix)
        self.prefixes_by_last = [tuple(group) for group in groups]
        self._module: ModuleType | None = None
        self._first: Callable[[bytes], list[tuple[int, int, int]]] | None = None
        self._every: Callable[[bytes, bool], list[tuple[int, int, int]]] | None = None

    def real(self, index: int, buf: bytes, start: int, end: int) -> bool:
        """Whether the key `index` found at buf[start:end] (in the folded copy) is one of its forms."""
        if self.always[index]:
            return True
        value = int.from_bytes(buf[start:end], "big")
        return any((value ^ form) & exact == 0 for form, exact in self.checks[index])

    def build(self, module: ModuleType) -> None:
        """The leftmost-longest automaton (once; the overlapping one waits for the first hit)."""
        if self._first is None:
            self._module = module
            first = module.BytesAhoCorasick(self.keys, matchkind=module.MatchKind.LeftmostLongest)
            self._first = first.find_matches_as_indexes

    def first(self, view: bytes) -> list[tuple[int, int, int]]:
        assert self._first is not None
        return self._first(view)

    def every(self, view: bytes) -> list[tuple[int, int, int]]:
        """Every occurrence of every key, overlapping ones included, as (key, start, end)."""
        if self._every is None:  # built at the first hit: most streams never contain a secret
            module = self._module
            every = module.BytesAhoCorasick(self.keys, matchkind=module.MatchKind.Standard)  # type: ignore[union-attr]
            self._every = every.find_matches_as_indexes
        return self._every(view, True)


# Built once per set of forms: the stdout and stderr redactors of `sig run` share them.
_COMPILED: dict[tuple[bytes, ...], _Forms] = {}


def _compiled(forms: list[bytes]) -> _Forms:
    key = tuple(forms)
    compiled = _COMPILED.get(key)
    if compiled is None:
        if len(_COMPILED) >= 8:
            _COMPILED.clear()
        compiled = _COMPILED[key] = _Forms(forms)
    return compiled


class StreamRedactor:
    def __init__(self, secrets: Iterable[str | bytes], mask: bytes = MASK, min_len: int = 4,
                 automaton: bool = True) -> None:
        forms = {s.encode("utf-8", "surrogatepass") if isinstance(s, str) else bytes(s) for s in secrets}
        self.forms = sorted((f for f in forms if len(f) >= min_len), key=lambda f: (-len(f), f))
        self.mask = mask
        self._compiled = _compiled(self.forms)
        self.max_len = self._compiled.max_len
        self._min_len = self._compiled.min_len
        self._held = b""
        self.hold_limit = max(65536, 4 * self.max_len)
        self._ctx = b""
        self._ends_with_mask = False
        self.redacted = 0  # how many secrets were masked so far
        self._use_automaton: bool | None = None if automaton else False  # None: not chosen yet

    @property
    def active(self) -> bool:
        return bool(self.forms)

    @property
    def engine(self) -> str:
        """"ahocorasick" (one pass for all forms) or "find" (one pass per form); chosen on first use."""
        return "ahocorasick" if self._automaton() else "find"

    def _automaton(self) -> bool:
        if self._use_automaton is None:
            module = _load_ahocorasick() if self.forms else None
            if module is not None:
                self._compiled.build(module)
            self._use_automaton = module is not None
        return self._use_automaton

    def _spans(self, buf: bytes, view: bytes) -> list[list[int]]:
        """Every complete occurrence of every form, merged where they overlap or touch."""
        if len(buf) < self._min_len:  # no room for any form (and no matcher to load for an empty feed)
            return []
        compiled = self._compiled
        hits: list[tuple[int, int, int]] = []
        if self._automaton():
            first = compiled.first(view)
            if not first:  # the usual case: one pass, nothing found
                return []
            # Leftmost-longest hits never overlap each other, but every occurrence of every key overlaps
            # at least one of them, so it lies within max_len - 1 bytes of a hit: list them all there.
            reach = self.max_len - 1
            windows: list[list[int]] = []
            for _, s, e in first:
                lo = s - reach if s > reach else 0
                if windows and lo <= windows[-1][1]:
                    windows[-1][1] = e + reach
                else:
                    windows.append([lo, e + reach])
            for lo, hi in windows:
                hits += [(i, lo + s, lo + e) for i, s, e in compiled.every(view[lo:hi])]
        else:
            keys = compiled.keys
            if not any(key in view for key in keys):  # the usual case: one fast pass per form
                return []
            for index, key in enumerate(keys):
                start = view.find(key)
                while start != -1:
                    hits.append((index, start, start + len(key)))
                    start = view.find(key, start + 1)
        spans = sorted((s, e) for i, s, e in hits if compiled.real(i, buf, s, e))
        return _merge(spans)

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

    def _prefix_start(self, view: bytes) -> int:
        """Start of the longest tail of `view` that is a proper prefix of a key (len(view) if none)."""
        if not view:
            return 0
        candidates = self._compiled.prefixes_by_last[view[-1]]  # only prefixes ending in that byte can fit
        if candidates and view.endswith(candidates):
            for prefix in candidates:
                if view.endswith(prefix):
                    return len(view) - len(prefix)
        return len(view)

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
        view = buf.translate(_FOLD)
        offset = len(ctx)
        cut = max(self._prefix_start(view), offset)
        spans = self._spans(buf, view)
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
        """End of stream: the held tail is not a whole secret, and nothing can complete it any more."""
        if not self._held:
            return b""
        buf = self._ctx + self._held
        out = self._emit(buf, len(self._ctx), len(buf), self._spans(buf, buf.translate(_FOLD)))
        self._held = b""
        self._ctx = b""
        return out

    def flush_idle(self) -> bytes:
        """The writer went quiet with a possible secret's beginning held: let it out now.

        Complete secrets in it are masked as always. The tail that could still grow into a secret is
        counted from where it begins, even inside what was already emitted: up to IDLE_CLEAR_MAX bytes
        go out in clear (a prompt ending in a letter a secret starts with must not look hung), a longer
        one is masked. The context keeps those bytes, so when the rest of the secret arrives later it is
        still recognised and masked: a secret written across pauses never appears whole, at most its
        first IDLE_CLEAR_MAX bytes do.
        """
        if not self._held:
            return b""
        ctx = self._ctx
        buf = ctx + self._held
        view = buf.translate(_FOLD)
        offset = len(ctx)
        spans = self._spans(buf, view)
        tail = self._prefix_start(view)
        if len(buf) - tail > IDLE_CLEAR_MAX:
            spans = _merge(sorted([*((s, e) for s, e in spans), (max(tail, offset), len(buf))]))
        out = self._emit(buf, offset, len(buf), spans)
        self._held = b""
        self._ctx = buf[max(0, len(buf) - self.max_len + 1) :]
        return out

    @property
    def holding(self) -> bool:
        return bool(self._held)


def _merge(spans: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Sorted (start, end) pairs merged where they overlap or touch."""
    merged: list[list[int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return merged
