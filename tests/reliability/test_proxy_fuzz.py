"""The proxy's HTTP/1.1 request parsing, fuzzed with hypothesis through the real `sig proxy` daemon over
sockets: request lines, headers (duplicates, Content-Length with Transfer-Encoding, obs-fold, control
bytes, huge ones), bodies (Content-Length, chunked, broken chunking), both as plain proxy requests and
inside an intercepted CONNECT tunnel.

Every input must get a clear answer in bounded time (an HTTP/1.1 status line, within READ_LIMIT_S), the
daemon must log no internal error and keep serving, whatever it forwards must be valid HTTP/1.1 to a
strict parser (h11 at the upstream), and a request the proxy refused must not reach the upstream with
the credential: each example carries a marker header, and the upstream's bytes are searched for it.

The examples are derandomized (the same inputs every run, so the suite is green or red for a reason);
SIG_FUZZ_EXAMPLES=N runs N fresh random examples per test instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from harness.proxyrig import ProxyDaemon, ScriptedUpstream  # noqa: E402

pytestmark = pytest.mark.timeout(300)

TOKEN = "tok-FUZZ-s3cr3t-5150"
READ_LIMIT_S = 20.0  # a bound, not an expected time: the proxy's own limits are 15 s (header timeout)
_RANDOM = int(os.environ.get("SIG_FUZZ_EXAMPLES", "0"))
_SETTINGS = settings(max_examples=_RANDOM or 250, derandomize=not _RANDOM, deadline=None, database=None,
                     suppress_health_check=list(HealthCheck))
_STATUS = re.compile(rb"(?:^|\r\n)HTTP/1\.1 ([0-9]{3}) ")


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProxyDaemon, ScriptedUpstream,
                                                                     ScriptedUpstream]]:
    plain = ScriptedUpstream(tls=False)
    tls = ScriptedUpstream(tls=True)
    daemon = ProxyDaemon(tmp_path_factory.mktemp("fuzz"), tls.url, tls.ca_path, TOKEN,
                         more=(("plain", plain.url, TOKEN, None),))
    try:
        yield daemon, plain, tls
    finally:
        daemon.stop()
        plain.close()
        tls.close()


# -- strategies ---------------------------------------------------------------------------------------

_METHODS = [b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE", b"CONNECT"]
_VERSIONS = [b"HTTP/1.1"] * 6 + [b"HTTP/1.0", b"HTTP/2.0", b"http/1.1", b"HTTP/1.10", b"HTTP/0.9", b"",
                                 b"HTTP/1.1 x", b"HTTP/1"]
_CL = [b"0", b"5", b"17", b"-1", b"abc", b"99999999999999999999", b"3, 3", b" 5", b"+5", b"0x5", b"1e3", b""]
_TE = [b"chunked", b"Chunked", b"gzip", b"chunked, chunked", b"gzip, chunked", b"identity", b"chunked;q=1",
       b"x-chunked", b""]
_SPECIAL = [(b"expect", b"100-continue"), (b"connection", b"close"), (b"connection", b"keep-alive, x-hop"),
            (b"connection", b"upgrade"), (b"upgrade", b"websocket"), (b"x-hop", b"1"), (b"te", b"trailers"),
            (b"content-type", b"application/json"), (b"content-type", b"application/x-www-form-urlencoded"),
            (b"proxy-connection", b"keep-alive"), (b"authorization", b"Bearer client-own")]


def _header_item() -> st.SearchStrategy[bytes]:
    name = st.sampled_from([b"x-a", b"host", b"content-length", b"transfer-encoding", b"x-y"]) | \
        st.binary(min_size=0, max_size=10)
    value = st.binary(max_size=24)
    return st.one_of(
        st.sampled_from(_CL).map(lambda v: b"Content-Length: " + v),
        st.sampled_from(_TE).map(lambda v: b"Transfer-Encoding: " + v),
        st.sampled_from(_SPECIAL).map(lambda nv: nv[0] + b": " + nv[1]),
        st.tuples(name, value).map(lambda nv: nv[0] + b": " + nv[1]),
        st.tuples(name, value).map(lambda nv: nv[0] + b":" + nv[1]),
        st.binary(max_size=30),  # not a header line at all
        st.just(b" folded continuation"),  # obs-fold
        st.sampled_from([1000, 70_000, 300_000]).map(lambda n: b"X-Big: " + b"a" * n),  # over 64 KiB: 431
        st.sampled_from([200, 3000]).map(lambda n: b"\r\n".join(b"X-Many-%d: v" % i for i in range(n))),
    )


def _chunked() -> st.SearchStrategy[bytes]:
    chunk = st.tuples(st.binary(max_size=12), st.sampled_from(["ok", "bad-size", "no-crlf", "ext", "huge"]))

    def build(parts: list[tuple[bytes, str]], end: bytes) -> bytes:
        out = b""
        for data, how in parts:
            size = b"%x" % len(data)
            if how == "bad-size":
                size = b"zz"
            elif how == "ext":
                size += b";name=value"
            elif how == "huge":
                size = b"ffffffffffffffffff"
            out += size + b"\r\n" + data + (b"" if how == "no-crlf" else b"\r\n")
        return out + end

    ends = st.sampled_from([b"0\r\n\r\n", b"0\r\nX-Trailer: t\r\n\r\n", b"", b"0\r\n", b"1\r\n"])
    return st.builds(build, st.lists(chunk, max_size=4), ends)


@st.composite
def requests(draw: st.DrawFn, targets: list[bytes], auth: bytes, hosts: list[bytes]) -> bytes:
    """A request as bytes, each part drawn mostly valid and sometimes broken. `{n}` in the result is
    where the caller puts the example's marker."""
    if draw(st.booleans()):  # a valid request line and ending, odd headers and bodies
        method = draw(st.sampled_from(_METHODS[:-1]))
        target, version, sep, eol = targets[0], b"HTTP/1.1", b" ", b"\r\n"
    else:
        method = draw(st.sampled_from(_METHODS) | st.binary(max_size=8))
        target = draw(st.sampled_from(targets) | st.binary(max_size=40)
                      | st.sampled_from(targets).flatmap(lambda t: st.binary(max_size=16).map(lambda b: t + b)))
        version = draw(st.sampled_from(_VERSIONS))
        sep = draw(st.sampled_from([b" "] * 8 + [b"  ", b"\t", b""]))
        eol = draw(st.sampled_from([b"\r\n"] * 8 + [b"\n"]))
    lines = [method + sep + target + (sep + version if version else b"")]
    lines.append(b"X-Fuzz-Example: {n}")
    if draw(st.integers(0, 9)) > 1:  # HTTP/1.1 needs exactly one Host (the proxy sets the real one)
        lines.append(b"Host: " + draw(st.sampled_from(hosts)))
    if draw(st.integers(0, 9)) > 0:
        lines.append(b"Proxy-Authorization: " + (auth if draw(st.integers(0, 9)) > 0 else b"Basic c2lnOndyb25n"))
    lines += draw(st.lists(_header_item(), max_size=5))
    framing = draw(st.sampled_from(["free", "length", "short", "chunked", "both"]))
    if framing == "free":  # whatever the headers above say
        body = draw(st.one_of(st.just(b""), st.binary(max_size=40), _chunked()))
    elif framing in ("length", "short"):
        body = draw(st.binary(max_size=40))
        lines.append(b"Content-Length: %d" % (len(body) + (7 if framing == "short" else 0)))
    else:
        body = draw(_chunked())
        lines.append(b"Transfer-Encoding: chunked")
        if framing == "both":
            lines.append(b"Content-Length: %d" % len(body))
    return eol.join(lines) + eol + eol + body


