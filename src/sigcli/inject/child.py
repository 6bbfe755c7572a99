"""Run the child of `sig run`: relay its output through redactors, forward signals, return its status.

No asyncio, and not even `subprocess`/`selectors`/`signal` (their imports cost ~25 ms per call of
`sig run`): os.posix_spawnp, select.poll and the _signal core. When sig's stdout is a terminal (and redaction is on) the
child writes to a pseudo-terminal, so it still sees a TTY (colours, progress bars) while sig reads and
redacts what it prints; its stdin stays sig's own stdin.
"""

from __future__ import annotations

import _signal as signal
import os

from ..core.errors import ErrorCode, SigError
from .redactor import StreamRedactor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

FORWARDED = ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGINT", "SIGWINCH", "SIGCONT")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BrokenPipeError:
            return
        except InterruptedError:
            continue
        view = view[n:]


def _copy_winsize(src_fd: int, dst_fd: int) -> None:
    try:
        import fcntl
        import termios

        size = fcntl.ioctl(src_fd, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst_fd, termios.TIOCSWINSZ, size)
    except (OSError, ImportError):
        pass


class Child:
    """A spawned process: pid and, once it ended, its wait status."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    def wait(self) -> int:
        while self.returncode is None:
            try:
                _pid, status = os.waitpid(self.pid, 0)
            except InterruptedError:
                continue
            except ChildProcessError:
                self.returncode = 0
                break
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def run_child(
    argv: list[str],
    env: dict[str, str],
    secrets: list[str],
    *,
    redact: bool = True,
    on_exit: Callable[[], None] | None = None,
) -> tuple[int, int]:
    """(exit code as a shell reports it, number of masks written). `on_exit` runs before returning."""
    use_pty = redact and os.isatty(1) and hasattr(os, "openpty")
    parent_fds: list[int] = []  # our read ends
    child_fds: list[int] = []  # the child's ends, closed here after the spawn
    actions: list[tuple[int, ...]] = []
    if use_pty:
        master, slave = os.openpty()
        _copy_winsize(1, slave)
        parent_fds.append(master)
        child_fds.append(slave)
        actions += [(os.POSIX_SPAWN_DUP2, slave, 1), (os.POSIX_SPAWN_DUP2, slave, 2)]
    elif redact:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        parent_fds += [out_r, err_r]
        child_fds += [out_w, err_w]
        actions += [(os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)]
    try:
        pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions)
    except FileNotFoundError:
        _close(*parent_fds, *child_fds)
        raise SigError(ErrorCode.COMMAND_NOT_FOUND, f"command not found: {argv[0]}",
                       "check the spelling, or give the full path", exit_status=127) from None
    except PermissionError:
        _close(*parent_fds, *child_fds)
        raise SigError(ErrorCode.GENERAL_ERROR, f"permission denied: {argv[0]}", "is it executable?") from None
    except OSError as exc:
        _close(*parent_fds, *child_fds)
        raise SigError(ErrorCode.GENERAL_ERROR, f"cannot run {argv[0]}: {exc.strerror}", "") from None
    _close(*child_fds)
    proc = Child(pid)
    previous = _forward_signals(proc, parent_fds[0] if use_pty else -1)
    masks = 0
    try:
        if redact:
            targets = [1] if use_pty else [1, 2]
            masks = _relay(dict(zip(parent_fds, targets, strict=True)), secrets)
        code = proc.wait()
    finally:
        _restore_signals(previous)
        _close(*parent_fds)
        if on_exit is not None:
            on_exit()
    return (128 - code if code < 0 else code), masks


def _close(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _relay(sources: dict[int, int], secrets: list[str]) -> int:
    """Copy each source fd to its target fd (1 or 2) through its own redactor, until all reach EOF."""
    import select

    redactors = {fd: StreamRedactor(secrets) for fd in sources}
    poller = select.poll()
    for fd in sources:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    open_fds = set(sources)
    while open_fds:
        try:
            events = poller.poll()
        except InterruptedError:
            continue
        for fd, _event in events:
            if fd not in open_fds:
                continue
            try:
                data = os.read(fd, 65536)
            except InterruptedError:
                continue
            except OSError:  # EIO: the pty's other side closed
                data = b""
            if data:
                _write_all(sources[fd], redactors[fd].feed(data))
            else:
                _write_all(sources[fd], redactors[fd].flush())
                poller.unregister(fd)
                open_fds.discard(fd)
    return sum(r.redacted for r in redactors.values())


def _forward_signals(proc: Child, master: int) -> dict[int, object]:
    """Pass signals on to the child. Ctrl-C on a terminal already reaches the child (same process
    group), so SIGINT is forwarded only when sig's stdin is not a terminal."""
    previous: dict[int, object] = {}
    interactive = os.isatty(0)

    def handler(signum: int, _frame: object) -> None:
        if signum == signal.SIGWINCH:
            if master >= 0:
                _copy_winsize(1, master)
            signum_to_send = signum
        elif signum == signal.SIGINT and interactive:
            return
        else:
            signum_to_send = signum
        try:
            proc.send_signal(signum_to_send)
        except (ProcessLookupError, OSError):
            pass

    for name in FORWARDED:
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            previous[signum] = signal.signal(signum, handler)
        except (OSError, ValueError):
            pass
    return previous


def _restore_signals(previous: dict[int, object]) -> None:
    for signum, old in previous.items():
        try:
            signal.signal(signum, old)  # type: ignore[arg-type]
        except (OSError, ValueError, TypeError):
            pass


def exit_status_note(code: int) -> str:
    if code > 128:
        import signal as named

        try:
            return f" (killed by {named.Signals(code - 128).name})"
        except ValueError:
            return ""
    return ""
