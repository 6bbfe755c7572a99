"""The proxy's event loop: one thread, epoll (edge-triggered), coroutines as tasks, a worker pool.

Why not asyncio: a proxied keep-alive request is a handful of small reads and writes on two TLS
connections. Here each of them is one C call on a non-blocking `ssl.SSLSocket` (OpenSSL does the socket
I/O), and waiting is parking a coroutine on its socket: no futures, no transports, no memory-BIO
shuffling in Python (asyncio's SSL layer measured 20-25 µs more per request). Every socket is registered
once, edge-triggered, for reading and writing; a task tries its operation first and parks only when it
would block, so a request costs no epoll_ctl and no poll before a write.

Readiness that arrives while nobody waits is kept in the watch's `rflag`/`wflag` (an edge is reported
once): the next wait returns at once and the caller retries. `rflag` on an idle connection (nobody reads
it) is how a pooled upstream connection that the server closed is told stale without a syscall.

Timeouts are deadlines on the task (`Loop.now` + seconds, the loop's clock read once per iteration). A
heap entry exists only when a task's deadline is earlier than the one it already has queued, so the
usual wait (the next request on a keep-alive connection, due in minutes) pushes nothing.

Blocking work (TLS handshakes' public-key crypto, DNS, credential renewals) runs in `to_thread`: a pool
of worker threads, started as needed up to `workers`. CPython releases the GIL inside OpenSSL's
handshake, so on two cores handshakes run beside the loop instead of one after another on it.

Everything here runs on the loop's thread except `call_soon_threadsafe`, `to_thread`'s workers and
`stop`.
"""

from __future__ import annotations

import collections
import functools
import heapq
import itertools
import os
import queue
import select
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")

_IN = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
_END = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
_OUT = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR
_MASK = select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
INFINITE = float("inf")


class Cancelled(BaseException):
    """Thrown into a task the loop is closing (server shutdown)."""


# what a parked task waits for
_READY, _IO, _SLEEP, _JOIN, _WORKER = 0, 1, 2, 3, 4


class Task:
    """A coroutine the loop drives. `deadline` is when its current wait ends (a timeout for I/O and
    join, the wake-up for sleep)."""

    __slots__ = ("_timer_at", "coro", "deadline", "done", "error", "hand_over", "joining", "kind", "name",
                 "parked", "pending_cancel", "waiters")

    def __init__(self, coro: Coroutine[Any, Any, Any], name: str, hand_over: bool = False) -> None:
        self.coro = coro
        self.name = name
        # hand_over: an exception that ends the task is kept in `error` for whoever joins it (and not logged)
        self.hand_over = hand_over
        self.error: BaseException | None = None
        self.kind = _READY
        self.deadline = INFINITE
        self._timer_at = INFINITE  # the earliest heap entry queued for this task
        self.parked: Watch | None = None  # the watch it waits on (reading or writing), if any
        self.joining: tuple[Task, ...] | None = None
        self.pending_cancel: BaseException | None = None
        self.done = False
        self.waiters: list[Task] | None = None  # tasks join()ing this one


class Watch:
    """One registered file descriptor: who waits to read or write it, and readiness nobody took yet."""

    __slots__ = ("ended", "fd", "reader", "rflag", "wflag", "writer")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.reader: Task | None = None
        self.writer: Task | None = None
        self.rflag = False
        self.wflag = False
        self.ended = False  # the peer closed (or reset) the connection: sticky, unlike the edge flags


class Timer:
    """A callback queued by call_later; cancel() keeps it from running."""
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """The callback will not run (its heap entry stays until its time comes)."""
        self.cancelled = True


class _Park:
    """`await PARK`: hand control back to the loop until it resumes this task (with a value or an
    exception). One shared object: a wait allocates only the generator of __await__."""

    __slots__ = ()

    def __await__(self) -> Generator[None, Any, Any]:
        return (yield)


