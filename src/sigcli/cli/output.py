"""Renderers for --format: json, yaml, env, table, plain (shapes as the original's, quoting made safe)."""

from __future__ import annotations

import sys

from ..core.jsonio import dumps
from ..core.text import printable
from .streams import for_stdout, unicode_stdout

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FORMATS = ("json", "yaml", "env", "table", "plain")


def choose_format(requested: str | None, allowed: tuple[str, ...] = FORMATS) -> str:
    """The output format asked for (default table on a terminal, json otherwise); usage error for another."""
    from ..core.errors import usage_error

    if requested is None:
        return "table" if "table" in allowed and sys.stdout.isatty() else "json"
    if requested not in allowed:
        raise usage_error(f'unknown format "{requested}"', f"use one of: {', '.join(allowed)}")
    return requested


def to_json(data: Any) -> str:
    """`data` as indented JSON."""
    return dumps(data, indent=2)


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    return text if _plain_safe(text) else dumps(text)


_SAFE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./+- ")
_RESERVED = frozenset({"null", "true", "false", "yes", "no", "on", "off", "~", ".inf", ".nan"})


def _plain_safe(text: str) -> bool:
    """True when YAML reads `text` back as this very string unquoted (else it is written quoted)."""
    if not text or text.strip() != text or text.lower() in _RESERVED:
        return False
    # Non-ASCII is written plain only where stdout can carry it; else quoted, so its \\u escapes are YAML's.
    wide = unicode_stdout()
    if not all(c in _SAFE_CHARS or (wide and ord(c) > 127 and c.isprintable()) for c in text):
        return False
    first = text[0]
    if first in "-.+":
        return False  # could be read as a number or a sequence entry
    if first.isdigit():
        # 127.0.0.1 stays a string; 10, 1e5, 0x10, 2026-01-01 and 12:30 would not
        return not (_numeric(text) or text[:2].lower() in ("0x", "0o", "0b") or any(c in text for c in "-:_ "))
    return True


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _yaml_lines(data: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(data, dict):
        if not data:
            return [pad + "{}"]
        for key, value in data.items():
            if isinstance(value, dict | list) and value:
                lines.append(f"{pad}{_yaml_scalar(key)}:")
                lines.extend(_yaml_lines(value, indent + 2))
            else:
                lines.append(f"{pad}{_yaml_scalar(key)}: {_yaml_inline(value)}")
        return lines
    if isinstance(data, list):
        if not data:
            return [pad + "[]"]
        for item in data:
            sub = _yaml_lines(item, indent + 2)
            if isinstance(item, dict | list) and item:
                lines.append(pad + "- " + sub[0].lstrip())
                lines.extend(sub[1:])
            else:
                lines.append(f"{pad}- {_yaml_inline(item)}")
        return lines
    return [pad + _yaml_scalar(data)]


def _yaml_inline(value: Any) -> str:
    if isinstance(value, dict) and not value:
        return "{}"
    if isinstance(value, list) and not value:
        return "[]"
    return _yaml_scalar(value)


def to_yaml(data: Any) -> str:
    """`data` as YAML (plain scalars, no library needed)."""
    return "\n".join(_yaml_lines(data, 0))


def _env_quote(value: Any) -> str:
    if value is None:
        return "''"
    if isinstance(value, bool):
        value = "true" if value else "false"
    if isinstance(value, dict | list):
        value = dumps(value)
    return "'" + str(value).replace("'", "'\\''") + "'"


def to_env(data: Any) -> str:
    """`data` as NAME=value lines (quoted for a shell; a list's rows get _0, _1, … suffixes)."""
    from ..core.hosts import env_name

    lines: list[str] = []
    rows = data if isinstance(data, list) else [data]
    for index, row in enumerate(rows):
        suffix = f"_{index}" if isinstance(data, list) else ""
        for key, value in (row or {}).items():
            lines.append(f"{env_name(str(key))}{suffix}={_env_quote(value)}")
    return "\n".join(lines)


def to_plain(data: Any) -> str:
    """`data` as `key: value` blocks, one per row."""
    def block(row: dict[str, Any]) -> str:
        out = []
        for key, value in row.items():
            if value is None:
                value = "-"
            elif isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, dict | list):
                value = dumps(value)
            # one record line per key: a value's newlines and control characters are shown escaped
            out.append(for_stdout(f"{printable(str(key), one_line=True)}: {printable(str(value), one_line=True)}"))
        return "\n".join(out)

    if isinstance(data, list):
        return "\n---\n".join(block(r) for r in data)
    return block(data)


def to_table(rows: list[dict[str, Any]], max_widths: dict[str, int] | None = None) -> str:
    """`rows` as an aligned table (columns cut to `max_widths`)."""
    if not rows:
        return ""
    max_widths = max_widths or {}
    keys = list(rows[0].keys())

    def cell(v: Any) -> str:
        # a cell is one line of text for a person: newlines and control characters are shown escaped, and
        # what the terminal's encoding lacks is made ASCII before the widths are measured
        return "-" if v is None else for_stdout(printable(str(v), one_line=True))

    widths = {}
    for k in keys:
        w = max([len(k)] + [len(cell(r.get(k))) for r in rows])
        if k in max_widths:
            w = min(w, max_widths[k])
        widths[k] = w

    ellipsis = for_stdout("…")

    def fit(text: str, w: int) -> str:
        return text if len(text) <= w else text[: max(w - len(ellipsis), 0)] + ellipsis

    lines = ["  ".join(k.upper().ljust(widths[k]) for k in keys).rstrip()]
    lines.append("  ".join("-" * widths[k] for k in keys))
    for r in rows:
        lines.append("  ".join(fit(cell(r.get(k)), widths[k]).ljust(widths[k]) for k in keys).rstrip())
    return "\n".join(lines)


def render(data: Any, fmt: str, table_rows: list[dict[str, Any]] | None = None) -> str:
    """`data` in `fmt`; `table_rows` are what the table shows when they differ from the data."""
    if fmt == "json":
        return to_json(data)
    if fmt == "yaml":
        return to_yaml(data)
    if fmt == "env":
        return to_env(data)
    if fmt == "plain":
        return to_plain(data)
    if fmt == "table":
        return to_table(table_rows if table_rows is not None else (data if isinstance(data, list) else [data]))
    raise ValueError(fmt)
