"""Start the sandbox, hand its proxy port to the proxy, relay signals, return the command's status.

    sig run ──spawn──▶ bwrap ──▶ python -I -S shim.py PORT cmd…   (inside: own namespaces, seccomp)
       │  ◀── fd 3: the listening socket on 127.0.0.1:PORT (SCM_RIGHTS) ──┘
       └──▶ the proxy (sandbox.sock): profile + that socket ─▶ "ok" ─▶ "G" to the shim ─▶ exec cmd

No byte of the program's traffic passes through sig run or any process inside: the proxy accepts on
the socket directly. bubblewrap runs in a process group of its own, so Ctrl-C on the terminal reaches
sig run only; sig run passes it (and SIGTERM, SIGHUP, …) to the command, whose pid the kernel named
with the listening socket. If sig run dies, `--die-with-parent` ends the sandbox and the kernel closes
the control connection, which ends the run's profile in the proxy.
"""

from __future__ import annotations

import os

from ..core.errors import ErrorCode, SigError
from ..inject.child import catch_signals, restore_signals

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    import socket
    from collections.abc import Callable
    from typing import Protocol

    class Registered(Protocol):
        """What the adopter returns: closed when the run ends (the proxy then forgets the run)."""

        def close(self) -> None:
            """End the run's profile in the proxy."""
else:
    import _signal as signal  # the C module: `signal` imports enum, which `sig run` need not pay for

FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCONT", "SIGTSTP")
SECCOMP_FD = 4  # inside bwrap's own descriptor table, before it loads the filter


def _high_copy(fd: int) -> int:
    """A copy of `fd` numbered 64 or above (close-on-exec), so the spawn can place it at 3 or 4 without
    clobbering another."""
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64)


def _no_inheritance(keep: set[int]) -> None:
    """Every descriptor this process holds above 2 (one inherited from whoever started sig included)
    becomes close-on-exec: bubblewrap and the sandbox get only what the spawn places."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return
    for name in names:
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the listing's own descriptor, already closed


def run(bwrap_argv: list[str], env: dict[str, str], seccomp_program: bytes,
        adopt: Callable[[socket.socket], Registered], on_started: Callable[[], None] | None = None) -> int:
    """Run the sandbox; return the command's exit status (128+N when a signal N ended it)."""
    from .channel import INSIDE_FD, Channel

    channel = Channel()
    filter_r, filter_w = os.pipe()
    os.write(filter_w, seccomp_program)  # a few hundred bytes: the pipe never blocks
    os.close(filter_w)
    inside = _high_copy(channel.inside.fileno())
    filt = _high_copy(filter_r)
    os.close(filter_r)
    _no_inheritance(set())
    actions = [(os.POSIX_SPAWN_DUP2, inside, INSIDE_FD), (os.POSIX_SPAWN_DUP2, filt, SECCOMP_FD)]
    try:
        pid = os.posix_spawn(bwrap_argv[0], bwrap_argv, env, file_actions=actions, setpgroup=0)
    except OSError as exc:
        channel.close()
        raise SigError(ErrorCode.NOT_AVAILABLE, f"bubblewrap could not be started: {exc.strerror}; the "
                       "command was not run", "run `sig doctor`") from None
    finally:
        os.close(inside)
        os.close(filt)
    channel.close_inside()
    registration: Registered | None = None
    target: list[int] = []  # the command's pid, once known
    previous = _forward(pid, target)
    try:
        try:
            listener, command_pid = channel.receive()
        except SigError:
            status = _wait(pid)
            from .detect import probe

            works, why = probe(bwrap_argv[0])
            if not works:
                from .detect import unavailable

                raise unavailable(why) from None
            if status != 0:
                raise SigError(ErrorCode.NOT_AVAILABLE, f"the sandbox could not start (bubblewrap exited "
                               f"with status {status}); the command was not run",
                               "the message above is bubblewrap's; run `sig doctor`") from None
            raise
        try:
            registration = adopt(listener)
        except BaseException:
            channel.go(False)
            _wait(pid)
            raise
        finally:
            listener.close()  # the proxy holds its own copy now
        if command_pid:
            target.append(command_pid)
        channel.go(True)
        if on_started is not None:
            on_started()
        return _wait(pid)
    finally:
        restore_signals(previous)
        channel.close()
        if registration is not None:
            registration.close()


def _wait(pid: int) -> int:
    while True:
        try:
            _pid, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 1
        code = os.waitstatus_to_exitcode(status)
        return 128 - code if code < 0 else code


def _forward(bwrap_pid: int, target: list[int]) -> dict[int, object]:
    """Signals sig run gets go to the command (its process group: what a terminal's Ctrl-C reaches).
    Before the command is known, a terminating signal ends the sandbox through bubblewrap."""

    def to_command(signum: int) -> None:
        # The command's process group (bubblewrap's new session, led by its pid 1 in the sandbox, which
        # ignores such signals from outside): what a terminal's key would reach.
        try:
            os.killpg(os.getpgid(target[0]), signum)
        except OSError:
            try:
                os.kill(target[0], signum)
            except OSError:
                pass  # the command is gone already

    def handler(signum: int, _frame: object) -> None:
        try:
            if signum == signal.SIGTSTP:  # Ctrl-Z: the command stops with sig (it is not in the terminal's
                if target:                # job: no key reaches it), and both go on with SIGCONT (fg)
                    to_command(signal.SIGSTOP)
                os.kill(os.getpid(), signal.SIGSTOP)
                return
            if target:
                to_command(signum)
            elif signum not in (signal.SIGWINCH, signal.SIGCONT):
                os.kill(bwrap_pid, signal.SIGKILL)
        except OSError:
            pass

    return catch_signals(FORWARDED, handler)