# -- one example ----------------------------------------------------------------------------------------


def _exchange(port: int, payload: bytes, wrap: ssl.SSLContext | None = None, connect: bytes = b"") -> bytes:
    """Send `payload` (after a CONNECT + TLS when `wrap`), half-close, read everything until the end.

    Half-close: the proxy sees the end of the request stream, answers what it got, then closes. Plain:
    TCP FIN. TLS: close_notify, sent from memory BIOs so that waiting for the proxy's close_notify never
    swallows the answer that comes before it (a blocking SSLSocket.unwrap() would)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=READ_LIMIT_S)
    deadline = time.monotonic() + READ_LIMIT_S

    def recv() -> bytes:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            return sock.recv(65536)
        except TimeoutError:
            raise AssertionError(f"no end of the answer within {READ_LIMIT_S} s") from None
        except ConnectionResetError:
            return b""

    try:
        if wrap is None:
            try:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the proxy may answer (431, 400) and close before reading all of a huge request
            out = b""
            while data := recv():
                out += data
            return out
        sock.sendall(connect)
        head = b""
        while b"\r\n\r\n" not in head:
            data = recv()
            assert data, "the proxy closed a valid CONNECT"
            head += data
        assert head.startswith(b"HTTP/1.1 200"), head
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = wrap.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                data = recv()
                assert data, "the proxy closed the TLS handshake"
                incoming.write(data)
        tls.write(payload)
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.unwrap()  # our close_notify; the proxy's comes after its answer
        with contextlib.suppress(OSError):
            sock.sendall(outgoing.read())
        out = b""
        while True:
            data = recv()
            if data:
                incoming.write(data)
            else:
                incoming.write_eof()
            try:
                while chunk := tls.read(65536):
                    out += chunk
            except ssl.SSLWantReadError:
                if data:
                    continue
            except ssl.SSLError:
                pass
            return out
    finally:
        sock.close()


class Ledger:
    """What each example got, checked against the upstream at the end (the upstream records what
    arrives on its own threads)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix  # examples of each test are told apart at the upstream: "p17", "t17"
        self.n = 0
        self.refused: list[str] = []  # the proxy's own answer, before anything was sent on
        self.body_refused: list[str] = []  # 400 for a malformed body: the head may have gone upstream
        self.seen: dict[str, tuple[bytes, bytes]] = {}  # refused examples: (request, answer), for reports
        self.forwarded = 0  # answered by the upstream
        self.statuses: dict[int, int] = {}

    def marker(self) -> bytes:
        self.n += 1
        return f"{self.prefix}{self.n}".encode()

    def check(self, daemon: ProxyDaemon, upstreams: tuple[ScriptedUpstream, ...]) -> None:
        _quiet(upstreams)
        received = b"".join(u.received_since(0) for u in upstreams)
        completed = {r["headers"].get("x-fuzz-example") for u in upstreams for r in u.requests}
        for n in self.refused:
            assert b"x-fuzz-example: %s\r\n" % n.encode() not in received, \
                f"example {n}: refused, yet forwarded: {self.seen[n]!r}"
        for n in self.body_refused:
            assert n not in completed, \
                f"example {n}: body refused, yet a complete request went upstream: {self.seen[n]!r}"
        for u in upstreams:
            # a request cut short (the client left or sent a broken body), or a CONNECT to the plain
            # server's port (the proxy speaks TLS to what a CONNECT names: a ClientHello, no request)
            bad = [e for e in u.protocol_errors
                   if not e.startswith("peer closed connection") and "\\x16\\x03" not in e[:40]]
            assert not bad, f"the proxy forwarded invalid HTTP: {bad[:3]}"
        log = daemon.log()
        assert "internal error" not in log and "Traceback" not in log, log[-2000:]
        assert TOKEN not in log


