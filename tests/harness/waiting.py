"""Waiting on observed state in tests, always bounded: poll, never sleep a fixed time and hope."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T], what: str, timeout_s: float = 90.0, interval_s: float = 0.1) -> T:
    """Poll `check` until it returns something truthy; that. Fails naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(interval_s)


def wait_while(check: Callable[[], T], timeout_s: float, interval_s: float = 0.1) -> T:
    """Poll `check` while it returns something truthy (processes still there, …), at most `timeout_s`;
    its last value: falsy when the state cleared, what is left otherwise (for the caller's assertion)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if not value or time.monotonic() >= deadline:
            return value
        time.sleep(interval_s)
