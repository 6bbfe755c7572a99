"""The proxy server: an event loop of its own (`loop.py`) serving every client connection in one thread.

It serves plain HTTP proxy requests (absolute-form) and CONNECT, on a loopback TCP port and optionally a
Unix socket (0600). A CONNECT to a host the policy intercepts gets TLS under a leaf of sig's CA (the
ClientHello's SNI, when present, must name the CONNECT host); its HTTP/1.1 requests must name that host
too (Host header). They receive the policy's additions and go upstream over TLS verified against the
system roots plus the provider's CA files. Any other CONNECT is a blind TCP tunnel. Bodies stream both
ways in bounded memory. Keep-alive works on both sides, and WebSocket upgrades are spliced after
injection. While the client's TLS handshake runs, the upstream connection is already being opened.

Cost per request is kept to what the request needs: who the client is (its token and profile), where a
tunnel goes and what it gets (the Route: policy answer, encoded headers, redaction forms) are decided
once per connection, and again only after routes.ROUTE_TTL; a request then costs its parsing, its
rewriting, and one TLS read and write on each side. Log lines per request are written only with
`log_requests` (plus errors and masked answers, always).

Interface for other parts of sig (the sandbox of `sig run --sandbox` among them):

- `ProxyServer(policy, server_context, token=..., upstream_context=..., log=...)`; `open()` binds and
  starts the loop thread (returns the port), `shutdown()` stops it; `await start()` / `await close()` /
  `await serve_forever()` do the same from asyncio.
- `unix_path=`: also listen on that Unix socket (created 0600; requests there authenticate the same way).
- Tokens: the user's token gets `profiles.USER`; `add_token(token, profile)` / `revoke_token(token)`
  register others at run time (a revoked token's connections are closed), and `profiles_folder=` reads
  them from files (profiles.py says how). A profile limits the providers injected, decides what happens
  to other hosts (MITM'd and logged, tunnelled, or refused) and to raw TCP, and swaps per-run
  placeholders into requests to their provider's hosts (blocking them, 403 + `on_blocked`, anywhere else).
- Hooks: `on_injected(providers, method, host, target, status)` for every request sig added credentials
  to (the audit log); `on_blocked(profile, method, host, target)` for every placeholder refused.
- The policy: `intercept(host, port)` and `additions(scheme, host, port)` (may block: they run in a worker
  thread); optional non-blocking `peek_additions(...)` / `peek_intercept(...)` answering from a cache
  ((True, answer) or (False, None)), and `additions_for(scheme, host, port, providers)` for profiles
  that limit providers.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
from typing import TYPE_CHECKING, Any, Protocol

import h11

from ..core.errors import SigError
from ..core.hosts import canonical_host
from . import fast, h1
from .conn import Dialer, Gone, Peer, Pool, Predial, Shared, UpstreamFailed
from .exchange import MAX_INJECT_BODY, MAX_RESPONSE_HEAD, Forwarder
from .loop import INFINITE, Cancelled, Loop
from .profiles import USER, Profile, TokenTable
from .routes import ROUTE_TTL, Route
from .streams import READ_SIZE, BioStream, Stream, nodelay

if TYPE_CHECKING:
    from collections.abc import Callable

    from .exchange import BlockedHook, InjectedHook
    from .streams import AnyStream

SANDBOX_STATUS_HOST = "sig.invalid"  # answered by the proxy itself for sandboxes (sandbox/status.py)
FAST_BODY_MAX = 1024 * 1024  # fast-path request bodies are buffered whole; larger ones stream through h11
CONTEXT_CACHE = 512
_CONNECT_OK = b"HTTP/1.1 200 Connection established\r\n\r\n"  # what h11 writes for that Response


class Additions(Protocol):
    """What the policy tells the server to add for an origin (routing.Additions has it all)."""
    headers: dict[str, str]
    query: dict[str, str]
    body: dict[str, str]
    cafiles: list[str]


class Policy(Protocol):
    """What the server asks for each origin: routing.ConfigPolicy is the real one."""

    def intercept(self, host: str, port: int) -> bool:
        """Whether to terminate TLS to host:port (MITM) rather than tunnel blind."""

    def additions(self, scheme: str, host: str, port: int) -> Additions | None:
        """What to add to requests for scheme://host:port; None when nothing."""


