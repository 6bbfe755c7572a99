"""Audit log: JSON Lines with the original's field names and actions. Never a secret value in it.

`record` appends one event now (commands). `BatchAppender` is for a long-running process that records
many events (the proxy, one per injected request): callers only queue an item, and a background thread
renders and appends what accumulated every `interval` seconds, after `max_events` items, and at close().
Both append with one write(2) per call on an O_APPEND descriptor, so lines (and batches of whole lines)
from parallel sig processes never interleave mid-line.
"""

from __future__ import annotations

import os

from ..core.timeutil import iso_from_ms, now_ms

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def event_line(timestamp_ms: int, action: str, status: str, provider: str | None = None,
               metadata: dict[str, Any] | None = None) -> bytes:
    """One event as a compact JSON line, fields in the original's order (optional ones omitted)."""
    from ..core.jsonio import dumps_compact

    event: dict[str, Any] = {"timestamp": iso_from_ms(timestamp_ms), "action": action, "status": status}
    if provider is not None:
        event["provider"] = provider
    if metadata is not None:
        event["metadata"] = metadata
    return (dumps_compact(event) + "\n").encode("utf-8")


def _append(path: str, data: bytes) -> bool:
    """Append `data` with one write on an O_APPEND descriptor (0600). False when it could not."""
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    try:
        view = memoryview(data)
        while view:  # a regular file takes it in one write; a short write (full disk) continues once more
            view = view[os.write(fd, view):]
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def record(
    path: str, action: str, status: str, provider: str | None = None, metadata: dict[str, Any] | None = None
) -> None:
    """Append one event. Errors are swallowed: auditing must never break the command it records."""
    _append(path, event_line(now_ms(), action, status, provider, metadata))


class BatchAppender:
    """Queue items from any thread; a background thread renders them (`render(item)` → one event line)
    and appends them in batches. add() is a deque append: no lock, no I/O, no formatting.

    At most `max_pending` items wait (a log that cannot be written must not grow the process without end);
    beyond that the oldest are dropped and counted, and `log` is told once per batch."""

    def __init__(self, path: str, render: Callable[[Any], bytes], *, interval: float = 0.25,
                 max_events: int = 256, max_pending: int = 100_000,
                 log: Callable[[str], None] | None = None) -> None:
        import collections
        import threading

        self.path = path
        self._render = render
        self._interval = interval
        self._max_events = max_events
        self._pending: collections.deque[Any] = collections.deque(maxlen=max_pending)
        self._max_pending = max_pending
        self._dropped = 0  # approximate (updated without a lock): only reported
        self._log = log
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sig-audit", daemon=True)
        self._thread.start()

    def add(self, item: Any) -> None:
        """Queue one item (no lock, no I/O); the background thread writes the batch."""
        pending = self._pending
        queued = len(pending)
        pending.append(item)  # at max_pending the deque drops the oldest
        if (queued + 1) % self._max_events == 0:  # once per batch worth, not on every add past it
            self._wake.set()
        if queued >= self._max_pending:
            self._dropped += 1

    def close(self, timeout: float = 5.0) -> None:
        """Write everything queued so far, then stop the thread."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            stopping = self._stopping  # read before draining: what was added before close() is written
            self._drain()
            if stopping:
                return

    def _drain(self) -> None:
        if self._dropped and self._log is not None:
            dropped, self._dropped = self._dropped, 0
            self._log(f"audit: {dropped} event(s) dropped: more were queued than could be written")
        pending = self._pending
        while pending:
            lines: list[bytes] = []
            while len(lines) < self._max_events:
                try:
                    item = pending.popleft()  # thread-safe against add()'s append
                except IndexError:
                    break
                try:
                    lines.append(self._render(item))
                except Exception:  # a bad item must not stop the others from being written
                    continue
            if lines and not _append(self.path, b"".join(lines)) and self._log is not None:
                self._log(f"audit: could not append {len(lines)} event(s) to {self.path}")
