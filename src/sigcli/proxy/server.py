"""The proxy server: a thread per client connection on blocking sockets, h11 behind a fast path.

It serves plain HTTP proxy requests (absolute-form) and CONNECT. A CONNECT to a host the policy intercepts
gets TLS under a leaf of sig's CA (the ClientHello's SNI, when present, must name the CONNECT host). Its
HTTP/1.1 requests must name that host too (Host header). They receive the policy's additions and go
upstream over TLS verified against the system roots plus the provider's CA files. Any other CONNECT is a
blind TCP tunnel. Bodies stream both ways in bounded memory. Keep-alive works on both sides, and WebSocket
upgrades are spliced after injection.

Why threads and not asyncio: a proxied keep-alive request is a handful of small reads and writes on two
TLS connections. Under asyncio each of them costs event-loop iterations, futures, StreamReader buffers and
the SSL protocol's memory-BIO shuffling in Python; measured, that was most of the daemon's CPU per request.
A blocking thread does the same work in a few C calls, and waiting costs nothing. TLS runs on blocking
`ssl.SSLSocket`s (one C call per read or write); only a client whose ClientHello arrived with its CONNECT
head goes through memory BIOs (`_TLSStream`), so those bytes can be fed in. Timeouts are socket timeouts;
close() shuts every socket down to wake its thread.

Why a fast path: h11's event machinery was the next largest cost. `fast.py` parses the common heads
(HTTP/1.1, Content-Length or no body) and writes the common messages directly; everything else (chunked,
Expect, upgrades, 1xx, HEAD, odd or invalid input) goes through h11 exactly as before, with a fresh h11
connection primed to the same state.

Logs name method, host, path (never the query), status and whether sig injected. They never carry a header
value.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
import threading
import time
from typing import Any, Protocol

import h11

from ..core.errors import SigError
from ..core.hosts import canonical_host
from . import fast, h1, redaction

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    # Called once per request sig added credentials to, with (providers, method, Host value, request target
    # as the client sent it, status the client got): the audit add-on (audit.py). Quick, never raises.
    InjectedHook = Callable[[tuple[str, ...], str, bytes, bytes, int], None]

READ_SIZE = 64 * 1024  # below malloc's mmap threshold: every recv allocates a buffer of this size
MAX_INJECT_BODY = 16 * 1024 * 1024  # bodies sig adds fields to are buffered; larger ones get 413
MAX_RESPONSE_HEAD = 256 * 1024
FAST_BODY_MAX = 1024 * 1024  # fast-path request bodies are buffered whole; larger ones stream through h11
IDLE_UPSTREAMS_PER_CLIENT = 4
HALF_CLOSE_GRACE = 30.0
# Closing a client connection: the proxy stops sending, then reads and drops what the client still sends
# for up to this long (and this much), so an error answer is not wiped out by the RST a close with
# unread input makes the kernel send (a client sending a huge or broken request would get no answer).
# A redacted answer is held whole (exact Content-Length) only while its bytes keep coming: when the
# upstream pauses longer than this, what is held leaves and the rest streams (a server-sent event
# stream or a slow download is not held back until it ends).
HOLD_GRACE = 0.02
LINGER_SECONDS = 2.0
LINGER_BYTES = 1024 * 1024
_IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"))
_CONNECT_OK = b"HTTP/1.1 200 Connection established\r\n\r\n"  # what h11 writes for that Response


class Additions(Protocol):
    headers: dict[str, str]
    query: dict[str, str]
    body: dict[str, str]
    cafiles: list[str]


class _CAOnly:
    """Nothing to add, but the extra CA files to verify the upstream with (passthrough after an error)."""

    def __init__(self, cafiles: list[str]) -> None:
        self.headers: dict[str, str] = {}
        self.query: dict[str, str] = {}
        self.body: dict[str, str] = {}
        self.cafiles = cafiles


class Policy(Protocol):
    def intercept(self, host: str, port: int) -> bool: ...

    def additions(self, scheme: str, host: str, port: int) -> Additions | None: ...


class _Gone(Exception):
    """One side of an exchange failed: "client" or "upstream"; `timeout` when it went silent, `malformed`
    when what it sent is not valid HTTP/1.1 (a bad chunk, a short body...)."""

    def __init__(self, side: str, why: str, *, timeout: bool = False, malformed: bool = False) -> None:
        super().__init__(why)
        self.side = side
        self.why = why
        self.timeout = timeout
        self.malformed = malformed


class _UpstreamFailed(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.why = why


class _Closing(Exception):
    """The server is shutting down."""


def _protocol_error(exc: h11.RemoteProtocolError) -> str:
    """h11's text can quote a header line (a secret): only its framing complaints are repeated."""
    text = str(exc)
    if text.startswith(("peer closed connection", "Receive buffer too long")):
        return text.replace("Receive buffer too long", "head too large")
    return "sent malformed HTTP"


def _where_host(where: str) -> str:
    """host[:port] of a log target `scheme://host[:port]/path`."""
    return where.partition("://")[2].partition("/")[0]


def _nodelay(sock: socket.socket) -> None:
    """Heads and bodies leave in one write each: Nagle would only add a delayed-ACK wait."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _is_loopback(host: str) -> bool:
    from ..core.hosts import is_loopback  # the one loopback test (IP literal in 127/8, ::1, or localhost)

    return is_loopback(host)


# -- byte streams ------------------------------------------------------------------------------------


class _TCPStream:
    """A blocking TCP connection: recv with a timeout (TimeoutError), send, close."""

    __slots__ = ("_send_timeout", "sock")
    tls = False

    def __init__(self, sock: socket.socket, send_timeout: float) -> None:
        self.sock = sock
        self._send_timeout = send_timeout

    def recv(self, n: int, timeout: float | None) -> bytes:
        if timeout is not None and timeout <= 0:
            raise TimeoutError
        self.sock.settimeout(timeout)
        return self.sock.recv(n)

    def send(self, data: bytes) -> None:
        if data:
            self.sock.settimeout(self._send_timeout)
            self.sock.sendall(data)

    def write_eof(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def splice_mode(self) -> None:
        return None  # a plain socket can be read and written from two threads

    def readable(self, timeout: float) -> bool:
        """Whether a read would not wait, waiting up to `timeout` for that."""
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        return bool(poller.poll(int(timeout * 1000)))

    def stale(self) -> bool:
        """An idle keep-alive connection has nothing to read: anything readable (EOF, an alert, stray
        bytes) means it cannot carry another request."""
        try:
            self.sock.settimeout(0)  # with a timeout set, Python would wait for readability first
            self.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return False
        except OSError:
            return True
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def linger_close(self) -> None:
        """Close after a lingering read (see LINGER_SECONDS): a client that already closed costs one
        read; one still sending gets its bytes read and dropped, then the close. Raw TCP underneath TLS
        too (the proxy has sent its close_notify already)."""
        with contextlib.suppress(OSError, ValueError):
            socket.socket.shutdown(self.sock, socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_SECONDS
            drained = 0
            while drained < LINGER_BYTES:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.sock.settimeout(left)
                data = socket.socket.recv(self.sock, READ_SIZE)
                if not data:
                    break
                drained += len(data)
        self.close()

    def shutdown(self) -> None:
        """Wake a thread blocked on this socket (server close). The plain socket method, also when the
        socket became an SSLSocket (whose own shutdown() would drop its TLS state under a reader)."""
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)


class _SSLStream:
    """TLS on a blocking ssl.SSLSocket: reads and writes are single C calls (OpenSSL does the socket I/O),
    several times cheaper than driving memory BIOs from Python. OpenSSL forbids using one connection from
    two threads at once, so a splice switches it to `spliced` mode: non-blocking calls under a lock, and
    waiting for the socket happens outside the lock."""

    tls = True

    def __init__(self, raw: _TCPStream, sslsock: ssl.SSLSocket) -> None:
        self._raw = raw
        raw.sock = sslsock  # the raw stream's socket object was consumed by wrap_socket
        self.sock = sslsock
        self._send_timeout = raw._send_timeout
        self._lock: threading.Lock | None = None

    @property
    def sni_mismatch(self) -> bool:
        return bool(getattr(self.sock, "_sig_sni_mismatch", False))

    def handshake(self, timeout: float) -> None:
        if timeout <= 0:
            raise TimeoutError
        self.sock.settimeout(timeout)
        self.sock.do_handshake()

    def recv(self, n: int, timeout: float | None) -> bytes:
        if self._lock is not None:
            return self._recv_spliced(n, timeout)
        if timeout is not None and timeout <= 0:
            raise TimeoutError
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(n)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""

    def send(self, data: bytes) -> None:
        if not data:
            return
        if self._lock is not None:
            self._send_spliced(data)
            return
        self.sock.settimeout(self._send_timeout)
        self.sock.sendall(data)

    def splice_mode(self) -> None:
        self._lock = threading.Lock()
        self.sock.settimeout(0)

    def _wait(self, events: int, timeout: float | None) -> None:
        poller = select.poll()
        poller.register(self.sock.fileno(), events)
        if not poller.poll(None if timeout is None else max(0, int(timeout * 1000))):
            raise TimeoutError

    def _recv_spliced(self, n: int, timeout: float | None) -> bytes:
        assert self._lock is not None
        while True:
            with self._lock:
                try:
                    return self.sock.recv(n)
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    return b""
                except ssl.SSLWantReadError:
                    events = select.POLLIN
                except ssl.SSLWantWriteError:
                    events = select.POLLOUT
            self._wait(events, timeout)

    def _send_spliced(self, data: bytes) -> None:
        assert self._lock is not None
        view = memoryview(data)
        while view:
            with self._lock:
                try:
                    view = view[self.sock.send(view):]
                    continue
                except ssl.SSLWantReadError:
                    events = select.POLLIN
                except ssl.SSLWantWriteError:
                    events = select.POLLOUT
            self._wait(events, self._send_timeout)

    def write_eof(self) -> None:
        return None  # no half-close over TLS: the splice closes both sides instead

    def stale(self) -> bool:
        return self.readable(0)

    def readable(self, timeout: float) -> bool:
        if self.sock.pending():
            return True
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        return bool(poller.poll(int(timeout * 1000)))

    def close(self) -> None:
        self._raw.close()

    def shutdown(self) -> None:
        self._raw.shutdown()

    def close_notify(self) -> None:
        """Send close_notify without waiting for the peer's (the owner closes the connection)."""
        with contextlib.suppress(Exception):
            self.sock.settimeout(0)
            self.sock.unwrap()


