"""Audit log: JSON Lines with the original's field names and actions. Never a secret value in it."""

from __future__ import annotations

import os

from ..core.timeutil import iso_from_ms, now_ms

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def record(
    path: str, action: str, status: str, provider: str | None = None, metadata: dict[str, Any] | None = None
) -> None:
    """Append one event (one write(2) on an O_APPEND descriptor, so lines from parallel processes stay whole)."""
    from ..core.jsonio import dumps_compact

    event: dict[str, Any] = {"timestamp": iso_from_ms(now_ms()), "action": action, "status": status}
    if provider is not None:
        event["provider"] = provider
    if metadata is not None:
        event["metadata"] = metadata
    line = (dumps_compact(event) + "\n").encode("utf-8")
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    except OSError:
        return  # auditing must never break the command it records
    try:
        os.write(fd, line)
    except OSError:
        pass
    finally:
        os.close(fd)
