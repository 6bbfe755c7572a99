"""The proxy server: asyncio sockets around h11 and the sans-IO helpers of `h1`.

It serves plain HTTP proxy requests (absolute-form) and CONNECT. A CONNECT to a host the policy intercepts
gets TLS under a leaf of sig's CA (the ClientHello's SNI, when present, must name the CONNECT host). Its
HTTP/1.1 requests must name that host too (Host header). They receive the policy's additions and go
upstream over TLS verified against the system roots plus the provider's CA files. Any other CONNECT is a
blind TCP tunnel. Bodies stream both ways in bounded memory. Keep-alive works on both sides, and WebSocket
upgrades are spliced after injection.

Logs name method, host, path (never the query), status and whether sig injected. They never carry a header
value.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import h11

from ..core.errors import SigError
from ..core.hosts import canonical_host
from . import h1

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

READ_SIZE = 64 * 1024
MAX_INJECT_BODY = 16 * 1024 * 1024  # bodies sig adds fields to are buffered; larger ones get 413
MAX_RESPONSE_HEAD = 256 * 1024
IDLE_UPSTREAMS_PER_CLIENT = 4
HALF_CLOSE_GRACE = 30.0
_IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"))


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
    """One side of an exchange failed: "client" or "upstream"; `timeout` when it went silent."""

    def __init__(self, side: str, why: str, *, timeout: bool = False) -> None:
        super().__init__(why)
        self.side = side
        self.why = why
        self.timeout = timeout


class _UpstreamFailed(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.why = why


def _protocol_error(exc: h11.RemoteProtocolError) -> str:
    """h11's text can quote a header line (a secret): only its framing complaints are repeated."""
    text = str(exc)
    if text.startswith(("peer closed connection", "Receive buffer too long")):
        return text.replace("Receive buffer too long", "head too large")
    return "sent malformed HTTP"


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- byte streams ------------------------------------------------------------------------------------


