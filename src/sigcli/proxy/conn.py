"""One side of an exchange (`Peer`: a stream, the bytes read ahead, an h11 connection while h11 handles
it), opening upstream connections (TCP, then TLS verified against the system roots plus the provider's
CA files, with TLS session resumption), and the idle upstream connections of one client connection.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import ssl
from typing import TYPE_CHECKING, Any

import h11

from . import fast, redaction
from .streams import READ_SIZE, AnyStream, Stream, nodelay

if TYPE_CHECKING:
    from collections.abc import Callable

    from .loop import Loop, Task

IDLE_UPSTREAMS_PER_CLIENT = 4
SHARED_IDLE = 2.0  # seconds an upstream connection left by a client connection waits for the next one
SHARED_PER_KEY = 64
SHARED_MAX = 512
SESSION_CACHE = 256  # upstream TLS sessions kept, one per (host, port, CA files)


class Gone(Exception):
    """One side of an exchange failed: "client" or "upstream"; `timeout` when it went silent, `malformed`
    when what it sent is not valid HTTP/1.1 (a bad chunk, a short body...)."""

    def __init__(self, side: str, why: str, *, timeout: bool = False, malformed: bool = False) -> None:
        super().__init__(why)
        self.side = side
        self.why = why
        self.timeout = timeout
        self.malformed = malformed


class UpstreamFailed(Exception):
    """No upstream connection: the status for the client (502/504) and why (safe to show)."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.why = why


def protocol_error(exc: h11.RemoteProtocolError) -> str:
    """h11's text can quote a header line (a secret): only its framing complaints are repeated."""
    text = str(exc)
    if text.startswith(("peer closed connection", "Receive buffer too long")):
        return text.replace("Receive buffer too long", "head too large")
    return "sent malformed HTTP"


class Peer:
    """`buf` holds bytes received and not yet used. `conn` is None on the fast path; while h11 handles an
    exchange it is a fresh h11 connection holding those bytes, handed back by release()."""

    __slots__ = ("buf", "conn", "detector", "head", "max_head", "memo", "role", "session_kept", "side", "stream")

    def __init__(self, stream: AnyStream, role: Any, max_head: int, side: str) -> None:
        self.stream = stream
        self.role = role
        self.max_head = max_head
        self.side = side
        self.buf = b""
        self.conn: h11.Connection | None = None
        self.head = b""  # the raw head of the request on the fast path (to prime h11 for an error reply)
        self.detector: redaction.Detector | None = None  # a client's: finds secrets in its answers
        self.memo = fast.Memo()  # its last header block, parsed
        self.session_kept = False  # an upstream's: its TLS session is (or was) in the Dialer's cache

    # -- raw bytes (fast path) --

    async def fill(self, deadline: float) -> bool:
        """Read more into `buf`; False at EOF. Gone on timeout or a broken connection."""
        try:
            data = await self.stream.recv(READ_SIZE, deadline)
        except TimeoutError:
            raise Gone(self.side, "timed out", timeout=True) from None
        except OSError as exc:
            raise Gone(self.side, f"connection failed ({type(exc).__name__})") from None
        if not data:
            return False
        self.buf = self.buf + data if self.buf else data
        return True

    async def take(self, n: int, deadline: float) -> bytes:
        """Exactly n bytes (a fast-path body)."""
        while len(self.buf) < n:
            if not await self.fill(deadline):  # an incomplete message: its side may still read the answer
                raise Gone(self.side, "closed mid-body", malformed=True)
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

    async def next_event(self, deadline: float) -> Any:
        """The next h11 event of this side, reading as needed. Gone on timeout, a broken connection or
        malformed HTTP."""
        conn = self.h11()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise Gone(self.side, protocol_error(exc), malformed=True) from None
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await self.stream.recv(READ_SIZE, deadline)
            except TimeoutError:
                raise Gone(self.side, "timed out", timeout=True) from None
            except OSError as exc:
                raise Gone(self.side, f"connection failed ({type(exc).__name__})") from None
            conn.receive_data(data)

    def poll(self) -> Any:
        """The next event already buffered, or h11.NEED_DATA (never waits)."""
        try:
            return self.h11().next_event()
        except h11.RemoteProtocolError as exc:
            raise Gone(self.side, protocol_error(exc), malformed=True) from None

    def encode(self, *events: Any) -> list[bytes]:
        """h11 events → bytes to write (h11.LocalProtocolError propagates: the caller built something
        invalid)."""
        conn = self.h11()
        chunks: list[bytes] = []
        for event in events:
            chunks += conn.send_with_data_passthrough(event) or []
        return chunks

    async def write(self, chunks: list[bytes] | bytes) -> None:
        """Send bytes to this side; Gone when it fails or stops reading."""
        try:
            await self.stream.send(chunks if isinstance(chunks, bytes) else b"".join(chunks))
        except OSError as exc:  # TimeoutError included: a peer that stopped reading
            raise Gone(self.side, f"connection failed ({type(exc).__name__})") from None

    async def send(self, *events: Any) -> None:
        """Encode h11 events and send them (see encode and write)."""
        await self.write(self.encode(*events))


