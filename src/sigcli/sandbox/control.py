"""Handing the sandbox's listening socket to sig's proxy: the client side of `$SIG_HOME/proxy/sandbox.sock`.

The protocol (one connection per sandboxed run; the proxy's side is proxy/adopt.py):
- the client sends one JSON line {"v": 1, "token": <the user's proxy token>, "profile": {…}} with the
  listening socket attached (SCM_RIGHTS) to it;
- the proxy answers one JSON line: {"ok": true, "name": …} once it accepts on that socket for the
  profile, or {"ok": false, "error": …, "hint": …};
- the connection then stays open for the whole run. When it closes (the run ended, or `sig run` was
  killed: the kernel closes it) the proxy closes the listening socket and every connection that came
  through it, and forgets the profile and its placeholders.

Every connection accepted on that socket gets this run's profile and nothing else: the sandbox holds no
proxy token (a token sent inside is ignored), so it cannot ask for more. The socket file is 0600 in a
0700 folder, and the proxy checks the peer's uid and the token besides.
"""

from __future__ import annotations

import array
import os
import socket

from ..core.errors import ErrorCode, SigError

SOCKET_NAME = "sandbox.sock"
MAX_LINE = 64 * 1024


def socket_path(folder: str) -> str:
    """The proxy's sandbox socket in the proxy folder."""
    return os.path.join(folder, SOCKET_NAME)


def not_running() -> SigError:
    """The error when no proxy answers: the sandbox has no other way out, so nothing runs."""
    return SigError(ErrorCode.GENERAL_ERROR, "the proxy is not running; the sandbox reaches the network only "
                    "through it", "start it first: sig proxy start")


class Registration:
    """The open control connection of one run: closing it ends the run's profile in the proxy."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        self.name = name

    def close(self) -> None:
        """End the run in the proxy (its port and connections close there)."""
        try:
            self.sock.close()
        except OSError:
            pass


def connect(folder: str, timeout: float = 5.0) -> socket.socket:
    """A connection to the proxy's sandbox socket (SigError with the fix when the proxy is not there)."""
    from ..net.unix_path import short_path

    path, folder_fd = short_path(socket_path(folder)) if os.path.isdir(folder) else (socket_path(folder), None)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        from ..proxy.daemon import read_state

        state = read_state()
        if state is not None:  # running, but without the sandbox socket: started by an older sig
            raise SigError(ErrorCode.GENERAL_ERROR, f"the running proxy (pid {state['pid']}) has no sandbox socket",
                           "restart it with this sig: sig proxy stop && sig proxy start") from None
        raise not_running() from None
    finally:
        if folder_fd is not None:
            os.close(folder_fd)
    return sock


def register(sock: socket.socket, token: str | None, profile: dict[str, object],
             listener: socket.socket, timeout: float = 10.0) -> Registration:
    """Send the profile and the listening socket; return once the proxy serves it (SigError if not)."""
    from ..core.jsonio import dumps_compact, loads

    line = dumps_compact({"v": 1, "token": token or "", "profile": profile}).encode("utf-8") + b"\n"
    sock.settimeout(timeout)
    try:
        sock.sendmsg([line], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [listener.fileno()]))])
        answer = b""
        while b"\n" not in answer and len(answer) < MAX_LINE:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    except OSError as exc:
        sock.close()
        raise SigError(ErrorCode.GENERAL_ERROR, f"the proxy did not take the sandbox's connection "
                       f"({exc.strerror or type(exc).__name__})", "see `sig proxy status`; restart it with "
                       "sig proxy stop && sig proxy start") from None
    try:
        reply = loads(answer.split(b"\n", 1)[0])
    except ValueError:
        reply = None
    if not isinstance(reply, dict) or reply.get("ok") is not True:
        sock.close()
        error = reply.get("error") if isinstance(reply, dict) else None
        hint = reply.get("hint") if isinstance(reply, dict) else None
        raise SigError(ErrorCode.GENERAL_ERROR,
                       f"the proxy refused the sandbox: {error or 'no answer'}",
                       str(hint or "restart the proxy (sig proxy stop && sig proxy start); an older proxy "
                           "does not know the sandbox"))
    sock.settimeout(None)
    return Registration(sock, str(reply.get("name") or ""))
