"""The waiting line of a device-code or browser sign-in: how long sig has waited, and until when.

Always on stderr (stdout carries the command's result). On a terminal it is one live line, redrawn every
second; when a prompt sits below it (the "paste the redirect URL" fallback) it is redrawn above the prompt
with the cursor saved and restored, so typing is not disturbed, and it moves below once the prompt is
answered. Off a terminal (a log, an agent reading stderr) it is an occasional plain line instead.
"""

from __future__ import annotations

import sys
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

# Off a terminal: a line after these many seconds, then every REPEAT_S.
MILESTONES_S = (5.0, 15.0, 30.0, 60.0)
REPEAT_S = 60.0
CLEAR = "\r\x1b[2K"


def duration(seconds: float) -> str:
    """Seconds as a short duration for the waiting line ("45s", "2m 05s", "1h 03m")."""
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


class WaitLine:
    """One wait being shown; `stop()` ends it. Writes go through `lock` (shared with the App's own
    messages, which clear and redraw a live line around themselves)."""

    def __init__(self, what: str, timeout_s: float, prompt_below: bool, stream: TextIO | None = None,
                 lock: threading.RLock | None = None, on_stop: Callable[[WaitLine], None] | None = None) -> None:
        from .streams import fits

        self.stream = stream if stream is not None else sys.stderr
        self.what = fits(what, self.stream)
        self.timeout_s = timeout_s
        self.lock = lock or threading.RLock()
        self.live = self._isatty()
        self.above = prompt_below and self.live  # the line sits above a prompt until it is answered
        self.started = time.monotonic()
        self._shown = False
        self._stopped = threading.Event()
        self._on_stop = on_stop
        if self.live:
            self._draw(first=True)
        self._thread = threading.Thread(target=self._run, name="sig-waiting", daemon=True)
        self._thread.start()

    def _isatty(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError, OSError):
            return False

    def text(self) -> str:
        """The line as it reads now: what sig waits for, the time elapsed and left."""
        elapsed = time.monotonic() - self.started
        left = self.timeout_s - elapsed
        ellipsis = "…" if self.live else ""
        tail = f" (gives up in {duration(left)})" if left > 0 else ""
        from .streams import fits

        if self.live:
            return fits(f"{self.what}{ellipsis} {duration(elapsed)}{tail}", self.stream)
        return fits(f"{self.what}: still waiting after {duration(elapsed)}{tail}", self.stream)

    def _write(self, data: str) -> None:
        try:
            self.stream.write(data)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def _draw(self, first: bool = False) -> None:
        with self.lock:
            if self._stopped.is_set():
                return
            if self.above:
                # first: the line, then the prompt goes below it; later: save cursor, up one, redraw, restore
                self._write(self.text() + "\n" if first else f"\x1b7\x1b[1A{CLEAR}{self.text()}\x1b8")
            else:
                self._write(CLEAR + self.text())
            self._shown = True

    def _run(self) -> None:
        if self.live:
            while not self._stopped.wait(1.0):
                self._draw()
            return
        dues = iter(MILESTONES_S)
        due = next(dues)
        while not self._stopped.wait(max(due - (time.monotonic() - self.started), 0.0)):
            with self.lock:
                if not self._stopped.is_set():
                    self._write(self.text() + "\n")
            due = next(dues, due + REPEAT_S)

    # -- what the App and the flows call ------------------------------------------------------------
    def input_ended(self) -> None:
        """The prompt below was answered: the cursor is on a fresh line; carry on there."""
        with self.lock:
            self.above = False
            if self.live:
                self._draw()

    def clear(self) -> None:
        """Make room for another message (the App redraws the line after it)."""
        if self.live and not self.above and self._shown:
            self._write(CLEAR)

    def redraw(self) -> None:
        """Draw the line again (after a message printed above it)."""
        if self.live and not self.above:
            self._draw()

    def stop(self) -> None:
        """End the wait: stop the clock and leave the terminal clean."""
        with self.lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
            if self.live and self.above:
                self._write("\n")  # the prompt below was never answered: what follows starts a fresh line
            elif self.live and self._shown:
                self._write(CLEAR)
        self._thread.join(timeout=2)
        if self._on_stop is not None:
            self._on_stop(self)
