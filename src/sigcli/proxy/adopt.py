"""The proxy's sandbox door: `$SIG_HOME/proxy/sandbox.sock`, where `sig run --sandbox` hands over the
listening socket its sandbox opened, with the run's profile (the client side and the protocol:
sandbox/control.py).

For each run: the peer must be this user (SO_PEERCRED) and send the user's proxy token; the descriptor
must be a listening TCP socket on 127.0.0.1; the profile is read by profiles.profile_from_json (and
marked as a sandbox's). The server then accepts on that socket in its event loop, every connection
bound to the profile (a token sent on it is ignored: it can never ask for more). The control
connection stays open for the run: at its end (EOF, or `sig run` killed) the socket, every connection
that came through it and the profile with its placeholders are gone.

One thread per control connection (they are few and mostly idle); the serving itself is the loop's.
"""

from __future__ import annotations

import array
import contextlib
import hmac
import json
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

SOCKET_NAME = "sandbox.sock"
MAX_LINE = 64 * 1024
HELLO_TIMEOUT = 10.0


class SandboxDoor:
    """Where `sig run --sandbox` hands its listening socket over: each accepted run is served in the
    loop, bound to its profile, until its control connection ends."""
    def __init__(self, server: Any, folder: str, user_token: str | None, log: Callable[[str], None]) -> None:
        self._server = server
        self._folder = folder
        self._token = user_token
        self._log = log
        self._sock: socket.socket | None = None
        self._closed = False
        self._runs: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def path(self) -> str:
        """Where the door's Unix socket lives ($SIG_HOME/proxy/sandbox.sock)."""
        return os.path.join(self._folder, SOCKET_NAME)

    def open(self) -> None:
        """Bind the socket (0600, replacing a leftover socket file, never another kind of file) and accept
        runs on a thread of its own. OSError when it cannot."""
        from ..net.unix_path import short_path

        with contextlib.suppress(FileNotFoundError):
            import stat

            if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                raise OSError(f"{self.path} exists and is not a socket")
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        address, folder_fd = short_path(self.path)
        old = os.umask(0o177)  # 0600 from the start
        try:
            sock.bind(address)
        finally:
            os.umask(old)
            if folder_fd is not None:
                os.close(folder_fd)
        sock.listen(16)
        self._sock = sock
        threading.Thread(target=self._accept, name="sandbox-door", daemon=True).start()

    def close(self) -> None:
        """Stop accepting and end every run: their sockets, connections and profiles go with them."""
        self._closed = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        with self._lock:
            runs = list(self._runs)
        for conn in runs:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._run, args=(conn,), name="sandbox-run", daemon=True).start()

    def _refuse(self, conn: socket.socket, why: str, hint: str = "") -> None:
        self._log(f"sandbox: refused ({why})")
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps({"ok": False, "error": why, "hint": hint}).encode() + b"\n")
        conn.close()

    def _run(self, conn: socket.socket) -> None:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        if uid != os.getuid():
            self._refuse(conn, "another user's program")
            return
        conn.settimeout(HELLO_TIMEOUT)
        data, fds = b"", []
        try:
            while b"\n" not in data and len(data) < MAX_LINE:
                msg, anc, _flags, _addr = conn.recvmsg(MAX_LINE, socket.CMSG_SPACE(4 * 4), socket.MSG_CMSG_CLOEXEC)
                if not msg:
                    break
                data += msg
                for level, kind, payload in anc:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        got = array.array("i")
                        got.frombytes(payload[: len(payload) - len(payload) % 4])
                        fds += list(got)
        except OSError:
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        listener = None
        try:
            hello = json.loads(data.split(b"\n", 1)[0])
            if not isinstance(hello, dict) or hello.get("v") != 1 or not isinstance(hello.get("profile"), dict):
                raise ValueError("not a sandbox request")
            token = str(hello.get("token") or "")
            if self._token is not None and not hmac.compare_digest(token.encode(), self._token.encode()):
                raise PermissionError("wrong proxy token")
            if len(fds) != 1:
                raise ValueError("one listening socket expected")
            fd = fds.pop()
            try:
                listener = socket.socket(fileno=fd)
            except OSError:
                os.close(fd)
                raise ValueError("the descriptor is not a socket") from None
            if not (listener.family == socket.AF_INET and listener.type == socket.SOCK_STREAM
                    and listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1):
                raise ValueError("the descriptor is not a listening TCP socket")
            from .profiles import profile_from_json

            profile = profile_from_json({**hello["profile"], "sandbox": True})
        except (ValueError, PermissionError, OSError, KeyError, TypeError) as exc:
            for fd in fds:
                os.close(fd)
            if listener is not None:
                listener.close()
            self._refuse(conn, str(exc)[:200] or type(exc).__name__)
            return
        adoption = self._server.adopt(listener, profile)
        self._log(f"sandbox: {profile.name} started (providers: "
                  f"{'all' if profile.providers is None else ', '.join(sorted(profile.providers)) or 'none'}, "
                  f"other hosts: {profile.other_hosts})")
        with self._lock:
            self._runs.add(conn)
        try:
            conn.settimeout(None)
            conn.sendall(json.dumps({"ok": True, "name": profile.name}).encode() + b"\n")
            while conn.recv(4096):
                pass  # nothing more is expected: EOF ends the run
        except OSError:
            pass
        finally:
            with self._lock:
                self._runs.discard(conn)
            self._server.release(adoption)
            conn.close()
            self._log(f"sandbox: {profile.name} ended")
