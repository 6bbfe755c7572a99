"""ISO-8601 timestamps as the original writes them: UTC, milliseconds, trailing Z."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Now, in ms since the epoch."""
    return int(time.time() * 1000)


def iso_from_ms(ms: int) -> str:
    """ms since the epoch as an ISO 8601 UTC timestamp with milliseconds (…Z)."""
    seconds, millis = divmod(int(ms), 1000)
    t = time.gmtime(seconds)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{millis:03d}Z"


def ms_from_iso(text: object) -> int | None:
    """Parse the timestamps sig and the original write (and plain ISO forms); None when unreadable."""
    if not isinstance(text, str) or len(text) < 19:
        return None
    import calendar

    s = text.strip()
    try:
        date, _, rest = s.partition("T")
        year, month, day = (int(p) for p in date.split("-"))
        offset_s = 0
        if rest.endswith("Z"):
            rest = rest[:-1]
        elif len(rest) > 8 and rest[-6] in "+-" and rest[-3] == ":":
            sign = 1 if rest[-6] == "+" else -1
            offset_s = sign * (int(rest[-5:-3]) * 3600 + int(rest[-2:]) * 60)
            rest = rest[:-6]
        clock, _, frac = rest.partition(".")
        hour, minute, second = (int(p) for p in clock.split(":"))
        millis = int((frac + "000")[:3]) if frac else 0
    except ValueError:
        return None
    try:
        base = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (OverflowError, ValueError):
        return None
    return (base - offset_s) * 1000 + millis
