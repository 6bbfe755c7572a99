"""The proxy's fast-path HTTP/1.1 head parser and writers (sigcli.proxy.fast), checked against h11.

The rule under test: whatever the fast path accepts, h11 accepts and parses the same way; when the fast
path asks for more bytes, h11 would wait too (no early error delayed); everything else is FALLBACK, which
hands the bytes to h11 unchanged."""

from __future__ import annotations

import random
from typing import Any

import h11
import pytest

from sigcli.proxy import fast, h1

MAX = 64 * 1024

GOOD_REQUESTS = [
    b"GET /bench HTTP/1.1\r\nHost: 127.0.0.1:4443\r\nAccept-Encoding: identity\r\n\r\n",
    b"GET http://example.com/a?b=c HTTP/1.1\r\nHost: example.com\r\nProxy-Authorization: Basic eA==\r\n\r\n",
    b"POST /json HTTP/1.1\r\nHost: api.test\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}",
    b"CONNECT api.test:443 HTTP/1.1\r\nHost: api.test:443\r\nUser-Agent: curl/8\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nX-Empty:\r\nX-Pad:  \t v  a l \t \r\n\r\n",
    b"GET / HTTP/1.1\r\nhOsT: a\r\nX-Obs: caf\xc3\xa9\r\nCookie: a=1; b=2\r\n\r\nGET /next HTTP/1.1\r\n",
]

GOOD_RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"ok\": true}",
    b"HTTP/1.1 404 Not Found\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive\r\n\r\nok",
    b"HTTP/1.1 500 Internal \t Error\r\nContent-Length: 1\r\n\r\nx",
]


def h11_request(buf: bytes, max_head: int = MAX) -> Any:
    """h11's verdict on a request buffer: the Request, h11.NEED_DATA, or the exception it raises."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head)
    conn.receive_data(buf)
    try:
        return conn.next_event()
    except h11.RemoteProtocolError as exc:
        return exc


def h11_response(buf: bytes, method: bytes = b"GET", max_head: int = MAX) -> Any:
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_head)
    conn.send(h11.Request(method=method, target=b"/", headers=[(b"host", b"a")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(buf)
    try:
        return conn.next_event()
    except h11.RemoteProtocolError as exc:
        return exc


def check_request(buf: bytes, max_head: int = MAX) -> Any:
    """Assert the soundness rule for one buffer; return the fast path's answer."""
    got = fast.parse_request(buf, max_head)
    want = h11_request(buf, max_head)
    if got is None:
        assert want is h11.NEED_DATA, (buf, want)
    elif isinstance(got, fast.RequestHead):
        assert isinstance(want, h11.Request), (buf, want)
        assert (got.method, got.target, got.headers) == (want.method, want.target, list(want.headers))
        cl = h1.get_header(want.headers, b"content-length")
        assert got.length == (int(cl) if cl is not None else 0)
        assert h1.get_header(want.headers, b"transfer-encoding") is None
        # the head ends where h11's does: the bytes after it are exactly h11's unread data (no body yet)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head)
        conn.receive_data(buf[: got.size])
        assert isinstance(conn.next_event(), h11.Request)
    else:
        assert got is fast.FALLBACK
    return got


def check_response(buf: bytes, method: bytes = b"GET") -> Any:
    got = fast.parse_response(buf, MAX, head_request=method == b"HEAD")
    want = h11_response(buf, method)
    if got is None:
        assert want is h11.NEED_DATA, (buf, want)
    elif isinstance(got, fast.ResponseHead):
        assert isinstance(want, h11.Response), (buf, want)
        assert (got.status_code, got.reason, got.headers) == (want.status_code, want.reason, list(want.headers))
        assert got.length == int(h1.get_header(want.headers, b"content-length") or b"-1")
    else:
        assert got is fast.FALLBACK
    return got


@pytest.mark.parametrize("buf", GOOD_REQUESTS)
def test_plain_requests_take_the_fast_path_and_match_h11(buf: bytes) -> None:
    assert isinstance(check_request(buf), fast.RequestHead)


@pytest.mark.parametrize("buf", GOOD_RESPONSES)
def test_plain_responses_take_the_fast_path_and_match_h11(buf: bytes) -> None:
    assert isinstance(check_response(buf), fast.ResponseHead)


@pytest.mark.parametrize("buf", [
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Hop\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",  # no Host: h11 answers 400
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456789012\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: folded\r\n continued\r\n\r\n",  # obs-fold
    b"GET / HTTP/1.1\nHost: a\n\n",  # bare LF line ends
    b"GET / HTTP/1.1\r\nHost: a\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n\nX: smuggled\r\n\r\n",  # h11 ends the head at \r\n\n
    b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",  # bare CR
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",  # NUL
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\x7f\r\n\r\n",  # controls h11 lets through: h11 decides
    b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n",
    b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",  # leading empty line
    b" GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello: h11 refuses it at once
    b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
])
def test_unusual_or_invalid_requests_fall_back_to_h11(buf: bytes) -> None:
    assert check_request(buf) is fast.FALLBACK