def _sni_check(sslobj: Any, server_name: str | None, _ctx: ssl.SSLContext) -> int | None:
    """SNI callback: the ClientHello may omit SNI (IP literals), but must not name another host."""
    expected = getattr(sslobj, "_sig_expected_host", None)
    if expected is None or server_name is None:
        return None
    if canonical_host(server_name) != expected:
        sslobj._sig_sni_mismatch = True
        return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
    return None


def _install_sni_check(ctx: ssl.SSLContext) -> None:
    current = ctx.sni_callback
    if current is _sni_check or getattr(current, "_sig_chained", False):
        return
    if current is None:
        ctx.sni_callback = _sni_check
        return

    def chained(sslobj: Any, server_name: str | None, c: ssl.SSLContext, _prev: Any = current) -> int | None:
        refused = _sni_check(sslobj, server_name, c)
        return refused if refused is not None else _prev(sslobj, server_name, c)

    chained._sig_chained = True  # type: ignore[attr-defined]
    ctx.sni_callback = chained


class _TLSStream:
    """TLS over a _TCPStream with memory BIOs (sans-IO TLS), either side.

    Server side: bytes that arrived right after the CONNECT head are fed in, and the SNI is checked
    against the CONNECT host. A splice reads and writes one stream from two threads: the SSL object is
    only touched under `_lock`, and `_send_lock` keeps TLS records in order on the socket."""

    tls = True

    def __init__(self, raw: _TCPStream, ctx: ssl.SSLContext, *, server_side: bool,
                 expected_host: str | None = None, server_hostname: str | None = None) -> None:
        if server_side:
            _install_sni_check(ctx)
        self._raw = raw
        self.sock = raw.sock
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(self._in, self._out, server_side=server_side, server_hostname=server_hostname)
        if expected_host is not None:
            self._obj._sig_expected_host = expected_host  # type: ignore[attr-defined]
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()

    @property
    def sni_mismatch(self) -> bool:
        return bool(getattr(self._obj, "_sig_sni_mismatch", False))

    def _flush(self) -> None:
        with self._send_lock:
            with self._lock:
                data = self._out.read() if self._out.pending else b""
            self._raw.send(data)

    def handshake(self, initial: bytes, timeout: float) -> None:
        """Raises TimeoutError past `timeout`, ssl.SSLError (after sending the alert), OSError."""
        deadline = time.monotonic() + timeout
        if initial:
            self._in.write(initial)
        while True:
            try:
                with self._lock:
                    self._obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                data = self._raw.recv(READ_SIZE, deadline - time.monotonic())
                if not data:
                    raise ConnectionResetError("the peer closed the connection during the TLS handshake") \
                        from None
                self._in.write(data)
            except ssl.SSLError:
                with contextlib.suppress(OSError):
                    self._flush()  # the alert
                raise
        self._flush()

    def recv(self, n: int, timeout: float | None) -> bytes:
        while True:
            try:
                with self._lock:
                    data = self._obj.read(n)
            except ssl.SSLWantReadError:
                if self._out.pending:
                    self._flush()
                if self._in.eof:
                    return b""
                raw = self._raw.recv(READ_SIZE, timeout)
                with self._lock:
                    if raw:
                        self._in.write(raw)
                    else:
                        self._in.write_eof()
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            if self._out.pending:  # TLS 1.3 may answer while reading (key update)
                self._flush()
            return data

    def send(self, data: bytes) -> None:
        if not data:
            return
        with self._send_lock:
            with self._lock:
                self._obj.write(data)  # writes everything (SSL_MODE_ENABLE_PARTIAL_WRITE is off)
                out = self._out.read()
            self._raw.send(out)

    def write_eof(self) -> None:
        return None  # no half-close over TLS: the splice closes both sides instead

    def splice_mode(self) -> None:
        return None  # already safe for two threads

    def stale(self) -> bool:
        return bool(self._in.pending) or self._raw.stale()

    def readable(self, timeout: float) -> bool:
        return bool(self._in.pending) or self._raw.readable(timeout)

    def close(self) -> None:
        self._raw.close()

    def shutdown(self) -> None:
        self._raw.shutdown()

    def close_notify(self) -> None:
        """Send close_notify (so close-delimited bodies end cleanly for OpenSSL 3 clients); the owner of
        the raw connection closes it."""
        with contextlib.suppress(Exception):
            try:
                with self._lock:
                    self._obj.unwrap()
            except ssl.SSLWantReadError:
                pass
            self._raw._send_timeout = 1.0
            self._flush()


_Stream = _TCPStream | _TLSStream | _SSLStream


# -- one side of an exchange: a byte buffer for the fast path, an h11 connection when it declines ----


class _Peer:
    """`buf` holds bytes received and not yet used. `conn` is None on the fast path; while h11 handles an
    exchange it is a fresh h11 connection holding those bytes, handed back by release()."""

    __slots__ = ("buf", "conn", "detector", "head", "max_head", "role", "side", "stream")

    def __init__(self, stream: _Stream, role: Any, max_head: int, side: str) -> None:
        self.stream = stream
        self.role = role
        self.max_head = max_head
        self.side = side
        self.buf = b""
        self.conn: h11.Connection | None = None
        self.head = b""  # the raw head of the request on the fast path (to prime h11 for an error reply)
        self.detector: redaction.Detector | None = None  # a client's: finds secrets in its answers

    # -- raw bytes (fast path) --

    def fill(self, timeout: float) -> bool:
        """Read more into `buf`; False at EOF. _Gone on timeout or a broken connection."""
        try:
            data = self.stream.recv(READ_SIZE, timeout)
        except TimeoutError:
            raise _Gone(self.side, "timed out", timeout=True) from None
        except OSError as exc:
            raise _Gone(self.side, f"connection failed ({type(exc).__name__})") from None
        if not data:
            return False
        self.buf = self.buf + data if self.buf else data
        return True

    def take(self, n: int, timeout: float) -> bytes:
        """Exactly n bytes (a fast-path body)."""
        while len(self.buf) < n:
            if not self.fill(timeout):  # an incomplete message: its side may still read the answer
                raise _Gone(self.side, "closed mid-body", malformed=True)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    # -- h11 --

    def h11(self) -> h11.Connection:
        """The h11 connection for this exchange (a fresh one fed with the buffered bytes)."""
        if self.conn is None:
            self.conn = h11.Connection(self.role, max_incomplete_event_size=self.max_head)
            if self.buf:
                self.conn.receive_data(self.buf)
                self.buf = b""
        return self.conn

    def release(self) -> None:
        """After a finished h11 cycle: its unread bytes (a pipelined next message) back into `buf`."""
        if self.conn is not None:
            self.buf = bytes(self.conn.trailing_data[0])
            self.conn = None

    def next_event(self, timeout: float) -> Any:
        conn = self.h11()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise _Gone(self.side, _protocol_error(exc), malformed=True) from None
            if event is not h11.NEED_DATA:
                return event
            try:
                data = self.stream.recv(READ_SIZE, timeout)
            except TimeoutError:
                raise _Gone(self.side, "timed out", timeout=True) from None
            except OSError as exc:
                raise _Gone(self.side, f"connection failed ({type(exc).__name__})") from None
            conn.receive_data(data)

    def poll(self) -> Any:
        """The next event already buffered, or h11.NEED_DATA (never waits)."""
        try:
            return self.h11().next_event()
        except h11.RemoteProtocolError as exc:
            raise _Gone(self.side, _protocol_error(exc), malformed=True) from None

    def encode(self, *events: Any) -> list[bytes]:
        """h11 events → bytes to write (h11.LocalProtocolError propagates: the caller built something
        invalid)."""
        conn = self.h11()
        chunks: list[bytes] = []
        for event in events:
            chunks += conn.send_with_data_passthrough(event) or []
        return chunks

    def write(self, chunks: list[bytes] | bytes) -> None:
        try:
            self.stream.send(chunks if isinstance(chunks, bytes) else b"".join(chunks))
        except OSError as exc:  # TimeoutError included: a peer that stopped reading
            raise _Gone(self.side, f"connection failed ({type(exc).__name__})") from None

    def send(self, *events: Any) -> None:
        self.write(self.encode(*events))


