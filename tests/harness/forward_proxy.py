"""A minimal HTTP forward proxy on 127.0.0.1 for browser tests, optionally asking for a password.

Absolute-form requests (``GET http://127.0.0.1:PORT/path``) to loopback hosts only; nothing is tunnelled
(no CONNECT). With ``user``/``password`` set, a request without the right ``Proxy-Authorization: Basic``
gets ``407`` with ``Proxy-Authenticate: Basic realm="sig-test"``, as corporate proxies answer.

    with ForwardProxy(user="bob", password="s3/cr#t") as proxy:
        ...  # networkProxy: http://bob:s3/cr#t@127.0.0.1:<proxy.port>
        assert proxy.seen and proxy.challenges

``hosts`` maps more names to a loopback address ({"alice.github.io": "127.0.0.1"}): a browser behind the proxy
then reaches loopback servers under real-world names, without DNS.
"""

from __future__ import annotations

import base64
import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

_HOP_BY_HOP = ("proxy-connection", "connection", "keep-alive", "proxy-authorization", "te", "trailers",
               "transfer-encoding", "upgrade")


class ForwardProxy:
    def __init__(self, user: str | None = None, password: str | None = None,
                 hosts: dict[str, str] | None = None) -> None:
        self.user = user
        self.hosts = dict(hosts or {})
        assert set(self.hosts.values()) <= {"127.0.0.1"}, "loopback only"
        self.password = password
        self.seen: list[str] = []  # URLs relayed (authenticated when a password is set)
        self.challenges = 0  # 407s sent
        self.wrong = 0  # requests that carried credentials, but not the right ones
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _authorized(self) -> bool:
                if outer.user is None:
                    return True
                expected = base64.b64encode(f"{outer.user}:{outer.password or ''}".encode()).decode()
                given = self.headers.get("Proxy-Authorization", "")
                if given == f"Basic {expected}":
                    return True
                with outer._lock:
                    outer.challenges += 1
                    if given:
                        outer.wrong += 1
                body = b"proxy authentication required"
                self.send_response(407)
                self.send_header("Proxy-Authenticate", 'Basic realm="sig-test"')
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return False

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if not self._authorized():
                    return
                parts = urlsplit(self.path)
                if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", *outer.hosts):
                    self.send_error(403, "loopback only")
                    return
                with outer._lock:
                    outer.seen.append(self.path)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                conn = http.client.HTTPConnection(outer.hosts.get(parts.hostname, parts.hostname), parts.port or 80,
                                                  timeout=30)
                try:
                    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                    conn.request(self.command, target, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except OSError:
                    self.send_error(502)
                    return
                finally:
                    conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_HEAD = _relay

            def do_CONNECT(self) -> None:
                if self._authorized():
                    self.send_error(501, "no tunnels in this test proxy")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ForwardProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
