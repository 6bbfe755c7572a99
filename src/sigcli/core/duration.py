"""Durations like "30s", "5m", "2h", "7d" (the original's grammar)."""

from __future__ import annotations

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(text: object) -> int | None:
    """Milliseconds for a duration string, or None when it is not one."""
    if not isinstance(text, str):
        return None
    s = text.strip().lower()
    unit = ""
    for suffix in ("ms", "s", "m", "h", "d"):
        if s.endswith(suffix):
            unit = suffix
            break
    if not unit:
        return None
    number = s[: -len(unit)].strip()
    if not number:
        return None
    whole, dot, frac = number.partition(".")
    # ASCII digits only: str.isdigit() also accepts "²", which float() rejects with a ValueError.
    if not number.isascii() or not whole.isdigit() or (dot and not frac.isdigit()):
        return None
    ms = float(number) * _UNITS[unit]
    if ms != ms or ms == float("inf"):
        return None  # hundreds of digits: float() gives infinity, which int() cannot take
    return int(ms)


def format_expiry(minutes: int) -> str:
    """Short human form used by the status table (pinned by the original's tests)."""
    if minutes < 60:
        return f"~{minutes}m"
    if minutes < 1440:
        return f"~{minutes // 60}h"
    if minutes < 43200:
        return f"~{minutes // 1440}d"
    return f"~{minutes // 43200}mo"
