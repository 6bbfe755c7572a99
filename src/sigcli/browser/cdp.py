"""The native adapter: drive a real Chromium-family browser over the Chrome DevTools Protocol.

One browser-level connection, and flattened target sessions (``sessionId`` on each message) for the one
tab sig opens and watches. The connection is one of:

* the browser's DevTools pipe (fds 3/4), for a browser sig uses alone;
* the Unix socket of the relay that owns the shared visible window's pipe (relay.py, shared.py), for a
  login that opens or joins that window: same framing, the relay maps ids and routes session events;
* a WebSocket to a browser the user started with --remote-debugging-port (browser.cdpUrl / --cdp-url),
  where sig opens and closes only its own tab.

Process handling (spawn, profile lock) lives in launch.py; this module only speaks CDP.
"""

from __future__ import annotations

import os
import time

from ..core.errors import ErrorCode, SigError
from .launch import (
    pid_alive,
    start_browser_piped,
    stderr_tail,
    terminate,
    terminate_pid,
    wait_exit,
    wait_ready,
)
from .protocol import CONNECTION_CLOSED, BrowserError, LaunchOptions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    from .launch import Process

    Handler = Callable[[dict[str, Any], str | None], None]

    class Transport(Protocol):
        """One CDP message stream. send/recv raise BrowserError(CONNECTION_CLOSED) once the browser end is gone."""

        @property
        def closed(self) -> bool:
            """Whether the browser end (or ours) is gone."""

        def send(self, text: str, timeout: float) -> None:
            """Send one whole message within `timeout`."""

        def recv(self, timeout: float) -> str | bytes | None:
            """One whole message, or None when none came within `timeout` (0 = only a ready one)."""

        def close(self) -> None:
            """Close our end (idempotent)."""

_MAX_TRACKED = 2000  # requestId -> URL entries kept for ExtraInfo events (a long visible login is busy)
_NETWORK_IDLE_S = 0.5
_CLOSE_WAIT_S = 3.0
_LAUNCH_HINT = "run sig doctor; if it keeps failing, try another browser (browser.execPath)"
_PIPE_CHUNK = 1 << 18
# How often a pipe read that waits long looks whether the browser still runs: its helpers do not hold
# the pipe, so its exit normally reads as EOF at once; this covers a wrapper that keeps it open.
_PIPE_LIVENESS_S = 0.25