class _Predial:
    """The upstream connection of an intercepted CONNECT, opened while the client's TLS handshake runs:
    the two handshakes overlap instead of adding up on a new host's first request."""

    def __init__(self, server: ProxyServer, host: str, port: int) -> None:
        self.key: tuple[Any, ...] | None = None
        self.peer: _Peer | None = None
        self.error: _UpstreamFailed | None = None
        self._server = server
        self._lock = threading.Lock()
        self._abandoned = False
        self._thread = threading.Thread(target=self._dial, args=(host, port), daemon=True,
                                        name=f"sig-predial-{host}:{port}")
        self._thread.start()

    def _dial(self, host: str, port: int) -> None:
        try:
            additions = self._server._policy.additions("https", host, port)
        except Exception:
            return  # the request path reports it (and decides about passthrough) as before
        key = ("https", host, port, tuple(getattr(additions, "cafiles", None) or ()))
        try:
            peer = self._server._open_upstream(*key)
        except _UpstreamFailed as exc:
            self.error = exc
            self.key = key
            return
        except Exception:
            return
        with self._lock:
            if self._abandoned:  # nobody will use it: do not leave a connection open upstream
                self._server._drop(peer.stream)
                return
            self.peer, self.key = peer, key

    def take(self, key: tuple[Any, ...], timeout: float) -> _Peer | None:
        """The pre-dialled peer when it is for `key` (raises its connection error), else None."""
        self._thread.join(timeout)
        if self._thread.is_alive() or self.key != key:
            return None
        self.key = None
        if self.error is not None:
            raise self.error
        peer, self.peer = self.peer, None
        return peer

    def discard(self) -> None:
        with self._lock:
            self._abandoned = True
            if self.peer is not None:
                self._server._drop(self.peer.stream)
                self.peer = None


class _Pool:
    """Idle upstream connections of one client connection, keyed by (scheme, host, port, cafiles)."""

    def __init__(self, server: ProxyServer, predial: _Predial | None = None) -> None:
        self._server = server
        self._idle: dict[tuple[Any, ...], _Peer] = {}
        self._predial = predial

    def get(self, key: tuple[Any, ...]) -> tuple[_Peer, bool]:
        if self._predial is not None:
            predial, self._predial = self._predial, None
            peer = predial.take(key, self._server._connect_timeout)
            if peer is not None:
                return peer, False
            predial.discard()
        peer = self._idle.pop(key, None)
        if peer is not None:
            if not peer.buf and peer.conn is None and not peer.stream.stale():
                return peer, True
            self._server._drop(peer.stream)
        return self._server._open_upstream(*key), False

    def put(self, key: tuple[Any, ...], peer: _Peer) -> None:
        old = self._idle.pop(key, None)
        if old is not None:
            self._server._drop(old.stream)
        if len(self._idle) >= IDLE_UPSTREAMS_PER_CLIENT:
            oldest = next(iter(self._idle))
            self._server._drop(self._idle.pop(oldest).stream)
        self._idle[key] = peer

    def close(self) -> None:
        if self._predial is not None:
            self._predial.discard()
            self._predial = None
        for peer in self._idle.values():
            self._server._drop(peer.stream)
        self._idle.clear()


# -- the server --------------------------------------------------------------------------------------


