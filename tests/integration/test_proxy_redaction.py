"""Response redaction through the real `sig proxy` daemon: an HTTPS upstream that echoes the injected
token (in the body, plain, chunked, compressed; in headers; after an upgrade) never hands it to the
client, while the upstream still receives it. Clients: http.client through CONNECT, curl, requests."""

from __future__ import annotations

import gzip
import http.client
import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.proxyrig import MIB, ProxyDaemon, ScriptedUpstream, curl

pytestmark = pytest.mark.timeout(120)

TOKEN = "tok-ECHO-5ecr3t-77aa"


@pytest.fixture(scope="module")
def daemon(upstream: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyDaemon]:
    d = ProxyDaemon(tmp_path_factory.mktemp("redact"), upstream.url, upstream.ca_path, TOKEN)
    try:
        yield d
    finally:
        d.stop()


def fetch(daemon: ProxyDaemon, upstream: ScriptedUpstream, path: str, method: str = "GET",
          headers: dict[str, str] | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    conn = http.client.HTTPSConnection("127.0.0.1", daemon.port, context=daemon.client_ctx, timeout=60)
    conn.set_tunnel("127.0.0.1", upstream.port, headers={"Proxy-Authorization": daemon.auth})
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((v for n, v in headers if n.lower() == name), None)


def assert_no_token(*texts: bytes | str) -> None:
    for text in texts:
        blob = text.encode("latin-1") if isinstance(text, str) else text
        assert TOKEN.encode() not in blob


def test_plain_body_is_redacted_and_the_upstream_still_gets_the_token(daemon: ProxyDaemon,
                                                                      upstream: ScriptedUpstream) -> None:
    status, headers, body = fetch(daemon, upstream, "/plain")
    assert status == 200
    assert json.loads(body) == {"auth": "Bearer ****", "path": "/plain"}
    assert header(headers, "content-length") == str(len(body))  # re-framed to the new length
    assert upstream.requests[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert "masked in the body" in daemon.log()
    assert_no_token(daemon.log())


@pytest.mark.parametrize("size", [1, 3, 7, 64])
def test_secret_split_across_chunks(daemon: ProxyDaemon, upstream: ScriptedUpstream, size: int) -> None:
    status, _headers, body = fetch(daemon, upstream, f"/chunked?size={size}")
    assert status == 200
    assert json.loads(body) == {"auth": "Bearer ****", "path": "/chunked"}
    assert_no_token(body)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "deflate-raw", "br", "gzip-br"])
@pytest.mark.parametrize("chunked", [0, 5])
def test_compressed_bodies_are_decoded_and_redacted(daemon: ProxyDaemon, upstream: ScriptedUpstream,
                                                    coding: str, chunked: int) -> None:
    status, headers, body = fetch(daemon, upstream, f"/{coding}" + (f"?chunked={chunked}" if chunked else ""))
    assert status == 200
    # the client gets the decoded body (Content-Encoding removed) with the value masked
    assert header(headers, "content-encoding") is None
    assert body == json.dumps({"auth": "Bearer ****", "path": f"/{coding}"}).encode() * 20


def test_a_compressed_body_without_secrets_passes_unchanged(daemon: ProxyDaemon,
                                                            upstream: ScriptedUpstream) -> None:
    status, headers, body = fetch(daemon, upstream, "/quiet-gzip")
    assert status == 200 and header(headers, "content-encoding") == "gzip"
    assert gzip.decompress(body) == b'{"quiet": true}' * 50


def test_secret_in_response_headers(daemon: ProxyDaemon, upstream: ScriptedUpstream) -> None:
    status, headers, body = fetch(daemon, upstream, "/header")
    assert status == 200 and body == b"ok"
    assert header(headers, "x-echo") == "Bearer ****"
    assert header(headers, "set-cookie") == "t=****; Path=/"
    assert header(headers, "location") == "/next?key=****"
    assert_no_token(json.dumps(headers))


