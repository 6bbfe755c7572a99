"""Streaming redaction of a child's output: every secret form becomes `****`, even when split across reads.

Bytes in, bytes out. The redactor holds back only the shortest tail that could still grow into a secret
(a proper prefix of one of the forms) and emits everything else at once, so interactive output is not
delayed unless it ends in what looks like the start of a secret; when the writer goes quiet, the caller
calls `flush_idle`, which lets the held tail out (masked if it is 4 bytes or more of a possible secret).
Text that is not a secret passes through byte for byte (binary output stays exact). Overlapping matches
are merged into one mask, so no piece of either secret is shown.

Hex digits are matched in either case where a form has them as hex: in `%XX` and `\\uXXXX` escapes and
in a hex form (16 or more hex digits and nothing else). Where a buffer holds a `%` or a backslash, the
matchers run over a copy with `a-f` folded to `A-F` (same length, so offsets carry over) and every hit is
checked against the original bytes, where only those hex digits may differ in case; elsewhere no escape
can occur and the forms are looked for as they are. Hex forms are looked for only inside runs of hex
digits.

Finding the secrets is a few multi-pattern passes per feed with ahocorasick-rs when it is installed (imported
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
PREFILTER_GROUP = 48  # keys per prefilter automaton (see _Forms.build)
PREFIX_TABLE = 64  # proper prefixes up to this length are kept in a table for the held tail
HEX_RUN = 16  # hex keys at least this long are looked for in runs of hex digits
# A whole buffer up to this size (an API answer) is searched with one overlapping pass (see spans): on a
# few kilobytes that costs what the leftmost-longest prefilter pass does, and a hit needs no second one.
WHOLE_PASS_MAX = 2048
_HEX_DIGITS = b"0123456789ABCDEFabcdef"
_HEX_MARKS = bytes(1 if byte in _HEX_DIGITS else 0 for byte in range(256))
_HEX_NEEDLE = b"\1" * HEX_RUN

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
    escapes, or every position of a hex form (at least HEX_RUN hex digits and nothing else)."""
    if len(form) >= HEX_RUN and not form.strip(_HEX_DIGITS):
        return list(range(len(form)))
    free: list[int] = []
    i, n = 0, len(form)
    while i < n:
        byte = form[i]
        if byte == 0x25 and i + 2 < n and form[i + 1] in _HEX and form[i + 2] in _HEX:  # %XX
            free += [i + 1, i + 2]
            i += 3
        elif byte == 0x5C and i + 1 < n:  # a backslash escape: \\uXXXX, or a two-character one such as \\"
            if form[i + 1] == 0x75 and i + 5 < n and all(b in _HEX for b in form[i + 2 : i + 6]):
                free += [i + 2, i + 3, i + 4, i + 5]
                i += 6
            else:
                i += 2
        else:
            i += 1
    return free


