"""A proxy event loop (`sigcli.proxy.loop.Loop`) on its own thread, for tests that drive coroutines on it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sigcli.proxy.loop import Loop


class Running:
    """A Loop on its own thread; run(make) runs a coroutine on it and returns its result."""

    def __init__(self, workers: int = 4) -> None:
        self.logged: list[str] = []  # what the loop logged (a task's unexpected error, for one)
        self.loop = Loop(workers=workers, log=self.logged.append)
        self.thread = threading.Thread(target=self.loop.run, daemon=True)
        self.thread.start()

    def run(self, make: Callable[[], Any], timeout: float = 10) -> Any:
        done = threading.Event()
        out: list[Any] = []

        async def wrapper() -> None:
            try:
                out.append(("ok", await make()))
            except BaseException as exc:  # handed to the test
                out.append(("error", exc))
            finally:
                done.set()

        self.loop.call_soon_threadsafe(lambda: self.loop.spawn(wrapper(), "test"))
        assert done.wait(timeout), "the coroutine did not finish"
        kind, value = out[0]
        if kind == "error":
            raise value
        return value

    def close(self) -> None:
        self.loop.stop()
        self.thread.join(10)
        self.loop.close()