class _CAOnly:
    """Nothing to add, but the extra CA files to verify the upstream with (passthrough after an error)."""

    def __init__(self, cafiles: list[str]) -> None:
        self.headers: dict[str, str] = {}
        self.query: dict[str, str] = {}
        self.body: dict[str, str] = {}
        self.cafiles = cafiles


def _is_loopback(host: str) -> bool:
    from ..core.hosts import is_loopback  # the one loopback test (IP literal in 127/8, ::1, or localhost)

    return is_loopback(host)


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


class _Client:
    """One client connection: what was decided for it once."""

    __slots__ = ("auth", "bound", "peer", "profile", "routes")

    def __init__(self, peer: Peer, bound: Profile | None = None) -> None:
        self.peer = peer
        self.auth: list[bytes] | None = None  # the Proxy-Authorization values last accepted
        self.profile: Profile = bound or USER
        # Came through a sandbox's listening socket: its profile is fixed, whatever token it sends.
        self.bound = bound is not None
        self.routes: dict[tuple[str, str, int], Route] = {}


class Adoption:
    """A sandbox's listening socket served with its run's profile (adopt / release)."""

    __slots__ = ("listener", "profile", "task")

    def __init__(self, listener: socket.socket, profile: Profile) -> None:
        self.listener = listener
        self.profile = profile
        self.task: Any = None


