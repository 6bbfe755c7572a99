"""proxy.log, rotated by size: when it passes MAX_BYTES it becomes proxy.log.1 (proxy.log.1 becomes .2, and
so on; the oldest beyond KEEP is removed), and a new proxy.log starts. At most (KEEP + 1) × MAX_BYTES on
disk: 20 MiB with the defaults, some 200,000 request lines when every request is logged (`--verbose`).

The detached daemon's stderr is the log file too (a crash's last words land there): after a rotation it
is pointed at the new file. Writes come from several threads (the loop, its workers, the watch loop,
the audit writer): each line is one locked os.write on an O_APPEND descriptor, so lines never interleave.
"""

from __future__ import annotations

import contextlib
import os
import threading

MAX_BYTES = 5 * 1024 * 1024
KEEP = 3


class LogFile:
    """An append-only log file, rotated by size; safe to write from several threads."""
    def __init__(self, path: str, *, max_bytes: int = MAX_BYTES, keep: int = KEEP, stderr: bool = False) -> None:
        self.path = path
        self._max = max_bytes
        self._keep = keep
        self._stderr = stderr  # also keep fd 2 on the current file
        self._lock = threading.Lock()
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)

    def write(self, line: str) -> None:
        """Append `line` (rotating first when it would pass the size limit). A failed write is dropped: the
        log must not stop the proxy."""
        data = line.encode("utf-8", "replace")
        with self._lock:
            if self._size + len(data) > self._max and self._size > 0:
                self._rotate()
            try:
                os.write(self._fd, data)
            except OSError:
                return
            self._size += len(data)

    def _rotate(self) -> None:
        for i in range(self._keep, 0, -1):
            older = f"{self.path}.{i}"
            newer = self.path if i == 1 else f"{self.path}.{i - 1}"
            with contextlib.suppress(OSError):
                os.replace(newer, older)
        old = self._fd
        try:
            self._fd = self._open()
        except OSError:
            self._fd = old  # keep writing where we can
            return
        os.close(old)
        self._size = 0
        if self._stderr:
            with contextlib.suppress(OSError):
                os.dup2(self._fd, 2)

    def close(self) -> None:
        """Close the file (later writes are lost)."""
        with self._lock, contextlib.suppress(OSError):
            os.close(self._fd)


def rotate_if_big(path: str, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> None:
    """Rotate before a daemon starts writing (so the start's own lines stay in proxy.log)."""
    try:
        if os.stat(path).st_size <= max_bytes:
            return
    except OSError:
        return
    log = LogFile(path, max_bytes=max_bytes, keep=keep)
    with log._lock:
        log._rotate()
    log.close()
