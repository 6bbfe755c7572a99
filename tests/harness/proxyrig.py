"""A real `sig proxy` daemon in a temp SIG_HOME, and a scripted HTTPS upstream that echoes what it got.

The upstream (h11 over TLS on 127.0.0.1, a thread per connection, keep-alive) answers each path with the
request's Authorization value placed where an echoing server would put it, framed as the path says:

* ``/plain``               Content-Length JSON body ``{"auth": ..., "path": ...}``
* ``/chunked?size=N``      the same body in chunks of N bytes, each written on its own (split secrets)
* ``/gzip`` ``/deflate`` ``/deflate-raw`` ``/br`` ``/gzip-br``   the body compressed (Content-Length);
  add ``?chunked=N`` to send the compressed bytes in N-byte chunks
* ``/quiet-gzip``          a gzip body without the secret
* ``/zstd``                a body labelled ``Content-Encoding: zstd`` (a coding sig cannot decode)
* ``/header``              the value in ``X-Echo``, ``Set-Cookie`` and ``Location`` headers; body "ok"
* ``/not-modified``        304 with the value in ``X-Echo`` and ``ETag``
* ``/big?mb=N&chunked=1``  N MiB of filler with the value every 1 MiB and at the end, streamed
* ``/events?n=N&gap_ms=G`` a text/event-stream: N chunked events G ms apart, each quoting the value
* ``/ws``                  101 Switching Protocols (value in ``X-Echo``), then echoes raw bytes back,
                           first sending the value itself as raw bytes

* anything else           200 ``upstream-ok``

Every response carries ``x-upstream: 1`` (so a client can tell it from the proxy's own answers). HEAD to
any path gets the head only. Every request is recorded in ``requests`` (method, path, headers), every
byte received in ``received``, every request h11 refused in ``protocol_errors``; ``connections`` counts
accepted connections. ``tls=False`` serves plain HTTP.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11
import trustme

from harness.sigproc import Sig

MIB = 1024 * 1024


def _compress(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.compress(data)
    if coding == "deflate":
        return zlib.compress(data)
    if coding == "deflate-raw":
        return zlib.compress(data)[2:-4]
    if coding == "br":
        import brotli

        return brotli.compress(data)
    if coding == "gzip-br":
        import brotli

        return brotli.compress(gzip.compress(data))
    raise ValueError(coding)


_LABEL = {"gzip": b"gzip", "deflate": b"deflate", "deflate-raw": b"deflate", "br": b"br", "gzip-br": b"gzip, br"}


class ScriptedUpstream:
    def __init__(self, tls: bool = True) -> None:
        self.tls = tls
        self.ca = trustme.CA()
        self._tmp = tempfile.mkdtemp(prefix="sig-test-upstream-")
        self.ca_path = os.path.join(self._tmp, "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_path)
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(self.ctx)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.requests: list[dict[str, Any]] = []
        self.received = bytearray()
        self.protocol_errors: list[str] = []
        self.connections = 0
        self.ws_received = bytearray()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._closing = False
        self._thread = threading.Thread(target=self._accept, daemon=True, name="scripted-upstream")
        self._thread.start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        with self._lock:
            self._conns.add(raw)
        try:
            raw.settimeout(30)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock: Any = self.ctx.wrap_socket(raw, server_side=True) if self.tls else raw
            # heads as large as the proxy lets through (64 KiB): the upstream judges validity, not size
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1024 * 1024)
            while True:
                try:
                    req = self._next(sock, conn)
                    if not isinstance(req, h11.Request):
                        return
                    while not isinstance(self._next(sock, conn), h11.EndOfMessage):
                        pass
                except h11.RemoteProtocolError as exc:
                    with self._lock:
                        self.protocol_errors.append(f"{exc}: {bytes(conn.trailing_data[0])[:300]!r}")
                    with contextlib.suppress(h11.ProtocolError):
                        sock.sendall(conn.send(h11.Response(status_code=400, headers=[
                            (b"x-upstream", b"1"), (b"content-length", b"0"), (b"connection", b"close")])))
                    return
                if not self._answer(sock, conn, req):
                    return
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (OSError, h11.ProtocolError, ValueError):
            return
        finally:
            with self._lock:
                self._conns.discard(raw)
            with contextlib.suppress(OSError):
                raw.close()

    def _next(self, sock: Any, conn: h11.Connection) -> Any:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = sock.recv(65536)
                with self._lock:
                    self.received += data
                conn.receive_data(data)
                continue
            return event

    def received_since(self, mark: int) -> bytes:
        with self._lock:
            return bytes(self.received[mark:])

    def mark(self) -> int:
        with self._lock:
            return len(self.received)

    def _answer(self, sock: ssl.SSLSocket, conn: h11.Connection, req: h11.Request) -> bool:
        split = urlsplit(req.target.decode())
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        path = split.path
        headers = [(bytes(n), bytes(v)) for n, v in req.headers]
        with self._lock:
            self.requests.append({"method": req.method.decode(), "path": path, "target": req.target.decode(),
                                  "headers": {n.decode(): v.decode("latin-1") for n, v in headers}})
        auth = dict(headers).get(b"authorization", b"")
        body = json.dumps({"auth": auth.decode("latin-1"), "path": path}).encode()
        extra: list[tuple[bytes, bytes]] = []
        status = 200
        chunk = int(query["chunked"]) if "chunked" in query else 0
        send = sock.sendall

        def respond(payload: bytes, *, chunk_size: int = 0) -> None:
            hs = [(b"content-type", b"application/json"), (b"x-upstream", b"1"), *extra]
            if not chunk_size:
                hs.append((b"content-length", str(len(payload)).encode()))
            send(conn.send(h11.Response(status_code=status, headers=hs)))
            if req.method == b"HEAD":
                send(conn.send(h11.EndOfMessage()))
                return
            if chunk_size:
                for i in range(0, len(payload), chunk_size):
                    send(conn.send(h11.Data(data=payload[i:i + chunk_size])))  # one TLS record each
            else:
                send(conn.send(h11.Data(data=payload)))
            send(conn.send(h11.EndOfMessage()))

        if path == "/plain":
            respond(body)
        elif path == "/chunked":
            respond(body, chunk_size=int(query.get("size", "3")))
        elif path.lstrip("/") in _LABEL:
            coding = path.lstrip("/")
            extra.append((b"content-encoding", _LABEL[coding]))
            respond(_compress(coding, body * 20), chunk_size=chunk)
        elif path == "/say":  # the same bytes every time for the same text (the proxy's answer memo)
            respond(query.get("text", "").encode())
        elif path == "/quiet-gzip":
            extra.append((b"content-encoding", b"gzip"))
            respond(gzip.compress(b'{"quiet": true}' * 50))
        elif path == "/zstd":
            extra.append((b"content-encoding", b"zstd"))
            respond(b"\x28\xb5\x2f\xfd" + body)
        elif path == "/header":
            token = auth.partition(b" ")[2]
            extra += [(b"x-echo", auth), (b"set-cookie", b"t=" + token + b"; Path=/"),
                      (b"location", b"/next?key=" + token)]
            respond(b"ok")
        elif path == "/not-modified":
            status = 304
            send(conn.send(h11.Response(status_code=304, headers=[(b"x-echo", auth),
                                                                  (b"etag", b'"' + auth.partition(b" ")[2] + b'"')])))
            send(conn.send(h11.EndOfMessage()))
        elif path == "/events":
            send(conn.send(h11.Response(status_code=200, headers=[(b"content-type", b"text/event-stream"),
                                                                  (b"x-upstream", b"1")])))
            for i in range(int(query.get("n", "3"))):
                if i:
                    time.sleep(int(query.get("gap_ms", "300")) / 1000)
                send(conn.send(h11.Data(data=b"data: %d %s\n\n" % (i, auth))))
            send(conn.send(h11.EndOfMessage()))
        elif path == "/big":
            self._big(conn, send, req, auth, int(query.get("mb", "1")), bool(query.get("chunked")))
        elif path == "/ws":
            send(conn.send(h11.InformationalResponse(
                status_code=101, headers=[(b"upgrade", b"websocket"), (b"connection", b"Upgrade"),
                                          (b"x-echo", auth)])))
            rest, _ = conn.trailing_data
            self._ws_echo(sock, bytes(rest), auth)
            return False
        else:
            respond(b"upstream-ok")
        return True

    @staticmethod
    def _big(conn: h11.Connection, send: Any, req: h11.Request, auth: bytes, mb: int, chunked: bool) -> None:
        piece = b"x" * (MIB - len(auth))
        total = mb * (len(piece) + len(auth))
        hs = [(b"content-type", b"application/octet-stream")]
        if not chunked:
            hs.append((b"content-length", str(total).encode()))
        send(conn.send(h11.Response(status_code=200, headers=hs)))
        if req.method != b"HEAD":
            half = len(piece) // 2
            for _ in range(mb):  # the value straddles two writes every MiB
                send(conn.send(h11.Data(data=piece[:half] + auth[:5])))
                send(conn.send(h11.Data(data=auth[5:] + piece[half:])))
        send(conn.send(h11.EndOfMessage()))

    def _ws_echo(self, sock: ssl.SSLSocket, first: bytes, auth: bytes) -> None:
        sock.sendall(b"raw:" + auth + b"\n")
        data = first
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if data:
                with self._lock:
                    self.ws_received += data
                sock.sendall(data)
            data = sock.recv(65536)
            if not data:
                return

    def close(self) -> None:
        self._closing = True
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        shutil.rmtree(self._tmp, ignore_errors=True)


class ProxyDaemon:
    """`sig proxy start --port 0` in a fresh SIG_HOME whose provider "echo" (API token `token`) covers
    `url` and trusts `ca_path`; `extra_config` lines go under it. `more` adds providers: (id, url, token,
    ca_path or None). `env` is given to every sig run (the daemon's too)."""

    def __init__(self, root: Path, url: str, ca_path: str | None, token: str, extra_config: str = "",
                 env: dict[str, str] | None = None, more: tuple[tuple[str, str, str, str | None], ...] = ()
                 ) -> None:
        self.sig = Sig(home=root / "home" / ".sig", user_home=root / "home")
        if env:
            self.sig.env.update(env)
        self.token = token
        self.sig("init", "--yes", check=0)
        cfg = self.sig.home / "config.yaml"
        for pid, purl, ptoken, pca in (("echo", url, token, ca_path), *more):
            self.sig("login", purl, "--token-stdin", "--as", pid, input=ptoken, check=0)
            # "# set" marks this provider's line, so the next provider's is the first unmarked one
            lines = "    strategy: api-token # set\n" + (f"    caFile: {pca}\n" if pca else "")
            if pid == "echo":
                lines += extra_config
            cfg.write_text(cfg.read_text().replace("    strategy: api-token\n", lines, 1))
        self.sig("proxy", "start", "--port", "0", check=0)
        self.env = self.sig("proxy", "env", "--format", "json", check=0).json()
        creds, _, hostport = self.env["HTTPS_PROXY"][len("http://"):].rpartition("@")
        self.port = int(hostport.rsplit(":", 1)[1])
        self.auth = "Basic " + base64.b64encode(creds.encode()).decode()
        self.ca_file = str(self.sig.home / "proxy" / "ca.crt")
        self.client_ctx = ssl.create_default_context(cafile=self.ca_file)
        self.pid = int(json.loads((self.sig.home / "proxy" / "state.json").read_text())["pid"])

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def log(self) -> str:
        return (self.sig.home / "proxy" / "proxy.log").read_text(errors="replace")

    def client_env(self) -> dict[str, str]:
        return {**self.sig.env, **self.env}

    def stop(self) -> None:
        self.sig("proxy", "stop", check=None)
        self.sig.close()


def curl(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", *args], env=env, capture_output=True, timeout=timeout)
