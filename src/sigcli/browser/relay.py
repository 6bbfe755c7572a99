"""The relay of the shared visible browser window: ``python -m sigcli.browser.relay``.

It starts the browser with ``--remote-debugging-pipe``, owns that pipe, and serves sig processes on a
Unix socket (0600, in a 0700 folder, peers of another uid refused): each connection speaks CDP framed as
on the pipe (JSON texts ended by NUL). The relay gives every command a relay-wide id and maps the answer
back; events of a flattened target session go to the connection that attached it, browser-level events
to every connection. Browser.close is the relay's alone: it closes the browser when the last connection
has gone (see shared.py for the whole lifetime).

Started by shared.py with its options as one JSON line on stdin (no secret in it); answers one JSON line
on stdout: {"ok": true, "pid": …} once the browser answers and the socket listens, or
{"ok": false, "code", "message", "hint"}.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from ..core.errors import ErrorCode, SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Any

    from .launch import SpawnedProcess

_CHUNK = 1 << 18
_MAX_BUFFER = 256 << 20  # bytes waiting for one peer; a peer that lets more pile up is dropped
_FIRST_CLIENT_S = 30.0  # the login that started us connects within this, or the window closes
_CLOSE_WAIT_S = 3.0
_IDLE_POLL_S = 1.0
_CLOSING_POLL_S = 0.05  # while waiting for the state lock to close the window
# Commands only the relay may send: one login must not close the window under the others.
_REFUSED = ("Browser.close", "Browser.crash", "Browser.crashGpuProcess")


class _Client:
    __slots__ = ("fd", "inbuf", "outbuf", "scanned", "sessions", "sock", "targets")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.inbuf = bytearray()
        self.scanned = 0
        self.outbuf = bytearray()
        self.targets: set[str] = set()
        self.sessions: set[str] = set()


def _frames(buf: bytearray, scanned: int) -> tuple[list[bytes], int]:
    """Whole NUL-ended messages taken off the front of `buf`, and how far the rest is known NUL-free."""
    out = []
    start = 0
    while True:
        end = buf.find(b"\0", max(start, scanned))
        if end < 0:
            break
        out.append(bytes(buf[start:end]))
        start = end + 1
    if start:
        del buf[:start]
    return out, len(buf)


def _peer_uid(sock: socket.socket) -> int | None:
    import socket
    import struct

    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None  # not Linux: the folder's 0700 and the socket's 0600 are the check
    try:
        _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    except OSError:
        return -1
    return int(uid)


class Relay:
    """Owns the shared visible browser's pipe and lets several sig logins use it over a Unix socket."""

    def __init__(self, proc: SpawnedProcess, read_fd: int, write_fd: int, pending: bytes,
                 listener: socket.socket, path: str, user_data_dir: str, hello: dict[str, Any]) -> None:
        self.proc = proc
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.browser_in = bytearray(pending)
        self.browser_scanned = 0
        self.browser_out = bytearray()
        self.listener: socket.socket | None = listener
        self.path = path
        self.user_data_dir = user_data_dir
        self.hello = json.dumps({"method": "Relay.hello", "params": hello}).encode() + b"\0"
        self.clients: list[_Client] = []
        self.leaving: list[_Client] = []  # the last connections, answered once the browser is closed
        self.pending: dict[int, tuple[_Client | None, Any, str]] = {}
        self.sessions: dict[str, _Client] = {}
        self.next_id = 1
        self.joined_once = False
        self.started = time.monotonic()
        self.lock_fd = -1
        self.stop = False
        self.browser_gone = False

    # -- messages ---------------------------------------------------------------------------------

    def _to_browser(self, msg: dict[str, Any]) -> None:
        self.browser_out += json.dumps(msg).encode() + b"\0"

    def _internal(self, method: str, params: dict[str, Any]) -> None:
        rid, self.next_id = self.next_id, self.next_id + 1
        self.pending[rid] = (None, None, method)
        self._to_browser({"id": rid, "method": method, "params": params})

    def _queue(self, client: _Client, data: bytes) -> None:
        client.outbuf += data
        if len(client.outbuf) > _MAX_BUFFER:
            self._leave(client)

    def _from_client(self, client: _Client, raw: bytes) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("id"), int) or not isinstance(
                msg.get("method"), str):
            return
        method = msg["method"]
        if method in _REFUSED:
            error = {"id": msg["id"], "error": {"code": -32000, "message": f"{method} is not allowed through "
                                                "the shared window's relay"}}
            self._queue(client, json.dumps(error).encode() + b"\0")
            return
        params = msg.get("params")
        if method == "Target.attachToTarget" and isinstance(params, dict) and isinstance(
                params.get("targetId"), str):
            client.targets.add(params["targetId"])  # a tab it uses: closed when it leaves
        rid, self.next_id = self.next_id, self.next_id + 1
        self.pending[rid] = (client, msg["id"], method)
        msg["id"] = rid
        self._to_browser(msg)

    def _from_browser(self, raw: bytes) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        if "id" in msg:
            entry = self.pending.pop(msg["id"], None) if isinstance(msg["id"], int) else None
            if entry is None:
                return
            client, client_id, method = entry
            if client is None or client not in self.clients:
                return  # the relay's own command, or its sender has gone
            result: dict[str, Any] = msg["result"] if isinstance(msg.get("result"), dict) else {}
            if method == "Target.attachToTarget" and isinstance(result.get("sessionId"), str):
                self.sessions[result["sessionId"]] = client
                client.sessions.add(result["sessionId"])
            elif method == "Target.createTarget" and isinstance(result.get("targetId"), str):
                client.targets.add(result["targetId"])
            msg["id"] = client_id
            self._queue(client, json.dumps(msg).encode() + b"\0")
            return
        session_id = msg.get("sessionId")
        if isinstance(session_id, str):
            owner = self.sessions.get(session_id)
            if owner is not None and owner in self.clients:
                self._queue(owner, raw + b"\0")
            return
        for client in list(self.clients):
            self._queue(client, raw + b"\0")
        if msg.get("method") == "Target.detachedFromTarget":
            params = msg.get("params") or {}
            gone = self.sessions.pop(str(params.get("sessionId")), None)
            if gone is not None:
                gone.sessions.discard(str(params.get("sessionId")))

    # -- connections ------------------------------------------------------------------------------

    def _accept(self) -> None:
        while self.listener is not None:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            uid = _peer_uid(sock)
            if uid is not None and uid != os.geteuid():
                sock.close()  # another user got through the folder's mode: still no
                continue
            sock.setblocking(False)
            client = _Client(sock)
            client.outbuf += self.hello
            self.clients.append(client)
            self.joined_once = True
            # A login joined while the window was about to close: it stays, so let the last ones go.
            for old in self.leaving:
                old.sock.close()
            self.leaving.clear()

    def _leave(self, client: _Client) -> None:
        if client not in self.clients:
            return
        self.clients.remove(client)
        for session_id in client.sessions:
            self.sessions.pop(session_id, None)
        for target_id in client.targets:
            self._internal("Target.closeTarget", {"targetId": target_id})
        if self.clients:
            client.sock.close()
        else:
            self.leaving.append(client)

    # -- the loop ---------------------------------------------------------------------------------

    def _poll_once(self, timeout_s: float) -> None:
        import select

        poller = select.poll()
        owners: dict[int, _Client | str] = {}
        poller.register(self.read_fd, select.POLLIN)
        if self.browser_out:
            poller.register(self.write_fd, select.POLLOUT)
        if self.listener is not None:
            poller.register(self.listener.fileno(), select.POLLIN)
            owners[self.listener.fileno()] = "listener"
        reading = len(self.browser_out) < _MAX_BUFFER  # back-pressure on every sender
        for client in self.clients:
            events = select.POLLIN if reading else 0
            if client.outbuf:
                events |= select.POLLOUT
            poller.register(client.fd, events)
            owners[client.fd] = client
        try:
            ready = poller.poll(int(timeout_s * 1000))
        except InterruptedError:
            return
        for fd, events in ready:
            if fd == self.read_fd:
                self._read_browser()
            elif fd == self.write_fd:
                self._write_browser()
            elif owners.get(fd) == "listener":
                self._accept()
            else:
                owner = owners.get(fd)
                if isinstance(owner, _Client) and owner in self.clients:
                    self._serve_client(owner, events)

    def _read_browser(self) -> None:
        try:
            chunk = os.read(self.read_fd, _CHUNK)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.browser_gone = True
            return
        self.browser_in += chunk
        frames, self.browser_scanned = _frames(self.browser_in, self.browser_scanned)
        for raw in frames:
            self._from_browser(raw)

    def _write_browser(self) -> None:
        try:
            written = os.write(self.write_fd, self.browser_out)
        except BlockingIOError:
            return
        except OSError:
            self.browser_gone = True
            return
        del self.browser_out[:written]

    def _serve_client(self, client: _Client, events: int) -> None:
        import select

        if events & (select.POLLIN | select.POLLHUP | select.POLLERR):
            try:
                chunk = client.sock.recv(_CHUNK)
            except BlockingIOError:
                chunk = None
            except OSError:
                chunk = b""
            if chunk == b"":
                self._leave(client)
                return
            if chunk:
                client.inbuf += chunk
                frames, client.scanned = _frames(client.inbuf, client.scanned)
                for raw in frames:
                    self._from_client(client, raw)
                if len(client.inbuf) > _MAX_BUFFER:
                    self._leave(client)
                    return
        if client in self.clients and client.outbuf and events & select.POLLOUT:
            try:
                sent = client.sock.send(client.outbuf)
            except BlockingIOError:
                return
            except OSError:
                self._leave(client)
                return
            del client.outbuf[:sent]

    def _try_close(self) -> bool:
        """No login uses the window: close it, under the state lock so that a login joining meanwhile is
        either let in (and the window stays) or finds it gone. False while the lock is busy."""
        from ..store.files import open_lock, try_flock
        from .launch import state_lock_path

        if self.lock_fd < 0:
            try:
                self.lock_fd = open_lock(state_lock_path(self.user_data_dir))
            except SigError:
                self.lock_fd = -2  # cannot lock at all: close without it rather than never
        if self.lock_fd >= 0 and not try_flock(self.lock_fd):
            return False
        self._accept()  # a login that connected before we held the lock waits in the backlog
        if self.clients:
            self._unlock()
            return False
        return True

    def _unlock(self) -> None:
        if self.lock_fd >= 0:
            os.close(self.lock_fd)  # closing the descriptor releases the flock
        self.lock_fd = -1

    def _close_browser(self) -> None:
        """Stop taking logins, then Browser.close (it flushes cookies), wait for the exit, stop the rest."""
        import select

        from .launch import remove_state, terminate

        self._stop_listening()
        if not self.browser_gone:
            self._internal("Browser.close", {})
            deadline = time.monotonic() + _CLOSE_WAIT_S
            while not self.browser_gone and time.monotonic() < deadline:
                poller = select.poll()
                poller.register(self.read_fd, select.POLLIN)
                if self.browser_out:
                    poller.register(self.write_fd, select.POLLOUT)
                for fd, _ in poller.poll(int(max(0.0, deadline - time.monotonic()) * 1000) + 1):
                    if fd == self.read_fd:
                        self._read_browser()
                    else:
                        self._write_browser()
        try:
            self.proc.wait(timeout=_CLOSE_WAIT_S)
        except Exception:
            pass
        terminate(self.proc, grace_s=1.0)
        remove_state(self.user_data_dir)

    def _stop_listening(self) -> None:
        if self.listener is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            self.listener.close()
            self.listener = None

    def serve(self) -> None:
        """Relay messages until the browser exits, SIGTERM arrives, or no client is left."""
        def on_term(_signum: int, _frame: object) -> None:
            self.stop = True

        signal.signal(signal.SIGTERM, on_term)
        try:
            while not self.stop and not self.browser_gone:
                closing = not self.clients and (
                    self.joined_once or time.monotonic() - self.started > _FIRST_CLIENT_S)
                if closing and self._try_close():
                    break
                self._poll_once(_CLOSING_POLL_S if closing else _IDLE_POLL_S)
            self._close_browser()
        finally:
            self._stop_listening()
            for client in self.clients + self.leaving:
                client.sock.close()  # the last login was waiting for this: the browser is closed
            self.clients.clear()
            self.leaving.clear()
            self._unlock()
            for fd in (self.read_fd, self.write_fd):
                try:
                    os.close(fd)
                except OSError:
                    pass


