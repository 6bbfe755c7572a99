"""Text for a terminal: control characters from a server, a remote or a file are shown, never obeyed.

A status line, an OAuth2 `error_description`, a remote shell's stderr or a provider name pulled from a
remote can carry escape sequences (set the window title, erase the line, move the cursor, recolour).
Printed raw, they let whoever controls that text rewrite what the user sees ("OK: now run curl …|sh").
`printable` turns every C0/C1 control character (and DEL, and the Unicode bidirectional overrides that
reorder how a line reads) into visible text such as `\\x1b`. It leaves backslashes alone, so applying it
twice gives the same text as once. No `re` import: this sits on the start-up path of every command.
"""

from __future__ import annotations

# Bidi embeddings, overrides and isolates: they make a line display in another order than it reads.
_BIDI = (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
_TABLES: dict[bool, dict[int, str]] = {}


def _table(one_line: bool) -> dict[int, str]:
    table = _TABLES.get(one_line)
    if table is None:
        table = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x20), *range(0x7F, 0xA0))}
        table.update({c: f"\\u{c:04x}" for c in _BIDI})
        if not one_line:
            del table[0x0A], table[0x09]
        _TABLES[one_line] = table
    return table


def printable(text: str, *, one_line: bool = False) -> str:
    """`text` with control characters escaped visibly. Newline and tab stay as they are unless
    `one_line` (a table cell, one log line) asks for them escaped too."""
    if text.isascii() and text.isprintable():
        return text  # the common case: nothing to do
    return text.translate(_table(one_line))


def mask_url_password(text: str) -> str:
    """`scheme://user:password@host/…` -> `scheme://user:****@host/…` (the user info ends at the last `@`,
    as sig reads proxy URLs); text that is not such a URL comes back unchanged."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return text
    return f"{scheme}://{userinfo.split(':', 1)[0]}:****@{host}{slash}{tail}"