def _quiet(upstreams: tuple[ScriptedUpstream, ...]) -> None:
    """Wait until the upstreams stop receiving (what the proxy sent has all arrived), bounded."""
    deadline = time.monotonic() + 10
    last = -1
    while time.monotonic() < deadline:
        now = sum(u.mark() for u in upstreams)
        if now == last:
            return
        last = now
        time.sleep(0.2)



def _judge(ledger: Ledger, n: str, out: bytes, payload: bytes) -> None:
    statuses = [int(s) for s in _STATUS.findall(out)]
    if not statuses:
        # Silence is right only when nothing that could be a request arrived.
        assert not payload.strip(b"\r\n\t "), f"example {n}: no answer to {payload[:300]!r}"
        return
    assert out.startswith(b"HTTP/1.1 "), out[:200]
    head, _, body = out.partition(b"\r\n\r\n")
    while head[9:10] == b"1" and body.startswith(b"HTTP/1.1 "):  # 100 Continue: the final answer follows
        head, _, body = body.partition(b"\r\n\r\n")
    status = int(head[9:12])
    ledger.statuses[status] = ledger.statuses.get(status, 0) + 1
    if b"\r\nx-upstream: 1" in head.lower():
        ledger.forwarded += 1
        return  # the upstream answered: a forwarded request (checked by the upstream's parser)
    if status >= 400:
        assert body.startswith(b"sig proxy:") or (payload.startswith(b"HEAD ") and not body), out[:300]
        # A HEAD answer has no text to tell a refused head from a refused body: the weaker check
        weak = b"malformed request body" in body or payload.startswith(b"HEAD ")
        (ledger.body_refused if weak else ledger.refused).append(n)
        ledger.seen[n] = (payload[:400], out[:400])


