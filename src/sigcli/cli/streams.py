"""Output that survives any terminal encoding: an ASCII locale never turns a line into a crash.

Under `LANG=C`, `PYTHONIOENCODING=ascii` or a Latin-1 terminal, Python's stdout refuses characters the
encoding lacks (`UnicodeEncodeError`), and sig writes some of its own (table marks, arrows, ellipses,
dashes) as well as other people's text (a provider name, a server's answer). `setup()` gives each standard
stream an error handler, only when its encoding is not a Unicode one:

- stdout carries data (JSON, YAML, env lines) as well as text: a character it cannot carry becomes a
  JSON-style `\\uXXXX` escape (a surrogate pair beyond the BMP), so JSON stays valid and means the same
  data; nothing is replaced by a look-alike behind the reader's back.
- stderr carries only messages for a person: sig's glyphs become their ASCII forms (`→` `->`, `…` `...`,
  `✓` `ok`), anything else an escape.

Text sig writes to stdout for a person (tables, `plain`, help, the doctor's report) goes through
`for_stdout()`, which applies the same ASCII forms there, before column widths are measured.
No imports beyond `codecs` (already loaded by Python itself): this runs on every command's start-up.
"""

from __future__ import annotations

import codecs
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

# sig's own glyphs and what a stream that cannot show them gets instead.
ASCII_GLYPHS = {
    "—": "--", "–": "-", "…": "...", "→": "->", "←": "<-", "✓": "ok", "✗": "x", "·": "-", "•": "*",
    "≥": ">=", "≤": "<=", "≈": "~", "×": "x", "‘": "'", "’": "'", "“": '"', "”": '"', "\u00a0": " ",
}
EXACT, HUMAN = "sigcli.exact", "sigcli.human"
_registered = False


def _escape_char(ch: str) -> str:
    cp = ord(ch)
    if cp > 0xFFFF:
        cp -= 0x10000
        return f"\\u{0xD800 + (cp >> 10):04x}\\u{0xDC00 + (cp & 0x3FF):04x}"
    return f"\\u{cp:04x}"


def _exact(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    return "".join(_escape_char(c) for c in exc.object[exc.start : exc.end]), exc.end


def _human(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    return "".join(ASCII_GLYPHS.get(c) or _escape_char(c) for c in exc.object[exc.start : exc.end]), exc.end


def _unicode_capable(encoding: str | None) -> bool:
    if not encoding:
        return False
    try:
        return codecs.lookup(encoding).name.startswith("utf")
    except LookupError:
        return False


def setup() -> None:
    """Give stdout/stderr the handlers above when their encoding cannot carry every character."""
    global _registered
    for stream, handler in ((sys.stdout, EXACT), (sys.stderr, HUMAN)):
        if stream is None or _unicode_capable(getattr(stream, "encoding", None)):
            continue
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None:
            continue
        if not _registered:
            codecs.register_error(EXACT, _exact)
            codecs.register_error(HUMAN, _human)
            _registered = True
        try:
            reconfigure(errors=handler)
        except (ValueError, OSError):
            pass
    # An ASCII stdin (a C locale) would fail on the first non-ASCII answer to a prompt; terminals send
    # UTF-8 there (as for argv), and bytes that are not UTF-8 become U+FFFD instead of a crash.
    stdin = sys.stdin
    encoding = getattr(stdin, "encoding", None)
    if stdin is not None and encoding and not _unicode_capable(encoding):
        try:
            if codecs.lookup(encoding).name == "ascii":
                stdin.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]
        except (LookupError, AttributeError, ValueError, OSError):
            pass


def fits(text: str, stream: TextIO | None = None) -> str:
    """`text` for a person on `stream` (default stdout): unchanged when the stream can show it, else with
    sig's glyphs in ASCII and any other character it lacks escaped (so its length is what gets printed)."""
    if text.isascii():
        return text
    stream = sys.stdout if stream is None else stream
    encoding = getattr(stream, "encoding", None)
    if _unicode_capable(encoding):
        return text
    try:
        text.encode(encoding or "ascii")
        return text
    except (UnicodeEncodeError, LookupError):
        pass
    out = []
    for ch in text:
        try:
            ch.encode(encoding or "ascii")
            out.append(ch)
        except (UnicodeEncodeError, LookupError):
            out.append(ASCII_GLYPHS.get(ch) or _escape_char(ch))
    return "".join(out)


def for_stdout(text: str) -> str:
    """`text` in glyphs stdout's encoding can show (ASCII fallbacks otherwise)."""
    return fits(text, sys.stdout)


def unicode_stdout() -> bool:
    """True when stdout can carry any character (so non-ASCII text may be written as it is)."""
    return _unicode_capable(getattr(sys.stdout, "encoding", None))
