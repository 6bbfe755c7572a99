"""A STAND-IN for the proxy's sandbox socket (`$SIG_HOME/proxy/sandbox.sock`), for the sandbox's own tests.

It speaks the control protocol of sigcli/sandbox/control.py (a JSON line with the listening socket
attached; one JSON line back; the connection lives as long as the run) and then answers every HTTP
request that arrives on the adopted socket with `stand-in saw: <request line>` — no TLS, no upstream,
no credentials. It lets the tests check the sandbox's plumbing (the descriptor passed out of the
sandbox, the profile sent, the run's end closing everything) without the real proxy; the tests of the
real proxy's adoption use `sig proxy start`.
"""

from __future__ import annotations

import array
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any


class StandInProxy:
    def __init__(self, folder: Path, token: str = "", refuse: str | None = None, owner: int | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.token = token
        self.refuse = refuse  # answer {"ok": false, "error": refuse} instead
        self.profiles: list[dict[str, Any]] = []
        self.seen: list[str] = []  # request lines served
        self.closed = threading.Event()  # a run's control connection ended
        self.listeners: list[socket.socket] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = str(self.folder / "sandbox.sock")
        dir_fd = None
        if len(path.encode()) > 107:
            dir_fd = os.open(self.folder, os.O_PATH | os.O_DIRECTORY)
            path = f"/proc/self/fd/{dir_fd}/sandbox.sock"
        self._server.bind(path)
        if owner is not None:  # the user sig runs as must be able to connect
            os.chown(path, owner, owner)
        if dir_fd is not None:
            os.close(dir_fd)
        self._server.listen(8)
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._control, args=(conn,), daemon=True).start()

    def _control(self, conn: socket.socket) -> None:
        data, fds = b"", []
        while b"\n" not in data:
            msg, anc, _f, _a = conn.recvmsg(65536, socket.CMSG_SPACE(4 * 4))
            if not msg:
                conn.close()
                return
            data += msg
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    got = array.array("i")
                    got.frombytes(payload[: len(payload) - len(payload) % 4])
                    fds += list(got)
        request = json.loads(data.split(b"\n", 1)[0])
        if self.refuse or request.get("token") != self.token or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            conn.sendall(json.dumps({"ok": False, "error": self.refuse or "bad token"}).encode() + b"\n")
            conn.close()
            return
        self.profiles.append(request["profile"])
        listener = socket.socket(fileno=fds[0])
        self.listeners.append(listener)
        threading.Thread(target=self._serve, args=(listener,), daemon=True).start()
        conn.sendall(b'{"ok": true, "name": "stand-in"}\n')
        while conn.recv(4096):
            pass
        listener.close()  # the run ended: its port goes away
        conn.close()
        self.closed.set()

    def _serve(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(client,), daemon=True).start()

    def _answer(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            self.seen.append(line)
            body = f"stand-in saw: {line}\n".encode()
            client.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)

    def close(self) -> None:
        self._stop = True
        self._server.close()
        for listener in self.listeners:
            try:
                listener.close()
            except OSError:
                pass