class PipeTransport:
    """CDP over --remote-debugging-pipe: JSON texts, each ended by a NUL byte, written to `write_fd`
    (the browser's fd 3) and read from `read_fd` (its fd 4). Owns both fds from here on.

    `alive` (optional) says whether the browser still runs; a long wait with nothing to read asks it
    now and then, so a browser that died while something still holds its pipe end reads as closed.
    """

    def __init__(self, read_fd: int, write_fd: int, alive: Callable[[], bool] | None = None) -> None:
        import select

        self._read_fd = read_fd
        self._write_fd = write_fd
        self._alive = alive
        # Non-blocking: a browser that stops reading must cost a bounded wait, never a hung write.
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf known to hold no NUL (a big message arrives in many reads)
        self._eof = False
        self._fds_closed = False
        # poll, not select.select, where there is one: select cannot watch a fd numbered 1024 or more.
        self._use_poll = hasattr(select, "poll")

    @property
    def closed(self) -> bool:
        """Whether the browser closed its end or we closed ours."""
        return self._eof or self._fds_closed

    def _wait(self, fd: int, writing: bool, timeout: float) -> bool:
        """True when `fd` is ready (or hung up: the read/write then says so) within `timeout`."""
        import select

        if not self._use_poll:
            ready = select.select([] if writing else [fd], [fd] if writing else [], [fd], max(0.0, timeout))
            return any(ready)
        poller = select.poll()
        poller.register(fd, select.POLLOUT if writing else select.POLLIN)
        return bool(poller.poll(max(0, int(timeout * 1000 + 0.999))))

    def send(self, text: str, timeout: float) -> None:
        """Write one NUL-terminated message to the browser's pipe, within `timeout`."""
        if self.closed:
            raise BrowserError(CONNECTION_CLOSED)
        # json.dumps escapes every control character, so the text itself never holds the NUL.
        data = memoryview(text.encode() + b"\0")
        deadline = time.monotonic() + max(0.0, timeout)
        while data:
            try:
                written = os.write(self._write_fd, data)
            except BlockingIOError:
                written = 0
            except OSError:  # EPIPE: the browser closed its end (Python ignores SIGPIPE)
                self._eof = True
                raise BrowserError(CONNECTION_CLOSED) from None
            data = data[written:]
            if not data:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                # Part of a message is in the pipe: the stream cannot be resumed, so it is over.
                self._eof = True
                raise BrowserError(f"the browser stopped reading its DevTools pipe for {timeout:g}s")
            self._wait(self._write_fd, True, min(left, _PIPE_LIVENESS_S))

    def _pop(self) -> bytes | None:
        end = self._buf.find(b"\0", self._scanned)
        if end < 0:
            self._scanned = len(self._buf)
            return None
        msg = bytes(self._buf[:end])
        del self._buf[:end + 1]
        self._scanned = 0
        return msg

    def recv(self, timeout: float) -> str | bytes | None:
        """One whole message, or None when none came within `timeout` (0 = only a ready one)."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            msg = self._pop()
            if msg is not None:
                return msg
            if self.closed:
                raise BrowserError(CONNECTION_CLOSED)
            left = deadline - time.monotonic()
            if self._wait(self._read_fd, False, max(0.0, min(left, _PIPE_LIVENESS_S))):
                try:
                    chunk = os.read(self._read_fd, _PIPE_CHUNK)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    self._buf += chunk
                else:
                    self._eof = True  # every writer is gone: the browser exited (a partial tail is junk)
                continue
            if self._alive is not None and left > 0 and not self._alive():
                self._eof = True
                continue
            if left <= 0:
                return None

    def close(self) -> None:
        """Close both pipe ends (once)."""
        if self._fds_closed:
            return
        self._fds_closed = True
        for fd in (self._write_fd, self._read_fd):
            try:
                os.close(fd)
            except OSError:
                pass

    def detach(self) -> tuple[int, int, bytes]:
        """(read fd, write fd, bytes read but not yet returned): the caller owns the fds from here
        (the relay takes the pipe over once the browser answers)."""
        self._fds_closed = True  # closed for us; the fds live on with the caller
        return self._read_fd, self._write_fd, bytes(self._buf)


class SocketTransport(PipeTransport):
    """The same NUL-framed JSON over a connected Unix socket (to the shared window's relay).

    close() half-closes and waits (bounded) for the relay to hang up: when this was the window's last
    user the relay first closes the browser (flushing its cookies), so that a login started right after
    finds the profile free.
    """

    def __init__(self, sock: Any, linger_s: float = 15.0) -> None:
        self._sock = sock  # keep the socket object: its fd closes when it is collected
        self._linger_s = linger_s
        sock.setblocking(False)
        super().__init__(sock.fileno(), sock.fileno())

    def close(self) -> None:
        """Close the socket to the relay (once); the shared window stays open."""
        import socket

        if self._fds_closed:
            return
        if not self._eof:
            try:
                self._sock.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + self._linger_s
                while not self._eof and time.monotonic() < deadline:
                    if self._wait(self._read_fd, False, min(0.25, deadline - time.monotonic())):
                        try:
                            self._eof = not os.read(self._read_fd, _PIPE_CHUNK)
                        except BlockingIOError:
                            pass
                        except OSError:
                            self._eof = True
            except OSError:
                pass
        self._fds_closed = True
        self._sock.close()


class CdpConnection:
    """Request/response over one CDP transport; events read meanwhile go to registered handlers."""

    def __init__(self, *, transport: Transport) -> None:
        self._transport = transport
        self._next_id = 0
        self._handlers: dict[str, list[Handler]] = {}
        self._closed = False

    @classmethod
    def over_pipe(cls, read_fd: int, write_fd: int,
                  alive: Callable[[], bool] | None = None) -> CdpConnection:
        """A connection over --remote-debugging-pipe fds (it owns them from here on)."""
        return cls(transport=PipeTransport(read_fd, write_fd, alive))

    @property
    def transport(self) -> Transport:
        """The message stream this connection speaks over."""
        return self._transport

    @property
    def closed(self) -> bool:
        """Whether this connection or its transport is closed."""
        return self._closed or self._transport.closed

    def on(self, method: str, callback: Handler) -> None:
        """Call `callback(params, session_id)` for every event `method` read from now on."""
        self._handlers.setdefault(method, []).append(callback)

    def _recv(self, timeout: float) -> dict[str, Any] | None:
        """One message, or None when none came within `timeout`. BrowserError when the browser end closed."""
        import json

        try:
            raw = self._transport.recv(max(0.0, timeout))
        except BrowserError:
            self._closed = True
            raise
        if raw is None:
            return None
        try:
            msg = json.loads(raw)
        except ValueError:
            return None
        return msg if isinstance(msg, dict) else None

    def _dispatch(self, msg: dict[str, Any]) -> None:
        for callback in self._handlers.get(msg.get("method", ""), ()):
            try:
                callback(msg.get("params") or {}, msg.get("sessionId"))
            except Exception:
                pass  # a bookkeeping handler must not cost us the reply we are waiting for

    def call(self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None,
             timeout: float = 10.0) -> dict[str, Any]:
        """Send one command and return its result; events that arrive first are dispatched."""
        import json

        if self._closed:
            raise BrowserError("the browser connection is closed")
        self._next_id += 1
        msg_id = self._next_id
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session_id:
            msg["sessionId"] = session_id
        deadline = time.monotonic() + timeout
        try:
            self._transport.send(json.dumps(msg), timeout)
        except BrowserError:
            self._closed = True
            raise
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"{method}: no answer from the browser within {timeout:g}s")
            reply = self._recv(remaining)
            if reply is None:
                continue
            if reply.get("id") == msg_id:
                error = reply.get("error")
                if error is not None:
                    text = error.get("message") if isinstance(error, dict) else str(error)
                    raise BrowserError(f"{method}: {text}")
                result = reply.get("result")
                return result if isinstance(result, dict) else {}
            if "method" in reply:
                self._dispatch(reply)
            # else: a late reply to a call that timed out earlier; nobody waits for it any more

    def send(self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None) -> None:
        """Send a command without waiting for its answer (from an event handler, which must not wait:
        the answer would be read by the very loop that called the handler). Its reply is dropped."""
        import json

        if self.closed:
            return
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session_id:
            msg["sessionId"] = session_id
        try:
            self._transport.send(json.dumps(msg), 5.0)
        except BrowserError:
            self._closed = True

    def pump(self, seconds: float) -> None:
        """Read and dispatch events for up to `seconds` (0 = only what is already there)."""
        deadline = time.monotonic() + max(0.0, seconds)
        while True:
            msg = self._recv(max(0.0, deadline - time.monotonic()))
            if msg is not None:
                if "method" in msg:
                    self._dispatch(msg)
                continue
            if time.monotonic() >= deadline:
                return

    def close(self) -> None:
        """Close the connection and its transport."""
        self._closed = True
        self._transport.close()


def _unserializable(text: str) -> Any:
    # Runtime.evaluate returns NaN, Infinity, -0 and BigInt as text in unserializableValue.
    if text.endswith("n") and text[:-1].lstrip("-").isdigit():
        return int(text[:-1])
    try:
        return float(text)
    except ValueError:
        return None


class CdpPage:
    """The one tab sig opened, through its flattened session."""

    def __init__(self, conn: CdpConnection, session_id: str, target_id: str) -> None:
        self._conn = conn
        self.session_id = session_id
        self.target_id = target_id

    def evaluate(self, expression: str, timeout: float = 10.0) -> Any:
        """The value of a JavaScript expression in the page (promises awaited); BrowserError when it throws."""
        result = self._conn.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                      "awaitPromise": True}, self.session_id, timeout)
        details = result.get("exceptionDetails")
        if details is not None:
            # Only the error class: V8 messages quote their input (JSON.parse of a token, for one).
            exc = details.get("exception") or {}
            kind = exc.get("className") or "exception"
            raise BrowserError(f"the page expression threw {kind} (line {details.get('lineNumber', '?')})")
        value = result.get("result") or {}
        if "unserializableValue" in value:
            return _unserializable(str(value["unserializableValue"]))
        return value.get("value")

    def url(self) -> str:
        """The page's current URL ("" when it cannot be read now)."""
        try:
            href = self.evaluate("location.href", timeout=5.0)
            if isinstance(href, str):
                return href
        except BrowserError:
            pass
        try:  # the page may be between documents or blocked by a dialog: ask the browser instead
            info = self._conn.call("Target.getTargetInfo", {"targetId": self.target_id}, timeout=3.0)
            url = (info.get("targetInfo") or {}).get("url")
            return url if isinstance(url, str) else ""
        except BrowserError:
            return ""

    def ready_state(self) -> str:
        """document.readyState ("" when it cannot be read now)."""
        try:
            state = self.evaluate("document.readyState", timeout=5.0)
        except BrowserError:
            return ""
        return state if isinstance(state, str) else ""


def _authorization(headers: Any) -> str | None:
    if not isinstance(headers, dict):
        return None
    for name, value in headers.items():
        if isinstance(name, str) and name.lower() == "authorization" and isinstance(value, str) and value:
            return value
    return None


def _cookie(raw: dict[str, Any]) -> dict[str, Any]:
    expires = raw.get("expires", -1)
    if raw.get("session") or not isinstance(expires, int | float) or expires <= 0:
        expires = -1
    return {
        "name": raw.get("name", ""),
        "value": raw.get("value", ""),
        "domain": raw.get("domain", ""),
        "path": raw.get("path", "/"),
        "expires": expires,
        "httpOnly": bool(raw.get("httpOnly", False)),
        "secure": bool(raw.get("secure", False)),
        "partitioned": bool(raw.get("partitionKey")),
        **({"sameSite": raw["sameSite"]} if isinstance(raw.get("sameSite"), str) else {}),
    }


# What a session is attached to, which decides what close() may do.
OWN = "own"  # a browser of our own over its pipe: close() closes the browser
SHARED = "shared"  # the shared window, through its relay: close() closes our tab; the relay does the rest
ATTACHED = "attached"  # the user's own browser (cdpUrl): close() closes our tab, never the browser
_PROXY_AUTH_TRIES = 2  # per request: a proxy that keeps refusing gets CancelAuth (its 407 page), not a loop


class CdpSession:
    """A launched, joined or attached browser plus the tab sig watches. Implements BrowserSession."""

    adapter = "cdp"

    def __init__(self, conn: CdpConnection, pid: int, options: LaunchOptions,
                 proc: Process | None = None, kind: str = OWN) -> None:
        self._conn = conn
        self._pid = pid
        self._proc = proc
        self._options = options
        self._kind = kind
        self._page: CdpPage | None = None
        self._closed = False
        self._tab_gone = False
        self._auth: list[tuple[str, str]] = []
        self._request_urls: dict[str, str] = {}
        self._pending_extra: dict[str, str] = {}  # ExtraInfo may arrive before requestWillBeSent
        self._proxy_tries: dict[str, int] = {}
        self._last_request = time.monotonic()
        # Page.navigate's errorText (e.g. net::ERR_CONNECTION_REFUSED), for a better message upstairs.
        self.navigation_error: str | None = None
        self.restored_cookies = 0
        conn.on("Network.requestWillBeSent", self._on_request)
        conn.on("Network.requestWillBeSentExtraInfo", self._on_request_extra)
        conn.on("Target.detachedFromTarget", self._on_detached)
        conn.on("Fetch.requestPaused", self._on_paused)
        conn.on("Fetch.authRequired", self._on_auth_required)

    # -- events -------------------------------------------------------------------------------

    def _ours(self, session_id: str | None) -> bool:
        return self._page is not None and session_id == self._page.session_id

    def _add_auth(self, url: str, value: str) -> None:
        pair = (url, value)
        if pair not in self._auth:
            self._auth.append(pair)

    def _on_request(self, params: dict[str, Any], session_id: str | None) -> None:
        if not self._ours(session_id):
            return
        self._last_request = time.monotonic()
        request = params.get("request") or {}
        url = str(request.get("url") or "")
        request_id = params.get("requestId")
        if isinstance(request_id, str):
            self._request_urls[request_id] = url
            if len(self._request_urls) > _MAX_TRACKED:
                self._request_urls.pop(next(iter(self._request_urls)))
            pending = self._pending_extra.pop(request_id, None)
            if pending:
                self._add_auth(url, pending)
        value = _authorization(request.get("headers"))
        if value:
            self._add_auth(url, value)

    def _on_request_extra(self, params: dict[str, Any], session_id: str | None) -> None:
        # The headers actually sent (after the network stack), which may hold an Authorization the
        # renderer did not see; its URL comes from the requestWillBeSent of the same requestId.
        if not self._ours(session_id):
            return
        value = _authorization(params.get("headers"))
        request_id = params.get("requestId")
        if not value or not isinstance(request_id, str):
            return
        url = self._request_urls.get(request_id)
        if url is None:
            self._pending_extra[request_id] = value
            if len(self._pending_extra) > _MAX_TRACKED:
                self._pending_extra.pop(next(iter(self._pending_extra)))
        else:
            self._add_auth(url, value)

    def _on_detached(self, params: dict[str, Any], session_id: str | None) -> None:
        if self._page is not None and params.get("sessionId") == self._page.session_id:
            self._tab_gone = True  # the user closed our tab (or it crashed): nothing left to watch

    def _on_paused(self, params: dict[str, Any], session_id: str | None) -> None:
        # Fetch is on only to hear the proxy's auth challenge; every request goes on unchanged.
        if self._ours(session_id) and isinstance(params.get("requestId"), str):
            self._conn.send("Fetch.continueRequest", {"requestId": params["requestId"]}, session_id)

    def _on_auth_required(self, params: dict[str, Any], session_id: str | None) -> None:
        request_id = params.get("requestId")
        if not self._ours(session_id) or not isinstance(request_id, str):
            return
        proxy = self._options.proxy
        challenge = params.get("authChallenge") or {}
        answer: dict[str, Any] = {"response": "Default"}  # a site's own HTTP auth: the browser's usual way
        if challenge.get("source") == "Proxy" and proxy is not None and proxy.has_auth:
            tries = self._proxy_tries.get(request_id, 0) + 1
            self._proxy_tries[request_id] = tries
            if len(self._proxy_tries) > _MAX_TRACKED:
                self._proxy_tries.pop(next(iter(self._proxy_tries)))
            if tries > _PROXY_AUTH_TRIES:
                answer = {"response": "CancelAuth"}
            else:
                answer = {"response": "ProvideCredentials", "username": proxy.username or "",
                          "password": proxy.password.reveal() if proxy.password else ""}
        self._conn.send("Fetch.continueWithAuth", {"requestId": request_id, "authChallengeResponse": answer},
                        session_id)

    # -- set-up -------------------------------------------------------------------------------

    def _open_tab(self, reuse_blank: bool) -> None:
        conn = self._conn
        target_id = None
        if reuse_blank:  # the browser's own start page, so a visible window shows one tab, not two
            infos = conn.call("Target.getTargets").get("targetInfos") or []
            for info in infos:
                if info.get("type") == "page" and info.get("url") == "about:blank" and not info.get(
                        "attached"):
                    target_id = info.get("targetId")
                    break
        if not target_id:
            target_id = conn.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session_id = conn.call("Target.attachToTarget", {"targetId": target_id, "flatten": True})[
            "sessionId"]
        self._page = CdpPage(conn, session_id, target_id)
        # Enable before navigating, so the first request (and its Authorization) is seen too.
        for method in ("Runtime.enable", "Network.enable", "Page.enable"):
            conn.call(method, session_id=session_id)
        proxy = self._options.proxy
        if proxy is not None and proxy.has_auth and self._kind != ATTACHED:
            # The proxy's 407 reaches us as Fetch.authRequired, answered with networkProxy's user and
            # password. Chromium reports auth challenges only for requests it intercepts (it refuses an
            # empty pattern list here), hence "*": each request of our tab waits until _on_paused lets
            # it go, i.e. the page moves whenever sig reads events (every call and wait does).
            conn.call("Fetch.enable", {"patterns": [{"urlPattern": "*"}], "handleAuthRequests": True},
                      session_id=session_id)
        if not self._options.headless or self._kind == ATTACHED:
            try:
                conn.call("Page.bringToFront", session_id=session_id, timeout=3.0)
            except BrowserError:
                pass

    def _restore_cookies(self) -> None:
        """Put the provider's kept session cookies into the jar before the entry page opens (see
        session_cookies.py), except over cookies the browser holds already. A browser that is not sig's
        (attached) is left alone. Best effort: refused cookies leave the login as it would be without them."""
        kept = self._options.session_cookies
        if not kept or self._kind == ATTACHED:
            return
        try:
            jar = self._conn.call("Storage.getCookies").get("cookies") or []
            wanted = kept.missing_from([c for c in jar if isinstance(c, dict)])
            if wanted:
                self._conn.call("Storage.setCookies", {"cookies": wanted})
            self.restored_cookies = len(wanted)
        except BrowserError:
            if self._browser_gone():
                raise

    def _browser_gone(self) -> bool:
        if self._conn.closed:
            return True
        # An attached browser's pid is not ours to know; the relay's browser is seen through the socket.
        return self._kind == OWN and not pid_alive(self._pid)

    def _navigate(self) -> None:
        """Open options.url in our tab and wait (bounded) as options.wait_until asks. Not finishing in
        time is fine (the cascade polls); the browser dying is not."""
        options, page = self._options, self.page
        deadline = time.monotonic() + max(1.0, options.timeout_s)
        try:
            nav = self._conn.call("Page.navigate", {"url": options.url}, page.session_id,
                                  timeout=max(1.0, options.timeout_s))
        except BrowserError:
            if self._browser_gone():
                raise
            return  # a slow server: the cascade keeps polling
        self.navigation_error = nav.get("errorText") or None
        if options.wait_until == "commit" or self.navigation_error:
            return
        wanted = ("interactive", "complete") if options.wait_until == "domcontentloaded" else ("complete",)
        while page.ready_state() not in wanted:
            if self._browser_gone():
                raise BrowserError("the browser exited while opening the page")
            if time.monotonic() >= deadline:
                return
            self._conn.pump(min(0.05, max(0.0, deadline - time.monotonic())))
        if options.wait_until == "networkidle":
            while True:
                quiet = time.monotonic() - self._last_request
                left = deadline - time.monotonic()
                if quiet >= _NETWORK_IDLE_S or left <= 0:
                    return
                self._conn.pump(min(_NETWORK_IDLE_S - quiet, left))

    # -- BrowserSession -------------------------------------------------------------------------

    @property
    def page(self) -> CdpPage:
        """The tab sig opened."""
        if self._page is None:
            raise BrowserError("no page is open")
        return self._page

    @property
    def pid(self) -> int:
        """The browser process id (for diagnostics and tests); -1 for an attached browser."""
        return self._pid

    @property
    def kind(self) -> str:
        """How the browser was reached: its own (pipe), the shared window (relay) or attached (cdpUrl)."""
        return self._kind

    def cookies(self) -> list[dict[str, Any]]:
        """The browser's cookie jar, in the CDP shape."""
        try:
            raw = self._conn.call("Storage.getCookies").get("cookies")
        except BrowserError:
            if self._conn.closed:
                raise
            raw = self._conn.call("Network.getAllCookies", session_id=self.page.session_id).get("cookies")
        return [_cookie(c) for c in raw or [] if isinstance(c, dict)]

    def authorization_headers(self) -> list[tuple[str, str]]:
        """(request URL, Authorization header value) of requests the page sent since launch."""
        try:
            self._conn.pump(0)  # take in what the browser already sent us
        except BrowserError:
            pass
        return list(self._auth)

    def wait(self, seconds: float) -> None:
        """Wait `seconds`, handling the browser's events meanwhile."""
        end = time.monotonic() + max(0.0, seconds)
        try:
            self._conn.pump(seconds)
        except BrowserError:
            time.sleep(max(0.0, end - time.monotonic()))  # keep the caller's pace even when gone

    def browser_version(self) -> str:
        """The product string the browser reports (e.g. "Chrome/156.0.8078.79"); "" when it will not say."""
        try:
            return str(self._conn.call("Browser.getVersion", timeout=5.0).get("product") or "")
        except BrowserError:
            return ""

    def alive(self) -> bool:
        """Whether the browser and our tab are still there."""
        if self._closed:
            return False
        try:
            self._conn.pump(0)  # notice a detached tab
        except BrowserError:
            return False
        return not self._tab_gone and not self._browser_gone()

    def close(self) -> None:
        """Close our tab, and the browser when it is ours alone (its cookies written to the profile)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._kind == OWN:
                self._close_browser()
            else:
                self._close_tab()
        except Exception:
            pass  # close() never raises: it runs in finally blocks
        finally:
            # Over the relay's socket this waits until the relay has let us go (and, when we were the
            # window's last user, closed the browser).
            self._conn.close()

    def _close_tab(self) -> None:
        """Leave a browser that is not ours alone: close only our tab."""
        if self._page is not None and not self._browser_gone():
            try:
                self._conn.call("Target.closeTarget", {"targetId": self._page.target_id}, timeout=3.0)
            except BrowserError:
                pass

    def _close_browser(self) -> None:
        """Browser.close (flushes cookies to disk), wait for the exit, then stop what is left."""
        if not self._conn.closed:
            try:
                self._conn.call("Browser.close", timeout=_CLOSE_WAIT_S)
            except BrowserError:
                pass  # the pipe often closes before the reply arrives
        wait_exit(self._pid, _CLOSE_WAIT_S)
        if self._proc is not None:
            terminate(self._proc, grace_s=1.0)
        else:
            terminate_pid(self._pid, grace_s=1.0)

    def __enter__(self) -> CdpSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _launch_error(exc: BaseException, proc: Process | None, started: bool = False) -> SigError:
    if isinstance(exc, SigError):
        return exc
    if started and proc is not None and isinstance(exc, BrowserError) and proc.poll() is None:
        wait_exit(proc.pid, 2.0)  # its pipe closes a moment before the process is gone
    if proc is not None and proc.poll() is not None:
        if started:  # it answered, then died (crashed, or killed) while opening the page
            return SigError(ErrorCode.BROWSER_LAUNCH_ERROR,
                            f"the browser closed before the login finished: it exited (status {proc.returncode}) "
                            "while opening the page",
                            "run sig login again; if the browser keeps crashing, run sig doctor")
        tail = stderr_tail(proc)
        return SigError(ErrorCode.BROWSER_LAUNCH_ERROR,
                        f"the browser exited during start-up (status {proc.returncode})"
                        + (f": {tail}" if tail else ""), _LAUNCH_HINT)
    return SigError(ErrorCode.BROWSER_LAUNCH_ERROR,
                    f"the browser started but could not be driven over CDP: {exc}", _LAUNCH_HINT)


def answers(conn: CdpConnection, proc: Process, budget: float) -> bool | None:
    """Readiness probe over the pipe: True once Browser.getVersion answers, None for "not yet".

    Commands written before the browser reads its pipe wait there, so a probe that times out is simply
    answered later (and that late reply ignored). The pipe closing means the browser is exiting: give
    wait_ready the exit to report (with its profile-in-use check) rather than a transport error.
    """
    try:
        conn.call("Browser.getVersion", timeout=budget)
        return True
    except BrowserError:
        if not conn.closed:
            return None
        wait_exit(proc.pid, 2.0)
        if proc.poll() is None:
            raise
        return None


class CdpAdapter:
    """The native adapter: Chromium over the DevTools protocol (pipe, shared window relay, or cdpUrl)."""

    name = "cdp"

    def launch(self, options: LaunchOptions) -> CdpSession:
        """Start (or join, or attach to) a browser and open the entry page in a tab of ours."""
        if options.cdp_url:
            return self._attach(options)
        if options.shared:
            return self._launch_shared(options)
        # A browser of our own: CDP over its pipe, so no debugging port is open for anyone to join.
        proc, read_fd, write_fd = start_browser_piped(options)
        conn = CdpConnection.over_pipe(read_fd, write_fd, alive=lambda: proc.poll() is None)
        session: CdpSession | None = None
        try:
            wait_ready(proc, lambda budget: answers(conn, proc, budget), options.timeout_s,
                       "answer over its DevTools pipe")
            session = CdpSession(conn, proc.pid, options, proc)
            session._restore_cookies()
            session._open_tab(reuse_blank=True)
            session._navigate()
            return session
        except BaseException as exc:
            # The reason first: once we have closed the browser, it has "exited" for everyone.
            error = _launch_error(exc, proc, started=session is not None) if isinstance(exc, Exception) else None
            if session is not None:
                session.close()
            else:
                terminate(proc, grace_s=1.0)
                conn.close()
            if error is not None:
                raise error from None
            raise

    def _launch_shared(self, options: LaunchOptions) -> CdpSession:
        from .shared import join_shared

        sock, hello, owner = join_shared(options)
        conn = CdpConnection(transport=SocketTransport(sock))
        return self._open(CdpSession(conn, int(hello.get("browserPid") or -1), options, kind=SHARED),
                          reuse_blank=owner)

    def _attach(self, options: LaunchOptions) -> CdpSession:
        from .attach import connect

        conn = CdpConnection(transport=connect(options.cdp_url or "", options.timeout_s,
                                               options.cdp_allow_remote))
        return self._open(CdpSession(conn, -1, options, kind=ATTACHED), reuse_blank=False)

    @staticmethod
    def _open(session: CdpSession, reuse_blank: bool) -> CdpSession:
        """Open our tab and the entry page in a browser that is not ours alone; on failure leave it
        as it was (our tab closed, the connection gone)."""
        try:
            session._restore_cookies()
            # A window we just started: use its start tab. Otherwise a new tab that is ours alone.
            session._open_tab(reuse_blank=reuse_blank)
            session._navigate()
            return session
        except BaseException as exc:
            error = _launch_error(exc, None) if isinstance(exc, Exception) else None
            session.close()
            if error is not None:
                raise error from None
            raise