def test_head_and_304_have_headers_redacted_and_no_body(daemon: ProxyDaemon, upstream: ScriptedUpstream) -> None:
    status, headers, body = fetch(daemon, upstream, "/header", method="HEAD")
    assert status == 200 and body == b""
    assert header(headers, "x-echo") == "Bearer ****"
    assert header(headers, "content-length") == "2"  # a HEAD answer keeps the length it announces
    status, headers, body = fetch(daemon, upstream, "/not-modified")
    assert status == 304 and body == b""
    assert header(headers, "x-echo") == "Bearer ****" and header(headers, "etag") == '"****"'


def test_unknown_coding_is_refused_and_accept_encoding_is_limited(daemon: ProxyDaemon,
                                                                  upstream: ScriptedUpstream) -> None:
    status, _headers, body = fetch(daemon, upstream, "/zstd", headers={"Accept-Encoding": "zstd, gzip, br, *"})
    assert status == 502
    assert b"redactResponses: false" in body and b"zstd" in body
    assert_no_token(body)
    # the request asked only for codings sig can decode
    assert upstream.requests[-1]["headers"]["accept-encoding"] == "gzip, br"


def test_keep_alive_after_redacted_answers(daemon: ProxyDaemon, upstream: ScriptedUpstream) -> None:
    """Redacted answers of every framing, one after the other on one client connection."""
    conn = http.client.HTTPSConnection("127.0.0.1", daemon.port, context=daemon.client_ctx, timeout=60)
    conn.set_tunnel("127.0.0.1", upstream.port, headers={"Proxy-Authorization": daemon.auth})
    try:
        for path in ("/plain", "/chunked?size=4", "/gzip", "/header", "/not-modified", "/br?chunked=3",
                     "/plain"):
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status in (200, 304), path
            assert_no_token(body, json.dumps(resp.getheaders()))
        conn.request("HEAD", "/plain")
        resp = conn.getresponse()
        assert resp.read() == b"" and resp.status == 200
    finally:
        conn.close()


@pytest.mark.parametrize("chunked", [False, True])
def test_large_streamed_body_in_bounded_memory(daemon: ProxyDaemon, upstream: ScriptedUpstream,
                                               chunked: bool) -> None:
    mb = 64
    fetch(daemon, upstream, "/plain")  # warm
    before = daemon.rss_kib()
    conn = http.client.HTTPSConnection("127.0.0.1", daemon.port, context=daemon.client_ctx, timeout=120)
    conn.set_tunnel("127.0.0.1", upstream.port, headers={"Proxy-Authorization": daemon.auth})
    peak = before
    size = 0
    masks = 0
    tail = b""
    try:
        conn.request("GET", f"/big?mb={mb}" + ("&chunked=1" if chunked else ""))
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("content-length") is None  # too big to hold: re-framed as chunked
        while True:
            data = resp.read(256 * 1024)
            if not data:
                break
            window = tail + data
            assert TOKEN.encode() not in window
            masks += window.count(b"****") - tail.count(b"****")
            tail = window[-64:]
            size += len(data)
            peak = max(peak, daemon.rss_kib())
    finally:
        conn.close()
    assert masks == mb
    assert size == mb * MIB - mb * len(f"Bearer {TOKEN}") + mb * len("Bearer ****")
    # 64 MiB went through; the daemon held at most a few pieces of it at a time
    assert peak - before < 24 * 1024, f"RSS grew by {(peak - before) // 1024} MiB"


def test_event_stream_is_not_held_back(daemon: ProxyDaemon, upstream: ScriptedUpstream) -> None:
    """A slow stream (server-sent events) reaches the client event by event, each one redacted."""
    conn = http.client.HTTPSConnection("127.0.0.1", daemon.port, context=daemon.client_ctx, timeout=60)
    conn.set_tunnel("127.0.0.1", upstream.port, headers={"Proxy-Authorization": daemon.auth})
    try:
        start = time.monotonic()
        conn.request("GET", "/events?n=4&gap_ms=400")
        resp = conn.getresponse()
        first = resp.read1(65536)
        first_at = time.monotonic() - start
        rest = resp.read()
    finally:
        conn.close()
    total = time.monotonic() - start
    assert first.startswith(b"data: 0 Bearer ****")
    assert first_at < 1.0 < total  # the first event came long before the last was even sent (1.2 s)
    assert (first + rest).count(b"Bearer ****") == 4 and TOKEN.encode() not in first + rest


