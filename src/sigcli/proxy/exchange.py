"""One proxied request and its response, on the loop: the fast path for plain HTTP/1.1 messages, h11 for
everything else (chunked, Expect, upgrades, 1xx, HEAD, odd or invalid input), response redaction, and the
byte splice of upgraded connections and tunnels.

The fast path (`fast.py`) parses the common heads and writes the common messages directly; a message it
declines goes through h11 exactly as before, with a fresh h11 connection primed to the same state. What
the request gets (credentials, placeholders) comes from the client connection's Route, decided once.

Log lines name method, host, path (never the query), status and whether sig injected; never a header
value. Every request gets one only with `log_requests`; errors and answers sig masked always do.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import h11

from . import fast, h1, redaction
from .conn import Gone, Peer, Pool, UpstreamFailed
from .loop import INFINITE
from .streams import READ_SIZE

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from .conn import Dialer
    from .loop import Loop
    from .routes import Route
    from .streams import AnyStream

    # Called once per request sig added credentials to, with (providers, method, Host value, request target
    # as the client sent it, status the client got): the audit add-on (audit.py). Quick, never raises.
    InjectedHook = Callable[[tuple[str, ...], str, bytes, bytes, int], None]
    # Called once per request refused for carrying a placeholder to a host it does not belong to, with
    # (profile name, method, Host value, request target).
    BlockedHook = Callable[[str, str, bytes, bytes], None]

MAX_INJECT_BODY = 16 * 1024 * 1024  # bodies sig adds fields to are buffered; larger ones get 413
MAX_RESPONSE_HEAD = 256 * 1024
FAST_BODY_MAX = 1024 * 1024  # fast-path request bodies are buffered whole; larger ones stream through h11
HALF_CLOSE_GRACE = 30.0
# A redacted answer is held whole (exact Content-Length) only while its bytes keep coming: when the
# upstream pauses longer than this, what is held leaves and the rest streams (a server-sent event
# stream or a slow download is not held back until it ends).
HOLD_GRACE = 0.02
# An answer up to this size is remembered (with its client copy) on its upstream connection: an identical
# next one (a client polling the same endpoint) is not scanned again. Bounded: a connection keeps one.
ANSWER_MEMO_MAX = 16 * 1024
ROUTINE_EVERY = 60.0  # seconds between two routine lines of one kind for one origin (see routine_line)
_IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"))


def _reframed(headers: h1.Headers, codings: list[bytes], length: int | None) -> h1.Headers:
    """Headers for a body sig changed: decoded (Content-Encoding gone when it had one), its new length
    (None: no Content-Length, h11 frames it: chunked for HTTP/1.1 clients, close for 1.0)."""
    drop = {b"content-length"} | ({b"content-encoding"} if codings else set())
    out = [(n, v) for n, v in headers if n not in drop]
    if length is not None:
        out.append((b"content-length", str(length).encode("ascii")))
    return out


def _same_answer(upstream: Peer, resp: fast.ResponseHead, forms: tuple[bytes, ...]) -> tuple[bytes, str] | None:
    """The client's copy of a whole fast-path answer (and its log note) when it is the same, byte for byte,
    as the last one on this upstream connection (memo.answer, kept by _fast_redacted): a client polling
    the same endpoint is not scanned again. `resp` is handed out again by fast.parse_response only for
    the same head bytes, and its Content-Length fixes the body's length, so equal bodies mean an equal
    answer, whose redaction is the same. None otherwise (its bytes then go the usual way)."""
    last = upstream.memo.answer
    if last is None or last[1] is not resp:
        return None
    buf = upstream.buf
    end = resp.size + resp.length
    if len(buf) < end or not buf.startswith(last[2], resp.size) or not (last[0] is forms or last[0] == forms):
        return None
    upstream.buf = buf[end:] if len(buf) > end else b""
    return last[3], last[4]


def _take_ready(upstream: Peer, end: int) -> None:
    """Add to the upstream's buffer what its stream holds already, without waiting, until `end` bytes are
    there: a body sent right behind its head (a TLS record more) is usually in by now. Nothing there (or
    the end of the stream) leaves the rest to the usual reads, which see the end again."""
    stream = upstream.stream
    try:
        while len(upstream.buf) < end:
            data = stream.recv_now(READ_SIZE)
            if not data:
                return
            upstream.buf += data
    except OSError as exc:
        raise Gone("upstream", f"connection failed ({type(exc).__name__})") from None


def where(route: Route, target: bytes) -> str:
    """`scheme://host[:port]/path` for log lines (no query)."""
    return f"{route.scheme}://{route.host_value.decode('ascii')}{h1.loggable_path(target)}"


class Forwarder:
    """Forwards requests for the server (settings, hooks, counters and logs are the server's)."""

    def __init__(self, loop: Loop, dialer: Dialer, *, log: Callable[[str], None], log_requests: bool,
                 stats: dict[str, int], idle_timeout: float, upstream_timeout: float, connect_timeout: float,
                 max_inject_body: int, on_injected: InjectedHook | None,
                 on_blocked: BlockedHook | None = None) -> None:
        self.loop = loop
        self.dialer = dialer
        self._logf = log
        self.log_requests = log_requests
        self.stats = stats
        self.idle_timeout = idle_timeout
        self.upstream_timeout = upstream_timeout
        self.connect_timeout = connect_timeout
        self.max_inject_body = max_inject_body
        self.on_injected = on_injected
        self.on_blocked = on_blocked
        self.closing = False
        self._routine: dict[tuple[str, str, bytes], list[float]] = {}

    # -- logs and canned answers ---------------------------------------------------------------------

    def log(self, message: str) -> None:
        """A line for the proxy log; a failing log never fails a request."""
        with contextlib.suppress(Exception):
            self._logf(message)

    def request_line(self, message: str, notable: bool = False) -> None:
        """A request's log line: written with log_requests, or when it says something went wrong."""
        if self.log_requests or notable:
            self.log(message)

    def routine_line(self, kind: str, route: Route, message: str | Callable[[], str]) -> None:
        """A request's line about something routine but worth knowing (sig masked an answer; it added
        nothing to a provider's host because of the port). With log_requests every one is written;
        otherwise at most one per kind and origin every ROUTINE_EVERY seconds, the next one saying how
        many were left out, so a busy client cannot grow the log a line per request."""
        if self.log_requests:
            self.log(message if isinstance(message, str) else message())
            return
        now = self.loop.now
        slot = route.log_slots.get(kind)
        if slot is not None and now - slot[0] < ROUTINE_EVERY:
            slot[1] += 1  # (the common case: the slot is the route's own reference to the shared one)
            return
        key = (kind, route.scheme, route.host_value)
        slot = self._routine.get(key)
        if slot is not None:
            route.log_slots[kind] = slot
            if now - slot[0] < ROUTINE_EVERY:
                slot[1] += 1
                return
        if len(self._routine) > 1024:
            self._routine.clear()
        self._routine[key] = route.log_slots[kind] = [now, 0]
        skipped = int(slot[1]) if slot is not None else 0
        text = message if isinstance(message, str) else message()
        self.log(text + (f" [and {skipped} more like it in the last {ROUTINE_EVERY:.0f} s]" if skipped else ""))

    async def reply(self, client: Peer, status: int, text: str,
                    extra: list[tuple[bytes, bytes]] | None = None) -> None:
        """A short text response with `Connection: close`; the caller then drops the connection."""
        if status >= 400:
            self.stats["errors"] += 1
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
            await client.stream.send(b"".join(chunks))

    async def send_raw(self, stream: AnyStream, status: int, text: str) -> None:
        """A canned error answer written straight to `stream` (when there is no h11 state to go
        through); counted as an error."""
        self.stats["errors"] += 1
        with contextlib.suppress(OSError):
            await stream.send(h1.raw_response(status, text))

    # -- one exchange --------------------------------------------------------------------------------

    def _done_hook(self, route: Route, method: str, target: bytes) -> Callable[[int], None] | None:
        """For a request sig adds credentials to: the status → on_injected call (None without a hook)."""
        hook = self.on_injected
        if hook is None:
            return None
        providers, host_value = route.providers, route.host_value
        return lambda status: hook(providers, method, host_value, target, status)

    def exchange(self, client: Peer, req: fast.RequestHead | h11.Request, route: Route, target: bytes,
                 pool: Pool) -> Coroutine[Any, Any, bool]:
        """Forward one request and its response (await it). True when the client connection can carry
        another. A plain function handing out the coroutine that does the work: the usual request's
        _fast_exchange is then one coroutine frame less deep at every wait and resume."""
        self.stats["requests"] += 1
        if route.error is None and not route.logged and req.__class__ is fast.RequestHead:
            assert isinstance(req, fast.RequestHead)
            return self._fast_exchange(client, req, route, target, pool)
        return self._exchange(client, req, route, target, pool)

    async def _exchange(self, client: Peer, req: fast.RequestHead | h11.Request, route: Route, target: bytes,
                        pool: Pool) -> bool:
        if route.error is not None:
            status, text = route.error
            self.request_line(f"{req.method.decode('ascii', 'replace')} {where(route, target)} -> {status} "
                              "injected=no", True)
            await self.reply(client, status, text)
            return False
        if route.logged and not self.log_requests:  # a sandbox's request to a host no provider covers
            self.log(f"{req.method.decode('ascii', 'replace')} {where(route, target)} (sandbox {route.profile})")
        if isinstance(req, fast.RequestHead):
            return await self._fast_exchange(client, req, route, target, pool)
        if h1.get_header(req.headers, b"transfer-encoding") is not None \
                and h1.get_header(req.headers, b"content-length") is not None:
            # RFC 9112 §6.3: a sign of request smuggling; refused before anything is added or sent
            self.request_line(f"{req.method.decode('ascii', 'replace')} {where(route, target)} -> 400 (both "
                              "Content-Length and Transfer-Encoding)", True)
            await self.reply(client, 400, "sig proxy: a request may not have both Content-Length and "
                             "Transfer-Encoding")
            return False
        return await self._h11_exchange(client, req, route, target, pool)

    async def _upstream(self, client: Peer, pool: Pool, route: Route, method: str,
                        target: bytes) -> tuple[Peer, bool] | None:
        """(upstream peer, reused) from the pool; None after telling the client why there is none."""
        try:
            return await pool.get(route.key, self.connect_timeout, route.no_local)
        except UpstreamFailed as exc:
            why = exc.why
            if route.refusal and "not trusted" in why:
                # sig adds nothing here because of the port: say that, not "set caFile"
                why = (f"refusing to send credentials: {route.refusal} (and the certificate of "
                       f"{route.host_value.decode('ascii')} is not trusted without the provider's caFile, "
                       "so nothing was sent)")
            self.request_line(f"{method} {where(route, target)} -> {exc.status} injected=no ({exc.why})", True)
            await self.reply(client, exc.status, f"sig proxy: {why}")
            return None

    async def _fast_exchange(self, client: Peer, req: fast.RequestHead, route: Route, target: bytes,
                             pool: Pool) -> bool:
        """The plain case without h11: a buffered Content-Length body (or none), a Content-Length
        response. A response the fast parser declines is handed to h11 mid-exchange (_to_h11)."""
        method_b = req.method
        method = req.name
        if route.invalid:
            return await self._invalid_injection(client, method, route, target)
        injected = route.injects

        loop = self.loop
        length = req.length
        headers, block = req.headers, req.block
        raw_body = received = b""
        path = target  # what goes upstream; `target` (logs, audit) keeps the client's placeholders
        if route.placeholders:  # checked before anything goes upstream (the body too)
            try:
                raw_body = await client.take(length, loop.now + self.idle_timeout) if length else b""
            except Gone as gone:
                return await self._client_gone(client, gone, method, route, target)
            received = raw_body
            swapped = route.swap(target, raw_body, *(v for _n, v in headers))
            if swapped is None:
                return await self._blocked(client, method, route, target)
            if swapped[0] != target or swapped[1] != raw_body or swapped[2:] != [v for _n, v in headers]:
                injected = True
                path, raw_body = swapped[0], swapped[1]
                headers = [(n, v) for (n, _v), v in zip(headers, swapped[2:], strict=True)]
                block = b""  # (not the bytes these headers came from any more)
            length = 0

        # 1. the upstream connection first: a dead upstream costs the client no upload
        upstream = pool.take_idle(route.key)
        if upstream is not None:
            reused = True
        else:
            got = await self._upstream(client, pool, route, method, target)
            if got is None:
                return False
            upstream, reused = got

        # 2. the body (at most FAST_BODY_MAX, see read_request), with sig's fields when it takes them
        if length:
            if len(client.buf) >= length:
                raw_body, client.buf = client.buf[:length], client.buf[length:]
                received = raw_body
            else:
                try:
                    raw_body = await client.take(length, loop.now + self.idle_timeout)
                except Gone as gone:
                    upstream.stream.close()
                    return await self._client_gone(client, gone, method, route, target)
            received = raw_body
        body = raw_body
        kind = h1.body_kind(headers) if route.add_body else None
        if kind is not None:
            body, added = self._inject_body(body, kind, route.add_body, method, route, target)
            injected = injected or added
        if body or kind is not None or req.framed:  # (placeholders change values only: same names)
            body_length: int | None = len(body)
        else:
            body_length = None
        forms = route.forms if injected else ()
        up_target = h1.with_query(path, route.add_query) if route.add_query else path
        if headers is req.headers:  # as the client sent them: the head may be the one built last time
            message = route.request_head(req, up_target, body_length, bool(forms)) + body
        else:
            message = route.upstream_head(method_b, up_target, headers, body_length, bool(forms), block) + body

        # 3. send, read the response head; a reused connection that died in between is retried once
        #    when the request is idempotent (the body is buffered, so it can be replayed)
        head_request = method_b == b"HEAD"
        resp: fast.ResponseHead | Any = None
        for attempt in (0, 1):
            try:
                try:
                    stream = upstream.stream
                    sent = stream.send_now(message)
                    if sent != len(message):
                        await stream.send(message[sent:])
                except OSError as exc:
                    raise Gone("upstream", f"connection failed ({type(exc).__name__})") from None
                deadline = loop.now + self.upstream_timeout
                while True:
                    if upstream.buf:
                        resp = fast.parse_response(upstream.buf, upstream.max_head, head_request=head_request,
                                                   memo=upstream.memo)
                        if resp is not None:
                            break
                    try:  # (nothing buffered yet: the answer to what was just sent, see Stream.recv)
                        if not upstream.buf:
                            await stream.reply_wait(deadline)
                        data = stream.recv_now(READ_SIZE)
                        if data is None:
                            data = await stream.recv(READ_SIZE, deadline)
                    except TimeoutError:
                        raise Gone("upstream", "timed out", timeout=True) from None
                    except OSError as exc:
                        raise Gone("upstream", f"connection failed ({type(exc).__name__})") from None
                    if not data:
                        if not upstream.buf:
                            raise Gone("upstream", "closed before answering")
                        resp = fast.FALLBACK  # EOF mid-head: h11 words the error
                        break
                    upstream.buf = upstream.buf + data if upstream.buf else data
                break
            except Gone as gone:
                upstream.stream.close()
                if attempt == 0 and reused and not upstream.buf and not gone.timeout and method_b in _IDEMPOTENT:
                    got = await self._upstream(client, pool, route, method, target)
                    if got is None:
                        return False
                    upstream, reused = got
                    continue
                done = self._done_hook(route, method, target) if injected else None
                return await self._upstream_gone(client, gone, method, route, target, done)

        hook = self.on_injected if injected else None
        if injected:
            self.stats["injected"] += 1
        verdict = "yes" if injected else "no"
        if forms and resp.__class__ is fast.ResponseHead:
            try:
                # A repeat that is all here is compared without a coroutine; one whose body is still
                # coming, in _fast_redacted once it is.
                end = resp.size + resp.length
                if len(upstream.buf) < end and resp.length <= ANSWER_MEMO_MAX:
                    _take_ready(upstream, end)
                whole = _same_answer(upstream, resp, forms) if len(upstream.buf) >= end else None
                if whole is None:
                    whole = await self._fast_redacted(client, upstream, resp, forms)
            except Gone as gone:
                upstream.stream.close()
                return await self._upstream_gone(client, gone, method, route, target,
                                                 self._done_hook(route, method, target) if hook else None)
            except redaction.CannotInspect as exc:
                return await self._uninspectable(client, upstream, exc, method, route, target,
                                                 self._done_hook(route, method, target) if hook else None,
                                                 resp.status_code)
            if whole is not None:
                out, masked = whole
                if masked:
                    slot = route.log_slots.get("masked")
                    if slot is not None and loop.now - slot[0] < ROUTINE_EVERY and not self.log_requests:
                        slot[1] += 1  # routine_line's usual case (a line was written lately), without the call
                    else:
                        self.routine_line("masked", route, f"{method} {where(route, target)} -> "
                                          f"{resp.status_code} injected={verdict}{masked}")
                elif self.log_requests:
                    self.log(f"{method} {where(route, target)} -> {resp.status_code} injected={verdict}")
                if hook is not None:
                    hook(route.providers, method, route.host_value, target, resp.status_code)
                try:
                    sent = client.stream.send_now(out)
                    if sent != len(out):
                        await client.stream.send(out[sent:])
                except OSError:
                    upstream.stream.close()
                    return False
                self._keep(pool, route, upstream)
                return True
            resp = fast.FALLBACK  # too big to hold: h11 streams it through the redactor
        if not isinstance(resp, fast.ResponseHead):
            # 1xx, HEAD, chunked, close-delimited, odd: h11 takes over, primed to where we are
            done = self._done_hook(route, method, target) if hook else None
            try:
                self._to_h11(client, upstream, req, received, up_target, message)
                response = await self._response_head(client, upstream, forms)
            except (Gone, h11.ProtocolError) as gone:
                upstream.stream.close()
                if not isinstance(gone, Gone) or gone.side == "client":
                    return False
                return await self._upstream_gone(client, gone, method, route, target, done)
            return await self._relay(client, upstream, response, method, route, target, verdict, pool, done,
                                     forms)

        # 4. the response: head plus what body arrived in one write, then the rest as it comes
        if route.refusal:
            self.routine_line("refused", route, lambda: f"{method} {where(route, target)} -> {resp.status_code} "
                              f"injected={verdict} ({route.refusal})")
        elif self.log_requests:
            self.log(f"{method} {where(route, target)} -> {resp.status_code} injected={verdict}")
        if hook is not None:
            hook(route.providers, method, route.host_value, target, resp.status_code)
        buf = upstream.buf
        remaining = resp.length
        end = resp.size + remaining
        if len(buf) >= end:  # the usual case: all of it is here
            out = fast.downstream_head_bytes(buf, resp) + buf[resp.size:end]
            upstream.buf = buf[end:]
            remaining = 0
        else:
            out = fast.downstream_head_bytes(buf, resp) + buf[resp.size:]
            upstream.buf = b""
            remaining -= len(buf) - resp.size
        try:
            await client.write(out)
            deadline = loop.now + self.upstream_timeout
            while remaining:
                try:
                    data = await upstream.stream.recv(min(READ_SIZE, remaining), deadline)
                except TimeoutError:
                    raise Gone("upstream", "timed out", timeout=True) from None
                except OSError as exc:
                    raise Gone("upstream", f"connection failed ({type(exc).__name__})") from None
                if not data:
                    raise Gone("upstream", "peer closed connection without sending complete message body: "
                               f"received {resp.length - remaining} bytes, expected {resp.length}")
                remaining -= len(data)
                await client.write(data)
                deadline = loop.now + self.upstream_timeout
        except Gone as exc:
            # The upstream stopped mid-body (or the client left): close the client connection so it sees
            # the cut instead of waiting for bytes that never come.
            upstream.stream.close()
            if exc.side == "upstream":
                self.stats["errors"] += 1
                self.log(f"{method} {where(route, target)}: upstream {exc.why} mid-response; closing the "
                         "client connection")
            return False

        # 5. keep-alive on both sides (the fast path took no Connection: close on either)
        self._keep(pool, route, upstream)
        return True

    def _line(self, route: Route, message: str, note: str, kind: str = "refused") -> None:
        """A response's log line: routine (rate-limited) when it carries a note, else only with
        log_requests."""
        if note:
            self.routine_line(kind, route, message)
        elif self.log_requests:
            self.log(message)

    def _keep(self, pool: Pool, route: Route, upstream: Peer) -> None:
        if not upstream.session_kept:
            self.dialer.keep_session(route.key, upstream)
        pool.put(route.key, upstream)

    async def _fast_redacted(self, client: Peer, upstream: Peer, resp: fast.ResponseHead,
                             forms: tuple[bytes, ...]) -> tuple[bytes, str] | None:
        """A fast-path response held whole (body up to redaction.BUFFER_MAX): (the client's message,
        a note for the log when something was masked). The upstream's bytes are consumed only then;
        None leaves them for h11 to stream (too big, or an encoding sig must refuse there)."""
        end = resp.size + resp.length
        if resp.length > redaction.BUFFER_MAX:
            return None
        memo = upstream.memo
        if memo.block == resp.block and memo.codings is not None:
            codings = memo.codings
        else:
            codings = redaction.content_codings(resp.headers)
            if memo.block == resp.block:
                memo.codings = codings
        if codings and redaction.undecodable(codings) is not None:
            return None
        if len(upstream.buf) < end:
            while len(upstream.buf) < end:
                try:  # the rest of the body, if it keeps coming (a read consumes only what it returns)
                    data = await upstream.stream.recv(READ_SIZE, self.loop.now + HOLD_GRACE)
                except TimeoutError:
                    return None  # the upstream paused: h11 streams the rest (nothing was consumed)
                except OSError as exc:
                    raise Gone("upstream", f"connection failed ({type(exc).__name__})") from None
                if not data:
                    raise Gone("upstream", "closed mid-body")
                upstream.buf += data
            # (one that was all here at the call: _fast_exchange compared it already)
            same = _same_answer(upstream, resp, forms)
            if same is not None:
                return same
        buf = upstream.buf
        size = resp.size
        if not codings:
            detector = client.detector
            if detector is None:
                detector = client.detector = redaction.Detector()
            message = buf if len(buf) == end else buf[:end]  # (usually all of buf: no copy)
            spans = detector.spans(forms, message)  # one pass over head and body
            if not spans:  # the usual case: nothing found
                upstream.buf = buf[end:]
                out = fast.downstream_head(resp) + buf[size:end] if resp.hop else message
                if resp.length <= ANSWER_MEMO_MAX:
                    memo.answer = (forms, resp, buf[size:end], out, "")
                return out, ""
            if spans[0][0] >= size:
                # only the body held a secret: the head as it came, with the new length
                masked = redaction.mask_spans(message, spans)
                assert masked is not None
                upstream.buf = buf[end:]
                new_body = masked[size:]
                out = fast.with_length(buf[:size], resp, len(new_body), upstream.memo) + new_body
                if resp.length <= ANSWER_MEMO_MAX:
                    memo.answer = (forms, resp, buf[size:end], out, " (masked in the body)")
                return out, " (masked in the body)"
        body = buf[size:end]
        headers = h1.downstream_response_headers(resp.headers)
        got = redaction.whole(forms, codings, body)
        if got is None:
            return None
        out, changed = got
        headers, headers_changed = redaction.redact_headers(forms, headers)
        upstream.buf = buf[end:]
        if not changed:  # the body as it came (still compressed), with its own Content-Length
            note = " (masked in headers)" if headers_changed else ""
            return fast.response_bytes(resp.status_code, resp.reason, headers) + body, note
        return (fast.response_bytes(resp.status_code, resp.reason, _reframed(headers, codings, len(out)))
                + out, " (masked in the body" + (" and headers)" if headers_changed else ")"))

    async def _uninspectable(self, client: Peer, upstream: Peer, exc: redaction.CannotInspect, method: str,
                             route: Route, target: bytes, done: Callable[[int], None] | None,
                             status: int) -> bool:
        """An answer sig cannot check for the secrets it injected: never passed on (nothing was written
        to the client yet)."""
        upstream.stream.close()
        self.request_line(f"{method} {where(route, target)} -> 502 (upstream answered {status}; cannot check "
                          f"it for secrets: {exc})", True)
        if done is not None:
            done(502)
        await self.reply(client, 502, f"sig proxy: the answer of {route.host} could not be checked for the "
                         f"credentials sig added ({exc}), so it was not passed on; set redactResponses: false "
                         "on the provider to pass its answers through unchecked")
        return False

    def _to_h11(self, client: Peer, upstream: Peer, req: fast.RequestHead, raw_body: bytes,
                up_target: bytes, message: bytes) -> None:
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
                raise Gone("client", f"unexpected {type(event).__name__}")
        else:
            raise Gone("client", "request not complete")
        # prime the upstream's h11 with the request we sent (parsed back from its bytes: what we wrote)
        sent = h11.Connection(h11.SERVER, max_incomplete_event_size=len(message) + 1)
        sent.receive_data(message)
        request = sent.next_event()
        assert isinstance(request, h11.Request)
        up = upstream.h11()
        up.send(h11.Request(method=req.method, target=up_target, headers=request.headers))
        while True:
            event = sent.next_event()
            if isinstance(event, h11.Data):
                up.send(event)
            elif isinstance(event, h11.EndOfMessage) or event is h11.NEED_DATA:
                up.send(h11.EndOfMessage())
                break

    async def _h11_exchange(self, client: Peer, req: h11.Request, route: Route, target: bytes,
                            pool: Pool) -> bool:
        assert client.conn is not None
        method = req.method.decode("ascii", "replace")
        loop = self.loop
        injected = route.injects
        upgrade = h1.is_upgrade(req.headers)
        framing = h1.request_framing(req.headers)
        kind = h1.body_kind(req.headers) if route.add_body else None
        if route.invalid:
            return await self._invalid_injection(client, method, route, target)

        early: bytes | None = None
        if route.placeholders:  # the whole request is checked before anything goes upstream
            try:
                if client.conn.they_are_waiting_for_100_continue:
                    await client.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
                early = await self._read_body(client, self.max_inject_body)
            except Gone as gone:
                return await self._client_gone(client, gone, method, route, target)
            if early is None:
                self.request_line(f"{method} {where(route, target)} -> 413 (body too large to check)", True)
                await self.reply(client, 413, "sig proxy: the body is too large for sig to check")
                return False
            if route.swap(target, early, *(v for _n, v in req.headers)) is None:
                return await self._blocked(client, method, route, target)

        # 2. the upstream connection, before 100 Continue: a dead upstream costs the client no upload
        got = await self._upstream(client, pool, route, method, target)
        if got is None:
            return False
        upstream, reused = got
        upstream.h11()

        # 3. the body: buffered when sig adds fields to it (or it is empty), streamed otherwise
        try:
            if early is None and client.conn.they_are_waiting_for_100_continue:
                await client.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
            body: bytes | None = early
            if early is None and (kind is not None or framing in (("none", 0), ("length", 0))):
                body = await self._read_body(client, self.max_inject_body)
                if body is None:
                    upstream.stream.close()
                    self.request_line(f"{method} {where(route, target)} -> 413 injected=no (body too large to "
                                      "add fields to)", True)
                    await self.reply(client, 413, "sig proxy: the body is too large for sig to add fields to")
                    return False
            if body is not None:
                if kind is not None:
                    body, added = self._inject_body(body, kind, route.add_body, method, route, target)
                    injected = injected or added
                if body or kind is not None or framing[0] == "length":
                    framing = ("length", len(body))
        except Gone as gone:
            upstream.stream.close()
            return await self._client_gone(client, gone, method, route, target)

        req_headers = list(req.headers)
        path = target  # what goes upstream; `target` (logs, audit) keeps the client's placeholders
        if route.placeholders and body is not None:
            swapped = route.swap(target, body, *(v for _n, v in req_headers))
            if swapped is None:
                upstream.stream.close()
                return await self._blocked(client, method, route, target)
            if swapped[0] != target or swapped[1] != body or swapped[2:] != [v for _n, v in req_headers]:
                injected = True
                path, body = swapped[0], swapped[1]
                req_headers = [(n, v) for (n, _v), v in zip(req_headers, swapped[2:], strict=True)]
                if framing[0] == "length":
                    framing = ("length", len(body))
        forms = route.forms if injected else ()
        add = {n.decode("latin-1"): v.decode("utf-8") for n, v in route.add_headers}
        try:
            up_headers = h1.upstream_request_headers(req_headers, host_value=route.host_value, add=add,
                                                     framing=framing, upgrade=upgrade)
            if forms:
                up_headers = redaction.limit_accept_encoding(up_headers)
            upstream_req = h11.Request(method=req.method, target=h1.with_query(path, route.add_query),
                                       headers=up_headers)
        except h11.LocalProtocolError:  # an injected value h11 refuses (CR/LF...): it is never sent
            upstream.stream.close()
            return await self._invalid_injection(client, method, route, target)

        # 4. send, read the response head; a reused connection that died in between is retried once
        #    when the request is idempotent and its body can be replayed (a POST is never sent twice)
        done = self._done_hook(route, method, target) if injected else None
        for attempt in (0, 1):
            try:
                if body is not None:  # head, body and end in one write
                    await upstream.send(upstream_req, *((h11.Data(data=body),) if body else ()),
                                        h11.EndOfMessage())
                else:
                    await upstream.send(upstream_req)
                    try:
                        await self._stream_body(client, upstream)
                    except Gone as gone:
                        if gone.side == "client":
                            raise
                response = await self._response_head(client, upstream, forms)
                break
            except Gone as gone:
                upstream.stream.close()
                if gone.side == "client":
                    return await self._client_gone(client, gone, method, route, target)
                if attempt == 0 and reused and body is not None and not gone.timeout \
                        and req.method in _IDEMPOTENT:
                    got = await self._upstream(client, pool, route, method, target)
                    if got is None:
                        return False
                    upstream, reused = got
                    upstream.h11()
                    continue
                return await self._upstream_gone(client, gone, method, route, target, done)
            except h11.LocalProtocolError:
                upstream.stream.close()
                self.request_line(f"{method} {where(route, target)} -> 502 (could not frame the request)", True)
                await self.reply(client, 502, "sig proxy: could not forward the request")
                return False

        if injected:
            self.stats["injected"] += 1
        del loop
        return await self._relay(client, upstream, response, method, route, target,
                                 "yes" if injected else "no", pool, done, forms)

    async def _client_gone(self, client: Peer, gone: Gone, method: str, route: Route, target: bytes) -> bool:
        """The client's request body failed: a malformed one gets 400 (the upstream, which may have had
        the head, saw its connection closed mid-request, so it acts on nothing); a client that left or
        went silent gets nothing."""
        if gone.malformed:
            self.request_line(f"{method} {where(route, target)} -> 400 (malformed request body: {gone.why})",
                              True)
            await self.reply(client, 400, "sig proxy: malformed request body")
        else:
            self.request_line(f"{method} {where(route, target)}: client went away ({gone.why})")
        return False

    async def _upstream_gone(self, client: Peer, gone: Gone, method: str, route: Route, target: bytes,
                             done: Callable[[int], None] | None = None) -> bool:
        status = 504 if gone.timeout else 502
        self.request_line(f"{method} {where(route, target)} -> {status} (upstream {gone.why})", True)
        if done is not None:
            done(status)
        await self.reply(client, status, f"sig proxy: the upstream {route.host_value.decode()} {gone.why}")
        return False

    async def _blocked(self, client: Peer, method: str, route: Route, target: bytes) -> bool:
        """A request carrying a placeholder to a host it does not belong to: refused (403) and reported to
        the on_blocked hook (the audit log: an attempted exfiltration)."""
        self.request_line(f"{method} {where(route, target)} -> 403 (a placeholder of profile {route.profile} "
                          "sent to a host it does not belong to)", True)
        hook = self.on_blocked
        if hook is not None:
            with contextlib.suppress(Exception):
                hook(route.profile, method, route.host_value, target)
        await self.reply(client, 403, "sig proxy: refused: this request carries a placeholder for a credential "
                         "that does not belong to this host")
        return False

    async def _invalid_injection(self, client: Peer, method: str, route: Route, target: bytes) -> bool:
        """An injected value that is no valid header or query (CR/LF...): it is never sent."""
        self.request_line(f"{method} {where(route, target)} -> 502 injected=no (invalid injected header or "
                          "query)", True)
        await self.reply(client, 502, f"sig proxy: the credential for {route.host} makes an invalid header "
                         "or query value; check the provider's apply rules")
        return False

    def _inject_body(self, body: bytes, kind: Any, add_body: dict[str, str], method: str, route: Route,
                     target: bytes) -> tuple[bytes, bool]:
        changed = h1.inject_body(body, kind, add_body)
        if changed is None:
            self.request_line(f"{method} {where(route, target)}: body is not a JSON object or form; fields "
                              "not added", True)
            return body, False
        return changed, True

    async def _read_body(self, client: Peer, limit: int) -> bytes | None:
        """The whole request body (None when over `limit`)."""
        parts: list[bytes] = []
        size = 0
        while True:
            event = await client.next_event(self.loop.now + self.idle_timeout)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > limit:
                    return None
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            else:
                raise Gone("client", f"unexpected {type(event).__name__}")

    async def _stream_body(self, client: Peer, upstream: Peer) -> None:
        """Client body → upstream, chunk by chunk. An upstream write failure stops the copy; the caller
        then tries to read the upstream's (early) answer."""
        while True:
            event = await client.next_event(self.loop.now + self.idle_timeout)
            if isinstance(event, h11.Data):
                await upstream.send(event)
            elif isinstance(event, h11.EndOfMessage):
                await upstream.send(h11.EndOfMessage())
                return
            else:
                raise Gone("client", f"unexpected {type(event).__name__}")

    async def _response_head(self, client: Peer, upstream: Peer, forms: tuple[bytes, ...] = ()) -> Any:
        """The upstream's final response (or its 101); other 1xx are relayed (their headers redacted),
        100 is dropped (the proxy already answered the client's Expect itself)."""
        while True:
            event = await upstream.next_event(self.loop.now + self.upstream_timeout)
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    return event
                if event.status_code != 100:
                    headers = h1.downstream_response_headers(event.headers)
                    if forms:
                        headers = redaction.redact_headers(forms, headers)[0]
                    with contextlib.suppress(h11.LocalProtocolError):
                        await client.send(h11.InformationalResponse(
                            status_code=event.status_code, reason=event.reason, headers=headers))
                continue
            if isinstance(event, h11.Response):
                return event
            raise Gone("upstream", "closed before answering" if isinstance(event, h11.ConnectionClosed)
                       else f"unexpected {type(event).__name__}")

    async def _relay(self, client: Peer, upstream: Peer, response: Any, method: str, route: Route,
                     target: bytes, verdict: str, pool: Pool, done: Callable[[int], None] | None = None,
                     forms: tuple[bytes, ...] = ()) -> bool:
        """The h11 side of a response (both peers in h11 mode): an upgrade, or head + streamed body."""
        if forms and response.status_code != 101:
            return await self._relay_redacted(client, upstream, response, method, route, target, verdict,
                                              pool, done, forms)
        if done is not None:
            done(response.status_code)
        note = f" ({route.refusal})" if route.refusal else ""
        # 5a. WebSocket (or other) upgrade accepted: relay the 101, then splice bytes both ways. Its head
        #     is redacted; what flows after it is not (frames would need rewriting: see README)
        if response.status_code == 101:
            self._line(route, f"{method} {where(route, target)} -> 101 injected={verdict}{note}", note)
            headers = h1.downstream_response_headers(response.headers, upgrade=True)
            if forms:
                headers = redaction.redact_headers(forms, headers)[0]
            try:
                await client.send(h11.InformationalResponse(status_code=101, reason=response.reason,
                                                            headers=headers))
            except (h11.LocalProtocolError, Gone):
                upstream.stream.close()
                return False
            try:
                assert client.conn is not None and upstream.conn is not None
                client_rest, _ = client.conn.trailing_data
                upstream_rest, _ = upstream.conn.trailing_data
                if client_rest:
                    await upstream.stream.send(bytes(client_rest))
                if upstream_rest:
                    await client.stream.send(bytes(upstream_rest))
                await self.splice(client.stream, upstream.stream)
            except OSError:
                pass
            finally:
                upstream.stream.close()
            return False

        # 5b. an ordinary response: head, then the body streamed with backpressure
        self._line(route, f"{method} {where(route, target)} -> {response.status_code} injected={verdict}{note}",
                   note)
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
                    event = await upstream.next_event(self.loop.now + self.upstream_timeout)
                if isinstance(event, h11.Data):
                    out += client.encode(event)
                elif isinstance(event, h11.EndOfMessage):
                    out += client.encode(h11.EndOfMessage())
                    await client.write(out)
                    break
                else:
                    raise Gone("upstream", f"unexpected {type(event).__name__}")
        except (Gone, h11.LocalProtocolError) as exc:
            # The upstream stopped mid-body (or the client left): close the client connection so it sees
            # the cut instead of waiting for bytes that never come.
            upstream.stream.close()
            if isinstance(exc, Gone) and exc.side == "upstream":
                self.stats["errors"] += 1
                self.log(f"{method} {where(route, target)}: upstream {exc.why} mid-response; closing the "
                         "client connection")
            return False

        return self._next_cycle(client, upstream, route, pool)

    async def _relay_redacted(self, client: Peer, upstream: Peer, response: Any, method: str, route: Route,
                              target: bytes, verdict: str, pool: Pool, done: Callable[[int], None] | None,
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
            return await self._uninspectable(client, upstream, exc, method, route, target, done, status)
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
        pending: list[bytes] = []  # what emit() produced, written by the caller's next await

        def head(frame_headers: h1.Headers) -> list[bytes]:
            return client.encode(h11.Response(status_code=status, reason=response.reason, headers=frame_headers))

        def stream(piece: bytes) -> None:
            """Queue a piece of the re-framed body (the head first)."""
            nonlocal written
            if not written:
                pending.extend(head(_reframed(headers, codings, None)))
                written = True
            if piece:
                pending.extend(client.encode(h11.Data(data=piece)))

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

        async def drain() -> None:
            if pending:
                data = b"".join(pending)
                pending.clear()
                await client.write(data)

        try:
            if flt is None:
                self._line(route, f"{method} {where(route, target)} -> {status} injected={verdict}{note}", note,
                           "masked")
                await client.write(head(headers))
                written = True
            while True:
                event = upstream.poll()
                if event is h11.NEED_DATA:
                    if holding and not await upstream.stream.readable(HOLD_GRACE):
                        let_go()  # the upstream paused (an event stream, a slow one): stream from here
                        await drain()
                    event = await upstream.next_event(self.loop.now + self.upstream_timeout)
                if isinstance(event, h11.Data):
                    if flt is None:
                        continue  # h11 yields none for a body-less response; nothing to pass on
                    data = bytes(event.data)
                    if holding:
                        raw.append(data)
                        size[0] += len(data)
                    for piece in flt.feed(data):
                        emit(piece)
                        await drain()
                    if holding and size[0] > redaction.BUFFER_MAX:
                        let_go()
                    await drain()
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    raise Gone("upstream", f"unexpected {type(event).__name__}")
            if flt is not None:
                for piece in flt.finish():
                    emit(piece)
                    await drain()
                if holding:
                    body = b"".join(out)
                    original = b"".join(raw)
                    changed = flt.changed if flt.decoded else body != original
                    if changed:
                        note = " (masked in the body" + (" and headers)" if headers_changed else ")")
                        message = head(_reframed(headers, codings, len(body)))
                    else:
                        message, body = head(headers), original
                    if body:
                        message += client.encode(h11.Data(data=body))
                    self._line(route, f"{method} {where(route, target)} -> {status} injected={verdict}{note}",
                               note, "masked")
                    await client.write(message + client.encode(h11.EndOfMessage()))
                    written = True
                    return self._next_cycle(client, upstream, route, pool)
                stream(b"")
                await drain()
                masked = flt.changed or headers_changed
                self._line(route, f"{method} {where(route, target)} -> {status} injected={verdict} (streamed"
                           + (", masked)" if masked else ")"), "masked" if masked else "", "masked")
            await client.write(client.encode(h11.EndOfMessage()))
        except redaction.CannotInspect as exc:
            if not written:
                return await self._uninspectable(client, upstream, exc, method, route, target, None, status)
            upstream.stream.close()
            self.stats["errors"] += 1
            self.log(f"{method} {where(route, target)}: cannot check the rest of the answer for secrets ({exc}); "
                     "closing the client connection")
            return False
        except (Gone, h11.LocalProtocolError) as exc:
            upstream.stream.close()
            if isinstance(exc, Gone) and exc.side == "upstream":
                if not written:  # nothing of it reached the client yet: say what happened
                    return await self._upstream_gone(client, exc, method, route, target)
                self.stats["errors"] += 1
                self.log(f"{method} {where(route, target)}: upstream {exc.why} mid-response; closing the client "
                         "connection")
            return False
        return self._next_cycle(client, upstream, route, pool)

    def _next_cycle(self, client: Peer, upstream: Peer, route: Route, pool: Pool) -> bool:
        """6. keep-alive on both sides; their next messages go back to the fast path."""
        up = upstream.conn
        assert up is not None
        if up.our_state is h11.DONE and up.their_state is h11.DONE:
            up.start_next_cycle()
            upstream.release()
            self._keep(pool, route, upstream)
        else:
            upstream.stream.close()
        conn = client.conn
        assert conn is not None
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            client.release()
            return True
        return False

    # -- tunnels -------------------------------------------------------------------------------------

    async def splice(self, a: AnyStream, b: AnyStream) -> None:
        """Copy bytes both ways until one side closes (TCP: half-close and let the other side finish)
        or nothing moves for upstream_timeout. One task per direction; this one waits for them."""
        loop = self.loop
        quiet = self.upstream_timeout
        last = [loop.now]

        async def pump(src: AnyStream, dst: AnyStream) -> None:
            try:
                while not self.closing:
                    try:
                        data = await src.recv(READ_SIZE, last[0] + quiet)
                    except TimeoutError:
                        if loop.now - last[0] < quiet:
                            continue
                        return
                    if not data:
                        dst.write_eof()
                        return
                    last[0] = loop.now
                    await dst.send(data)
            except OSError:
                return

        forward = loop.spawn(pump(a, b), "splice")
        backward = loop.spawn(pump(b, a), "splice")
        try:
            await loop.join(forward, backward, deadline=INFINITE)  # the first direction to end
            if not (a.tls or b.tls):  # TCP: the other direction may go on after a half-close
                other = backward if forward.done else forward
                with contextlib.suppress(TimeoutError):
                    await loop.join(other, deadline=loop.now + HALF_CLOSE_GRACE)
        finally:
            for task in (forward, backward):
                loop.cancel(task)

