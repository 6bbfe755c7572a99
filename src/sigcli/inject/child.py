"""Run the child of `sig run`: relay its output through redactors, forward signals, return its status.

No asyncio, and not even `subprocess`/`selectors`/`signal` (their imports cost ~25 ms per call of
`sig run`): os.posix_spawnp, select.poll and the _signal core.

When sig's stdout is a terminal (and redaction is on) the child gets a pseudo-terminal, so it still sees
a TTY (colours, progress bars) while sig reads and redacts what it prints. The child is spawned as a
session leader and opens the pty first, which makes the pty its controlling terminal: `/dev/tty` is then
the pty sig reads, never the real terminal, so writing there cannot skip redaction. When sig's stdin is
a terminal too, the pty is the child's stdin as well and sig relays the keyboard to it with its own
terminal in raw mode (as `script` and `ssh -t` do): Ctrl-C, Ctrl-Z and job control happen inside the
child's terminal, and programs that prompt on /dev/tty (ssh, sudo, git) get what is typed.
"""

from __future__ import annotations

import os
import time

from ..core.errors import ErrorCode, SigError
from ..core.redactor import StreamRedactor

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable
    from typing import Any
else:
    import _signal as signal  # the C module: `signal` imports enum, which `sig run` need not pay for

FORWARDED = ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGINT", "SIGWINCH", "SIGCONT")
# How long a stream may stay quiet before the redactor lets out the tail it holds back (a prompt such as
# "Loading items" must not look hung because some secret begins with "s").
IDLE_FLUSH_S = 0.08
_INPUT_BACKLOG = 65536  # keyboard bytes waiting for the child's pty before sig stops reading more
BACKGROUND_CHECK_MS = 200  # how often sig, started in the background, looks whether it is in the foreground


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

    def wait(self) -> int:
        """Wait for the child; its exit code (-N when signal N ended it, as os.waitstatus_to_exitcode says)."""
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


def _in_foreground() -> bool:
    """Whether sig is the foreground job of the terminal on its stdin."""
    try:
        return os.tcgetpgrp(0) == os.getpgrp()
    except OSError:  # not sig's controlling terminal: no job control to respect
        return True