def test_websocket_upgrade_head_redacted_then_spliced(daemon: ProxyDaemon, upstream: ScriptedUpstream) -> None:
    """The 101's headers are redacted; the bytes after the upgrade are spliced as they are (README)."""
    raw = socket.create_connection(("127.0.0.1", daemon.port), timeout=30)
    try:
        raw.sendall(f"CONNECT 127.0.0.1:{upstream.port} HTTP/1.1\r\nHost: 127.0.0.1:{upstream.port}\r\n"
                    f"Proxy-Authorization: {daemon.auth}\r\n\r\n".encode())
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        tls = daemon.client_ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        tls.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                    % upstream.port)
        data = b""
        deadline = time.monotonic() + 20
        while (b"raw:" not in data or not data.endswith(b"\n")) and time.monotonic() < deadline:
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        assert b"\r\nx-echo: Bearer ****" in head
        assert TOKEN.encode() not in head
        # after the upgrade: not inspected (the upstream's raw bytes arrive as sent)
        assert rest == b"raw:Bearer " + TOKEN.encode() + b"\n"
        tls.sendall(b"\x81\x05hello")
        echoed = b""
        while len(echoed) < 7 and time.monotonic() < deadline:
            echoed += tls.recv(65536)
        assert echoed == b"\x81\x05hello"
    finally:
        raw.close()


def test_curl_and_requests_decode_and_see_no_token(daemon: ProxyDaemon, upstream: ScriptedUpstream) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    env = daemon.client_env()
    for path in ("/gzip", "/br", "/chunked?size=2", "/plain"):
        out = curl("--compressed", "-D", "-", f"{upstream.url}{path}", env=env)
        assert out.returncode == 0, out.stderr
        assert b"Bearer ****" in out.stdout and TOKEN.encode() not in out.stdout
    pytest.importorskip("requests")
    import requests

    for path in ("/gzip", "/deflate", "/plain"):
        r = requests.get(f"{upstream.url}{path}", proxies={"https": daemon.env["HTTPS_PROXY"]},
                         verify=daemon.env["REQUESTS_CA_BUNDLE"], timeout=60)
        assert r.status_code == 200 and "Bearer ****" in r.text and TOKEN not in r.text


def test_answers_to_requests_sig_added_nothing_to_pass_untouched(daemon: ProxyDaemon) -> None:
    """Only answers to injected requests are checked: here the client sends a value itself (to a port
    of the provider's host the provider does not use, so sig adds nothing) and gets its echo as is."""
    other = ScriptedUpstream(tls=False)
    try:
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as sock:
            sock.sendall(f"GET http://127.0.0.1:{other.port}/plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         f"Authorization: Bearer {TOKEN}\r\nProxy-Authorization: {daemon.auth}\r\n\r\n".encode())
            out = b""
            while data := sock.recv(65536):
                out += data
        assert out.startswith(b"HTTP/1.1 200")
        assert f'"auth": "Bearer {TOKEN}"'.encode() in out  # the client's own value, not sig's: untouched
        assert "injected=no" in daemon.log()
    finally:
        other.close()


def test_redact_responses_false_passes_answers_through(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    d = ProxyDaemon(tmp_path, upstream.url, upstream.ca_path, TOKEN, extra_config="    redactResponses: false\n")
    try:
        status, _h, body = fetch(d, upstream, "/plain")
        assert status == 200 and json.loads(body)["auth"] == f"Bearer {TOKEN}"
        status, headers, body = fetch(d, upstream, "/gzip")
        assert header(headers, "content-encoding") == "gzip"
        assert TOKEN.encode() in gzip.decompress(body)
        status, _h, _b = fetch(d, upstream, "/zstd")
        assert status == 200  # passed through untouched, as the provider asked
    finally:
        d.stop()