def test_incomplete_heads_wait_like_h11_and_oversized_ones_fall_back() -> None:
    head = GOOD_REQUESTS[0]
    for cut in range(1, len(head)):
        assert check_request(head[:cut]) is None
    assert fast.parse_request(b"", MAX) is None  # (h11 would read b"" as EOF; the server never feeds it)
    big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 2000
    assert check_request(big, max_head=1000) is fast.FALLBACK  # h11 raises 431 for it
    assert isinstance(h11_request(big, 1000), h11.RemoteProtocolError)
    complete = big + b"\r\n\r\n"
    assert check_request(complete, max_head=1000) is fast.FALLBACK  # over the bound even when complete


@pytest.mark.parametrize(("buf", "method"), [
    (b"HTTP/1.1 100 Continue\r\n\r\n", b"GET"),
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", b"GET"),
    (b"HTTP/1.1 204 No Content\r\n\r\n", b"GET"),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", b"GET"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", b"HEAD"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"GET"),
    (b"HTTP/1.1 200 OK\r\n\r\nclose-delimited", b"GET"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx", b"GET"),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", b"GET"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX: a\r\n b\r\n\r\nx", b"GET"),
    (b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-Split: a\rb\r\nContent-Length: 1\r\n\r\nx", b"GET"),
    (b"HTTP/1.1 2000 OK\r\nContent-Length: 1\r\n\r\nx", b"GET"),
    (b"HTTP/1.1 200 O\x00K\r\nContent-Length: 1\r\n\r\nx", b"GET"),
])
def test_unusual_or_invalid_responses_fall_back_to_h11(buf: bytes, method: bytes) -> None:
    assert check_response(buf, method) is fast.FALLBACK


_INTERESTING = [b"\r", b"\n", b"\r\n", b"\x00", b"\x01", b"\x0b", b"\x7f", b"\x80", b" ", b"\t", b":", b",",
                b"\xff", b"a", b"0", b"\r\n ", b"\r\n\r\n", b"Transfer-Encoding: chunked\r\n",
                b"Content-Length: 3\r\n", b"Host: x\r\n", b"Connection: close\r\n"]


def _mutate(rng: random.Random, buf: bytes) -> bytes:
    out = bytearray(buf)
    for _ in range(rng.randint(1, 3)):
        pos = rng.randint(0, len(out))
        action = rng.random()
        if action < 0.5:
            out[pos:pos] = rng.choice(_INTERESTING)
        elif action < 0.8 and pos < len(out):
            del out[pos : pos + rng.randint(1, 3)]
        elif pos < len(out):
            out[pos] = rng.randrange(256)
    return bytes(out)


def test_fuzzed_requests_are_accepted_only_as_h11_parses_them() -> None:
    rng = random.Random(20261123)
    accepted = fell_back = 0
    for _ in range(4000):
        buf = _mutate(rng, rng.choice(GOOD_REQUESTS))
        got = check_request(buf)
        accepted += isinstance(got, fast.RequestHead)
        fell_back += got is fast.FALLBACK
    assert accepted > 200 and fell_back > 200  # both branches really exercised


def test_fuzzed_responses_are_accepted_only_as_h11_parses_them() -> None:
    rng = random.Random(7)
    accepted = 0
    for _ in range(3000):
        got = check_response(_mutate(rng, rng.choice(GOOD_RESPONSES)))
        accepted += isinstance(got, fast.ResponseHead)
    assert accepted > 200


def test_a_pathological_header_line_is_cheap() -> None:
    import time

    for value in (b"a" + b" " * 60000 + b"\x01", b"a " * 30000 + b"\x01", b"\t" * 60000):
        start = time.perf_counter()
        check_request(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + value + b"\r\n\r\n", 128 * 1024)
        assert time.perf_counter() - start < 0.5


def test_writers_produce_what_h11_writes() -> None:
    headers = [(b"host", b"api.test"), (b"accept", b"*/*"), (b"Authorization", b"Bearer x"),
               (b"content-length", b"2")]
    conn = h11.Connection(h11.CLIENT)
    want = conn.send(h11.Request(method=b"POST", target=b"/p?q=1", headers=headers))
    assert fast.request_bytes(b"POST", b"/p?q=1", headers) == want

    resp = fast.parse_response(GOOD_RESPONSES[1], MAX, head_request=False)
    assert isinstance(resp, fast.ResponseHead)
    server = h11.Connection(h11.SERVER)
    server.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    server.next_event()
    want = server.send(h11.Response(status_code=resp.status_code, reason=resp.reason,
                                    headers=h1.downstream_response_headers(resp.headers)))
    assert fast.downstream_head(resp) == want
    assert want.count(b"set-cookie:") == 2


@pytest.mark.parametrize(("name", "value"), [
    (b"Authorization", b"Bearer abc"), (b"X-Key", b""), (b"X-Key", b"a\tb"), (b"X-Key", b"caf\xc3\xa9"),
    (b"X-Key", b"a\r\nInjected: 1"), (b"X-Key", b"a\nb"), (b"X-Key", b"a\rb"), (b"X-Key", b"a\x00b"),
    (b"X-Key", b" padded"), (b"X-Key", b"padded "), (b"Bad Name", b"v"), (b"X:Key", b"v"), (b"", b"v"),
    (b"X-Key", b"a\x01b"),
])
def test_injected_header_validation_matches_h11(name: bytes, value: bytes) -> None:
    try:
        h11.Request(method=b"GET", target=b"/", headers=[(b"host", b"a"), (name, value)])
        h11_ok = True
    except h11.LocalProtocolError:
        h11_ok = False
    assert fast.valid_header(name, value) == h11_ok