class _Keyboard:
    """sig's own terminal (stdin) as the child's keyboard: in raw mode while sig is the terminal's
    foreground job, so every key (Ctrl-C included) goes to the child's pty, whose line discipline then
    echoes, edits lines and sends signals to the child's foreground job exactly as a terminal would."""

    def __init__(self) -> None:
        import termios

        self._termios = termios
        self.saved: list[Any] = []
        self.raw = False

    def update(self) -> bool:
        """Raw mode if sig is in the foreground (again), else leave the terminal to whoever has it. The
        settings to restore are read when sig takes the terminal: before, they are the shell's own."""
        termios = self._termios
        if not _in_foreground():
            self.raw = False
            return False
        if not self.raw:
            try:
                self.saved = termios.tcgetattr(0)
            except (OSError, termios.error):
                return False
        mode = list(self.saved)
        cc = list(mode[6])
        # cfmakeraw: no input processing, no echo, no line editing, no signals from keys, 8-bit bytes.
        mode[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR
                     | termios.IGNCR | termios.ICRNL | termios.IXON)
        mode[1] &= ~termios.OPOST
        mode[2] = (mode[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
        mode[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
        cc[termios.VMIN], cc[termios.VTIME] = 1, 0
        mode[6] = cc
        try:
            termios.tcsetattr(0, termios.TCSANOW, mode)
        except (OSError, termios.error):
            return False
        self.raw = True
        return True

    def restore(self) -> None:
        if self.raw and _in_foreground():
            try:
                self._termios.tcsetattr(0, self._termios.TCSADRAIN, self.saved)
            except (OSError, self._termios.error):
                pass
        self.raw = False


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
    actions: list[tuple[object, ...]] = []
    keyboard: _Keyboard | None = None
    if use_pty:
        master, slave = os.openpty()
        parent_fds.append(master)
        child_fds.append(slave)
        if not os.isatty(0):
            _copy_termios(1, slave)
        elif _in_foreground():  # (in the background the terminal holds the shell's settings: keep the defaults)
            _copy_termios(0, slave)
        _copy_winsize(1, slave)
        # Opened (not inherited) by the child after setsid: a session leader without a controlling
        # terminal that opens a tty makes it its controlling terminal.
        actions += [(os.POSIX_SPAWN_OPEN, 1, os.ttyname(slave), os.O_RDWR, 0), (os.POSIX_SPAWN_DUP2, 1, 2)]
        if os.isatty(0):
            keyboard = _Keyboard()
            actions.append((os.POSIX_SPAWN_DUP2, 1, 0))
    elif redact:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        parent_fds += [out_r, err_r]
        child_fds += [out_w, err_w]
        actions += [(os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)]
    try:
        pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions, setsid=use_pty)
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
    wake_r, wake_w = os.pipe() if keyboard is not None else (-1, -1)
    if wake_w >= 0:
        os.set_blocking(wake_w, False)  # written from a signal handler: never wait there
    previous = _forward_signals(proc, parent_fds[0] if use_pty else -1, wake_w)
    masks = 0
    try:
        if redact:
            targets = [1] if use_pty else [1, 2]
            relay = _Relay(dict(zip(parent_fds, targets, strict=True)), secrets)
            if keyboard is not None:
                relay.keyboard(keyboard, parent_fds[0], wake_r, proc)
            masks = relay.run()
        code = proc.wait()
    finally:
        restore_signals(previous)
        if keyboard is not None:
            keyboard.restore()
        _close(*parent_fds, wake_r, wake_w)
        if on_exit is not None:
            on_exit()
    return (128 - code if code < 0 else code), masks


def _copy_termios(src_fd: int, dst_fd: int) -> None:
    """The child's terminal starts with the settings of the user's (erase key, flow control, modes)."""
    try:
        import termios

        termios.tcsetattr(dst_fd, termios.TCSANOW, termios.tcgetattr(src_fd))
    except Exception:  # OSError, or termios.error (not an OSError): the defaults then
        pass


def _close(*fds: int) -> None:
    for fd in fds:
        if fd < 0:
            continue
        try:
            os.close(fd)
        except OSError:
            pass


class _Relay:
    """Copy each source fd to its target fd (1 or 2) through its own redactor until all reach EOF; with a
    keyboard, also copy sig's stdin to the child's pty. A stream that stays quiet for IDLE_FLUSH_S with a
    possible secret's beginning held back gets it flushed (see StreamRedactor.flush_idle)."""

    def __init__(self, sources: dict[int, int], secrets: list[str]) -> None:
        import select

        self._select = select
        self.sources = sources
        self.redactors = {fd: StreamRedactor(secrets) for fd in sources}
        self.poller = select.poll()
        for fd in sources:
            self.poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self.open_fds = set(sources)
        self.last_read = dict.fromkeys(sources, time.monotonic())
        self._keyboard: _Keyboard | None = None
        self._child: Child | None = None
        self._pty = self._wake = -1
        self._pending = b""  # keyboard bytes not yet written to the pty
        self._reading_keys = False
        self._keys_gone = False  # the terminal reached EOF

    def keyboard(self, keyboard: _Keyboard, pty: int, wake: int, child: Child) -> None:
        self._keyboard, self._pty, self._wake, self._child = keyboard, pty, wake, child
        os.set_blocking(pty, False)
        os.set_blocking(wake, False)
        self.poller.register(wake, self._select.POLLIN)
        self._keys_on(keyboard.update())

    def _keys_on(self, on: bool) -> None:
        """Read the keyboard (or stop reading it: sig is in the background, or the child is not reading)."""
        on = on and not self._keys_gone
        if on and not self._reading_keys:
            self.poller.register(0, self._select.POLLIN)
        elif not on and self._reading_keys:
            self.poller.unregister(0)
        self._reading_keys = on

    def _pty_events(self) -> None:
        select = self._select
        wanted = select.POLLIN | select.POLLHUP | select.POLLERR | (select.POLLOUT if self._pending else 0)
        self.poller.modify(self._pty, wanted)

    def _timeout_ms(self) -> int | None:
        # In the background, look again now and then: `fg` of a job that is running sends no signal.
        background = BACKGROUND_CHECK_MS if self._keyboard is not None and not self._keyboard.raw else None
        held = [self.last_read[fd] for fd in self.open_fds if self.redactors[fd].holding]
        if not held:
            return background
        idle = max(0, int((min(held) + IDLE_FLUSH_S - time.monotonic()) * 1000) + 1)
        return idle if background is None else min(idle, background)

    def run(self) -> int:
        select = self._select
        while self.open_fds:
            try:
                events = self.poller.poll(self._timeout_ms())
            except InterruptedError:
                continue
            for fd, event in events:
                if fd == self._wake:
                    self._woken()
                    continue
                if fd == 0:
                    self._read_keys()
                    continue
                if fd == self._pty and event & select.POLLOUT:
                    self._write_keys()
                if fd in self.open_fds and event & (select.POLLIN | select.POLLHUP | select.POLLERR):
                    self._read_output(fd)
            if self._keyboard is not None and not self._keyboard.raw and not self._keys_gone:
                self._keys_on(self._keyboard.update() and len(self._pending) < _INPUT_BACKLOG)
            now = time.monotonic()
            for fd in self.open_fds:
                redactor = self.redactors[fd]
                if redactor.holding and now - self.last_read[fd] >= IDLE_FLUSH_S:
                    _write_all(self.sources[fd], redactor.flush_idle())
        return sum(r.redacted for r in self.redactors.values())

    def _woken(self) -> None:
        """SIGCONT: sig is back in the foreground (raw mode, keyboard on) or in the background (off)."""
        try:
            os.read(self._wake, 512)
        except OSError:
            pass
        if self._keyboard is not None:
            self._keys_on(self._keyboard.update() and len(self._pending) < _INPUT_BACKLOG)

    def _suspend_key(self, data: bytes) -> int:
        """Where in `data` the user pressed the suspend key (Ctrl-Z) for a job that would otherwise
        ignore it, or -1. The child's job is an orphaned process group (its parent, sig, is in another
        session), and the kernel drops a terminal's stop signals for those: sig stops the job and itself
        instead, giving the terminal back to the shell. A job-control shell in the child (bash) runs its
        jobs in groups of its own, and a child that ignores SIGTSTP keeps the key: both are left alone."""
        import termios

        child = self._child
        if child is None or child.returncode is not None:
            return -1
        try:
            mode = termios.tcgetattr(self._pty)
            if not mode[3] & termios.ISIG:
                return -1
            key = mode[6][termios.VSUSP]
            key = key if isinstance(key, bytes) else bytes([key])
            at = data.find(key)
            if at < 0 or key == b"\0" or os.tcgetpgrp(self._pty) != child.pid:
                return -1
            with open(f"/proc/{child.pid}/status", "rb") as fh:
                ignored = next((line for line in fh if line.startswith(b"SigIgn:")), b"SigIgn: 0")
            if int(ignored.split()[1], 16) >> (signal.SIGTSTP - 1) & 1:
                return -1
        except (OSError, ValueError, IndexError, termios.error):
            return -1
        return at

    def _suspend(self) -> None:
        assert self._child is not None and self._keyboard is not None
        try:
            os.killpg(self._child.pid, signal.SIGSTOP)
        except OSError:
            return
        self._keyboard.restore()
        os.kill(os.getpid(), signal.SIGSTOP)  # `fg` sends SIGCONT: the handler resumes the job

    def _read_output(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except (InterruptedError, BlockingIOError):
            return
        except OSError:  # EIO: the pty's other side closed
            data = b""
        self.last_read[fd] = time.monotonic()
        if data:
            _write_all(self.sources[fd], self.redactors[fd].feed(data))
            return
        _write_all(self.sources[fd], self.redactors[fd].flush())
        self.poller.unregister(fd)
        self.open_fds.discard(fd)
        if fd == self._pty:
            self._pending = b""
            self._keys_on(False)

    def _read_keys(self) -> None:
        try:
            data = os.read(0, 4096)
        except (InterruptedError, BlockingIOError):
            return
        except OSError:
            data = b""
        if not data:  # the terminal went away
            self._keys_on(False)
            self._keys_gone = True
            return
        at = self._suspend_key(data)
        if at >= 0:
            self._pending += data[:at]
            self._write_keys()
            self._suspend()
            data = data[at + 1 :]
        self._pending += data
        if len(self._pending) >= _INPUT_BACKLOG:
            self._keys_on(False)  # the child is not reading: stop until it does
        self._write_keys()

    def _write_keys(self) -> None:
        if self._pty not in self.open_fds:
            self._pending = b""
            return
        try:
            n = os.write(self._pty, self._pending)
        except (InterruptedError, BlockingIOError):
            n = 0
        except OSError:
            n = len(self._pending)  # the child's side is gone: the keys have nowhere to go
        self._pending = self._pending[n:]
        if len(self._pending) < _INPUT_BACKLOG and self._keyboard is not None and self._keyboard.raw:
            self._keys_on(True)
        self._pty_events()


def _forward_signals(proc: Child, master: int, wake: int) -> dict[int, object]:
    """Pass signals on to the child.

    Without a pty the child is in sig's process group, so Ctrl-C and Ctrl-\\ on a terminal already reach
    it: SIGINT and SIGQUIT are forwarded only when sig's stdin is not a terminal. With a pty the child has
    a session of its own: SIGINT and SIGQUIT go to the pty's foreground job (as the keys would), a new
    window size is set on the pty (the kernel then signals its foreground job), and SIGCONT also tells
    the relay to check whether sig is back in the foreground (raw mode, keyboard)."""
    same_group_keys = master < 0 and os.isatty(0)

    def handler(signum: int, _frame: object) -> None:
        target = proc.pid
        if signum == signal.SIGWINCH and master >= 0:
            _copy_winsize(1, master)
            return
        if signum in (signal.SIGINT, signal.SIGQUIT):
            if same_group_keys:
                return
            if master >= 0:
                try:
                    target = -os.tcgetpgrp(master)
                except OSError:
                    pass
        if signum == signal.SIGCONT and wake >= 0:
            try:
                os.write(wake, b"w")
            except OSError:
                pass
        if signum == signal.SIGCONT and master >= 0:
            target = -proc.pid  # the child leads its own process group too
        if proc.returncode is not None:
            return
        try:
            os.kill(target, signum)
        except (ProcessLookupError, OSError):
            pass

    return catch_signals(FORWARDED, handler)


def catch_signals(names: tuple[str, ...], handler: Callable[[int, Any], None]) -> dict[int, object]:
    """Point the signals named (those this platform has) at `handler`; return the handlers they had,
    for `restore_signals`. Shared with `sig run --sandbox` (sandbox/launch.py)."""
    previous: dict[int, object] = {}
    for name in names:
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            previous[signum] = signal.signal(signum, handler)
        except (OSError, ValueError):
            pass
    return previous


def restore_signals(previous: dict[int, object]) -> None:
    """Put back the handlers `catch_signals` replaced."""
    for signum, old in previous.items():
        try:
            signal.signal(signum, old)  # type: ignore[arg-type,unused-ignore]
        except (OSError, ValueError, TypeError):
            pass


def exit_status_note(code: int) -> str:
    """" (killed by SIGTERM)" and the like for a status above 128; "" otherwise."""
    if code > 128:
        import signal as named

        try:
            return f" (killed by {named.Signals(code - 128).name})"
        except ValueError:
            return ""
    return ""
