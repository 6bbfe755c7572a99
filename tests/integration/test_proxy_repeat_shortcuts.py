"""The proxy's shortcuts for repeated keep-alive traffic (issue 26), through the real `sig proxy` daemon,
each made to show its wrong use:

- an answer equal, byte for byte, to the last one on its upstream connection gets the client copy made
  for that one (no second redaction pass): never for an answer that differs (same head, other body), nor
  after the credential was renewed mid-connection (the new value must be masked in the same bytes);
- the read for the next request after an answer, and for the answer after a request, waits for the
  socket's next edge when the kernel holds nothing: a pipelined request, or a client's close that came
  in the same segment as its request, is already there and must not be sat on until the idle timeout.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.proxyrig import ProxyDaemon, ScriptedUpstream

pytestmark = pytest.mark.timeout(120)

TOKEN = "tok-REPEAT-first-1111"
RENEWED = "tok-REPEAT-renew-2222"


@pytest.fixture()
def daemon(upstream: ScriptedUpstream, tmp_path: Path) -> Iterator[ProxyDaemon]:
    d = ProxyDaemon(tmp_path, upstream.url, upstream.ca_path, TOKEN)
    try:
        yield d
    finally:
        d.stop()


def tunnel(daemon: ProxyDaemon, upstream: ScriptedUpstream) -> http.client.HTTPSConnection:
    """One keep-alive client connection through CONNECT: every request below rides on it."""
    conn = http.client.HTTPSConnection("127.0.0.1", daemon.port, context=daemon.client_ctx, timeout=30)
    conn.set_tunnel("127.0.0.1", upstream.port, headers={"Proxy-Authorization": daemon.auth})
    return conn


def get(conn: http.client.HTTPSConnection, path: str) -> bytes:
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 200, body
    return body


def test_an_identical_answer_reuses_its_copy_but_a_different_body_is_redacted_anew(
        daemon: ProxyDaemon, upstream: ScriptedUpstream) -> None:
    conn = tunnel(daemon, upstream)
    try:
        for _ in range(3):
            assert json.loads(get(conn, "/plain")) == {"auth": "Bearer ****", "path": "/plain"}
        plain = "x" * len(TOKEN)  # the same length: the same head as the token's answer
        assert get(conn, f"/say?text={TOKEN}") == b"****"
        assert get(conn, f"/say?text={TOKEN}") == b"****"  # (the copy made for the one before)
        assert get(conn, f"/say?text={plain}") == plain.encode()  # not the copy of the token's answer
        assert get(conn, f"/say?text={TOKEN}") == b"****"
        assert get(conn, f"/say?text={TOKEN}x") == b"****x"  # a longer body: another head
    finally:
        conn.close()
    assert upstream.requests[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"


def test_a_credential_renewed_mid_connection_is_masked_in_the_same_answer_bytes(
        daemon: ProxyDaemon, upstream: ScriptedUpstream) -> None:
    conn = tunnel(daemon, upstream)
    try:
        # Not a credential of this proxy yet: passed on as it is, twice (the second from the copy).
        assert get(conn, f"/say?text={RENEWED}") == RENEWED.encode()
        assert get(conn, f"/say?text={RENEWED}") == RENEWED.encode()
        daemon.sig("login", upstream.url, "--token-stdin", "--as", "echo", input=RENEWED, check=0)
        deadline = time.monotonic() + 30
        while True:  # the connection's route is decided again (ROUTE_TTL): the renewed token goes out
            body = get(conn, f"/say?text={RENEWED}")  # the very bytes of the answers before
            if upstream.requests[-1]["headers"]["authorization"] == f"Bearer {RENEWED}":
                assert body == b"****"  # now they hold the injected secret: not the copy made before
                break
            assert body == RENEWED.encode()
            assert time.monotonic() < deadline, "the renewed credential was never injected"
            time.sleep(0.2)
        assert get(conn, f"/say?text={RENEWED}") == b"****"
    finally:
        conn.close()


class BioClient:
    """A TLS client through CONNECT whose bytes it writes itself (memory BIOs), so a test decides what
    shares a TCP segment: several requests, or a request and the end of the stream."""

    def __init__(self, daemon: ProxyDaemon, upstream: ScriptedUpstream) -> None:
        self.raw = socket.create_connection(("127.0.0.1", daemon.port), timeout=30)
        self.raw.sendall(f"CONNECT 127.0.0.1:{upstream.port} HTTP/1.1\r\nHost: 127.0.0.1:{upstream.port}\r\n"
                         f"Proxy-Authorization: {daemon.auth}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            data = self.raw.recv(4096)
            assert data, "the proxy closed the CONNECT"
            head += data
        assert head.startswith(b"HTTP/1.1 200"), head
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = daemon.client_ctx.wrap_bio(self.incoming, self.outgoing, server_hostname="127.0.0.1")
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
        self._flush()
        self.buf = b""

    def _flush(self, flags: int = 0) -> None:
        data = self.outgoing.read()
        if data:
            self.raw.sendall(data, flags)

    def _fill(self) -> bool:
        data = self.raw.recv(65536)
        if not data:
            self.incoming.write_eof()
            return False
        self.incoming.write(data)
        return True

    def send(self, *messages: bytes, end: bool = False) -> None:
        """Each message as its own TLS record, all in one TCP segment (with the FIN when `end`)."""
        for message in messages:
            self.tls.write(message)
        if end:
            self._flush(socket.MSG_MORE)  # held back until the shutdown: data and FIN leave together
            self.raw.shutdown(socket.SHUT_WR)
        else:
            self._flush()

    def _more(self) -> bool:
        """Decrypted bytes into buf; False at the end of the stream."""
        while True:
            try:
                data = self.tls.read(65536)
            except ssl.SSLWantReadError:
                if not self._fill():
                    return False
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return False
            if not data:
                return False
            self.buf += data
            return True

    def answer(self) -> bytes:
        """The body of the next Content-Length answer."""
        while b"\r\n\r\n" not in self.buf:
            assert self._more(), "the connection ended before an answer"
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                      if line.lower().startswith(b"content-length:"))
        self.buf = rest
        while len(self.buf) < length:
            assert self._more(), "the connection ended mid-answer"
        body, self.buf = self.buf[:length], self.buf[length:]
        return body

    def ended(self) -> bool:
        """Whether the proxy closes the connection (nothing more comes) within the socket timeout."""
        try:
            while self._more():
                pass
        except TimeoutError:
            return False
        except OSError:
            return True
        return True

    def close(self) -> None:
        self.raw.close()


def request(upstream: ScriptedUpstream) -> bytes:
    return f"GET /plain HTTP/1.1\r\nHost: 127.0.0.1:{upstream.port}\r\n\r\n".encode()


def test_pipelined_requests_in_one_segment_are_all_answered(daemon: ProxyDaemon,
                                                            upstream: ScriptedUpstream) -> None:
    client = BioClient(daemon, upstream)
    req = request(upstream)
    try:
        client.send(req)  # a first one alone: its answer makes the connection a keep-alive one
        assert json.loads(client.answer())["auth"] == "Bearer ****"
        # Three records in one segment: the first read takes one, the other two wait in the kernel with
        # no new edge to come. The read after each answer must find them there.
        client.send(req, req, req)
        for _ in range(3):
            assert json.loads(client.answer()) == {"auth": "Bearer ****", "path": "/plain"}
    finally:
        client.close()


def test_a_close_sent_with_the_last_request_ends_the_connection_at_once(daemon: ProxyDaemon,
                                                                        upstream: ScriptedUpstream) -> None:
    client = BioClient(daemon, upstream)
    req = request(upstream)
    try:
        client.send(req)
        assert json.loads(client.answer())["auth"] == "Bearer ****"
        # The request and the FIN in one segment: one edge for both. After the answer, the proxy must see
        # the end (the kernel counts no byte for it), not wait the idle timeout (120 s) for an edge.
        client.send(req, end=True)
        assert json.loads(client.answer())["auth"] == "Bearer ****"
        client.raw.settimeout(10)
        assert client.ended(), "the proxy kept the connection open after the client's end"
    finally:
        client.close()