# -- start-up -------------------------------------------------------------------------------------


def _listen(path: str) -> socket.socket:
    import socket

    from .shared import unix_address

    try:
        os.unlink(path)  # left by a relay that died (the caller found nobody answering on it)
    except FileNotFoundError:
        pass
    address, fd = unix_address(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # born 0600: this process has one thread
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old)
        if fd is not None:
            os.close(fd)
    os.chmod(path, 0o600)
    sock.listen(16)
    sock.setblocking(False)
    return sock


def start(config: dict[str, Any]) -> Relay:
    """Start the browser and the socket as `config` (from shared._relay_config) says."""
    from .cdp import CdpConnection, PipeTransport, answers
    from .launch import start_browser_piped, terminate, wait_ready, write_state
    from .protocol import BrowserError, LaunchOptions
    from .proxy_url import parse_proxy_url
    from .shared import private_dir, socket_dir, socket_path

    proxy_server = config.get("proxyServer")
    options = LaunchOptions(executable=str(config["executable"]), user_data_dir=str(config["userDataDir"]),
                            url="about:blank", headless=bool(config.get("headless")),
                            proxy=parse_proxy_url(proxy_server) if proxy_server else None,
                            timeout_s=float(config.get("timeoutS") or 60.0),
                            extra_args=[str(a) for a in config.get("extraArgs") or []])
    private_dir(socket_dir(options.user_data_dir), create=True)
    proc, read_fd, write_fd = start_browser_piped(options)
    conn = CdpConnection.over_pipe(read_fd, write_fd, alive=lambda: proc.poll() is None)
    try:
        wait_ready(proc, lambda budget: answers(conn, proc, budget), options.timeout_s,
                   "answer over its DevTools pipe")
        path = socket_path(options.user_data_dir)
        listener = _listen(path)
    except BaseException as exc:
        terminate(proc, grace_s=1.0)
        conn.close()
        if isinstance(exc, BrowserError | OSError):
            raise SigError(ErrorCode.BROWSER_LAUNCH_ERROR, f"the shared browser window did not start: {exc}",
                           "run sig doctor; or log in with --mode headless") from None
        raise
    transport = conn.transport
    assert isinstance(transport, PipeTransport)
    read_fd, write_fd, pending = transport.detach()
    write_state(options.user_data_dir, {"pid": proc.pid, "relayPid": os.getpid(), "socket": path,
                                        "createdAt": int(time.time() * 1000)})
    hello = {"browserPid": proc.pid, "relayPid": os.getpid(), "proxyServer": proxy_server or None,
             "headless": options.headless}
    return Relay(proc, read_fd, write_fd, pending, listener, path, options.user_data_dir, hello)