class ProxyServer:
    """`await start()` → port; `await serve_forever()`; `await close()`. `stats` counts connections,
    requests, injected, errors (plus active, tunnels, upstream_connections).

    The asyncio side only accepts connections; each one is served by its own thread."""

    def __init__(
        self,
        policy: Policy,
        server_context: Callable[[str], ssl.SSLContext],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None,
        upstream_context: Callable[[list[str]], ssl.SSLContext],
        log: Callable[[str], None],
        max_header_bytes: int = 64 * 1024,
        idle_timeout: float = 120.0,
        header_timeout: float = 15.0,
        upstream_timeout: float = 300.0,
        connect_timeout: float = 15.0,
        max_connections: int = 1024,
        max_inject_body: int = MAX_INJECT_BODY,
        policy_threads: int = 4,
        on_injected: InjectedHook | None = None,
    ) -> None:
        if not _is_loopback(host):
            raise ValueError(f"the proxy binds loopback addresses only, not {host!r}")
        self._policy = policy
        self._server_context = server_context
        self._host = host
        self.port = port
        self._token = token
        self._upstream_context = upstream_context
        self._logf = log
        self._max_head = max_header_bytes
        self._idle_timeout = idle_timeout
        self._header_timeout = header_timeout
        self._upstream_timeout = upstream_timeout
        self._connect_timeout = connect_timeout
        self._max_connections = max_connections
        self._max_inject_body = max_inject_body
        self._on_injected = on_injected
        # Kept for compatibility: every connection has its own thread now, so policy calls (which may
        # read files or renew a credential) block only that connection and need no separate pool.
        self._policy_threads = policy_threads
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._closing = False
        self._lock = threading.Lock()
        self._streams: set[_Stream] = set()  # every open socket, so close() can wake its thread
        self._threads: set[threading.Thread] = set()
        self.stats: dict[str, int] = {
            "connections": 0, "active": 0, "requests": 0, "injected": 0, "errors": 0,
            "tunnels": 0, "upstream_connections": 0,
        }

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> int:
        if self._listener is not None:
            return self.port
        listener = socket.create_server((self._host, self.port), backlog=1024)
        listener.setblocking(False)
        self._listener = listener
        self.port = int(listener.getsockname()[1])
        self._accepting = asyncio.get_running_loop().create_task(self._accept_loop(listener))
        return self.port

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            try:
                sock, _addr = await loop.sock_accept(listener)
            except asyncio.CancelledError:
                raise
            except OSError:
                if self._closing:
                    return
                await asyncio.sleep(0.05)  # EMFILE and the like: back off instead of spinning
                continue
            self._spawn(sock)

    def _spawn(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        _nodelay(sock)
        stream = _TCPStream(sock, self._upstream_timeout)
        thread = threading.Thread(target=self._on_client, args=(stream,), name="sig-proxy-conn", daemon=True)
        with self._lock:
            self.stats["connections"] += 1
            self.stats["active"] += 1
            self._streams.add(stream)
            self._threads.add(thread)
        try:
            thread.start()
        except RuntimeError:  # no more threads: refuse this one
            with self._lock:
                self.stats["active"] -= 1
                self._streams.discard(stream)
                self._threads.discard(thread)
            stream.close()

    async def serve_forever(self) -> None:
        if self._listener is None:
            await self.start()
        assert self._accepting is not None
        try:
            await asyncio.shield(self._accepting)
        except asyncio.CancelledError:
            if not self._closing:
                raise

    async def close(self) -> None:
        self._closing = True
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(BaseException):
                await self._accepting
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        with self._lock:
            streams = list(self._streams)
            threads = list(self._threads)
        for stream in streams:
            stream.shutdown()  # blocked recv/send calls return; each thread then cleans up

        def join() -> None:
            deadline = time.monotonic() + 5
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))

        await asyncio.get_running_loop().run_in_executor(None, join)

    # -- helpers -----------------------------------------------------------------------------------

    def _count(self, key: str, delta: int = 1) -> None:
        with self._lock:  # threads update these: += on a dict item is not atomic
            self.stats[key] += delta

    def _log(self, message: str) -> None:
        with contextlib.suppress(Exception):
            self._logf(message)

    def _track(self, stream: _Stream) -> None:
        with self._lock:
            self._streams.add(stream)
            closing = self._closing
        if closing:
            stream.shutdown()

    def _drop(self, stream: _Stream) -> None:
        stream.close()
        with self._lock:
            self._streams.discard(stream)

    def _is_self(self, host: str, port: int) -> bool:
        return port == self.port and (host == "localhost" or _is_loopback(host))

    def _passthrough(self, err: SigError) -> bool:
        return bool(getattr(err, "passthrough_on_error", False)
                    or getattr(self._policy, "passthrough_on_error", False))

    def _reply(self, client: _Peer, status: int, text: str,
               extra: list[tuple[bytes, bytes]] | None = None) -> None:
        """A short text response with `Connection: close`; the caller then drops the connection."""
        if status >= 400:
            self._count("errors")
        headers, body = h1.text_response_head(status, text, extra or [])
        chunks: list[bytes] = []
        conn = client.conn
        if conn is None and client.head:  # a fast-path request: let h11 frame the answer to it
            client.buf, client.head = client.head + client.buf, b""
            conn = client.h11()
            with contextlib.suppress(h11.ProtocolError):
                conn.next_event()
        try:
            assert conn is not None
            chunks += conn.send_with_data_passthrough(
                h11.Response(status_code=status, headers=headers, reason=h1.reason(status))) or []
        except (h11.LocalProtocolError, AssertionError):
            chunks = [h1.raw_response(status, text, extra or [])]
        else:
            for event in (h11.Data(data=body), h11.EndOfMessage()):
                try:  # a response to HEAD carries no body: h11 refuses the Data, the head is enough
                    chunks += conn.send_with_data_passthrough(event) or []
                except h11.LocalProtocolError:
                    break
        with contextlib.suppress(OSError):
            client.stream.send(b"".join(chunks))

    def _send_raw(self, stream: _Stream, status: int, text: str) -> None:
        self._count("errors")
        with contextlib.suppress(OSError):
            stream.send(h1.raw_response(status, text))

    # -- connections -------------------------------------------------------------------------------

    def _on_client(self, stream: _TCPStream) -> None:
        try:
            if self.stats["active"] > self._max_connections:
                self._send_raw(stream, 503, "sig proxy: too many connections")
                return
            if self._closing:
                return
            self._serve_proxy(stream)
        except (_Gone, _Closing, OSError):
            pass
        except Exception as exc:  # a bug must not take the server down; the text may hold values: not logged
            self._count("errors")
            self._log(f"proxy: internal error ({type(exc).__name__})")
        finally:
            # counted out before the close: whoever sees the connection end also sees it gone from stats
            with self._lock:
                self.stats["active"] -= 1
                self._streams.discard(stream)
                self._threads.discard(threading.current_thread())
            if self._closing:
                stream.close()
            else:
                stream.linger_close()

    def _read_request(self, client: _Peer, first_wait: float) -> fast.RequestHead | h11.Request | None:
        """The next request head, or None (connection over; any error answer already sent).

        Waiting for its first byte may take `first_wait`; once bytes arrive the whole head must come
        within header_timeout (slowloris). A plain head comes back as a fast.RequestHead (its bytes
        consumed from the buffer, its body not); anything else as h11's Request."""
        deadline: float | None = time.monotonic() + self._header_timeout if client.buf else None
        try:
            while True:
                if client.conn is None:
                    head = fast.parse_request(client.buf, self._max_head)
                    if isinstance(head, fast.RequestHead) and head.length > FAST_BODY_MAX:
                        head = fast.FALLBACK  # a big body streams through h11 instead of being buffered
                    if isinstance(head, fast.RequestHead):
                        client.head, client.buf = client.buf[:head.size], client.buf[head.size:]
                        return head
                    if head is fast.FALLBACK:
                        client.h11()
                        continue
                    wait = first_wait if deadline is None else deadline - time.monotonic()
                    data = client.stream.recv(READ_SIZE, wait)
                    if deadline is None:
                        deadline = time.monotonic() + self._header_timeout
                    if not data:
                        if not client.buf:
                            return None
                        client.h11().receive_data(b"")  # EOF mid-head: h11 words the error
                        continue
                    client.buf += data
                    continue
                conn = client.conn
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    wait = first_wait if deadline is None else deadline - time.monotonic()
                    data = client.stream.recv(READ_SIZE, wait)
                    if deadline is None:
                        deadline = time.monotonic() + self._header_timeout
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    client.head = b""
                    return event
                return None  # ConnectionClosed (or a PAUSED state we never resume)
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            why = "request head too large" if status == 431 else "malformed request"
            self._log(f"proxy: {why} -> {status}")
            self._send_raw(client.stream, status, f"sig proxy: {why}")
            return None
        except TimeoutError:
            if deadline is not None:
                self._log("proxy: request head not received in time -> 408")
                self._send_raw(client.stream, 408, "sig proxy: request head not received in time")
            return None
        except OSError:
            return None

    def _serve_proxy(self, stream: _TCPStream) -> None:
        """A connection to the proxy port: CONNECT, or absolute-form plain HTTP requests (keep-alive)."""
        client = _Peer(stream, h11.SERVER, self._max_head, "client")
        pool = _Pool(self)
        first_wait = self._header_timeout
        try:
            while True:
                req = self._read_request(client, first_wait)
                if req is None:
                    return
                first_wait = self._idle_timeout
                method = req.method.decode("ascii", "replace")
                if not h1.proxy_auth_ok(req.headers, self._token):
                    self._log(f"{method} -> 407 (no or wrong proxy token)")
                    self._reply(client, 407, "sig proxy: proxy authentication required: use the proxy "
                                "URL with its token (http://sig:<token>@127.0.0.1:<port>)",
                                [(b"proxy-authenticate", b'Basic realm="sig"')])
                    return
                if req.method == b"CONNECT":
                    self._connect(client, req)
                    return
                try:
                    scheme, host, port, target = h1.parse_absolute(req.target)
                except h1.BadTarget as exc:
                    self._log(f"{method} {h1.loggable_path(req.target)} -> 400 ({exc})")
                    self._reply(client, 400, "sig proxy: this is a proxy; send absolute URLs "
                                "(http://host/path) or CONNECT host:port")
                    return
                if scheme != "http":
                    self._log(f"{method} https://{host} -> 400 (https as a plain proxy request)")
                    self._reply(client, 400, "sig proxy: send https:// URLs through CONNECT "
                                "(HTTPS_PROXY), not as plain proxy requests")
                    return
                if self._is_self(host, port):
                    self._reply(client, 400, "sig proxy: the request would loop back into the proxy")
                    return
                if not self._exchange(client, req, "http", host, port, target, pool):
                    return
        finally:
            pool.close()

    def _connect(self, client: _Peer, req: fast.RequestHead | h11.Request) -> None:
        try:
            host, port = h1.parse_authority(req.target)
        except h1.BadTarget as exc:
            self._log(f"CONNECT -> 400 (bad target: {exc})")
            self._reply(client, 400, f"sig proxy: bad CONNECT target ({exc})")
            return
        name = h1.authority(host, port, -1).decode("ascii")
        if self._is_self(host, port):
            self._reply(client, 400, "sig proxy: the tunnel would loop back into the proxy")
            return
        try:
            intercept = self._policy.intercept(host, port)
        except SigError as err:
            self._log(f"CONNECT {name} -> 502 ({err.code})")
            self._reply(client, 502, f"sig proxy: {err.code}: {err.message}")
            return
        except Exception as exc:
            self._log(f"CONNECT {name} -> 502 (policy failed: {type(exc).__name__})")
            self._reply(client, 502, "sig proxy: the interception policy failed")
            return
        if not intercept:
            self._tunnel(client, host, port, name)
            return
        try:
            ctx = self._server_context(host)
        except Exception as exc:
            self._log(f"CONNECT {name} -> 502 (no certificate: {type(exc).__name__})")
            self._reply(client, 502, f"sig proxy: cannot make a certificate for {host}")
            return
        predial = _Predial(self, host, port)
        trailing = self._established(client)
        raw = client.stream
        assert isinstance(raw, _TCPStream)
        tls: _TLSStream | _SSLStream | None = None
        try:
            if trailing:  # the ClientHello came with the CONNECT head: feed it through memory BIOs
                tls = _TLSStream(raw, ctx, server_side=True, expected_host=host)
                tls.handshake(trailing, self._header_timeout)
            else:
                _install_sni_check(ctx)
                sslsock = ctx.wrap_socket(raw.sock, server_side=True, do_handshake_on_connect=False)
                sslsock._sig_expected_host = host  # type: ignore[attr-defined]
                tls = _SSLStream(raw, sslsock)
                tls.handshake(self._header_timeout)
        except OSError as exc:  # ssl.SSLError and TimeoutError are OSErrors
            _Pool(self, predial).close()
            if tls is not None and tls.sni_mismatch:
                why = "the TLS SNI names another host than the CONNECT target"
                self._count("errors")
            elif isinstance(exc, TimeoutError):
                why = "timed out"
            else:
                why = getattr(exc, "reason", None) or type(exc).__name__
            self._log(f"CONNECT {name}: TLS with the client failed ({why})")
            return
        assert tls is not None
        try:
            self._serve_mitm(tls, host, port, predial)
        finally:
            tls.close_notify()

    def _established(self, client: _Peer) -> bytes:
        """Answer a CONNECT with 200; the bytes the client already sent past its head (a ClientHello)."""
        if client.conn is None:
            client.write(_CONNECT_OK)
            trailing, client.buf = client.buf, b""
            return trailing
        client.send(h11.Response(status_code=200, headers=[], reason=b"Connection established"))
        return bytes(client.conn.trailing_data[0])

    def _serve_mitm(self, tls: _TLSStream | _SSLStream, host: str, port: int,
                    predial: _Predial | None = None) -> None:
        client = _Peer(tls, h11.SERVER, self._max_head, "client")
        pool = _Pool(self, predial)
        try:
            while True:
                req = self._read_request(client, self._idle_timeout)
                if req is None:
                    return
                method = req.method.decode("ascii", "replace")
                target = req.target
                if req.method == b"CONNECT":
                    self._log(f"CONNECT inside the tunnel to {host}:{port} -> 400")
                    self._reply(client, 400, "sig proxy: CONNECT inside a tunnel is not supported")
                    return
                if not target.startswith(b"/") and not (req.method == b"OPTIONS" and target == b"*"):
                    try:
                        scheme, t_host, t_port, target = h1.parse_absolute(target)
                    except h1.BadTarget:
                        self._log(f"{method} https://{host}:{port} -> 400 (bad request target)")
                        self._reply(client, 400, "sig proxy: bad request target")
                        return
                    if (scheme, t_host, t_port) != ("https", host, port):
                        self._log(f"{method} https://{host}:{port} -> 421 (URL names another origin)")
                        self._reply(client, 421, "sig proxy: the request URL names another origin than "
                                    "the CONNECT target")
                        return
                hosts = [v for n, v in req.headers if n == b"host"]
                if not all(h1.host_matches(v, host, port, 443) for v in hosts):
                    self._log(f"{method} https://{host}:{port}{h1.loggable_path(target)} -> 421 "
                              "(Host header names another host)")
                    self._reply(client, 421, "sig proxy: the Host header names another host than "
                                "the CONNECT target")
                    return
                if not self._exchange(client, req, "https", host, port, target, pool):
                    return
        finally:
            pool.close()

    def _tunnel(self, client: _Peer, host: str, port: int, name: str) -> None:
        try:
            sock = socket.create_connection((host, port), timeout=self._connect_timeout)
        except TimeoutError:
            self._log(f"CONNECT {name} -> 504 (tunnel: connect timed out)")
            self._reply(client, 504, f"sig proxy: connecting to {name} timed out")
            return
        except OSError as exc:
            self._log(f"CONNECT {name} -> 502 (tunnel: {exc.strerror or type(exc).__name__})")
            self._reply(client, 502, f"sig proxy: cannot connect to {name} "
                        f"({exc.strerror or type(exc).__name__})")
            return
        _nodelay(sock)
        upstream = _TCPStream(sock, self._upstream_timeout)
        self._track(upstream)
        try:
            self._count("tunnels")
            trailing = self._established(client)
            self._log(f"CONNECT {name} -> tunnel")
            if trailing:
                upstream.send(trailing)
            self._splice(client.stream, upstream)
        except (OSError, _Gone):
            pass
        finally:
            self._drop(upstream)

    def _open_upstream(self, scheme: str, host: str, port: int, cafiles: tuple[str, ...]) -> _Peer:
        ctx: ssl.SSLContext | None = None
        if scheme == "https":
            try:
                ctx = self._upstream_context(list(cafiles))
            except SigError as err:
                raise _UpstreamFailed(502, f"cannot verify {host}: {err.message}") from None
            except Exception as exc:
                raise _UpstreamFailed(502, f"cannot verify {host} ({type(exc).__name__})") from None
        name = h1.authority(host, port, -1).decode("ascii")
        deadline = time.monotonic() + self._connect_timeout
        stream: _Stream | None = None
        try:
            sock = socket.create_connection((host, port), timeout=self._connect_timeout)
            _nodelay(sock)
            stream = _TCPStream(sock, self._upstream_timeout)
            self._track(stream)
            if ctx is not None:
                sslsock = ctx.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
                stream = _SSLStream(stream, sslsock)
                stream.handshake(deadline - time.monotonic())
        except ssl.SSLCertVerificationError as exc:
            self._close_failed(stream)
            raise _UpstreamFailed(502, f"the certificate of {name} is not trusted ({exc.verify_message}); "
                                  "nothing was sent. For a private CA set caFile on the provider") from None
        except ssl.SSLError as exc:
            self._close_failed(stream)
            raise _UpstreamFailed(502, f"TLS with {name} failed ({exc.reason or type(exc).__name__}); "
                                  "nothing was sent") from None
        except TimeoutError:
            self._close_failed(stream)
            raise _UpstreamFailed(504, f"connecting to {name} timed out") from None
        except OSError as exc:
            self._close_failed(stream)
            raise _UpstreamFailed(502, f"cannot connect to {name} "
                                  f"({exc.strerror or type(exc).__name__})") from None
        self._count("upstream_connections")
        return _Peer(stream, h11.CLIENT, max(self._max_head, MAX_RESPONSE_HEAD), "upstream")

    def _close_failed(self, stream: _Stream | None) -> None:
        if stream is not None:
            self._drop(stream)

    # -- one request / response --------------------------------------------------------------------

    def _additions(self, client: _Peer, method: str, where: str, scheme: str, host: str,
                   port: int) -> Any:
        """What sig adds (may renew a credential). None when the client already got an error answer."""
        try:
            additions = self._policy.additions(scheme, host, port)
        except SigError as err:
            if not self._passthrough(err):
                self._log(f"{method} {where} -> 502 injected=no ({err.code})")
                text = f"sig proxy: no credentials for {host}: {err.code}: {err.message}"
                if err.hint:
                    text += f"\nfix: {err.hint}"
                self._reply(client, 502, text)
                return None
            self._log(f"{method} {where}: {err.code}; forwarding without credentials")
            # still verify the upstream with the provider's CA (the policy hands it over on the error)
            return _CAOnly(list(getattr(err, "cafiles", None) or []))
        except Exception as exc:
            self._log(f"{method} {where} -> 502 injected=no (policy failed: {type(exc).__name__})")
            self._reply(client, 502, f"sig proxy: the credential policy failed for {host}")
            return None
        return additions if additions is not None else _NOTHING

    def _injected_hook(self, additions: Any, method: str, host_value: bytes,
                       target: bytes) -> Callable[[int], None] | None:
        """For a request sig adds credentials to: the status → on_injected call (None without a hook)."""
        hook = self._on_injected
        if hook is None:
            return None
        providers = tuple(getattr(additions, "providers", None) or ())
        return lambda status: hook(providers, method, host_value, target, status)

    def _exchange(self, client: _Peer, req: fast.RequestHead | h11.Request, scheme: str, host: str,
                  port: int, target: bytes, pool: _Pool) -> bool:
        """Forward one request and its response. True when the client connection can carry another."""
        self._count("requests")
        method = req.method.decode("ascii", "replace")
        default_port = 443 if scheme == "https" else 80
        host_value = h1.authority(host, port, default_port)
        where = f"{scheme}://{host_value.decode('ascii')}{h1.loggable_path(target)}"
        if not isinstance(req, fast.RequestHead) and h1.get_header(req.headers, b"transfer-encoding") is not None \
                and h1.get_header(req.headers, b"content-length") is not None:
            # RFC 9112 §6.3: a sign of request smuggling; refused before anything is added or sent
            self._log(f"{method} {where} -> 400 (both Content-Length and Transfer-Encoding)")
            self._reply(client, 400, "sig proxy: a request may not have both Content-Length and "
                        "Transfer-Encoding")
            return False
        additions = self._additions(client, method, where, scheme, host, port)
        if additions is None:
            return False
        if isinstance(req, fast.RequestHead):
            return self._fast_exchange(client, req, method, where, scheme, host, port, host_value, target,
                                       additions, pool)
        return self._h11_exchange(client, req, method, where, scheme, host, port, host_value, target,
                                  additions, pool)

    def _fast_exchange(self, client: _Peer, req: fast.RequestHead, method: str, where: str, scheme: str,
                       host: str, port: int, host_value: bytes, target: bytes, additions: Any,
                       pool: _Pool) -> bool:
        """The plain case without h11: a buffered Content-Length body (or none), a Content-Length
        response. A response the fast parser declines is handed to h11 mid-exchange (_to_h11)."""
        add_headers: dict[str, str] = getattr(additions, "headers", None) or {}
        add_query: dict[str, str] = getattr(additions, "query", None) or {}
        add_body: dict[str, str] = getattr(additions, "body", None) or {}
        cafiles = tuple(getattr(additions, "cafiles", None) or ())
        injected = bool(add_headers or add_query)

        # 1. the upstream connection first: a dead upstream costs the client no upload
        key = (scheme, host, port, cafiles)
        got = self._upstream(client, pool, key, method, where)
        if got is None:
            return False
        upstream, reused = got

        # 2. the body (at most FAST_BODY_MAX, see _read_request), with sig's fields when it takes them
        try:
            raw_body = client.take(req.length, self._idle_timeout) if req.length else b""
        except _Gone as gone:
            self._drop(upstream.stream)
            return self._client_gone(client, gone, method, where)
        body = raw_body
        kind = h1.body_kind(req.headers) if add_body else None
        if kind is not None:
            body, added = self._inject_body(body, kind, add_body, method, where)
            injected = injected or added
        has_length = body or kind is not None or h1.get_header(req.headers, b"content-length") is not None
        framing = ("length", len(body)) if has_length else ("none", 0)
        headers = h1.upstream_request_headers(req.headers, host_value=host_value, add=add_headers,
                                              framing=framing, upgrade=False)
        forms = self._forms(additions) if injected else ()
        if forms:  # ask only for codings sig can decode to check the answer
            headers = redaction.limit_accept_encoding(headers)
        if not all(fast.valid_header(n, v) for n, v in headers if n in self._added_names(add_headers)):
            # an injected value that is no valid header (CR/LF...): it is never sent
            self._drop(upstream.stream)
            return self._invalid_injection(client, method, where, host)
        up_target = h1.with_query(target, add_query)
        message = fast.request_bytes(req.method, up_target, headers) + body
        done = self._injected_hook(additions, method, host_value, target) if injected else None

        # 3. send, read the response head; a reused connection that died in between is retried once
        #    when the request is idempotent (the body is buffered, so it can be replayed)
        head_request = req.method == b"HEAD"
        for attempt in (0, 1):
            try:
                upstream.write(message)
                while True:
                    resp = fast.parse_response(upstream.buf, upstream.max_head, head_request=head_request)
                    if resp is not None:
                        break
                    if not upstream.fill(self._upstream_timeout):
                        if not upstream.buf:
                            raise _Gone("upstream", "closed before answering")
                        resp = fast.FALLBACK  # EOF mid-head: h11 words the error
                        break
                break
            except _Gone as gone:
                self._drop(upstream.stream)
                if attempt == 0 and reused and not upstream.buf and not gone.timeout \
                        and req.method in _IDEMPOTENT:
                    got = self._upstream(client, pool, key, method, where)
                    if got is None:
                        return False
                    upstream, reused = got
                    continue
                return self._upstream_gone(client, gone, method, where, host_value, done)

        if injected:
            self._count("injected")
        verdict = "yes" if injected else "no"
        if forms and isinstance(resp, fast.ResponseHead):
            try:
                whole = self._fast_redacted(client, upstream, resp, forms)
            except _Gone as gone:
                self._drop(upstream.stream)
                return self._upstream_gone(client, gone, method, where, host_value, done)
            except redaction.CannotInspect as exc:
                return self._uninspectable(client, upstream, exc, method, where, host, done, resp.status_code)
            if whole is not None:
                message, masked = whole
                self._log(f"{method} {where} -> {resp.status_code} injected={verdict}{masked}")
                if done is not None:
                    done(resp.status_code)
                try:
                    client.write(message)
                except _Gone:
                    self._drop(upstream.stream)
                    return False
                pool.put(key, upstream)
                return True
            resp = fast.FALLBACK  # too big to hold: h11 streams it through the redactor
        if not isinstance(resp, fast.ResponseHead):
            # 1xx, HEAD, chunked, close-delimited, odd: h11 takes over, primed to where we are
            try:
                self._to_h11(client, upstream, req, raw_body, up_target, headers, body)
                response = self._response_head(client, upstream, forms)
            except (_Gone, h11.ProtocolError) as gone:
                self._drop(upstream.stream)
                if not isinstance(gone, _Gone) or gone.side == "client":
                    return False
                return self._upstream_gone(client, gone, method, where, host_value, done)
            return self._relay(client, upstream, response, method, where, verdict, key, pool, done, forms)

        # 4. the response: head plus what body arrived in one write, then the rest as it comes
        self._log(f"{method} {where} -> {resp.status_code} injected={verdict}")
        if done is not None:
            done(resp.status_code)
        buf = upstream.buf
        remaining = resp.length
        first = buf[resp.size:resp.size + remaining]
        upstream.buf = buf[resp.size + len(first):]
        remaining -= len(first)
        try:
            client.write(fast.downstream_head(resp) + first)
            while remaining:
                try:
                    data = upstream.stream.recv(min(READ_SIZE, remaining), self._upstream_timeout)
                except TimeoutError:
                    raise _Gone("upstream", "timed out", timeout=True) from None
                except OSError as exc:
                    raise _Gone("upstream", f"connection failed ({type(exc).__name__})") from None
                if not data:
                    raise _Gone("upstream", "peer closed connection without sending complete message body: "
                                f"received {resp.length - remaining} bytes, expected {resp.length}")
                remaining -= len(data)
                client.write(data)
        except _Gone as exc:
            # The upstream stopped mid-body (or the client left): close the client connection so it sees
            # the cut instead of waiting for bytes that never come.
            self._drop(upstream.stream)
            if exc.side == "upstream":
                self._count("errors")
                self._log(f"{method} {where}: upstream {exc.why} mid-response; closing the client connection")
            return False

        # 5. keep-alive on both sides (the fast path took no Connection: close on either)
        pool.put(key, upstream)
        return True

    @staticmethod
    def _forms(additions: Any) -> tuple[bytes, ...]:
        """The secret forms to mask in the response to a request these additions went into."""
        return tuple(getattr(additions, "redact", None) or ())

    def _fast_redacted(self, client: _Peer, upstream: _Peer, resp: fast.ResponseHead, forms: tuple[bytes, ...]
                       ) -> tuple[bytes, str] | None:
        """A fast-path response held whole (body up to redaction.BUFFER_MAX): (the client's message,
        a note for the log when something was masked). The upstream's bytes are consumed only then;
        None leaves them for h11 to stream (too big, or an encoding sig must refuse there)."""
        codings = redaction.content_codings(resp.headers)
        if resp.length > redaction.BUFFER_MAX or redaction.undecodable(codings) is not None:
            return None
        end = resp.size + resp.length
        while len(upstream.buf) < end:
            if not upstream.stream.readable(HOLD_GRACE):
                return None  # the upstream paused: h11 streams the rest (nothing was consumed)
            if not upstream.fill(self._upstream_timeout):
                raise _Gone("upstream", "closed mid-body")
        body = upstream.buf[resp.size:end]
        headers = h1.downstream_response_headers(resp.headers)
        if client.detector is None:
            client.detector = redaction.Detector()
        if not codings and not client.detector.found(forms, headers, body):  # the usual case: one pass
            upstream.buf = upstream.buf[end:]
            return fast.response_bytes(resp.status_code, resp.reason, headers) + body, ""
        got = redaction.whole(forms, codings, body)
        if got is None:
            return None
        out, changed = got
        headers, headers_changed = redaction.redact_headers(forms, headers)
        upstream.buf = upstream.buf[end:]
        if not changed:  # the body as it came (still compressed), with its own Content-Length
            note = " (masked in headers)" if headers_changed else ""
            return fast.response_bytes(resp.status_code, resp.reason, headers) + body, note
        return (fast.response_bytes(resp.status_code, resp.reason, self._reframed(headers, codings, len(out)))
                + out, " (masked in the body" + (" and headers)" if headers_changed else ")"))

    @staticmethod
    def _reframed(headers: h1.Headers, codings: list[bytes], length: int | None) -> h1.Headers:
        """Headers for a body sig changed: decoded (Content-Encoding gone when it had one), its new length
        (None: no Content-Length, h11 frames it: chunked for HTTP/1.1 clients, close for 1.0)."""
        drop = {b"content-length"} | ({b"content-encoding"} if codings else set())
        out = [(n, v) for n, v in headers if n not in drop]
        if length is not None:
            out.append((b"content-length", str(length).encode("ascii")))
        return out

    def _uninspectable(self, client: _Peer, upstream: _Peer, exc: redaction.CannotInspect, method: str,
                       where: str, host: str, done: Callable[[int], None] | None, status: int) -> bool:
        """An answer sig cannot check for the secrets it injected: never passed on (nothing was written
        to the client yet)."""
        self._drop(upstream.stream)
        self._log(f"{method} {where} -> 502 (upstream answered {status}; cannot check it for secrets: {exc})")
        if done is not None:
            done(502)
        self._reply(client, 502, f"sig proxy: the answer of {host} could not be checked for the credentials "
                    f"sig added ({exc}), so it was not passed on; set redactResponses: false on the "
                    "provider to pass its answers through unchecked")
        return False

    def _to_h11(self, client: _Peer, upstream: _Peer, req: fast.RequestHead, raw_body: bytes,
                up_target: bytes, headers: h1.Headers, body: bytes) -> None:
        """Give both sides fresh h11 connections in the state this exchange reached: the client's has
        received the request (head and body), the upstream's has sent ours. h11 then parses the
        response and frames the client's copy exactly as the h11 path would."""
        client.buf = client.head + raw_body + client.buf  # (+ anything pipelined after it)
        client.head = b""
        conn = client.h11()
        for _ in range(4):  # Request, [Data], EndOfMessage: h11 accepts what the fast parser accepted
            event = conn.next_event()
            if isinstance(event, h11.EndOfMessage):
                break
            if not isinstance(event, (h11.Request, h11.Data)):
                raise _Gone("client", f"unexpected {type(event).__name__}")
        else:
            raise _Gone("client", "request not complete")
        up = upstream.h11()
        up.send(h11.Request(method=req.method, target=up_target, headers=headers))
        if body:
            up.send(h11.Data(data=body))
        up.send(h11.EndOfMessage())

    @staticmethod
    def _added_names(add: dict[str, str]) -> set[bytes]:
        return {name.encode("latin-1") for name in add}

    def _h11_exchange(self, client: _Peer, req: h11.Request, method: str, where: str, scheme: str,
                      host: str, port: int, host_value: bytes, target: bytes, additions: Any,
                      pool: _Pool) -> bool:
        assert client.conn is not None
        add_headers: dict[str, str] = dict(getattr(additions, "headers", None) or {})
        add_query: dict[str, str] = dict(getattr(additions, "query", None) or {})
        add_body: dict[str, str] = dict(getattr(additions, "body", None) or {})
        cafiles = tuple(getattr(additions, "cafiles", None) or ())
        injected = bool(add_headers or add_query)
        upgrade = h1.is_upgrade(req.headers)
        framing = h1.request_framing(req.headers)
        kind = h1.body_kind(req.headers) if add_body else None

        # 2. the upstream connection, before 100 Continue: a dead upstream costs the client no upload
        key = (scheme, host, port, cafiles)
        got = self._upstream(client, pool, key, method, where)
        if got is None:
            return False
        upstream, reused = got
        upstream.h11()

        # 3. the body: buffered when sig adds fields to it (or it is empty), streamed otherwise
        try:
            if client.conn.they_are_waiting_for_100_continue:
                client.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
            body: bytes | None = None
            if kind is not None or framing in (("none", 0), ("length", 0)):
                body = self._read_body(client, self._max_inject_body)
                if body is None:
                    self._drop(upstream.stream)
                    self._log(f"{method} {where} -> 413 injected=no (body too large to add fields to)")
                    self._reply(client, 413, "sig proxy: the body is too large for sig to add fields to")
                    return False
                if kind is not None:
                    body, added = self._inject_body(body, kind, add_body, method, where)
                    injected = injected or added
                if body or kind is not None or framing[0] == "length":
                    framing = ("length", len(body))
        except _Gone as gone:
            self._drop(upstream.stream)
            return self._client_gone(client, gone, method, where)

        forms = self._forms(additions) if injected else ()
        try:
            up_headers = h1.upstream_request_headers(req.headers, host_value=host_value, add=add_headers,
                                                     framing=framing, upgrade=upgrade)
            if forms:
                up_headers = redaction.limit_accept_encoding(up_headers)
            upstream_req = h11.Request(method=req.method, target=h1.with_query(target, add_query),
                                       headers=up_headers)
        except h11.LocalProtocolError:  # an injected value h11 refuses (CR/LF...): it is never sent
            self._drop(upstream.stream)
            return self._invalid_injection(client, method, where, host)

        # 4. send, read the response head; a reused connection that died in between is retried once
        #    when the request is idempotent and its body can be replayed (a POST is never sent twice)
        done = self._injected_hook(additions, method, host_value, target) if injected else None
        for attempt in (0, 1):
            try:
                if body is not None:  # head, body and end in one write
                    upstream.send(upstream_req, *((h11.Data(data=body),) if body else ()), h11.EndOfMessage())
                else:
                    upstream.send(upstream_req)
                    try:
                        self._stream_body(client, upstream)
                    except _Gone as gone:
                        if gone.side == "client":
                            raise
                response = self._response_head(client, upstream, forms)
                break
            except _Gone as gone:
                self._drop(upstream.stream)
                if gone.side == "client":
                    return self._client_gone(client, gone, method, where)
                if attempt == 0 and reused and body is not None and not gone.timeout \
                        and req.method in _IDEMPOTENT:
                    got = self._upstream(client, pool, key, method, where)
                    if got is None:
                        return False
                    upstream, reused = got
                    upstream.h11()
                    continue
                return self._upstream_gone(client, gone, method, where, host_value, done)
            except h11.LocalProtocolError:
                self._drop(upstream.stream)
                self._log(f"{method} {where} -> 502 (could not frame the request)")
                self._reply(client, 502, "sig proxy: could not forward the request")
                return False

        if injected:
            self._count("injected")
        return self._relay(client, upstream, response, method, where, "yes" if injected else "no", key, pool,
                           done, forms)

    def _upstream(self, client: _Peer, pool: _Pool, key: tuple[Any, ...], method: str,
                  where: str) -> tuple[_Peer, bool] | None:
        """(upstream peer, reused) from the pool; None after telling the client why there is none."""
        try:
            return pool.get(key)
        except _UpstreamFailed as exc:
            self._log(f"{method} {where} -> {exc.status} injected=no ({exc.why})")
            self._reply(client, exc.status, f"sig proxy: {exc.why}")
            return None

    def _client_gone(self, client: _Peer, gone: _Gone, method: str, where: str) -> bool:
        """The client's request body failed: a malformed one gets 400 (the upstream, which may have had
        the head, saw its connection closed mid-request, so it acts on nothing); a client that left or
        went silent gets nothing."""
        if gone.malformed:
            self._log(f"{method} {where} -> 400 (malformed request body: {gone.why})")
            self._reply(client, 400, "sig proxy: malformed request body")
        else:
            self._log(f"{method} {where}: client went away ({gone.why})")
        return False

    def _upstream_gone(self, client: _Peer, gone: _Gone, method: str, where: str, host_value: bytes,
                       done: Callable[[int], None] | None = None) -> bool:
        status = 504 if gone.timeout else 502
        self._log(f"{method} {where} -> {status} (upstream {gone.why})")
        if done is not None:
            done(status)
        self._reply(client, status, f"sig proxy: the upstream {host_value.decode()} {gone.why}")
        return False

    def _invalid_injection(self, client: _Peer, method: str, where: str, host: str) -> bool:
        """An injected value that is no valid header or query (CR/LF...): it is never sent."""
        self._log(f"{method} {where} -> 502 injected=no (invalid injected header or query)")
        self._reply(client, 502, f"sig proxy: the credential for {host} makes an invalid header "
                    "or query value; check the provider's apply rules")
        return False

    def _inject_body(self, body: bytes, kind: Any, add_body: dict[str, str], method: str,
                     where: str) -> tuple[bytes, bool]:
        changed = h1.inject_body(body, kind, add_body)
        if changed is None:
            self._log(f"{method} {where}: body is not a JSON object or form; fields not added")
            return body, False
        return changed, True

    def _read_body(self, client: _Peer, limit: int) -> bytes | None:
        """The whole request body (None when over `limit`)."""
        parts: list[bytes] = []
        size = 0
        while True:
            event = client.next_event(self._idle_timeout)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > limit:
                    return None
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            else:
                raise _Gone("client", f"unexpected {type(event).__name__}")

    def _stream_body(self, client: _Peer, upstream: _Peer) -> None:
        """Client body → upstream, chunk by chunk. An upstream write failure stops the copy; the caller
        then tries to read the upstream's (early) answer."""
        while True:
            event = client.next_event(self._idle_timeout)
            if isinstance(event, h11.Data):
                upstream.send(event)
            elif isinstance(event, h11.EndOfMessage):
                upstream.send(h11.EndOfMessage())
                return
            else:
                raise _Gone("client", f"unexpected {type(event).__name__}")

    def _response_head(self, client: _Peer, upstream: _Peer, forms: tuple[bytes, ...] = ()) -> Any:
        """The upstream's final response (or its 101); other 1xx are relayed (their headers redacted),
        100 is dropped (the proxy already answered the client's Expect itself)."""
        while True:
            event = upstream.next_event(self._upstream_timeout)
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    return event
                if event.status_code != 100:
                    headers = h1.downstream_response_headers(event.headers)
                    if forms:
                        headers = redaction.redact_headers(forms, headers)[0]
                    with contextlib.suppress(h11.LocalProtocolError):
                        client.send(h11.InformationalResponse(
                            status_code=event.status_code, reason=event.reason, headers=headers))
                continue
            if isinstance(event, h11.Response):
                return event
            raise _Gone("upstream", "closed before answering" if isinstance(event, h11.ConnectionClosed)
                        else f"unexpected {type(event).__name__}")

    def _relay(self, client: _Peer, upstream: _Peer, response: Any, method: str, where: str, verdict: str,
               key: tuple[Any, ...], pool: _Pool, done: Callable[[int], None] | None = None,
               forms: tuple[bytes, ...] = ()) -> bool:
        """The h11 side of a response (both peers in h11 mode): an upgrade, or head + streamed body."""
        if forms and response.status_code != 101:
            return self._relay_redacted(client, upstream, response, method, where, verdict, key, pool, done,
                                        forms)
        if done is not None:
            done(response.status_code)
        # 5a. WebSocket (or other) upgrade accepted: relay the 101, then splice bytes both ways. Its head
        #     is redacted; what flows after it is not (frames would need rewriting: see README)
        if response.status_code == 101:
            self._log(f"{method} {where} -> 101 injected={verdict}")
            headers = h1.downstream_response_headers(response.headers, upgrade=True)
            if forms:
                headers = redaction.redact_headers(forms, headers)[0]
            try:
                client.send(h11.InformationalResponse(status_code=101, reason=response.reason, headers=headers))
            except (h11.LocalProtocolError, _Gone):
                self._drop(upstream.stream)
                return False
            try:
                assert client.conn is not None and upstream.conn is not None
                client_rest, _ = client.conn.trailing_data
                upstream_rest, _ = upstream.conn.trailing_data
                if client_rest:
                    upstream.stream.send(bytes(client_rest))
                if upstream_rest:
                    client.stream.send(bytes(upstream_rest))
                self._splice(client.stream, upstream.stream)
            except OSError:
                pass
            finally:
                self._drop(upstream.stream)
            return False

        # 5b. an ordinary response: head, then the body streamed with backpressure
        self._log(f"{method} {where} -> {response.status_code} injected={verdict}")
        try:
            # Events already buffered (a small response is head + body + end in one read) leave in one
            # write; otherwise each read's worth is written before waiting for more (backpressure).
            out = client.encode(h11.Response(
                status_code=response.status_code, reason=response.reason,
                headers=h1.downstream_response_headers(response.headers)))
            while True:
                event = upstream.poll()
                if event is h11.NEED_DATA:
                    client.write(out)
                    out = []
                    event = upstream.next_event(self._upstream_timeout)
                if isinstance(event, h11.Data):
                    out += client.encode(event)
                elif isinstance(event, h11.EndOfMessage):
                    out += client.encode(h11.EndOfMessage())
                    client.write(out)
                    break
                else:
                    raise _Gone("upstream", f"unexpected {type(event).__name__}")
        except (_Gone, h11.LocalProtocolError) as exc:
            # The upstream stopped mid-body (or the client left): close the client connection so it sees
            # the cut instead of waiting for bytes that never come.
            self._drop(upstream.stream)
            if isinstance(exc, _Gone) and exc.side == "upstream":
                self._count("errors")
                self._log(f"{method} {where}: upstream {exc.why} mid-response; closing the client connection")
            return False

        return self._next_cycle(client, upstream, key, pool)

    def _relay_redacted(self, client: _Peer, upstream: _Peer, response: Any, method: str, where: str,
                        verdict: str, key: tuple[Any, ...], pool: _Pool, done: Callable[[int], None] | None,
                        forms: tuple[bytes, ...]) -> bool:
        """_relay for a response to a request sig injected into: headers and body redacted.

        A body up to redaction.BUFFER_MAX (as received and decoded) is held whole: the client gets it
        with an exact Content-Length, as it came when nothing was masked. A bigger one streams: decoded,
        redacted piece by piece, re-framed (chunked, or close-delimited for an HTTP/1.0 client)."""
        status = response.status_code
        headers, headers_changed = redaction.redact_headers(forms, h1.downstream_response_headers(response.headers))
        bodyless = method == "HEAD" or status in (204, 304)
        codings = redaction.content_codings(response.headers)
        try:
            flt = None if bodyless else redaction.BodyFilter(forms, codings)
        except redaction.CannotInspect as exc:
            return self._uninspectable(client, upstream, exc, method, where, _where_host(where), done, status)
        if done is not None:
            done(status)
        note = " (masked in headers)" if headers_changed else ""
        length = h1.get_header(response.headers, b"content-length")
        holding = flt is not None and not (length is not None and length.isdigit()
                                           and int(length) > redaction.BUFFER_MAX)
        raw: list[bytes] = []
        out: list[bytes] = []
        size = [0, 0]  # raw, out
        written = False

        def head(frame_headers: h1.Headers) -> list[bytes]:
            return client.encode(h11.Response(status_code=status, reason=response.reason, headers=frame_headers))

        def stream(piece: bytes) -> None:
            """Write a piece of the re-framed body (the head first)."""
            nonlocal written
            if not written:
                client.write(head(self._reframed(headers, codings, None)))
                written = True
            if piece:
                client.write(client.encode(h11.Data(data=piece)))

        def let_go() -> None:
            """Too big to hold: what is held leaves now, the rest streams."""
            nonlocal holding, raw, out
            holding = False
            held, raw, out = b"".join(out), [], []
            stream(held)

        def emit(piece: bytes) -> None:
            if not holding:
                stream(piece)
                return
            out.append(piece)
            size[1] += len(piece)
            if size[1] > redaction.BUFFER_MAX:
                let_go()

        try:
            if flt is None:
                self._log(f"{method} {where} -> {status} injected={verdict}{note}")
                client.write(head(headers))
                written = True
            while True:
                event = upstream.poll()
                if event is h11.NEED_DATA:
                    if holding and not upstream.stream.readable(HOLD_GRACE):
                        let_go()  # the upstream paused (an event stream, a slow one): stream from here
                    event = upstream.next_event(self._upstream_timeout)
                if isinstance(event, h11.Data):
                    if flt is None:
                        continue  # h11 yields none for a body-less response; nothing to pass on
                    data = bytes(event.data)
                    if holding:
                        raw.append(data)
                        size[0] += len(data)
                    for piece in flt.feed(data):
                        emit(piece)
                    if holding and size[0] > redaction.BUFFER_MAX:
                        let_go()
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    raise _Gone("upstream", f"unexpected {type(event).__name__}")
            if flt is not None:
                for piece in flt.finish():
                    emit(piece)
                if holding:
                    body = b"".join(out)
                    original = b"".join(raw)
                    changed = flt.changed if flt.decoded else body != original
                    if changed:
                        note = " (masked in the body" + (" and headers)" if headers_changed else ")")
                        message = head(self._reframed(headers, codings, len(body)))
                    else:
                        message, body = head(headers), original
                    if body:
                        message += client.encode(h11.Data(data=body))
                    self._log(f"{method} {where} -> {status} injected={verdict}{note}")
                    client.write(message + client.encode(h11.EndOfMessage()))
                    written = True
                    return self._next_cycle(client, upstream, key, pool)
                stream(b"")
                self._log(f"{method} {where} -> {status} injected={verdict} (streamed"
                          + (", masked)" if flt.changed or headers_changed else ")"))
            client.write(client.encode(h11.EndOfMessage()))
        except redaction.CannotInspect as exc:
            if not written:
                return self._uninspectable(client, upstream, exc, method, where, _where_host(where), None, status)
            self._drop(upstream.stream)
            self._count("errors")
            self._log(f"{method} {where}: cannot check the rest of the answer for secrets ({exc}); "
                      "closing the client connection")
            return False
        except (_Gone, h11.LocalProtocolError) as exc:
            self._drop(upstream.stream)
            if isinstance(exc, _Gone) and exc.side == "upstream":
                if not written:  # nothing of it reached the client yet: say what happened
                    return self._upstream_gone(client, exc, method, where, _where_host(where).encode())
                self._count("errors")
                self._log(f"{method} {where}: upstream {exc.why} mid-response; closing the client connection")
            return False
        return self._next_cycle(client, upstream, key, pool)

    def _next_cycle(self, client: _Peer, upstream: _Peer, key: tuple[Any, ...], pool: _Pool) -> bool:
        """6. keep-alive on both sides; their next messages go back to the fast path."""
        up = upstream.conn
        assert up is not None
        if up.our_state is h11.DONE and up.their_state is h11.DONE:
            up.start_next_cycle()
            upstream.release()
            pool.put(key, upstream)
        else:
            self._drop(upstream.stream)
        conn = client.conn
        assert conn is not None
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            client.release()
            return True
        return False

    # -- tunnels -----------------------------------------------------------------------------------

    def _splice(self, a: _Stream, b: _Stream) -> None:
        """Copy bytes both ways until one side closes (TCP: half-close and let the other side finish)
        or nothing moves for upstream_timeout. One thread per direction; this one waits."""
        quiet = self._upstream_timeout
        last = [time.monotonic()]
        ended = threading.Semaphore(0)  # released once per finished direction
        a.splice_mode()
        b.splice_mode()

        def pump(src: _Stream, dst: _Stream) -> None:
            try:
                while not self._closing:
                    try:
                        data = src.recv(READ_SIZE, quiet)
                    except TimeoutError:
                        if time.monotonic() - last[0] < quiet:
                            continue
                        return
                    if not data:
                        dst.write_eof()
                        return
                    last[0] = time.monotonic()
                    dst.send(data)
            except OSError:
                return
            finally:
                ended.release()

        threads = [threading.Thread(target=pump, args=pair, name="sig-proxy-splice", daemon=True)
                   for pair in ((a, b), (b, a))]
        for thread in threads:
            thread.start()
        ended.acquire()
        if not (a.tls or b.tls):  # TCP: the other direction may go on after a half-close
            ended.acquire(timeout=HALF_CLOSE_GRACE)
        for stream in (a, b):
            stream.shutdown()  # wakes a pump still blocked in recv
        for thread in threads:
            thread.join(5)


_NOTHING = _CAOnly([])