class _Automata:
    """Leftmost-longest automata over `patterns` in groups of at most PREFILTER_GROUP (ahocorasick-rs
    scans a small set with a SIMD prefilter at several GB/s but falls to a few hundred MB/s beyond 64
    patterns, so a few small passes beat one big), and the standard overlapping one, built at the first
    hit (most streams never contain a secret)."""

    def __init__(self, module: ModuleType, patterns: list[bytes]) -> None:
        self._module = module
        self.patterns = patterns
        count = -(-len(patterns) // PREFILTER_GROUP)
        size = -(-len(patterns) // count) if count else 1
        kind = module.MatchKind.LeftmostLongest
        self._firsts = [module.BytesAhoCorasick(patterns[i : i + size], matchkind=kind).find_matches_as_indexes
                        for i in range(0, len(patterns), size)]
        self._every: Callable[[bytes, bool], list[tuple[int, int, int]]] | None = None

    def first(self, view: bytes) -> list[tuple[int, int]]:
        """(start, end) of the leftmost-longest hits of every group, by start: every occurrence of every
        pattern overlaps at least one of them."""
        hits = [(s, e) for find in self._firsts for _, s, e in find(view)]
        if len(self._firsts) > 1:
            hits.sort()
        return hits

    def every(self, view: bytes) -> list[tuple[int, int, int]]:
        """Every occurrence of every pattern, overlapping ones included, as (pattern, start, end)."""
        if self._every is None:
            module = self._module
            every = module.BytesAhoCorasick(self.patterns, matchkind=module.MatchKind.Standard)
            self._every = every.find_matches_as_indexes
        return self._every(view, True)


class _Forms:
    """A set of forms compiled for matching: the folded keys, how to check a hit on the original bytes,
    the proper prefixes (for the held tail) and, lazily, the automata.

    Keys are the forms with `a-f` folded to `A-F`. A buffer that holds no `%` and no backslash cannot
    hold an escape, so there the forms without either are looked for as they are (no folded copy to
    make: the common case, at full speed); otherwise the folded keys in a folded copy, each hit checked
    against the original bytes. Hex forms are looked for in runs of hex digits in both cases."""

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
        # Hex forms are looked for inside runs of hex digits, not by the automata: in text full of digits
        # and a-f letters they defeat its prefilter (see hex_spans).
        self.hex_keys = [k for k in self.keys if len(k) >= HEX_RUN and not k.strip(_HEX_DIGITS)]
        hex_set = set(self.hex_keys)
        self.fold_keys = [k for k in self.keys if k not in hex_set]
        self.fold_index = [i for i, k in enumerate(self.keys) if k not in hex_set]  # fold_keys -> keys
        self.plain_forms = sorted({f for f in forms if f.translate(_FOLD) not in hex_set
                                   and b"%" not in f and b"\\" not in f}, key=lambda f: (-len(f), f))
        self._table: list[tuple[bytes, ...]] | None = None
        self._long: list[tuple[bytes, list[tuple[bytes, bytes]]]] = []  # by first byte: (head, key)
        self._fold: _Automata | None = None
        self._plain: _Automata | None = None
        self._module: ModuleType | None = None

    def real(self, index: int, buf: bytes, start: int, end: int) -> bool:
        """Whether the key `index` found at buf[start:end] (in the folded copy) is one of its forms."""
        if self.always[index]:
            return True
        value = int.from_bytes(buf[start:end], "big")
        return any((value ^ form) & exact == 0 for form, exact in self.checks[index])

    def hit_spans(self, hits: list[tuple[int, int, int]], buf: bytes, lo: int, escapes: bool) -> list[tuple[int, int]]:
        """The automaton's `hits` in buf[lo:] as spans of buf; over a folded copy (`escapes`), only the
        hits that are one of their key's forms in the original bytes."""
        if escapes:
            index = self.fold_index
            return [(lo + s, lo + e) for i, s, e in hits if self.real(index[i], buf, lo + s, lo + e)]
        return [(lo + s, lo + e) for _, s, e in hits]

    def build(self, module: ModuleType) -> None:
        self._module = module

    def automata(self, escapes: bool) -> _Automata:
        assert self._module is not None
        if escapes:
            if self._fold is None:
                self._fold = _Automata(self._module, self.fold_keys)
            return self._fold
        if self._plain is None:
            self._plain = _Automata(self._module, self.plain_forms)
        return self._plain

    def prefixes_by_last(self) -> list[tuple[bytes, ...]]:
        """Proper prefixes of up to PREFIX_TABLE bytes of the keys, grouped by their last byte, longest
        first (built at the first feed). Longer ones are found from their first PREFIX_TABLE bytes."""
        if self._table is None:
            groups: list[list[bytes]] = [[] for _ in range(256)]
            prefixes = {k[:i] for k in self.keys for i in range(1, min(len(k), PREFIX_TABLE + 1))}
            for prefix in sorted(prefixes, key=len, reverse=True):
                groups[prefix[-1]].append(prefix)
            by_first: dict[int, list[tuple[bytes, bytes]]] = {}
            for key in self.keys:
                if len(key) > PREFIX_TABLE + 1:
                    by_first.setdefault(key[0], []).append((key[:PREFIX_TABLE], key))
            self._long = [(bytes([first]), heads) for first, heads in by_first.items()]
            self._table = [tuple(group) for group in groups]
        return self._table

    def prefix_start(self, buf: bytes) -> int:
        """Start of the longest tail of `buf` that is (folded) a proper prefix of a key (len(buf) if none)."""
        n = len(buf)
        if not n:
            return 0
        base = max(0, n - self.max_len + 1)
        view = buf[base:].translate(_FOLD)  # no tail that could grow into a key is longer
        table = self.prefixes_by_last()
        m = len(view)
        if self._long and m > PREFIX_TABLE:
            # A tail longer than the table's prefixes begins with a long key's first PREFIX_TABLE bytes.
            hi = m - PREFIX_TABLE
            best = m
            for first, heads in self._long:
                if view.find(first, 0, hi) == -1:  # one look rules out every key starting with that byte
                    continue
                for head, key in heads:
                    at = view.find(head)
                    while -1 < at < min(hi, best):
                        if m - at < len(key) and key.startswith(view[at:]):
                            best = at
                            break
                        at = view.find(head, at + 1)
            if best < m:
                return base + best
        candidates = table[view[-1]]  # only prefixes ending in that byte can fit
        if candidates and view.endswith(candidates):
            for prefix in candidates:
                if view.endswith(prefix):
                    return n - len(prefix)
        return n

    def hex_spans(self, buf: bytes) -> list[tuple[int, int]]:
        """Every occurrence of every hex key, in either case: only inside runs of at least HEX_RUN hex
        digits, found by mapping each byte to "hex digit or not" and searching for such a run (C speed)."""
        if not self.hex_keys:
            return []
        marks = buf.translate(_HEX_MARKS)
        spans: list[tuple[int, int]] = []
        at = marks.find(_HEX_NEEDLE)
        while at != -1:
            end = marks.find(b"\0", at)
            end = len(buf) if end == -1 else end
            run = buf[at:end].translate(_FOLD)
            for key in self.hex_keys:
                found = run.find(key)
                while found != -1:
                    spans.append((at + found, at + found + len(key)))
                    found = run.find(key, found + 1)
            at = marks.find(_HEX_NEEDLE, end)
        return spans


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
    """Masks every form of every secret in a byte stream, even split across reads."""

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

    def _spans(self, buf: bytes) -> list[list[int]]:
        """Every complete occurrence of every form, merged where they overlap or touch."""
        if len(buf) < self._min_len:  # no room for any form (and no matcher to load for an empty feed)
            return []
        compiled = self._compiled
        if not self._automaton():
            return self._find_spans(buf)
        escapes = b"%" in buf or b"\\" in buf
        view = buf.translate(_FOLD) if escapes else buf
        automata = compiled.automata(escapes)
        first = automata.first(view)
        spans = compiled.hex_spans(buf)
        if not first and not spans:  # the usual case: nothing found
            return []
        # Every occurrence of every pattern overlaps at least one leftmost-longest hit (of its group),
        # so it lies within max_len - 1 bytes of a hit: list them all there.
        reach = self.max_len - 1
        windows: list[list[int]] = []
        for s, e in first:
            lo = s - reach if s > reach else 0
            if windows and lo <= windows[-1][1]:
                windows[-1][1] = e + reach
            else:
                windows.append([lo, e + reach])
        for lo, hi in windows:
            spans += compiled.hit_spans(automata.every(view[lo:hi]), buf, lo, escapes)
        return _merge(sorted(spans))

    def spans(self, buf: bytes) -> list[list[int]]:
        """Every complete occurrence of every form in a whole buffer, merged: what feed(buf) + flush() of a
        fresh redactor masks. A small buffer takes one overlapping pass (no windows around the hits of a
        first pass); a bigger one is searched as feed() searches it."""
        if len(buf) > WHOLE_PASS_MAX or len(buf) < self._min_len or not self._automaton():
            return self._spans(buf)
        compiled = self._compiled
        escapes = b"%" in buf or b"\\" in buf
        view = buf.translate(_FOLD) if escapes else buf
        hits = compiled.automata(escapes).every(view)
        spans = compiled.hex_spans(buf)
        if not hits and not spans:  # the usual case: nothing found
            return []
        return _merge(sorted(spans + compiled.hit_spans(hits, buf, 0, escapes)))

    def _find_spans(self, buf: bytes) -> list[list[int]]:
        """The fallback without ahocorasick-rs: one `bytes.find` pass per key over a folded copy."""
        compiled = self._compiled
        view = buf.translate(_FOLD)
        if not any(key in view for key in compiled.keys):  # the usual case: one fast pass per key
            return []
        spans = []
        for index, key in enumerate(compiled.keys):
            start = view.find(key)
            while start != -1:
                if compiled.real(index, buf, start, start + len(key)):
                    spans.append((start, start + len(key)))
                start = view.find(key, start + 1)
        return _merge(sorted(spans))

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
        cut = max(self._compiled.prefix_start(buf), offset)
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
        """End of stream: the held tail is not a whole secret, and nothing can complete it any more."""
        if not self._held:
            return b""
        buf = self._ctx + self._held
        out = self._emit(buf, len(self._ctx), len(buf), self._spans(buf))
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
        offset = len(ctx)
        spans = self._spans(buf)
        tail = self._compiled.prefix_start(buf)
        if len(buf) - tail > IDLE_CLEAR_MAX:
            spans = _merge(sorted([*((s, e) for s, e in spans), (max(tail, offset), len(buf))]))
        out = self._emit(buf, offset, len(buf), spans)
        self._held = b""
        self._ctx = buf[max(0, len(buf) - self.max_len + 1) :]
        return out

    @property
    def holding(self) -> bool:
        """Whether a tail that could grow into a secret is held back."""
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