class ProxyServer:
    """`open()` → port (or `await start()`); `shutdown()` (or `await close()`). `stats` counts connections,
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
        on_injected: InjectedHook | None = None,
        on_blocked: BlockedHook | None = None,
        log_requests: bool = True,
        unix_path: str | None = None,
        profiles_folder: str | None = None,
        workers: int = 32,
    ) -> None:
        if not _is_loopback(host):
            raise ValueError(f"the proxy binds loopback addresses only, not {host!r}")
        del policy_threads  # kept for compatibility: blocking policy calls run in the worker pool
        self._policy = policy
        self._server_context = server_context
        self._host = host
        self.port = port
        self._unix_path = unix_path
        self._logf = log
        self._max_head = max_header_bytes
        self._idle_timeout = idle_timeout
        self._header_timeout = header_timeout
        self._upstream_timeout = upstream_timeout
        self._max_connections = max_connections
        self._closing = False
        self.stats: dict[str, int] = {
            "connections": 0, "active": 0, "requests": 0, "injected": 0, "errors": 0,
            "tunnels": 0, "upstream_connections": 0,
        }
        self.tokens = TokenTable(token, profiles_folder, log=self._log)
        self._loop = Loop(workers=workers, log=self._log)
        self._dialer = Dialer(self._loop, upstream_context, connect_timeout=connect_timeout,
                              send_timeout=upstream_timeout, max_head=max(max_header_bytes, MAX_RESPONSE_HEAD),
                              count=self._count)
        self._fwd = Forwarder(self._loop, self._dialer, log=self._log, log_requests=log_requests,
                              stats=self.stats, idle_timeout=idle_timeout, upstream_timeout=upstream_timeout,
                              connect_timeout=connect_timeout, max_inject_body=max_inject_body,
                              on_injected=on_injected, on_blocked=on_blocked)
        self._connect_timeout = connect_timeout
        self._shared = Shared(self._loop)
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._listeners: list[socket.socket] = []
        self._clients: dict[Any, Profile] = {}  # task -> its profile (to close a revoked token's connections)
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------------------

    def open(self) -> int:
        """Bind (OSError for a taken port) and start serving on the loop's own thread."""
        if self._thread is not None:
            return self.port
        listener = socket.create_server((self._host, self.port), backlog=1024)
        listener.setblocking(False)
        self._listeners.append(listener)
        self.port = int(listener.getsockname()[1])
        if self._unix_path is not None:
            self._listeners.append(_unix_listener(self._unix_path))
        for sock in self._listeners:
            self._loop.spawn(self._accept_loop(sock), "accept")
        self._loop.call_later(1.0, self._check_tokens)
        self._loop.prestart(4)
        self._thread = threading.Thread(target=self._run, name="sig-proxy-loop", daemon=True)
        self._thread.start()
        return self.port

    def _run(self) -> None:
        try:
            self._loop.run(on_stop=self._on_stop)
        finally:
            for sock in self._listeners:
                with contextlib.suppress(OSError):
                    sock.close()
            if self._unix_path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self._unix_path)
            self._loop.close()
            self._stopped.set()

    def _on_stop(self) -> None:
        self._closing = True
        self._fwd.closing = True
        for sock in self._listeners:
            with contextlib.suppress(OSError):
                sock.close()
        self._shared.close()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop accepting, end every connection, and wait for the loop's thread (bounded)."""
        self._closing = True
        if self._thread is None:
            return
        self._loop.stop()
        self._stopped.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stopped (True) or `timeout` passed."""
        return self._stopped.wait(timeout)

    async def start(self) -> int:
        """open() for asyncio callers: the port bound."""
        return self.open()

    async def serve_forever(self) -> None:
        """Serve until shutdown(), for asyncio callers (the loop keeps its own thread)."""
        import asyncio

        if self._thread is None:
            self.open()
        await asyncio.get_running_loop().run_in_executor(None, self._stopped.wait)

    async def close(self) -> None:
        """shutdown() for asyncio callers, without blocking their event loop."""
        import asyncio

        await asyncio.get_running_loop().run_in_executor(None, self.shutdown)

    # -- tokens --------------------------------------------------------------------------------------

    def add_token(self, token: str, profile: Profile) -> None:
        """Let `token` use the proxy with `profile` (any thread)."""
        self.tokens.add(token, profile)

    def revoke_token(self, token: str) -> None:
        """`token` stops working; its connections are closed (any thread)."""
        self.tokens.revoke(token)
        if self._thread is not None:
            self._loop.call_soon_threadsafe(self._close_revoked)

    def _check_tokens(self) -> None:
        """Once a second: the profiles folder changed? Then close connections whose token went away."""
        if not self._closing:
            if self.tokens.reload():
                self._close_revoked()
            self._loop.call_later(1.0, self._check_tokens)

    def _close_revoked(self) -> None:
        for task, profile in list(self._clients.items()):
            if not self.tokens.valid(profile):
                self._loop.cancel(task)

    # -- sandboxes (sandbox/, adopt.py) ---------------------------------------------------------------

    def adopt(self, listener: socket.socket, profile: Profile) -> Adoption:
        """Accept on a sandbox's listening socket, every connection bound to `profile` (any thread)."""
        listener.setblocking(False)
        adoption = Adoption(listener, profile)

        def start() -> None:
            adoption.task = self._loop.spawn(self._accept_loop(listener, profile), "sandbox-accept")

        self._loop.call_soon_threadsafe(start)
        return adoption

    def release(self, adoption: Adoption) -> None:
        """The run ended: stop accepting, close its socket and every connection that came through it."""

        def stop() -> None:
            if adoption.task is not None:
                self._loop.cancel(adoption.task)
            with contextlib.suppress(OSError):
                adoption.listener.close()
            for task, profile in list(self._clients.items()):
                if profile is adoption.profile:
                    self._loop.cancel(task)

        self._loop.call_soon_threadsafe(stop)

    async def _sandbox_status(self, client: _Client) -> None:
        """`sig status` / `sig providers` inside a sandbox (sandbox/status.py): names and validity of the
        run's providers, never a value."""
        import json

        statuses = getattr(self._policy, "statuses", None)
        try:
            found = await self._loop.to_thread(statuses, client.profile.providers) if statuses else []
        except Exception as exc:
            self._log(f"sandbox status failed ({type(exc).__name__})")
            await self._fwd.reply(client.peer, 502, "sig proxy: the providers' status is not available")
            return
        await self._fwd.reply(client.peer, 200, json.dumps({"providers": found}),
                              [(b"cache-control", b"no-store")])

    async def _local_refused(self, profile: Profile, route: Route) -> bool:
        """A sandbox may not reach the machine's own addresses except a provider's or an allowed host
        (local_guard.py); the dialer re-checks the addresses it connects to."""
        if not profile.sandbox or route.providers:
            return False
        route.logged = True
        if profile.host_allowed(route.host):
            return False
        route.no_local = True
        from .local_guard import resolves_local

        return await self._loop.to_thread(resolves_local, route.host, route.port)

    # -- helpers -------------------------------------------------------------------------------------

    def _count(self, key: str) -> None:
        self.stats[key] += 1

    def _log(self, message: str) -> None:
        with contextlib.suppress(Exception):
            self._logf(message)

    def _is_self(self, host: str, port: int) -> bool:
        return port == self.port and (host == "localhost" or _is_loopback(host))

    def _passthrough(self, err: SigError) -> bool:
        return bool(getattr(err, "passthrough_on_error", False)
                    or getattr(self._policy, "passthrough_on_error", False))

    async def _policy_call(self, peek: str, method: str, *args: Any) -> Any:
        """The policy's answer: from its non-blocking cache when it has one, else in a worker thread."""
        peeker = getattr(self._policy, peek, None)
        if peeker is not None:
            known, answer = peeker(*args)
            if known:
                return answer
        return await self._loop.to_thread(getattr(self._policy, method), *args)

    async def _context_for(self, host: str) -> ssl.SSLContext:
        """The TLS server context with the leaf for `host` (minting one takes ~1 ms: in a worker)."""
        ctx = self._contexts.get(host)
        if ctx is None:
            ctx = await self._loop.to_thread(self._server_context, host)
            _install_sni_check(ctx)
            if len(self._contexts) >= CONTEXT_CACHE:
                self._contexts.clear()
            self._contexts[host] = ctx
        return ctx

    # -- accepting -----------------------------------------------------------------------------------

    async def _accept_loop(self, listener: socket.socket, bound: Profile | None = None) -> None:
        loop = self._loop
        watch = loop.watch(listener.fileno())
        try:
            while not self._closing:
                try:
                    sock, _addr = listener.accept()
                except BlockingIOError:
                    await loop.wait_readable(watch, INFINITE)
                    continue
                except OSError:
                    if self._closing:
                        return
                    await loop.sleep(0.05)  # EMFILE and the like: back off instead of spinning
                    continue
                self.stats["connections"] += 1
                self.stats["active"] += 1
                try:
                    nodelay(sock)
                    stream = Stream(loop, sock, self._upstream_timeout)
                except OSError:
                    self.stats["active"] -= 1
                    sock.close()
                    continue
                task = loop.spawn(self._on_client(stream, bound), "client")
                self._clients[task] = bound or USER
        except Cancelled:
            return
        finally:
            loop.forget(watch)

    async def _on_client(self, stream: Stream, bound: Profile | None = None) -> None:
        task = self._loop.current
        try:
            if self.stats["active"] > self._max_connections:
                await self._fwd.send_raw(stream, 503, "sig proxy: too many connections")
                return
            await self._serve_proxy(stream, task, bound)
        except (Gone, OSError, UpstreamFailed):
            pass
        except Exception as exc:  # a bug must not take the server down; the text may hold values: not logged
            self.stats["errors"] += 1
            self._log(f"proxy: internal error ({type(exc).__name__})")
        finally:
            # counted out before the close: whoever sees the connection end also sees it gone from stats
            self.stats["active"] -= 1
            self._clients.pop(task, None)
            if self._closing:
                stream.close()
            else:
                try:
                    await stream.linger_close()
                except BaseException:
                    stream.close()
                    raise

    # -- requests on the proxy port --------------------------------------------------------------------

    async def _read_request(self, client: Peer, first_wait: float) -> fast.RequestHead | h11.Request | None:
        """The next request head, or None (connection over; any error answer already sent).

        Waiting for its first byte may take `first_wait`; once bytes arrive the whole head must come
        within header_timeout (slowloris). A plain head comes back as a fast.RequestHead (its bytes
        consumed from the buffer, its body not); anything else as h11's Request."""
        loop = self._loop
        deadline: float | None = loop.now + self._header_timeout if client.buf else None
        stream = client.stream
        try:
            while True:
                if client.conn is None:
                    head = fast.parse_request(client.buf, self._max_head, client.memo) if client.buf else None
                    if head.__class__ is fast.RequestHead:
                        assert isinstance(head, fast.RequestHead)
                        if head.length > FAST_BODY_MAX:
                            client.h11()  # a big body streams through h11 instead of being buffered
                            continue
                        client.head, client.buf = client.buf[:head.size], client.buf[head.size:]
                        return head
                    if head is fast.FALLBACK:
                        client.h11()
                        continue
                    # (with nothing buffered: usually the next request after an answer, not there yet)
                    data = await stream.recv(READ_SIZE, loop.now + first_wait if deadline is None else deadline,
                                             not client.buf)
                    if deadline is None:
                        deadline = loop.now + self._header_timeout
                    if not data:
                        if not client.buf:
                            return None
                        client.h11().receive_data(b"")  # EOF mid-head: h11 words the error
                        continue
                    client.buf = client.buf + data if client.buf else data
                    continue
                conn = client.conn
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.recv(READ_SIZE, loop.now + first_wait if deadline is None else deadline)
                    if deadline is None:
                        deadline = loop.now + self._header_timeout
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
            await self._fwd.send_raw(stream, status, f"sig proxy: {why}")
            return None
        except TimeoutError:
            if deadline is not None:
                self._log("proxy: request head not received in time -> 408")
                await self._fwd.send_raw(stream, 408, "sig proxy: request head not received in time")
            return None
        except OSError:
            return None

    def _authorize(self, client: _Client, headers: list[tuple[bytes, bytes]] | Any) -> Profile | None:
        if client.bound:
            return client.profile  # a sandbox's connection: no token can change what it may do
        values = [v for n, v in headers if n == b"proxy-authorization"]
        if client.auth is not None and values == client.auth:
            return client.profile
        profile = self.tokens.check(values)
        if profile is not None:
            client.auth = values
            if profile is not client.profile:
                client.profile = profile
                client.routes.clear()
                task = self._loop.current
                if task in self._clients:
                    self._clients[task] = profile
        return profile

    async def _serve_proxy(self, stream: Stream, task: Any, bound: Profile | None = None) -> None:
        """A connection to the proxy port: CONNECT, or absolute-form plain HTTP requests (keep-alive)."""
        peer = Peer(stream, h11.SERVER, self._max_head, "client")
        client = _Client(peer, bound)
        pool = Pool(self._loop, self._dialer, shared=self._shared, owner=client.profile)
        fwd = self._fwd
        first_wait = self._header_timeout
        try:
            while True:
                req = await self._read_request(peer, first_wait)
                if req is None:
                    return
                first_wait = self._idle_timeout
                profile = self._authorize(client, req.headers)
                if profile is None:
                    self._log(f"{req.method.decode('ascii', 'replace')} -> 407 (no or wrong proxy token)")
                    await fwd.reply(peer, 407, "sig proxy: proxy authentication required: use the proxy "
                                    "URL with its token (http://sig:<token>@127.0.0.1:<port>)",
                                    [(b"proxy-authenticate", b'Basic realm="sig"')])
                    return
                if req.method == b"CONNECT":
                    pool.close()
                    await self._connect(client, req)
                    return
                pool.rebind(profile)
                method = req.method.decode("ascii", "replace")
                try:
                    scheme, host, port, target = h1.parse_absolute(req.target)
                except h1.BadTarget as exc:
                    self._log(f"{method} {h1.loggable_path(req.target)} -> 400 ({exc})")
                    await fwd.reply(peer, 400, "sig proxy: this is a proxy; send absolute URLs "
                                    "(http://host/path) or CONNECT host:port")
                    return
                if client.bound and host == SANDBOX_STATUS_HOST:
                    await self._sandbox_status(client)
                    return
                if scheme != "http":
                    self._log(f"{method} https://{host} -> 400 (https as a plain proxy request)")
                    await fwd.reply(peer, 400, "sig proxy: send https:// URLs through CONNECT "
                                    "(HTTPS_PROXY), not as plain proxy requests")
                    return
                if self._is_self(host, port):
                    await fwd.reply(peer, 400, "sig proxy: the request would loop back into the proxy")
                    return
                route = await self._route(client, "http", host, port)
                if not await fwd.exchange(peer, req, route, target, pool):
                    return
        finally:
            pool.close()

    # -- decisions -----------------------------------------------------------------------------------

    async def _route(self, client: _Client, scheme: str, host: str, port: int) -> Route:
        """The client connection's Route to scheme://host:port (decided once per ROUTE_TTL)."""
        key = (scheme, host, port)
        route = client.routes.get(key)
        loop = self._loop
        if route is not None and route.until > loop.now:
            return route
        route = await self._decide(client.profile, scheme, host, port)
        if len(client.routes) > 32:
            client.routes.clear()
        client.routes[key] = route
        return route

    async def _decide(self, profile: Profile, scheme: str, host: str, port: int) -> Route:
        until = self._loop.now + ROUTE_TTL
        name = h1.authority(host, port, 443 if scheme == "https" else 80).decode("ascii")
        try:
            if profile.providers is not None and hasattr(self._policy, "additions_for"):
                additions = await self._loop.to_thread(self._policy.additions_for,
                                                       scheme, host, port, profile.providers)
            elif profile.providers is not None and len(profile.providers) == 0:
                additions = None
            else:
                additions = await self._policy_call("peek_additions", "additions", scheme, host, port)
        except SigError as err:
            if not self._passthrough(err):
                self._log(f"{scheme}://{name} -> 502 injected=no ({err.code})")
                text = f"sig proxy: no credentials for {host}: {err.code}: {err.message}"
                if err.hint:
                    text += f"\nfix: {err.hint}"
                return Route.failed(scheme, host, port, until, 502, text)
            self._log(f"{scheme}://{name}: {err.code}; forwarding without credentials")
            # still verify the upstream with the provider's CA (the policy hands it over on the error)
            return Route(scheme, host, port, _CAOnly(list(getattr(err, "cafiles", None) or [])), until)
        except Exception as exc:
            self._log(f"{scheme}://{name} -> 502 injected=no (policy failed: {type(exc).__name__})")
            return Route.failed(scheme, host, port, until, 502,
                                f"sig proxy: the credential policy failed for {host}")
        swaps: dict[bytes, bytes] = {}
        if profile.placeholders and additions is not None:
            values: dict[str, dict[str, str]] = getattr(additions, "values", None) or {}
            for placeholder, (provider, field) in profile.placeholders.items():
                value = values.get(provider, {}).get(field)
                if value is not None:
                    swaps[placeholder] = value.encode("utf-8")
        route = Route(scheme, host, port, additions, until, swaps, frozenset(profile.placeholders), profile.name)
        if (additions is None or not route.providers) and profile.other_hosts == "refuse" \
                and not profile.host_allowed(host):
            return Route.failed(scheme, host, port, until, 403,
                                f"sig proxy: {host} is not a host this client may reach (profile {profile.name})")
        if await self._local_refused(profile, route):
            self._log(f"{scheme}://{name} -> 403 (a local address; profile {profile.name})")
            return Route.failed(scheme, host, port, until, 403,
                                f"sig proxy: {host} is a loopback or link-local address (this machine's own "
                                "services), which the sandbox may not reach; allow it with --allow-host")
        return route

    # -- CONNECT -------------------------------------------------------------------------------------

    async def _intercept(self, profile: Profile, host: str, port: int) -> bool | None:
        """True: MITM; False: blind tunnel; None: refused for this profile."""
        if profile is not USER and (host, port) in (profile.tcp or ()):
            return False
        provider_host = await self._policy_call("peek_intercept", "intercept", host, port)
        if profile.sandbox and not provider_host and not profile.host_allowed(host):
            from .local_guard import is_local_address

            if is_local_address(host):  # names are checked when the route is decided (and dialled)
                return None
        if provider_host or profile is USER:
            return bool(provider_host)
        if profile.other_hosts == "mitm" or profile.placeholders:
            return True
        if profile.other_hosts == "refuse":
            return True if profile.host_allowed(host) else None
        return False if profile.tunnel_allowed(host, port) else None

    async def _connect(self, client: _Client, req: fast.RequestHead | h11.Request) -> None:
        peer = client.peer
        fwd = self._fwd
        try:
            host, port = h1.parse_authority(req.target)
        except h1.BadTarget as exc:
            self._log(f"CONNECT -> 400 (bad target: {exc})")
            await fwd.reply(peer, 400, f"sig proxy: bad CONNECT target ({exc})")
            return
        name = h1.authority(host, port, -1).decode("ascii")
        if self._is_self(host, port):
            await fwd.reply(peer, 400, "sig proxy: the tunnel would loop back into the proxy")
            return
        try:
            intercept = await self._intercept(client.profile, host, port)
        except SigError as err:
            self._log(f"CONNECT {name} -> 502 ({err.code})")
            await fwd.reply(peer, 502, f"sig proxy: {err.code}: {err.message}")
            return
        except Exception as exc:
            self._log(f"CONNECT {name} -> 502 (policy failed: {type(exc).__name__})")
            await fwd.reply(peer, 502, "sig proxy: the interception policy failed")
            return
        if intercept is None:
            self._log(f"CONNECT {name} -> 403 (not allowed for profile {client.profile.name})")
            await fwd.reply(peer, 403, f"sig proxy: {name} is not a target this client may reach")
            return
        if not intercept:
            await self._tunnel(client, host, port, name)
            return
        try:
            ctx = await self._context_for(host)
        except Exception as exc:
            self._log(f"CONNECT {name} -> 502 (no certificate: {type(exc).__name__})")
            await fwd.reply(peer, 502, f"sig proxy: cannot make a certificate for {host}")
            return
        route = await self._route(client, "https", host, port)
        predial = Predial(self._loop, self._dialer, route.key, route.no_local) \
            if route.error is None and not route.invalid and not self._shared.has(client.profile, route.key) \
            else None
        pool = Pool(self._loop, self._dialer, predial, shared=self._shared, owner=client.profile)
        try:
            trailing = await self._established(peer)
            raw = peer.stream
            assert isinstance(raw, Stream)
            deadline = self._loop.now + self._header_timeout
            tls: AnyStream
            sni_mismatch = False
            try:
                if trailing:  # the ClientHello came with the CONNECT head: feed it through memory BIOs
                    bio = BioStream(raw, ctx, host)
                    tls = bio
                    try:
                        await bio.handshake(trailing, deadline)
                    finally:
                        sni_mismatch = bool(getattr(bio.sslobj, "_sig_sni_mismatch", False))
                else:
                    tls = raw
                    try:
                        await raw.start_tls(ctx, server_side=True, deadline=deadline,
                                            attrs={"_sig_expected_host": host})
                    finally:
                        sni_mismatch = bool(getattr(raw.sock, "_sig_sni_mismatch", False))
            except OSError as exc:  # ssl.SSLError and TimeoutError are OSErrors
                if sni_mismatch:
                    why = "the TLS SNI names another host than the CONNECT target"
                    self.stats["errors"] += 1
                elif isinstance(exc, TimeoutError):
                    why = "timed out"
                else:
                    why = getattr(exc, "reason", None) or type(exc).__name__
                self._log(f"CONNECT {name}: TLS with the client failed ({why})")
                return
            # The requests of the tunnel are served by a task of their own: every wait and resume of the
            # request loop then passes through its frames only, not the three above it (this one and
            # its callers). This task waits for it and cleans up after it.
            loop = self._loop
            inner = loop.spawn(self._serve_mitm(client, tls, host, port, pool), "mitm", hand_over=True)
            try:
                await loop.join(inner, deadline=INFINITE)
                if inner.error is not None and not isinstance(inner.error, Cancelled):
                    raise inner.error  # handled as if raised here (see _on_client)
            finally:
                if not inner.done:  # this task was cancelled (server shutdown, a revoked token)
                    loop.cancel(inner)
                tls.close_notify()
        finally:
            pool.close()

    async def _established(self, peer: Peer) -> bytes:
        """Answer a CONNECT with 200; the bytes the client already sent past its head (a ClientHello)."""
        if peer.conn is None:
            await peer.write(_CONNECT_OK)
            trailing, peer.buf = peer.buf, b""
            return trailing
        await peer.send(h11.Response(status_code=200, headers=[], reason=b"Connection established"))
        return bytes(peer.conn.trailing_data[0])

    async def _serve_mitm(self, client: _Client, tls: AnyStream, host: str, port: int, pool: Pool) -> None:
        peer = Peer(tls, h11.SERVER, self._max_head, "client")
        client.peer = peer
        fwd = self._fwd
        loop = self._loop
        checked = None  # the last header block whose Host values named the CONNECT target
        passed: tuple[Any, bytes] | None = None  # the last request head that passed the checks below, its target
        route = await self._route(client, "https", host, port)
        while True:
            req: Any = None
            if peer.conn is None and not peer.buf:
                # The usual wait for the next request, without _read_request's coroutine (one frame less
                # at every wait and resume); it takes over for anything but a head that came whole. As
                # there, the first byte may take the idle timeout, and an idle connection ends quietly.
                stream = peer.stream
                try:
                    await stream.reply_wait(loop.now + self._idle_timeout)  # (Stream.recv's reply wait, inline)
                    data = stream.recv_now(READ_SIZE)
                    if data is None:
                        data = await stream.recv(READ_SIZE, loop.now + self._idle_timeout)
                except OSError:  # (TimeoutError included)
                    return
                if not data:
                    return
                peer.buf = data
                head = fast.parse_request(data, self._max_head, peer.memo)
                if head.__class__ is fast.RequestHead and head.length <= FAST_BODY_MAX:
                    peer.head, peer.buf = data[:head.size], data[head.size:]
                    req = head
            if req is None:
                req = await self._read_request(peer, self._idle_timeout)
            if req is None:
                return
            if passed is not None and req is passed[0]:
                target = passed[1]  # the same head as the last request (fast.parse_request hands it out again)
            else:
                block = getattr(req, "block", None)
                found = await self._tunnel_target(peer, req, host, port, block is None or block != checked)
                if found is None:
                    return
                target = found
                checked, passed = block, (req, target)
            if route.until <= loop.now:
                route = await self._route(client, "https", host, port)
            if not await fwd.exchange(peer, req, route, target, pool):
                return

    async def _tunnel_target(self, peer: Peer, req: Any, host: str, port: int, check_host: bool) -> bytes | None:
        """The origin-form target of a request inside the tunnel to host:port (`check_host`: its Host
        headers not checked yet); None after the error answer when it is a CONNECT or names another
        origin."""
        fwd = self._fwd
        target: bytes = req.target
        if req.method == b"CONNECT":
            self._log(f"CONNECT inside the tunnel to {host}:{port} -> 400")
            await fwd.reply(peer, 400, "sig proxy: CONNECT inside a tunnel is not supported")
            return None
        if target[:1] != b"/" and not (req.method == b"OPTIONS" and target == b"*"):
            method = req.method.decode("ascii", "replace")
            try:
                scheme, t_host, t_port, target = h1.parse_absolute(target)
            except h1.BadTarget:
                self._log(f"{method} https://{host}:{port} -> 400 (bad request target)")
                await fwd.reply(peer, 400, "sig proxy: bad request target")
                return None
            if (scheme, t_host, t_port) != ("https", host, port):
                self._log(f"{method} https://{host}:{port} -> 421 (URL names another origin)")
                await fwd.reply(peer, 421, "sig proxy: the request URL names another origin than "
                                "the CONNECT target")
                return None
        if check_host:
            for name, value in req.headers:
                if name == b"host" and not h1.host_matches(value, host, port, 443):
                    method = req.method.decode("ascii", "replace")
                    self._log(f"{method} https://{host}:{port}{h1.loggable_path(target)} -> 421 "
                              "(Host header names another host)")
                    await fwd.reply(peer, 421, "sig proxy: the Host header names another host than "
                                    "the CONNECT target")
                    return None
        return target

    async def _tunnel(self, client: _Client, host: str, port: int, name: str) -> None:
        peer = client.peer
        fwd = self._fwd
        try:
            upstream = await self._dialer._connect(host, port, self._loop.now + self._connect_timeout)
        except TimeoutError:
            self._log(f"CONNECT {name} -> 504 (tunnel: connect timed out)")
            await fwd.reply(peer, 504, f"sig proxy: connecting to {name} timed out")
            return
        except OSError as exc:
            self._log(f"CONNECT {name} -> 502 (tunnel: {exc.strerror or type(exc).__name__})")
            await fwd.reply(peer, 502, f"sig proxy: cannot connect to {name} "
                            f"({exc.strerror or type(exc).__name__})")
            return
        try:
            self.stats["tunnels"] += 1
            trailing = await self._established(peer)
            fwd.request_line(f"CONNECT {name} -> tunnel")
            if trailing:
                await upstream.send(trailing)
            await fwd.splice(peer.stream, upstream)
        except (OSError, Gone):
            pass
        finally:
            upstream.close()


def _unix_listener(path: str) -> socket.socket:
    """A Unix socket only this user can connect to (0600 from the start: bound under umask 0177)."""
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(path)
        import stat

        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(f"{path} exists and is not a socket")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(1024)
    sock.setblocking(False)
    return sock