# -- the tests ------------------------------------------------------------------------------------------


def test_plain_proxy_requests(rig: tuple[ProxyDaemon, ScriptedUpstream, ScriptedUpstream]) -> None:
    daemon, plain, tls = rig
    port = plain.port
    targets = [b"http://127.0.0.1:%d/api?x=1" % port,  # the provider: injected when accepted
               b"http://localhost:%d/other" % port,  # another host (the same server): never injected
               b"https://127.0.0.1:%d/" % tls.port, b"/origin-form", b"127.0.0.1:%d" % port, b"*",
               b"http://127.0.0.1:%d" % daemon.port]
    ledger = Ledger("p")

    @_SETTINGS
    @given(requests(targets, daemon.auth.encode(), [b"127.0.0.1", b"example.test", b"a b", b""]))
    def run(request: bytes) -> None:
        n = ledger.marker()
        payload = request.replace(b"{n}", n)
        _judge(ledger, n.decode(), _exchange(daemon.port, payload), payload)

    run()
    print(f"plain: {ledger.n} examples, {ledger.forwarded} forwarded, statuses {sorted(ledger.statuses.items())}")
    ledger.check(daemon, (plain, tls))
    assert ledger.refused and ledger.body_refused, "the strategies no longer reach the error paths"
    assert sum(1 for r in plain.requests if r["headers"].get("authorization") == f"Bearer {TOKEN}") > 10


def test_requests_inside_an_intercepted_tunnel(rig: tuple[ProxyDaemon, ScriptedUpstream, ScriptedUpstream]
                                               ) -> None:
    daemon, plain, tls = rig
    host = b"127.0.0.1:%d" % tls.port
    connect = (b"CONNECT " + host + b" HTTP/1.1\r\nHost: " + host + b"\r\nProxy-Authorization: "
               + daemon.auth.encode() + b"\r\n\r\n")
    targets = [b"/api?x=1", b"https://" + host + b"/abs", b"https://localhost:%d/" % tls.port, b"*",
               b"http://" + host + b"/"]
    ledger = Ledger("t")

    @settings(_SETTINGS, max_examples=_RANDOM or 80)
    @given(requests(targets, b"Basic unused", [host] * 4 + [b"localhost", b"127.0.0.1:1", b"a b", b""]))
    def run(request: bytes) -> None:
        n = ledger.marker()
        payload = request.replace(b"{n}", n)
        _judge(ledger, n.decode(), _exchange(daemon.port, payload, daemon.client_ctx, connect), payload)

    run()
    print(f"tunnel: {ledger.n} examples, {ledger.forwarded} forwarded, statuses {sorted(ledger.statuses.items())}")
    ledger.check(daemon, (plain, tls))
    assert ledger.refused
    assert sum(1 for r in tls.requests if r["headers"].get("authorization") == f"Bearer {TOKEN}") > 5


def test_the_daemon_still_serves_after_the_fuzzing(rig: tuple[ProxyDaemon, ScriptedUpstream,
                                                               ScriptedUpstream], tmp_path: Path) -> None:
    daemon, plain, _tls = rig
    out = _exchange(daemon.port, b"GET http://127.0.0.1:%d/after HTTP/1.1\r\nHost: x\r\nProxy-Authorization: %s"
                    b"\r\n\r\n" % (plain.port, daemon.auth.encode()))
    assert out.startswith(b"HTTP/1.1 200") and b"upstream-ok" in out
    assert plain.requests[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"
