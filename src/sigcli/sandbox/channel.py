"""Outside end of the one channel into the sandbox: receives the listening socket the starter (shim.py)
opened in the sandbox's network namespace, checks it is what it must be, and says go.

The channel is a socketpair made before bubblewrap starts; the inside end is the sandbox's fd 3 and is
closed by the starter before the user's command runs, so the command never holds it. This end accepts
exactly one message: one descriptor that is a listening TCP socket on 127.0.0.1 (anything else ends the
run). With SO_PASSCRED the kernel adds the sender's pid as this process sees it: the pid of the
command once the starter execs it, which `sig run` signals (Ctrl-C, SIGTERM) directly.
"""

from __future__ import annotations

import array
import os
import socket
import struct

from ..core.errors import ErrorCode, SigError

INSIDE_FD = 3  # where the inside end lands in the sandbox (shim.CHANNEL_FD)


class Channel:
    """The socketpair: `inside` goes to the sandbox as fd 3, `outside` stays with sig run."""

    def __init__(self) -> None:
        self.outside, self.inside = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.outside.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)

    def close_inside(self) -> None:
        """After bubblewrap started (it holds the inside end now): the end of the sandbox then shows here."""
        self.inside.close()

    def fileno(self) -> int:
        """This end's descriptor (to wait on)."""
        return self.outside.fileno()

    def receive(self) -> tuple[socket.socket, int | None]:
        """(the sandbox's listening socket, the starter's pid here). Blocks; SigError when the sandbox
        ended first (bubblewrap failed) or sent anything but one listening loopback TCP socket."""
        fd_size = array.array("i").itemsize
        ancillary = socket.CMSG_SPACE(4 * fd_size) + socket.CMSG_SPACE(struct.calcsize("iII"))
        try:
            data, ancdata, _flags, _addr = self.outside.recvmsg(16, ancillary, socket.MSG_CMSG_CLOEXEC)
        except OSError as exc:
            raise _broken(f"reading from the sandbox failed ({exc.strerror})") from None
        fds: list[int] = []
        pid = None
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(payload[: len(payload) - len(payload) % fd_size])
                fds += list(got)
            elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(payload) >= 12:
                pid = struct.unpack("iII", payload[:12])[0] or None
        if not data and not fds:
            raise _broken("the sandbox ended before it was ready")
        if data != b"L" or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise _broken("the sandbox sent something other than its proxy port")
        try:
            listener = socket.socket(fileno=fds[0])
        except OSError:  # not a socket at all (a pipe, a file)
            os.close(fds[0])
            raise _broken("the sandbox's proxy port is not a listening loopback TCP socket") from None
        try:
            ok = (listener.family == socket.AF_INET and listener.type == socket.SOCK_STREAM
                  and listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
                  and listener.getsockname()[0] == "127.0.0.1")
        except OSError:
            ok = False
        if not ok:
            listener.close()
            raise _broken("the sandbox's proxy port is not a listening loopback TCP socket")
        return listener, pid

    def go(self, ok: bool = True) -> None:
        """Let the starter exec the command (or, with ok=False, end it). Closes this end."""
        try:
            self.outside.send(b"G" if ok else b"X")
        except OSError:
            pass
        self.outside.close()

    def close(self) -> None:
        """Close both ends (either may be closed already)."""
        for sock in (self.outside, self.inside):
            try:
                sock.close()
            except OSError:
                pass


def _broken(why: str) -> SigError:
    return SigError(ErrorCode.GENERAL_ERROR, f"the sandbox could not start: {why}",
                    "run `sig doctor` to check the sandbox; the command was not run")