class _TCPStream:
    """A TCP (or asyncio-TLS) connection: recv / send with backpressure / close."""

    __slots__ = ("_reader", "_writer")
    tls = False

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def recv(self, n: int = READ_SIZE) -> bytes:
        return await self._reader.read(n)

    async def send(self, data: bytes) -> None:
        if data:
            self._writer.write(data)
        await self._writer.drain()

    def write_eof(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            if not self._writer.is_closing() and self._writer.can_write_eof():
                self._writer.write_eof()

    def stale(self) -> bool:
        return self._reader.at_eof() or self._writer.is_closing()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()

    async def aclose(self) -> None:
        self.close()


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
    """Server-side TLS over a _TCPStream with memory BIOs (sans-IO TLS): bytes that arrived right after
    the CONNECT head are fed in, and the SNI is checked against the CONNECT host."""

    tls = True

    def __init__(self, raw: _TCPStream, ctx: ssl.SSLContext, expected_host: str) -> None:
        _install_sni_check(ctx)
        self._raw = raw
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(self._in, self._out, server_side=True)
        self._obj._sig_expected_host = expected_host  # type: ignore[attr-defined]

    @property
    def sni_mismatch(self) -> bool:
        return bool(getattr(self._obj, "_sig_sni_mismatch", False))

    async def _flush(self) -> None:
        if self._out.pending:
            await self._raw.send(self._out.read())

    async def handshake(self, initial: bytes) -> None:
        if initial:
            self._in.write(initial)
        while True:
            try:
                self._obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                data = await self._raw.recv()
                if not data:
                    raise ConnectionResetError("the client closed the connection during the TLS handshake") \
                        from None
                self._in.write(data)
            except ssl.SSLError:
                with contextlib.suppress(OSError):
                    await self._flush()  # the alert
                raise
        await self._flush()

    async def recv(self, n: int = READ_SIZE) -> bytes:
        while True:
            try:
                data = self._obj.read(n)
            except ssl.SSLWantReadError:
                await self._flush()
                if self._in.eof:
                    return b""
                raw = await self._raw.recv()
                if raw:
                    self._in.write(raw)
                else:
                    self._in.write_eof()
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            await self._flush()
            return data

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self._obj.write(view)
            view = view[n:]
        await self._flush()

    def write_eof(self) -> None:
        return None  # no half-close over TLS: the splice closes both sides instead

    def stale(self) -> bool:
        return self._raw.stale()

    def close(self) -> None:
        self._raw.close()

    async def aclose(self) -> None:
        """close_notify (so close-delimited bodies end cleanly for OpenSSL 3 clients), then close."""
        with contextlib.suppress(Exception):
            try:
                self._obj.unwrap()
            except ssl.SSLWantReadError:
                pass
            async with asyncio.timeout(1.0):
                await self._flush()
        self._raw.close()


# -- an h11 connection on a stream ------------------------------------------------------------------


class _Peer:
    __slots__ = ("conn", "side", "stream")

    def __init__(self, stream: _TCPStream | _TLSStream, role: Any, max_head: int, side: str) -> None:
        self.stream = stream
        self.conn = h11.Connection(role, max_incomplete_event_size=max_head)
        self.side = side

    async def next_event(self, timeout: float) -> Any:
        conn = self.conn
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise _Gone(self.side, _protocol_error(exc)) from None
            if event is not h11.NEED_DATA:
                return event
            try:
                async with asyncio.timeout(timeout):
                    data = await self.stream.recv(READ_SIZE)
            except TimeoutError:
                raise _Gone(self.side, "timed out", timeout=True) from None
            except OSError as exc:
                raise _Gone(self.side, f"connection failed ({type(exc).__name__})") from None
            conn.receive_data(data)

    def poll(self) -> Any:
        """The next event already buffered, or h11.NEED_DATA (never waits)."""
        try:
            return self.conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise _Gone(self.side, _protocol_error(exc)) from None

    def encode(self, *events: Any) -> list[bytes]:
        """h11 events → bytes to write (h11.LocalProtocolError propagates: the caller built something
        invalid)."""
        chunks: list[bytes] = []
        for event in events:
            chunks += self.conn.send_with_data_passthrough(event) or []
        return chunks

    async def write(self, chunks: list[bytes]) -> None:
        try:
            await self.stream.send(b"".join(chunks))
        except OSError as exc:
            raise _Gone(self.side, f"connection failed ({type(exc).__name__})") from None

    async def send(self, *events: Any) -> None:
        await self.write(self.encode(*events))


class _Pool:
    """Idle upstream connections of one client connection, keyed by (scheme, host, port, cafiles)."""

    def __init__(self, server: ProxyServer) -> None:
        self._server = server
        self._idle: dict[tuple[Any, ...], _Peer] = {}

    async def get(self, key: tuple[Any, ...]) -> tuple[_Peer, bool]:
        peer = self._idle.pop(key, None)
        if peer is not None:
            if not peer.stream.stale():
                return peer, True
            peer.stream.close()
        return await self._server._open_upstream(*key), False

    def put(self, key: tuple[Any, ...], peer: _Peer) -> None:
        old = self._idle.pop(key, None)
        if old is not None:
            old.stream.close()
        if len(self._idle) >= IDLE_UPSTREAMS_PER_CLIENT:
            oldest = next(iter(self._idle))
            self._idle.pop(oldest).stream.close()
        self._idle[key] = peer

    def close(self) -> None:
        for peer in self._idle.values():
            peer.stream.close()
        self._idle.clear()


# -- the server --------------------------------------------------------------------------------------


class ProxyServer:
    """`await start()` → port; `await serve_forever()`; `await close()`. `stats` counts connections,
    requests, injected, errors (plus active, tunnels, upstream_connections)."""

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
        self._policy_threads = policy_threads
        self._server: asyncio.Server | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self.stats: dict[str, int] = {
            "connections": 0, "active": 0, "requests": 0, "injected": 0, "errors": 0,
            "tunnels": 0, "upstream_connections": 0,
        }

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> int:
        if self._server is not None:
            return self.port
        if self._policy_threads > 0:
            self._executor = ThreadPoolExecutor(max_workers=self._policy_threads, thread_name_prefix="sig-proxy")
        self._server = await asyncio.start_server(
            self._on_client, host=self._host, port=self.port, backlog=1024, limit=READ_SIZE)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        try:
            await self._server.serve_forever()
        except asyncio.CancelledError:
            if not self._closing:
                raise

    async def close(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # -- helpers -----------------------------------------------------------------------------------

    def _log(self, message: str) -> None:
        with contextlib.suppress(Exception):
            self._logf(message)

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Policy and CA-file calls may read files or renew a credential: keep them off the event loop
        (policy_threads=0 calls them inline, for a policy known to answer from memory)."""
        if self._executor is None:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _is_self(self, host: str, port: int) -> bool:
        return port == self.port and (host == "localhost" or _is_loopback(host))

    def _passthrough(self, err: SigError) -> bool:
        return bool(getattr(err, "passthrough_on_error", False)
                    or getattr(self._policy, "passthrough_on_error", False))

    async def _reply(self, client: _Peer, status: int, text: str,
                     extra: list[tuple[bytes, bytes]] | None = None) -> None:
        """A short text response with `Connection: close`; the caller then drops the connection."""
        self.stats["errors"] += 1 if status >= 400 else 0
        headers, body = h1.text_response_head(status, text, extra or [])
        chunks: list[bytes] = []
        try:
            chunks += client.conn.send_with_data_passthrough(
                h11.Response(status_code=status, headers=headers, reason=h1.reason(status))) or []
        except h11.LocalProtocolError:
            chunks = [h1.raw_response(status, text, extra or [])]
        else:
            for event in (h11.Data(data=body), h11.EndOfMessage()):
                try:  # a response to HEAD carries no body: h11 refuses the Data, the head is enough
                    chunks += client.conn.send_with_data_passthrough(event) or []
                except h11.LocalProtocolError:
                    break
        with contextlib.suppress(OSError):
            await client.stream.send(b"".join(chunks))

    async def _send_raw(self, stream: _TCPStream | _TLSStream, status: int, text: str) -> None:
        self.stats["errors"] += 1
        with contextlib.suppress(OSError):
            await stream.send(h1.raw_response(status, text))

    # -- connections -------------------------------------------------------------------------------

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.stats["connections"] += 1
        self.stats["active"] += 1
        _nodelay(writer)
        stream = _TCPStream(reader, writer)
        try:
            if self.stats["active"] > self._max_connections:
                await self._send_raw(stream, 503, "sig proxy: too many connections")
                return
            await self._serve_proxy(stream)
        except (_Gone, OSError):
            pass
        except asyncio.CancelledError:
            # Only close() cancels these tasks. Ending normally keeps 3.11's start_server callback from
            # logging "Exception in callback" for every connection still open at shutdown.
            pass
        except Exception as exc:  # a bug must not take the server down; the text may hold values: not logged
            self.stats["errors"] += 1
            self._log(f"proxy: internal error ({type(exc).__name__})")
        finally:
            stream.close()
            self.stats["active"] -= 1
            if task is not None:
                self._tasks.discard(task)

    async def _read_request(self, client: _Peer, first_wait: float) -> h11.Request | None:
        """The next request head, or None (connection over; any error answer already sent).

        Waiting for its first byte may take `first_wait`; once bytes arrive the whole head must come
        within header_timeout (slowloris)."""
        conn = client.conn
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    wait = first_wait if deadline is None else deadline - loop.time()
                    async with asyncio.timeout(wait):
                        data = await client.stream.recv(READ_SIZE)
                    if deadline is None:
                        deadline = loop.time() + self._header_timeout
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    return event
                return None  # ConnectionClosed (or a PAUSED state we never resume)
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            why = "request head too large" if status == 431 else "malformed request"
            self._log(f"proxy: {why} -> {status}")
            await self._send_raw(client.stream, status, f"sig proxy: {why}")
            return None
        except TimeoutError:
            if deadline is not None:
                self._log("proxy: request head not received in time -> 408")
                await self._send_raw(client.stream, 408, "sig proxy: request head not received in time")
            return None
        except OSError:
            return None

    async def _serve_proxy(self, stream: _TCPStream) -> None:
        """A connection to the proxy port: CONNECT, or absolute-form plain HTTP requests (keep-alive)."""
        client = _Peer(stream, h11.SERVER, self._max_head, "client")
        pool = _Pool(self)
        first_wait = self._header_timeout
        try:
            while True:
                req = await self._read_request(client, first_wait)
                if req is None:
                    return
                first_wait = self._idle_timeout
                method = req.method.decode("ascii", "replace")
                if not h1.proxy_auth_ok(req.headers, self._token):
                    self._log(f"{method} -> 407 (no or wrong proxy token)")
                    await self._reply(client, 407, "sig proxy: proxy authentication required: use the proxy "
                                      "URL with its token (http://sig:<token>@127.0.0.1:<port>)",
                                      [(b"proxy-authenticate", b'Basic realm="sig"')])
                    return
                if req.method == b"CONNECT":
                    await self._connect(client, req)
                    return
                try:
                    scheme, host, port, target = h1.parse_absolute(req.target)
                except h1.BadTarget as exc:
                    self._log(f"{method} {h1.loggable_path(req.target)} -> 400 ({exc})")
                    await self._reply(client, 400, "sig proxy: this is a proxy; send absolute URLs "
                                      "(http://host/path) or CONNECT host:port")
                    return
                if scheme != "http":
                    self._log(f"{method} https://{host} -> 400 (https as a plain proxy request)")
                    await self._reply(client, 400, "sig proxy: send https:// URLs through CONNECT "
                                      "(HTTPS_PROXY), not as plain proxy requests")
                    return
                if self._is_self(host, port):
                    await self._reply(client, 400, "sig proxy: the request would loop back into the proxy")
                    return
                if not await self._exchange(client, req, "http", host, port, target, pool):
                    return
        finally:
            pool.close()

    async def _connect(self, client: _Peer, req: h11.Request) -> None:
        try:
            host, port = h1.parse_authority(req.target)
        except h1.BadTarget as exc:
            self._log(f"CONNECT -> 400 (bad target: {exc})")
            await self._reply(client, 400, f"sig proxy: bad CONNECT target ({exc})")
            return
        name = h1.authority(host, port, -1).decode("ascii")
        if self._is_self(host, port):
            await self._reply(client, 400, "sig proxy: the tunnel would loop back into the proxy")
            return
        try:
            intercept = await self._in_thread(self._policy.intercept, host, port)
        except SigError as err:
            self._log(f"CONNECT {name} -> 502 ({err.code})")
            await self._reply(client, 502, f"sig proxy: {err.code}: {err.message}")
            return
        except Exception as exc:
            self._log(f"CONNECT {name} -> 502 (policy failed: {type(exc).__name__})")
            await self._reply(client, 502, "sig proxy: the interception policy failed")
            return
        if not intercept:
            await self._tunnel(client, host, port, name)
            return
        try:
            ctx = self._server_context(host)
        except Exception as exc:
            self._log(f"CONNECT {name} -> 502 (no certificate: {type(exc).__name__})")
            await self._reply(client, 502, f"sig proxy: cannot make a certificate for {host}")
            return
        await client.send(h11.Response(status_code=200, headers=[], reason=b"Connection established"))
        trailing, _closed = client.conn.trailing_data
        tls = _TLSStream(client.stream, ctx, host)  # type: ignore[arg-type]
        try:
            async with asyncio.timeout(self._header_timeout):
                await tls.handshake(bytes(trailing))
        except (TimeoutError, OSError) as exc:  # ssl.SSLError is an OSError
            if tls.sni_mismatch:
                why = "the TLS SNI names another host than the CONNECT target"
                self.stats["errors"] += 1
            elif isinstance(exc, TimeoutError):
                why = "timed out"
            else:
                why = getattr(exc, "reason", None) or type(exc).__name__
            self._log(f"CONNECT {name}: TLS with the client failed ({why})")
            tls.close()
            return
        try:
            await self._serve_mitm(tls, host, port)
        finally:
            await tls.aclose()

    async def _serve_mitm(self, tls: _TLSStream, host: str, port: int) -> None:
        client = _Peer(tls, h11.SERVER, self._max_head, "client")
        pool = _Pool(self)
        try:
            while True:
                req = await self._read_request(client, self._idle_timeout)
                if req is None:
                    return
                method = req.method.decode("ascii", "replace")
                target = req.target
                if req.method == b"CONNECT":
                    self._log(f"CONNECT inside the tunnel to {host}:{port} -> 400")
                    await self._reply(client, 400, "sig proxy: CONNECT inside a tunnel is not supported")
                    return
                if not target.startswith(b"/") and not (req.method == b"OPTIONS" and target == b"*"):
                    try:
                        scheme, t_host, t_port, target = h1.parse_absolute(target)
                    except h1.BadTarget:
                        self._log(f"{method} https://{host}:{port} -> 400 (bad request target)")
                        await self._reply(client, 400, "sig proxy: bad request target")
                        return
                    if (scheme, t_host, t_port) != ("https", host, port):
                        self._log(f"{method} https://{host}:{port} -> 421 (URL names another origin)")
                        await self._reply(client, 421, "sig proxy: the request URL names another origin than "
                                          "the CONNECT target")
                        return
                hosts = [v for n, v in req.headers if n == b"host"]
                if not all(h1.host_matches(v, host, port, 443) for v in hosts):
                    self._log(f"{method} https://{host}:{port}{h1.loggable_path(target)} -> 421 "
                              "(Host header names another host)")
                    await self._reply(client, 421, "sig proxy: the Host header names another host than "
                                      "the CONNECT target")
                    return
                if not await self._exchange(client, req, "https", host, port, target, pool):
                    return
        finally:
            pool.close()

    async def _tunnel(self, client: _Peer, host: str, port: int, name: str) -> None:
        try:
            async with asyncio.timeout(self._connect_timeout):
                reader, writer = await asyncio.open_connection(host, port, limit=READ_SIZE)
        except TimeoutError:
            self._log(f"CONNECT {name} -> 504 (tunnel: connect timed out)")
            await self._reply(client, 504, f"sig proxy: connecting to {name} timed out")
            return
        except OSError as exc:
            self._log(f"CONNECT {name} -> 502 (tunnel: {exc.strerror or type(exc).__name__})")
            await self._reply(client, 502, f"sig proxy: cannot connect to {name} "
                              f"({exc.strerror or type(exc).__name__})")
            return
        _nodelay(writer)
        upstream = _TCPStream(reader, writer)
        try:
            self.stats["tunnels"] += 1
            await client.send(h11.Response(status_code=200, headers=[], reason=b"Connection established"))
            self._log(f"CONNECT {name} -> tunnel")
            trailing, _closed = client.conn.trailing_data
            if trailing:
                await upstream.send(bytes(trailing))
            await self._splice(client.stream, upstream)
        except OSError:
            pass
        finally:
            upstream.close()

    async def _open_upstream(self, scheme: str, host: str, port: int, cafiles: tuple[str, ...]) -> _Peer:
        ctx: ssl.SSLContext | None = None
        if scheme == "https":
            try:
                ctx = await self._in_thread(self._upstream_context, list(cafiles))
            except SigError as err:
                raise _UpstreamFailed(502, f"cannot verify {host}: {err.message}") from None
            except Exception as exc:
                raise _UpstreamFailed(502, f"cannot verify {host} ({type(exc).__name__})") from None
        name = h1.authority(host, port, -1).decode("ascii")
        try:
            async with asyncio.timeout(self._connect_timeout):
                if ctx is not None:
                    reader, writer = await asyncio.open_connection(
                        host, port, ssl=ctx, server_hostname=host, limit=READ_SIZE,
                        ssl_handshake_timeout=self._connect_timeout)
                else:
                    reader, writer = await asyncio.open_connection(host, port, limit=READ_SIZE)
        except ssl.SSLCertVerificationError as exc:
            raise _UpstreamFailed(502, f"the certificate of {name} is not trusted ({exc.verify_message}); "
                                  "nothing was sent. For a private CA set caFile on the provider") from None
        except ssl.SSLError as exc:
            raise _UpstreamFailed(502, f"TLS with {name} failed ({exc.reason or type(exc).__name__}); "
                                  "nothing was sent") from None
        except TimeoutError:
            raise _UpstreamFailed(504, f"connecting to {name} timed out") from None
        except OSError as exc:
            raise _UpstreamFailed(502, f"cannot connect to {name} "
                                  f"({exc.strerror or type(exc).__name__})") from None
        _nodelay(writer)
        self.stats["upstream_connections"] += 1
        return _Peer(_TCPStream(reader, writer), h11.CLIENT, max(self._max_head, MAX_RESPONSE_HEAD), "upstream")

    # -- one request / response --------------------------------------------------------------------

    async def _read_body(self, client: _Peer, limit: int) -> bytes | None:
        """The whole request body (None when over `limit`)."""
        parts: list[bytes] = []
        size = 0
        while True:
            event = await client.next_event(self._idle_timeout)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > limit:
                    return None
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            else:
                raise _Gone("client", f"unexpected {type(event).__name__}")

    async def _stream_body(self, client: _Peer, upstream: _Peer) -> None:
        """Client body → upstream, chunk by chunk. An upstream write failure stops the copy; the caller
        then tries to read the upstream's (early) answer."""
        while True:
            event = await client.next_event(self._idle_timeout)
            if isinstance(event, h11.Data):
                await upstream.send(event)
            elif isinstance(event, h11.EndOfMessage):
                await upstream.send(h11.EndOfMessage())
                return
            else:
                raise _Gone("client", f"unexpected {type(event).__name__}")

    async def _response_head(self, client: _Peer, upstream: _Peer) -> Any:
        """The upstream's final response (or its 101); other 1xx are relayed, 100 is dropped (the proxy
        already answered the client's Expect itself)."""
        while True:
            event = await upstream.next_event(self._upstream_timeout)
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    return event
                if event.status_code != 100:
                    with contextlib.suppress(h11.LocalProtocolError):
                        await client.send(h11.InformationalResponse(
                            status_code=event.status_code, reason=event.reason,
                            headers=h1.downstream_response_headers(event.headers)))
                continue
            if isinstance(event, h11.Response):
                return event
            raise _Gone("upstream", "closed before answering" if isinstance(event, h11.ConnectionClosed)
                        else f"unexpected {type(event).__name__}")

    async def _exchange(self, client: _Peer, req: h11.Request, scheme: str, host: str, port: int,
                        target: bytes, pool: _Pool) -> bool:
        """Forward one request and its response. True when the client connection can carry another."""
        self.stats["requests"] += 1
        method = req.method.decode("ascii", "replace")
        default_port = 443 if scheme == "https" else 80
        host_value = h1.authority(host, port, default_port)
        where = f"{scheme}://{host_value.decode('ascii')}{h1.loggable_path(target)}"

        # 1. what sig adds (may renew a credential: off the loop)
        additions: Any = None
        try:
            additions = await self._in_thread(self._policy.additions, scheme, host, port)
        except SigError as err:
            if not self._passthrough(err):
                self._log(f"{method} {where} -> 502 injected=no ({err.code})")
                text = f"sig proxy: no credentials for {host}: {err.code}: {err.message}"
                if err.hint:
                    text += f"\nfix: {err.hint}"
                await self._reply(client, 502, text)
                return False
            self._log(f"{method} {where}: {err.code}; forwarding without credentials")
            # still verify the upstream with the provider's CA (the policy hands it over on the error)
            additions = _CAOnly(list(getattr(err, "cafiles", None) or []))
        except Exception as exc:
            self._log(f"{method} {where} -> 502 injected=no (policy failed: {type(exc).__name__})")
            await self._reply(client, 502, f"sig proxy: the credential policy failed for {host}")
            return False
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
        try:
            upstream, reused = await pool.get(key)
        except _UpstreamFailed as exc:
            self._log(f"{method} {where} -> {exc.status} injected=no ({exc.why})")
            await self._reply(client, exc.status, f"sig proxy: {exc.why}")
            return False

        # 3. the body: buffered when sig adds fields to it (or it is empty), streamed otherwise
        try:
            if client.conn.they_are_waiting_for_100_continue:
                await client.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
            body: bytes | None = None
            if kind is not None or framing in (("none", 0), ("length", 0)):
                body = await self._read_body(client, self._max_inject_body)
                if body is None:
                    upstream.stream.close()
                    self._log(f"{method} {where} -> 413 injected=no (body too large to add fields to)")
                    await self._reply(client, 413, "sig proxy: the body is too large for sig to add fields to")
                    return False
                if kind is not None:
                    changed = h1.inject_body(body, kind, add_body)
                    if changed is not None:
                        body, injected = changed, True
                    else:
                        self._log(f"{method} {where}: body is not a JSON object or form; fields not added")
                if body or kind is not None or framing[0] == "length":
                    framing = ("length", len(body))
        except _Gone:
            upstream.stream.close()
            return False

        try:
            upstream_req = h11.Request(
                method=req.method, target=h1.with_query(target, add_query),
                headers=h1.upstream_request_headers(req.headers, host_value=host_value, add=add_headers,
                                                    framing=framing, upgrade=upgrade))
        except h11.LocalProtocolError:  # an injected value h11 refuses (CR/LF...): it is never sent
            upstream.stream.close()
            self._log(f"{method} {where} -> 502 injected=no (invalid injected header or query)")
            await self._reply(client, 502, f"sig proxy: the credential for {host} makes an invalid header "
                              "or query value; check the provider's apply rules")
            return False

        # 4. send, read the response head; a reused connection that died in between is retried once
        #    when the request is idempotent and its body can be replayed (a POST is never sent twice)
        for attempt in (0, 1):
            try:
                if body is not None:  # head, body and end in one write
                    await upstream.send(upstream_req, *((h11.Data(data=body),) if body else ()),
                                        h11.EndOfMessage())
                else:
                    await upstream.send(upstream_req)
                    try:
                        await self._stream_body(client, upstream)
                    except _Gone as gone:
                        if gone.side == "client":
                            raise
                response = await self._response_head(client, upstream)
                break
            except _Gone as gone:
                upstream.stream.close()
                if gone.side == "client":
                    self._log(f"{method} {where}: client went away ({gone.why})")
                    return False
                if attempt == 0 and reused and body is not None and not gone.timeout \
                        and req.method in _IDEMPOTENT:
                    try:
                        upstream, reused = await pool.get(key)
                    except _UpstreamFailed as exc:
                        self._log(f"{method} {where} -> {exc.status} injected=no ({exc.why})")
                        await self._reply(client, exc.status, f"sig proxy: {exc.why}")
                        return False
                    continue
                status = 504 if gone.timeout else 502
                self._log(f"{method} {where} -> {status} (upstream {gone.why})")
                await self._reply(client, status, f"sig proxy: the upstream {host_value.decode()} {gone.why}")
                return False
            except h11.LocalProtocolError:
                upstream.stream.close()
                self._log(f"{method} {where} -> 502 (could not frame the request)")
                await self._reply(client, 502, "sig proxy: could not forward the request")
                return False

        if injected:
            self.stats["injected"] += 1
        verdict = "yes" if injected else "no"

        # 5a. WebSocket (or other) upgrade accepted: relay the 101, then splice bytes both ways
        if response.status_code == 101:
            self._log(f"{method} {where} -> 101 injected={verdict}")
            try:
                await client.send(h11.InformationalResponse(
                    status_code=101, reason=response.reason,
                    headers=h1.downstream_response_headers(response.headers, upgrade=True)))
            except (h11.LocalProtocolError, _Gone):
                upstream.stream.close()
                return False
            try:
                client_rest, _ = client.conn.trailing_data
                upstream_rest, _ = upstream.conn.trailing_data
                if client_rest:
                    await upstream.stream.send(bytes(client_rest))
                if upstream_rest:
                    await client.stream.send(bytes(upstream_rest))
                await self._splice(client.stream, upstream.stream)
            except OSError:
                pass
            finally:
                upstream.stream.close()
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
                    await client.write(out)
                    out = []
                    event = await upstream.next_event(self._upstream_timeout)
                if isinstance(event, h11.Data):
                    out += client.encode(event)
                elif isinstance(event, h11.EndOfMessage):
                    out += client.encode(h11.EndOfMessage())
                    await client.write(out)
                    break
                else:
                    raise _Gone("upstream", f"unexpected {type(event).__name__}")
        except (_Gone, h11.LocalProtocolError) as exc:
            # The upstream stopped mid-body (or the client left): close the client connection so it sees
            # the cut instead of waiting for bytes that never come.
            upstream.stream.close()
            if isinstance(exc, _Gone) and exc.side == "upstream":
                self.stats["errors"] += 1
                self._log(f"{method} {where}: upstream {exc.why} mid-response; closing the client connection")
            return False

        # 6. keep-alive on both sides
        up = upstream.conn
        if up.our_state is h11.DONE and up.their_state is h11.DONE:
            up.start_next_cycle()
            pool.put(key, upstream)
        else:
            upstream.stream.close()
        conn = client.conn
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            return True
        return False

    # -- tunnels -----------------------------------------------------------------------------------

    async def _splice(self, a: _TCPStream | _TLSStream, b: _TCPStream | _TLSStream) -> None:
        """Copy bytes both ways until one side closes (TCP: half-close and let the other side finish)
        or nothing moves for upstream_timeout."""
        loop = asyncio.get_running_loop()
        last = [loop.time()]
        quiet = self._upstream_timeout

        async def pump(src: _TCPStream | _TLSStream, dst: _TCPStream | _TLSStream) -> None:
            with contextlib.suppress(OSError):
                while True:
                    try:
                        async with asyncio.timeout(quiet):
                            data = await src.recv(READ_SIZE)
                    except TimeoutError:
                        if loop.time() - last[0] < quiet:
                            continue
                        return
                    if not data:
                        dst.write_eof()
                        return
                    last[0] = loop.time()
                    await dst.send(data)

        forward = asyncio.create_task(pump(a, b))
        backward = asyncio.create_task(pump(b, a))
        try:
            _done, pending = await asyncio.wait({forward, backward}, return_when=asyncio.FIRST_COMPLETED)
            if pending and not (a.tls or b.tls):
                await asyncio.wait(pending, timeout=HALF_CLOSE_GRACE)
        finally:
            for task in (forward, backward):
                task.cancel()
            await asyncio.gather(forward, backward, return_exceptions=True)