def _answer(result: dict[str, Any]) -> None:
    """The one line the starting login waits for; then stdout goes to /dev/null (nobody reads it)."""
    try:
        os.write(1, json.dumps(result).encode() + b"\n")
    except OSError:
        pass
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def main() -> int:
    """The relay process (`python -m sigcli.browser.relay`): start the browser, serve, exit status."""
    # Our own session (no terminal): a login's Ctrl-C is that login's; SIGTERM closes the window.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        config = json.loads(sys.stdin.readline())
        if not isinstance(config, dict):
            raise ValueError
    except ValueError:
        _answer({"ok": False, "code": ErrorCode.BROWSER_LAUNCH_ERROR,
                 "message": "the shared browser relay got no valid options", "hint": "run sig doctor"})
        return 2
    try:
        relay = start(config)
    except SigError as err:
        _answer({"ok": False, **err.to_dict()})
        return 1
    except Exception as exc:  # the starting login shows it; a traceback would go nowhere
        _answer({"ok": False, "code": ErrorCode.BROWSER_LAUNCH_ERROR,
                 "message": f"the shared browser relay failed at start ({type(exc).__name__})",
                 "hint": "run sig doctor; or log in with --mode headless"})
        return 1
    _answer({"ok": True, "pid": relay.proc.pid})
    relay.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
