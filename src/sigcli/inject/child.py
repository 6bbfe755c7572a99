"""Run the child of `sig run`: relay its output through redactors, forward signals, return its status.

No asyncio: `subprocess` plus `selectors`. When sig's stdout is a terminal (and redaction is on) the
child writes to a pseudo-terminal, so it still sees a TTY (colours, progress bars) while sig reads and
redacts what it prints; its stdin stays sig's own stdin.
"""

from __future__ import annotations

import os
import signal

from ..core.errors import ErrorCode, SigError
from .redactor import StreamRedactor

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
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


def run_child(
    argv: list[str],
    env: dict[str, str],
    secrets: list[str],
    *,
    redact: bool = True,
    on_exit: Callable[[], None] | None = None,
) -> tuple[int, int]:
    """(exit code as a shell reports it, number of masks written). `on_exit` runs before returning."""
    import selectors
    import subprocess

    use_pty = redact and os.isatty(1) and hasattr(os, "openpty")
    master = slave = -1
    if not redact:
        stdout = stderr = None
    elif use_pty:
        master, slave = os.openpty()
        _copy_winsize(1, slave)
        stdout = stderr = slave
    else:
        stdout = stderr = subprocess.PIPE
    try:
        proc = subprocess.Popen(argv, env=env, stdout=stdout, stderr=stderr, close_fds=True)
    except FileNotFoundError:
        _close(master, slave)
        raise SigError(ErrorCode.GENERAL_ERROR, f"command not found: {argv[0]}",
                       "check the spelling, or give the full path") from None
    except PermissionError:
        _close(master, slave)
        raise SigError(ErrorCode.GENERAL_ERROR, f"permission denied: {argv[0]}", "is it executable?") from None
    except OSError as exc:
        _close(master, slave)
        raise SigError(ErrorCode.GENERAL_ERROR, f"cannot run {argv[0]}: {exc.strerror}", "") from None
    if slave >= 0:
        os.close(slave)
    previous = _forward_signals(proc, master)
    masks = 0
    try:
        if redact:
            masks = _relay(proc, master, secrets, selectors)
        proc.wait()
    finally:
        _restore_signals(previous)
        if master >= 0:
            os.close(master)
        if on_exit is not None:
            on_exit()
    code = proc.returncode
    return (128 - code if code < 0 else code), masks


def _close(*fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            os.close(fd)


def _relay(proc: subprocess.Popen[bytes], master: int, secrets: list[str], selectors: object) -> int:
    sel = selectors.DefaultSelector()  # type: ignore[attr-defined]
    streams: dict[int, tuple[int, StreamRedactor]] = {}
    if master >= 0:
        streams[master] = (1, StreamRedactor(secrets))
    else:
        assert proc.stdout is not None and proc.stderr is not None
        streams[proc.stdout.fileno()] = (1, StreamRedactor(secrets))
        streams[proc.stderr.fileno()] = (2, StreamRedactor(secrets))
    for fd in streams:
        os.set_blocking(fd, False)
        sel.register(fd, 1)  # EVENT_READ
    open_fds = set(streams)
    while open_fds:
        try:
            events = sel.select()
        except InterruptedError:
            continue
        for key, _mask in events:
            fd = key.fd
            out_fd, redactor = streams[fd]
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError:  # EIO: the pty's other side closed
                data = b""
            if data:
                _write_all(out_fd, redactor.feed(data))
            else:
                _write_all(out_fd, redactor.flush())
                sel.unregister(fd)
                open_fds.discard(fd)
    sel.close()
    if master < 0:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    return sum(r.redacted for _fd, r in streams.values())


def _forward_signals(proc: subprocess.Popen[bytes], master: int) -> dict[int, object]:
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
        try:
            return f" (killed by {signal.Signals(code - 128).name})"
        except ValueError:
            return ""
    return ""