# -- opening upstream connections ------------------------------------------------------------------------

UpstreamKey = tuple[str, str, int, tuple[str, ...]]  # (scheme, host, port, CA files)


class Dialer:
    """Opens upstream connections for the server: TCP (DNS in a worker when the host is a name), then
    TLS for https, resuming the last TLS session with the same upstream when it gave one."""

    def __init__(self, loop: Loop, upstream_context: Callable[[list[str]], ssl.SSLContext], *,
                 connect_timeout: float, send_timeout: float, max_head: int,
                 count: Callable[[str], None]) -> None:
        self._loop = loop
        self._upstream_context = upstream_context
        self._connect_timeout = connect_timeout
        self._send_timeout = send_timeout
        self._max_head = max_head
        self._count = count
        self._contexts: dict[tuple[str, ...], ssl.SSLContext] = {}
        self._sessions: dict[UpstreamKey, ssl.SSLSession] = {}

    def _context(self, cafiles: tuple[str, ...]) -> ssl.SSLContext:
        ctx = self._contexts.get(cafiles)
        if ctx is None:
            ctx = self._upstream_context(list(cafiles))  # may raise SigError (an unreadable CA file)
            if len(self._contexts) > 64:
                self._contexts.clear()
            self._contexts[cafiles] = ctx
        return ctx

    async def _connect(self, host: str, port: int, deadline: float, no_local: bool = False) -> Stream:
        loop = self._loop
        try:
            ip = ipaddress.ip_address(host)
            addrs: list[Any] = [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, (host, port))]
        except ValueError:
            infos = await loop.to_thread(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
            addrs = [(family, sockaddr) for family, _t, _p, _c, sockaddr in infos]
        if no_local:
            from .local_guard import is_local_address

            if any(is_local_address(str(sockaddr[0])) for _f, sockaddr in addrs):
                raise OSError(errno.EACCES, "a loopback or link-local address, which the sandbox may not reach")
        error: OSError | None = None
        for family, sockaddr in addrs:
            stream = Stream(loop, socket.socket(family, socket.SOCK_STREAM), self._send_timeout)
            try:
                err = stream.sock.connect_ex(sockaddr)
                if err not in (0, errno.EINPROGRESS, errno.EAGAIN):
                    raise OSError(err, os.strerror(err))
                if err:
                    await loop.wait_writable(stream.watch, deadline)
                    err = stream.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                nodelay(stream.sock)
                return stream
            except TimeoutError:
                stream.close()
                raise
            except OSError as exc:
                stream.close()
                error = exc
        raise error or OSError("no address")

    async def open(self, key: UpstreamKey, no_local: bool = False) -> Peer:
        """A connected (and for https, verified) upstream Peer. UpstreamFailed otherwise. `no_local`: a
        sandbox's route to a host no provider covers: never on one of this machine's own addresses,
        whatever the name resolves to now (local_guard.py; DNS rebinding)."""
        from ..core.errors import SigError

        scheme, host, port, cafiles = key
        ctx: ssl.SSLContext | None = None
        if scheme == "https":
            try:
                ctx = self._context(cafiles)
            except SigError as err:
                raise UpstreamFailed(502, f"cannot verify {host}: {err.message}") from None
            except Exception as exc:
                raise UpstreamFailed(502, f"cannot verify {host} ({type(exc).__name__})") from None
        name = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        deadline = self._loop.now + self._connect_timeout
        stream: Stream | None = None
        try:
            stream = await self._connect(host, port, deadline, no_local)
            if ctx is not None:
                session = self._sessions.get(key)
                try:
                    await stream.start_tls(ctx, server_side=False, deadline=deadline, server_hostname=host,
                                           session=session)
                except ssl.SSLError:
                    if session is None:
                        raise
                    # a session the server no longer takes: once more without it (a fresh socket)
                    self._sessions.pop(key, None)
                    stream.close()
                    stream = await self._connect(host, port, deadline, no_local)
                    await stream.start_tls(ctx, server_side=False, deadline=deadline, server_hostname=host)
        except ssl.SSLCertVerificationError as exc:
            _close(stream)
            raise UpstreamFailed(502, f"the certificate of {name} is not trusted ({exc.verify_message}); "
                                 "nothing was sent. For a private CA set caFile on the provider") from None
        except ssl.SSLError as exc:
            _close(stream)
            raise UpstreamFailed(502, f"TLS with {name} failed ({exc.reason or type(exc).__name__}); "
                                 "nothing was sent") from None
        except TimeoutError:
            _close(stream)
            raise UpstreamFailed(504, f"connecting to {name} timed out") from None
        except OSError as exc:
            _close(stream)
            raise UpstreamFailed(502, f"cannot connect to {name} ({exc.strerror or type(exc).__name__})") \
                from None
        self._count("upstream_connections")
        return Peer(stream, h11.CLIENT, self._max_head, "upstream")

    def keep_session(self, key: UpstreamKey, peer: Peer) -> None:
        """Remember the TLS session of a connection that answered (TLS 1.3 tickets arrive after the
        handshake, so only now is there one), for the next connection to the same upstream."""
        stream = peer.stream
        if not stream.tls or key in self._sessions:
            peer.session_kept = True  # (asked once per connection, not once per request)
            return
        with contextlib.suppress(Exception):
            session = stream.sock.session  # type: ignore[union-attr]
            if session is not None and session.has_ticket:
                if len(self._sessions) >= SESSION_CACHE:
                    self._sessions.clear()
                self._sessions[key] = session
                peer.session_kept = True


def _close(stream: AnyStream | None) -> None:
    if stream is not None:
        stream.close()


class Predial:
    """The upstream connection of an intercepted CONNECT, opened while the client's TLS handshake runs:
    the two handshakes overlap instead of adding up on a new host's first request."""

    def __init__(self, loop: Loop, dialer: Dialer, key: UpstreamKey, no_local: bool = False) -> None:
        self.key = key
        self.no_local = no_local
        self.peer: Peer | None = None
        self.error: UpstreamFailed | None = None
        self._loop = loop
        self._abandoned = False
        self.task: Task = loop.spawn(self._dial(dialer), "predial")

    async def _dial(self, dialer: Dialer) -> None:
        try:
            peer = await dialer.open(self.key, self.no_local)
        except UpstreamFailed as exc:
            self.error = exc
            return
        if self._abandoned:
            peer.stream.close()
            return
        self.peer = peer

    async def take(self, key: UpstreamKey, deadline: float) -> Peer | None:
        """The pre-dialled peer when it is for `key` (raises its connection error), else None."""
        if key != self.key:
            return None
        try:
            await self._loop.join(self.task, deadline=deadline)
        except TimeoutError:
            return None
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        peer, self.peer = self.peer, None
        return peer

    def discard(self) -> None:
        """Nobody will take the connection: close it now, or as soon as the dial ends."""
        self._abandoned = True
        if self.peer is not None:
            self.peer.stream.close()
            self.peer = None


class Shared:
    """Idle upstream connections left by client connections that ended, for the next client connection
    of the same profile to the same upstream: a client that opens a connection per request (or 50 at
    once) then costs one TLS handshake (with the proxy), not two. They are kept only SHARED_IDLE seconds
    (a keep-alive connection's own pool keeps its upstreams as long as it lives) and at most
    SHARED_PER_KEY per upstream; one that the server closed meanwhile is dropped when taken."""

    def __init__(self, loop: Loop) -> None:
        self._loop = loop
        self._idle: dict[tuple[object, UpstreamKey], list[tuple[float, Peer]]] = {}
        self._count = 0
        self._sweeping = False

    def has(self, owner: object, key: UpstreamKey) -> bool:
        """Whether an idle connection of `owner` to `key` is waiting (it may still turn out stale)."""
        return bool(self._idle.get((owner, key)))

    def take(self, owner: object, key: UpstreamKey) -> Peer | None:
        """An idle connection of `owner` to `key` that is still usable, else None; stale ones are closed."""
        stack = self._idle.get((owner, key))
        now = self._loop.now
        while stack:
            since, peer = stack.pop()
            self._count -= 1
            if now - since < SHARED_IDLE and not peer.stream.stale():
                return peer
            peer.stream.close()
        return None

    def give(self, owner: object, key: UpstreamKey, peer: Peer) -> None:
        """Keep `peer` for the next client connection of `owner`, or close it when the pool is full."""
        stack = self._idle.setdefault((owner, key), [])
        if len(stack) >= SHARED_PER_KEY or self._count >= SHARED_MAX:
            peer.stream.close()
            return
        peer.stream.mark_idle()
        stack.append((self._loop.now, peer))
        self._count += 1
        if not self._sweeping:
            self._sweeping = True
            self._loop.call_later(SHARED_IDLE, self._sweep)

    def _sweep(self) -> None:
        """Close what waited SHARED_IDLE seconds (an upstream is not held open for nobody)."""
        now = self._loop.now
        for k in list(self._idle):
            stack = self._idle[k]
            keep = [(since, peer) for since, peer in stack if now - since < SHARED_IDLE]
            for since, peer in stack:
                if now - since >= SHARED_IDLE:
                    peer.stream.close()
            self._count -= len(stack) - len(keep)
            if keep:
                self._idle[k] = keep
            else:
                del self._idle[k]
        self._sweeping = bool(self._idle)
        if self._sweeping:
            self._loop.call_later(SHARED_IDLE / 2, self._sweep)

    def close(self) -> None:
        """Close every idle connection (server shutdown)."""
        for stack in self._idle.values():
            for _since, peer in stack:
                peer.stream.close()
        self._idle.clear()
        self._count = 0


class Pool:
    """Idle upstream connections of one client connection, keyed by (scheme, host, port, CA files); what
    is left when the client connection ends goes to the server's Shared pool (for its `owner`: the
    client's profile)."""

    __slots__ = ("_dialer", "_idle", "_loop", "_owner", "_predial", "_shared")

    def __init__(self, loop: Loop, dialer: Dialer, predial: Predial | None = None, *,
                 shared: Shared | None = None, owner: object = None) -> None:
        self._loop = loop
        self._dialer = dialer
        self._idle: dict[UpstreamKey, Peer] = {}
        self._predial = predial
        self._shared = shared
        self._owner = owner

    async def get(self, key: UpstreamKey, connect_timeout: float, no_local: bool = False) -> tuple[Peer, bool]:
        """(peer, reused); UpstreamFailed when none can be had. (`no_local`: see Dialer.open.)"""
        peer = self.take_idle(key)
        if peer is not None:
            return peer, True
        if self._shared is not None:
            peer = self._shared.take(self._owner, key)
            if peer is not None:
                if self._predial is not None:
                    self._predial.discard()
                    self._predial = None
                return peer, True
        predial = self._predial
        if predial is not None:
            self._predial = None
            peer = await predial.take(key, self._loop.now + connect_timeout)
            if peer is not None:
                return peer, False
            predial.discard()
        return await self._dialer.open(key, no_local), False

    def rebind(self, owner: object) -> None:
        """The client connection now acts for another profile: what it holds goes back, for the old one."""
        if owner is not self._owner:
            self.close()
            self._owner = owner

    def take_idle(self, key: UpstreamKey) -> Peer | None:
        """get() without waiting: this client connection's idle connection to `key` when it can carry a
        request (the usual case on a keep-alive connection), else None (then get() has its other ways)."""
        idle = self._idle
        if idle:
            peer = idle.pop(key, None)
            if peer is not None:
                if not peer.buf and peer.conn is None and not peer.stream.stale():
                    return peer
                peer.stream.close()
        return None

    def put(self, key: UpstreamKey, peer: Peer) -> None:
        """Keep `peer` for this client connection's next request to `key`; the oldest goes when
        IDLE_UPSTREAMS_PER_CLIENT are kept."""
        idle = self._idle
        if idle:
            old = idle.pop(key, None)
            if old is not None:
                old.stream.close()
            if len(idle) >= IDLE_UPSTREAMS_PER_CLIENT:
                idle.pop(next(iter(idle))).stream.close()
        peer.stream.mark_idle()
        idle[key] = peer

    def close(self) -> None:
        """The client connection ended: its usable idle connections go to the Shared pool, the rest
        are closed."""
        if self._predial is not None:
            self._predial.discard()
            self._predial = None
        shared = self._shared
        for key, peer in self._idle.items():
            if shared is not None and not peer.buf and peer.conn is None and not peer.stream.stale():
                shared.give(self._owner, key, peer)
            else:
                peer.stream.close()
        self._idle.clear()