class _Nothing:
    """`await NOTHING` finishes at once: no trip through the loop."""

    __slots__ = ()

    def __await__(self) -> Generator[None, Any, None]:
        return
        yield


PARK: Awaitable[Any] = _Park()
NOTHING: Awaitable[None] = _Nothing()


class Loop:
    """The event loop: epoll readiness, deadlines, and a pool of worker threads for blocking calls."""
    def __init__(self, *, workers: int = 32, log: Callable[[str], None] | None = None) -> None:
        self._epoll = select.epoll()
        self._watches: dict[int, Watch] = {}
        self._ready: collections.deque[tuple[Task, Any, BaseException | None]] = collections.deque()
        self._heap: list[tuple[float, int, Task | Timer]] = []
        self._seq = itertools.count()
        self._calls: collections.deque[Callable[[], None]] = collections.deque()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._wake_pending = False
        self._epoll.register(self._wake_fd, select.EPOLLIN)
        self._tasks: set[Task] = set()
        self._running = False
        self._stopping = False
        self._log = log
        self.current: Task | None = None
        self.now = time.monotonic()
        self.thread: threading.Thread | None = None
        # worker pool
        self._max_workers = workers
        self._jobs: queue.SimpleQueue[tuple[Task, Callable[..., Any], tuple[Any, ...]] | None] = \
            queue.SimpleQueue()
        self._workers = 0
        self._idle_workers = 0
        self._pool_lock = threading.Lock()

    # -- file descriptors ----------------------------------------------------------------------------

    def watch(self, fd: int) -> Watch:
        """Register `fd` (edge-triggered, read and write) for the life of the socket."""
        w = Watch(fd)
        self._watches[fd] = w
        try:
            self._epoll.register(fd, _MASK)
        except FileExistsError:  # a closed fd's number, reused before its registration went away
            self._epoll.modify(fd, _MASK)
        return w

    def forget(self, w: Watch) -> None:
        """The socket is about to be closed (closing removes it from the epoll set): waiters get an error."""
        if self._watches.get(w.fd) is w:
            del self._watches[w.fd]
        for task in (w.reader, w.writer):
            if task is not None:
                self._unpark(task, exc=ConnectionAbortedError("the connection was closed"))
        w.reader = w.writer = None

    def wait_readable(self, w: Watch, deadline: float) -> Awaitable[None]:
        """Await until `w` may be readable (TimeoutError past `deadline`)."""
        if w.rflag:
            w.rflag = False
            return NOTHING
        task = self.current
        assert task is not None
        w.reader = task
        task.parked = w
        self._arm(task, _IO, deadline)
        return PARK

    # wait_readable's twin, kept as its own method rather than one taking a direction: every wait for I/O
    # goes through these, so they stay one call with no extra branch or argument.
    def wait_writable(self, w: Watch, deadline: float) -> Awaitable[None]:
        """Await until `w` may be writable (TimeoutError past `deadline`)."""
        if w.wflag:
            w.wflag = False
            return NOTHING
        task = self.current
        assert task is not None
        w.writer = task
        task.parked = w
        self._arm(task, _IO, deadline)
        return PARK

    def _arm(self, task: Task, kind: int, deadline: float) -> None:
        task.kind = kind
        task.deadline = deadline
        if deadline < task._timer_at:
            task._timer_at = deadline
            heapq.heappush(self._heap, (deadline, next(self._seq), task))

    # -- tasks ---------------------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "task", hand_over: bool = False) -> Task:
        """Start running `coro` as a task on the next iteration (`hand_over`: see Task)."""
        task = Task(coro, name, hand_over)
        self._tasks.add(task)
        self._ready.append((task, None, None))
        return task

    def sleep(self, seconds: float) -> Awaitable[None]:
        """Await `seconds` on the loop's clock."""
        task = self.current
        assert task is not None
        self._arm(task, _SLEEP, self.now + seconds)
        return PARK

    def join(self, *others: Task, deadline: float) -> Awaitable[None]:
        """Await the end of any of `others` (TimeoutError past `deadline`)."""
        if any(other.done for other in others):
            return NOTHING
        task = self.current
        assert task is not None
        for other in others:
            if other.waiters is None:
                other.waiters = []
            other.waiters.append(task)
        task.joining = others
        self._arm(task, _JOIN, deadline)
        return PARK

    def cancel(self, task: Task, exc: BaseException | None = None) -> None:
        """Throw `exc` (Cancelled) into `task` at its current wait, or its next one."""
        if task.done:
            return
        exc = exc or Cancelled()
        if task.kind in (_IO, _SLEEP, _JOIN):
            self._unpark(task, exc=exc)
        else:
            task.pending_cancel = exc

    def _unpark(self, task: Task, value: Any = None, exc: BaseException | None = None) -> None:
        w = task.parked
        if w is not None:
            if w.reader is task:
                w.reader = None
            if w.writer is task:
                w.writer = None
            task.parked = None
        task.joining = None
        task.kind = _READY
        self._ready.append((task, value, exc))

    def _step(self, task: Task, value: Any, exc: BaseException | None) -> None:
        if task.done:
            return
        if exc is None and task.pending_cancel is not None:
            exc, task.pending_cancel = task.pending_cancel, None
        self.current = task
        try:
            if exc is None:
                task.coro.send(value)
            else:
                task.coro.throw(exc)
        except StopIteration:
            self._finish(task)
        except BaseException as error:  # a bug in a connection's code must not stop the loop
            self._finish(task)
            if task.hand_over:
                task.error = error
            elif not isinstance(error, Cancelled) and self._log is not None:
                self._log(f"proxy: internal error ({type(error).__name__}) in {task.name}")
        finally:
            self.current = None

    def _finish(self, task: Task) -> None:
        task.done = True
        self._tasks.discard(task)
        if task.waiters:
            for waiter in task.waiters:
                if waiter.kind == _JOIN and waiter.joining is not None and task in waiter.joining:
                    self._unpark(waiter)
            task.waiters = None

    # -- timers --------------------------------------------------------------------------------------

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run `callback` on the loop after `delay` seconds, unless the returned Timer is cancelled."""
        timer = Timer(callback)
        heapq.heappush(self._heap, (self.now + delay, next(self._seq), timer))
        return timer

    def _expire(self) -> None:
        heap, now = self._heap, self.now
        while heap and heap[0][0] <= now:
            when, _seq, item = heapq.heappop(heap)
            if isinstance(item, Timer):
                if not item.cancelled:
                    item.callback()
                continue
            task = item
            if when == task._timer_at:
                task._timer_at = INFINITE
            if task.kind not in (_IO, _SLEEP, _JOIN):
                continue
            if task.deadline <= now:
                self._unpark(task, exc=None if task.kind == _SLEEP else TimeoutError())
            elif task.deadline < task._timer_at:
                task._timer_at = task.deadline
                heapq.heappush(heap, (task.deadline, next(self._seq), task))

    # -- threads -------------------------------------------------------------------------------------

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the loop's thread at its next iteration; safe from any thread."""
        self._calls.append(callback)
        if not self._wake_pending:
            self._wake_pending = True
            try:
                os.eventfd_write(self._wake_fd, 1)
            except OSError:
                pass

    def to_thread(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        """Await fn(*args) run by a worker thread; its exception is raised here."""
        task = self.current
        assert task is not None
        task.kind = _WORKER  # neither timers nor cancel() resume it: the worker's answer does
        with self._pool_lock:
            spawn = self._idle_workers == 0 and self._workers < self._max_workers
            if spawn:
                self._workers += 1
        if spawn:
            threading.Thread(target=self._worker, name="sig-proxy-worker", daemon=True).start()
        self._jobs.put((task, fn, args))
        return PARK

    def prestart(self, n: int) -> None:
        """Start `n` workers now (the first handshakes then wait for no thread to start)."""
        for _ in range(n):
            with self._pool_lock:
                if self._workers >= self._max_workers:
                    return
                self._workers += 1
            threading.Thread(target=self._worker, name="sig-proxy-worker", daemon=True).start()

    def _worker(self) -> None:
        jobs = self._jobs
        while True:
            with self._pool_lock:
                self._idle_workers += 1
            job = jobs.get()
            with self._pool_lock:
                self._idle_workers -= 1
            if job is None:
                with self._pool_lock:
                    self._workers -= 1
                return
            task, fn, args = job
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the task
                self.call_soon_threadsafe(functools.partial(self._resume, task, None, exc))
            else:
                self.call_soon_threadsafe(functools.partial(self._resume, task, result, None))
            del job, task, fn, args

    def _resume(self, task: Task, value: Any, exc: BaseException | None) -> None:
        task.kind = _READY
        self._ready.append((task, value, exc))

    # -- running -------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to return from run() (any thread)."""
        self.call_soon_threadsafe(self._request_stop)

    def _request_stop(self) -> None:
        self._stopping = True

    def run(self, on_stop: Callable[[], None] | None = None) -> None:
        """Run until stop(); then `on_stop()` (on this thread), every task is cancelled, and the loop runs on
        until they all ended or 5 s passed."""
        self.thread = threading.current_thread()
        self._running = True
        epoll, watches, ready = self._epoll, self._watches, self._ready
        wake_fd = self._wake_fd
        stop_deadline = INFINITE
        try:
            while True:
                if self._stopping and stop_deadline == INFINITE:
                    stop_deadline = self.now + 5.0
                    if on_stop is not None:
                        on_stop()
                    self.cancel_all()
                if stop_deadline != INFINITE and (not self._tasks or self.now >= stop_deadline):
                    break
                if ready or self._calls:
                    timeout = 0.0
                elif self._heap:
                    timeout = max(0.0, min(self._heap[0][0], stop_deadline) - time.monotonic())
                else:
                    timeout = -1.0 if stop_deadline == INFINITE else max(0.0, stop_deadline - self.now)
                events = epoll.poll(timeout)
                self.now = time.monotonic()
                for fd, ev in events:
                    if fd == wake_fd:
                        try:
                            os.eventfd_read(wake_fd)
                        except OSError:
                            pass
                        continue
                    w = watches.get(fd)
                    if w is None:
                        continue
                    if ev & _IN:
                        if ev & _END:
                            w.ended = True
                        task = w.reader
                        if task is not None:
                            w.reader = None
                            task.parked = None
                            task.kind = _READY
                            ready.append((task, None, None))
                        else:
                            w.rflag = True
                    if ev & _OUT:
                        task = w.writer
                        if task is not None:
                            w.writer = None
                            task.parked = None
                            task.kind = _READY
                            ready.append((task, None, None))
                        else:
                            w.wflag = True
                if self._calls:
                    self._wake_pending = False
                    calls = self._calls
                    while calls:
                        calls.popleft()()
                if self._heap and self._heap[0][0] <= self.now:
                    self._expire()
                step = self._step
                for _ in range(len(ready)):
                    task, value, exc = ready.popleft()
                    step(task, value, exc)
        finally:
            self._running = False
            self._shutdown_workers()

    def cancel_all(self) -> None:
        """Cancel every task (shutdown): each gets Cancelled at its current wait."""
        for task in list(self._tasks):
            self.cancel(task)

    def _shutdown_workers(self) -> None:
        with self._pool_lock:
            n = self._workers
        for _ in range(n):
            self._jobs.put(None)

    def close(self) -> None:
        """Release the epoll and eventfd descriptors, closing any task left; after run() has returned."""
        for task in list(self._tasks):
            task.coro.close()
        self._tasks.clear()
        self._epoll.close()
        os.close(self._wake_fd)
