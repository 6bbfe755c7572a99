"""Loopback HTTP and HTTPS echo servers for tests.

Every request, whatever its method, is answered with a JSON echo of what the server saw::

    {"method": "GET", "path": "/a/b", "query": {"x": "1", "y": ["2", "3"]},
     "headers": {"host": "127.0.0.1:PORT", ...}, "body": "..."}

and the same dict is appended to ``ServerHandle.requests`` before the reply is sent, so a test
that got a response can assert on what the server recorded.

Special paths:

* ``/status/<code>``: reply with that status code (body is still the JSON echo).
* ``/redirect?to=<url>&code=302``: reply with ``Location: <url>`` and the given 3xx code (default 302).
* ``/set-cookie``: reply with two separate ``Set-Cookie`` headers (``session=abc123`` and
  ``theme=dark``); with a query string, one ``Set-Cookie: name=value; Path=/`` per query parameter.
* ``/slow?ms=N``: sleep N milliseconds (capped at 5000) before replying.

Servers bind 127.0.0.1 on an OS-picked port and run in a daemon thread; ``close()`` shuts them down.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme

LOOPBACK = "127.0.0.1"
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_CHUNKS = 100_000
MAX_TRAILER_LINES = 100
MAX_LINE_BYTES = 65_536
SLOW_CAP_MS = 5000
IDLE_TIMEOUT_S = 30.0
JOIN_TIMEOUT_S = 5.0

DEFAULT_COOKIES: tuple[str, ...] = ("session=abc123; Path=/; HttpOnly", "theme=dark; Path=/")

Echo = dict[str, Any]


class BadRequest(Exception):
    """The request body could not be read (bad length or chunked framing)."""


class LoopbackServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer on 127.0.0.1 (HTTPS with `ssl_context`) that tracks its connections, so
    closing it can drop open keep-alive ones, and stays quiet about clients that hang up mid-request."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, handler: type[BaseHTTPRequestHandler], ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self._conn_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._closing = False
        super().__init__((LOOPBACK, 0), handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def wrap(self, conn: socket.socket) -> socket.socket | None:
        """The socket to serve (TLS with `ssl_context`); None drops the connection."""
        if self.ssl_context is None:
            return conn
        # Handshake in the per-connection thread so a bad client cannot stall the accept loop.
        try:
            conn.settimeout(IDLE_TIMEOUT_S)
            return self.ssl_context.wrap_socket(conn, server_side=True)
        except (OSError, ValueError):
            with contextlib.suppress(OSError):
                conn.close()
            return None

    def finish_request(self, request: Any, client_address: Any) -> None:
        conn = self.wrap(request)
        if conn is None:
            return
        with self._conn_lock:
            if self._closing:
                conn.close()
                return
            self._conns.add(conn)
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            with self._conn_lock:
                self._conns.discard(conn)
            if conn is not request:
                with contextlib.suppress(OSError):
                    conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-request (or failing TLS) are normal in tests; stay quiet about them.
        return

    def drop_connections(self) -> None:
        with self._conn_lock:
            self._closing = True
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class EchoServer(LoopbackServer):
    """A loopback server that records every request and can drop open keep-alive connections."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._cond = threading.Condition()
        self._requests: list[Echo] = []
        super().__init__(EchoHandler, ssl_context)

    # -- request log -------------------------------------------------------------------------

    @property
    def requests(self) -> list[Echo]:
        """A snapshot (copy) of every request seen so far, oldest first."""
        with self._cond:
            return list(self._requests)

    def record(self, echo: Echo) -> None:
        with self._cond:
            self._requests.append(echo)
            self._cond.notify_all()

    def clear_requests(self) -> None:
        with self._cond:
            self._requests.clear()

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[Echo]:
        """Wait until at least ``count`` requests were recorded (or ``timeout`` passes); return them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return list(self._requests)


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SigTestEcho/1.0"
    timeout = IDLE_TIMEOUT_S
    server: EchoServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    # -- body reading ------------------------------------------------------------------------

    def _read_line(self) -> bytes:
        line = self.rfile.readline(MAX_LINE_BYTES + 1)
        if len(line) > MAX_LINE_BYTES:
            raise BadRequest("line too long")
        if not line:
            raise BadRequest("connection closed mid-body")
        return line

    def _read_exact(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if len(data) != n:
            raise BadRequest("connection closed mid-body")
        return data

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        for _ in range(MAX_CHUNKS):
            size_line = self._read_line().split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError as exc:
                raise BadRequest(f"bad chunk size {size_line!r}") from exc
            if size < 0:
                raise BadRequest("negative chunk size")
            if size == 0:
                for _ in range(MAX_TRAILER_LINES):
                    if self._read_line() in (b"\r\n", b"\n"):
                        return b"".join(parts)
                raise BadRequest("too many trailer lines")
            total += size
            if total > MAX_BODY_BYTES:
                raise BadRequest("body too large")
            parts.append(self._read_exact(size))
            if self._read_line() not in (b"\r\n", b"\n"):
                raise BadRequest("missing CRLF after chunk")
        raise BadRequest("too many chunks")

    def _read_body(self) -> bytes:
        te = self.headers.get("Transfer-Encoding", "")
        if te and te.split(",")[-1].strip().lower() == "chunked":
            return self._read_chunked()
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header.strip())
        except ValueError as exc:
            raise BadRequest(f"bad Content-Length {length_header!r}") from exc
        if length < 0 or length > MAX_BODY_BYTES:
            raise BadRequest(f"bad Content-Length {length}")
        return self._read_exact(length) if length else b""

    # -- echo --------------------------------------------------------------------------------

    def _headers_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            out[key] = f"{out[key]}, {value}" if key in out else value
        return out

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except BadRequest as exc:
            self.close_connection = True
            self.send_error(400, str(exc))
            return
        split = urlsplit(self.path)
        query: dict[str, str | list[str]] = {
            name: values[0] if len(values) == 1 else values
            for name, values in parse_qs(split.query, keep_blank_values=True).items()
        }
        echo: Echo = {
            "method": self.command,
            "path": split.path,
            "query": query,
            "headers": self._headers_dict(),
            "body": body.decode("utf-8", errors="replace"),
        }
        self.server.record(echo)

        status = 200
        extra: list[tuple[str, str]] = []
        path = split.path
        if path.startswith("/status/"):
            try:
                status = int(path[len("/status/") :].strip("/"))
            except ValueError:
                status = 400
            if not 200 <= status <= 599:
                status = 400
        elif path == "/redirect":
            target = _first(query.get("to")) or "/"
            try:
                status = int(_first(query.get("code")) or "302")
            except ValueError:
                status = 302
            if not 300 <= status <= 399:
                status = 302
            extra.append(("Location", target))
        elif path == "/set-cookie":
            cookies = [f"{name}={_first(value)}; Path=/" for name, value in query.items()]
            for cookie in cookies or DEFAULT_COOKIES:
                extra.append(("Set-Cookie", cookie))
        elif path == "/slow":
            try:
                ms = int(_first(query.get("ms")) or "0")
            except ValueError:
                ms = 0
            time.sleep(max(0, min(ms, SLOW_CAP_MS)) / 1000)

        payload = json.dumps(echo).encode("utf-8")
        no_body = status in (204, 304)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if status != 204:
            self.send_header("Content-Length", "0" if no_body else str(len(payload)))
        for name, value in extra:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and not no_body:
            self.wfile.write(payload)
        self.wfile.flush()

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_PATCH = _handle
    do_DELETE = _handle
    do_HEAD = _handle
    do_OPTIONS = _handle


def _first(value: str | list[str] | None) -> str | None:
    if isinstance(value, list):
        return value[0] if value else None
    return value


@dataclass
class ServerHandle:
    """A running echo server. Use ``close()`` (or ``with``) to stop it."""

    server: EchoServer
    thread: threading.Thread
    scheme: str
    ca_path: str | None = None
    ca: trustme.CA | None = None
    _tmpdir: str | None = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def url_for(self, path: str = "/") -> str:
        return self.url + (path if path.startswith("/") else "/" + path)

    @property
    def requests(self) -> list[Echo]:
        """Snapshot of every request the server saw, oldest first."""
        return self.server.requests

    @property
    def last_request(self) -> Echo | None:
        reqs = self.server.requests
        return reqs[-1] if reqs else None

    def clear_requests(self) -> None:
        self.server.clear_requests()

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[Echo]:
        return self.server.wait_for_requests(count, timeout)

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context trusting this server's CA (HTTPS only)."""
        if self.ca_path is None:
            raise ValueError("not an HTTPS server")
        return ssl.create_default_context(cafile=self.ca_path)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.server.shutdown()
        self.server.drop_connections()
        self.server.server_close()
        self.thread.join(timeout=JOIN_TIMEOUT_S)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_echo_server(tls: bool = False, ca: trustme.CA | None = None, names: tuple[str, ...] = ()) -> ServerHandle:
    """Start an echo server on 127.0.0.1:<random port>; HTTPS when ``tls`` (cert from a trustme CA, for
    127.0.0.1, localhost and any extra ``names``, e.g. a name a test SOCKS proxy resolves to loopback)."""
    ctx: ssl.SSLContext | None = None
    tmpdir: str | None = None
    ca_path: str | None = None
    if tls:
        ca = ca or trustme.CA()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(LOOPBACK, "localhost", *names).configure_cert(ctx)
        tmpdir = tempfile.mkdtemp(prefix="sig-test-ca-")
        ca_file = Path(tmpdir) / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        ca_path = str(ca_file)
    try:
        server = EchoServer(ssl_context=ctx)
    except BaseException:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"echo-{'https' if tls else 'http'}-{server.server_address[1]}",
        daemon=True,
    )
    thread.start()
    return ServerHandle(
        server=server,
        thread=thread,
        scheme="https" if tls else "http",
        ca_path=ca_path,
        ca=ca if tls else None,
        _tmpdir=tmpdir,
    )


def start_http_echo() -> ServerHandle:
    return start_echo_server(tls=False)


def start_https_echo(ca: trustme.CA | None = None, names: tuple[str, ...] = ()) -> ServerHandle:
    return start_echo_server(tls=True, ca=ca, names=names)


class HandlerServer:
    """A test's own request handler served on 127.0.0.1 (a LoopbackServer, in a thread); over HTTPS, with a
    certificate from `ca` for 127.0.0.1, when `ca` is given. Use as a context manager (or close()); `url`
    has no trailing slash. The handler reaches `server` as its own `self.server` (state a test puts there,
    for instance)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], ca: trustme.CA | None = None) -> None:
        ctx = None
        if ca is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ca.issue_cert(LOOPBACK).configure_cert(ctx)
        self.server = LoopbackServer(handler, ctx)
        self.port = self.server.port
        self.url = f"{'https' if ca is not None else 'http'}://{LOOPBACK}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(JOIN_TIMEOUT_S)

    def __enter__(self) -> HandlerServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PageServer(HandlerServer):
    """One HTML page, answered for any GET path, on 127.0.0.1: what a browser test opens. Use as a
    context manager (or close()); `url` has no trailing slash."""

    def __init__(self, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> None:
        class Page(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Page)
