"""The validation probe against real loopback servers: verdicts, headers sent, network failures, proxies."""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from sigcli.auth.validation import (
    LOGIN_URL_PATTERNS,
    Verdict,
    is_login_url,
    judge_response,
    probe,
)
from sigcli.core.errors import SigError
from sigcli.core.model import Provider

SECRET = "sess-VALUE-8f3a"
JS_REDIRECT_BODY = '<html><script>window.location = "/login?next=%2F";</script></html>'


class _Recorder(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    """Routes: /ok, /status/<code>, /redirect?to=<url>, /js, /json?ok=true|false, /html."""

    server: _Recorder
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self.server.lock:
            self.server.seen.append({"path": parts.path, "query": query,
                                     "headers": {k.lower(): v for k, v in self.headers.items()}})
        status, headers, body = 200, {"Content-Type": "text/plain"}, "hello"
        if parts.path.startswith("/status/"):
            status = int(parts.path.rsplit("/", 1)[1])
        elif parts.path == "/redirect":
            status, headers["Location"] = 302, query.get("to", "/")
        elif parts.path == "/js":
            headers["Content-Type"], body = "text/html", JS_REDIRECT_BODY
        elif parts.path == "/json":
            headers["Content-Type"] = "application/json"
            body = json.dumps({"ok": query.get("ok") == "true"})
        data = body.encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server() -> Iterator[_Recorder]:
    srv = _Recorder()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def _base(srv: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}"


def _provider(entry_url: str, **extra: Any) -> Provider:
    data: dict[str, Any] = {
        "id": "probe-test",
        "strategy": "browser",
        "domains": ["127.0.0.1"],
        "entryUrl": entry_url,
        "extract": [{"from": "cookies", "as": "session", "match": "session"}],
        "apply": [{"in": "header", "name": "Cookie", "value": "session=${session}"}],
    }
    data.update(extra)
    return Provider(data)


VALUES = {"session": SECRET}


# -- pure parts -----------------------------------------------------------------------------------------


def test_login_url_patterns() -> None:
    assert is_login_url("https://x.example/Login?next=/", [])
    assert is_login_url("https://LOGIN.microsoftonline.com/common", [])
    assert not is_login_url("https://x.example/home", [])
    assert is_login_url("https://x.example/idp/start", ["/IdP"])
    assert is_login_url("https://x.example/IDP/start", ["/idp"])
    assert not is_login_url("https://x.example/home", ["", "  "])  # blank patterns match nothing
    assert "/adfs/" in LOGIN_URL_PATTERNS


def test_judge_without_rule() -> None:
    def judge(status: int, body: str = "", location: str | None = None, explicit: bool = False,
              patterns: list[str] | None = None) -> bool:
        headers = {"Location": location} if location else {}
        return judge_response(status, body, headers, explicit_validate_url=explicit, rule=None,
                              extra_patterns=patterns or [])[0]

    assert judge(200) and judge(404) and judge(500)
    assert not any(judge(s) for s in (401, 403, 406, 429))
    assert not judge(302, location="https://sso.example/saml/start")
    assert judge(302, location="/home")
    assert not judge(302, location="/home", explicit=True)
    assert not judge(302, location="/IdP/x", patterns=["/idp"])
    assert not judge(200, body=JS_REDIRECT_BODY)
    assert not judge(200, body="<meta http-equiv=REFRESH content='0;url=/x'>")
    assert not judge(200, body='x;location = "/x"')
    assert judge(200, body=JS_REDIRECT_BODY + " " * 4096)  # long bodies are real pages
    assert judge(200, body="the location of the office")


def test_judge_with_rule_decides_alone() -> None:
    ok, reason = judge_response(401, '{"ok": true}', {}, explicit_validate_url=True,
                                rule="res.body.ok === true", extra_patterns=[])
    assert ok is True and "validateRule" in reason
    ok, _ = judge_response(200, "hello", {}, explicit_validate_url=False, rule="res.status === 401",
                           extra_patterns=[])
    assert ok is False


# -- the probe against a server ---------------------------------------------------------------------------


def test_200_is_valid_and_headers_reach_the_server(server: _Recorder) -> None:
    verdict, reason = probe(_provider(_base(server) + "/ok"), VALUES, timeout=5)
    assert verdict is Verdict.VALID, reason
    assert SECRET not in reason
    [seen] = server.seen
    assert seen["headers"]["cookie"] == f"session={SECRET}"
    assert seen["headers"]["user-agent"].startswith("sig/") and seen["headers"]["user-agent"].endswith("(python)")
    assert seen["headers"]["accept"].startswith("application/json")


@pytest.mark.parametrize("status", [401, 403, 406, 429])
def test_refusal_statuses_are_invalid(server: _Recorder, status: int) -> None:
    verdict, reason = probe(_provider(_base(server) + f"/status/{status}"), VALUES, timeout=5)
    assert verdict is Verdict.INVALID
    assert str(status) in reason and "/status/" in reason


def test_redirects(server: _Recorder) -> None:
    base = _base(server)
    verdict, reason = probe(_provider(base + "/redirect?to=/login"), VALUES, timeout=5)
    assert verdict is Verdict.INVALID and "login" in reason
    assert probe(_provider(base + "/redirect?to=/home"), VALUES, timeout=5)[0] is Verdict.VALID
    explicit = _provider(base + "/ok", validateUrl=base + "/redirect?to=/home")
    assert probe(explicit, VALUES, timeout=5)[0] is Verdict.INVALID
    assert len(server.seen) == 3  # never followed


def test_custom_login_pattern_case_insensitive(server: _Recorder) -> None:
    url = _base(server) + "/redirect?to=/idp/start"
    assert probe(_provider(url), VALUES, timeout=5)[0] is Verdict.VALID
    assert probe(_provider(url, loginUrlPatterns=["/IdP"]), VALUES, timeout=5)[0] is Verdict.INVALID


def test_js_redirect_body_is_invalid(server: _Recorder) -> None:
    verdict, _ = probe(_provider(_base(server) + "/js"), VALUES, timeout=5)
    assert verdict is Verdict.INVALID


def test_validate_rule(server: _Recorder) -> None:
    base = _base(server)
    rule = "res.body.ok === true"
    false = _provider(base + "/", validateUrl=base + "/json?ok=false", validateRule=rule)
    verdict, reason = probe(false, VALUES, timeout=5)
    assert verdict is Verdict.INVALID and "validateRule" in reason
    true = _provider(base + "/", validateUrl=base + "/json?ok=true", validateRule=rule)
    assert probe(true, VALUES, timeout=5)[0] is Verdict.VALID
    headers_rule = 'res.headers["content-type"] === "application/json" && res.status === 200'
    assert probe(_provider(base + "/json?ok=true", validateRule=headers_rule), VALUES, timeout=5)[0] is Verdict.VALID


def test_query_apply_rules_are_sent(server: _Recorder) -> None:
    provider = _provider(_base(server) + "/ok?x=1", apply=[{"in": "query", "name": "key", "value": "${session}"}])
    verdict, reason = probe(provider, VALUES, timeout=5)
    assert verdict is Verdict.VALID
    assert server.seen[0]["query"] == {"x": "1", "key": SECRET}
    assert SECRET not in reason


def test_missing_value_makes_no_request(server: _Recorder) -> None:
    provider = _provider(_base(server) + "/ok")
    assert probe(provider, {}, timeout=5) == (Verdict.INVALID, "no values extracted")
    assert probe(provider, {"session": ""}, timeout=5) == (Verdict.INVALID, "missing session")
    assert probe(provider, {"other": "x"}, timeout=5) == (Verdict.INVALID, "missing session")
    assert server.seen == []


def test_no_url_is_valid() -> None:
    assert probe(_provider(""), VALUES)[0] is Verdict.VALID


def test_host_outside_domains_gets_nothing(server: _Recorder) -> None:
    port = server.server_address[1]
    provider = _provider(_base(server) + "/ok", validateUrl=f"http://localhost:{port}/ok")
    with pytest.raises(SigError) as info:  # a validateUrl that can never receive the credentials
        probe(provider, VALUES, timeout=5)
    assert info.value.code == "CONFIG_ERROR" and "not one of the domains" in info.value.message
    assert server.seen == []


def test_header_injection_is_refused(server: _Recorder) -> None:
    verdict, reason = probe(_provider(_base(server) + "/ok"), {"session": "a\r\nX-Evil: 1"}, timeout=5)
    assert verdict is Verdict.INVALID and "X-Evil" not in reason
    assert server.seen == []


def test_bad_url_is_a_config_error() -> None:
    with pytest.raises(SigError) as info:
        probe(_provider("ftp://127.0.0.1/x"), VALUES)
    assert info.value.code == "CONFIG_ERROR"


# -- network failures are UNKNOWN -----------------------------------------------------------------------


def test_closed_port_is_unknown() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    verdict, reason = probe(_provider(f"http://127.0.0.1:{port}/ok"), VALUES, timeout=5)
    assert verdict is Verdict.UNKNOWN, reason


@contextlib.contextmanager
def _silent_server() -> Iterator[int]:
    """Accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.05)
    stop = threading.Event()
    held: list[socket.socket] = []

    def run() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                held.append(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def test_silent_server_is_unknown_fast() -> None:
    with _silent_server() as port:
        started = time.monotonic()
        verdict, reason = probe(_provider(f"http://127.0.0.1:{port}/ok"), VALUES, timeout=0.5)
        elapsed = time.monotonic() - started
    assert verdict is Verdict.UNKNOWN and "0.5" in reason
    assert elapsed < 3


# -- https and caFile -----------------------------------------------------------------------------------


def test_https_uses_provider_cafile(https_echo: Any) -> None:
    url = https_echo.url_for("/ok")
    verdict, reason = probe(_provider(url, caFile=https_echo.ca_path), VALUES, timeout=5)
    assert verdict is Verdict.VALID, reason
    assert https_echo.last_request["headers"]["cookie"] == f"session={SECRET}"
    verdict, reason = probe(_provider(url), VALUES, timeout=5)
    assert verdict is Verdict.UNKNOWN and "TLS" in reason


# -- networkProxy ---------------------------------------------------------------------------------------


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []  # (method, target, Proxy-Authorization)
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(BaseHTTPRequestHandler):
    """A minimal forward proxy: absolute-form GET (one request) and CONNECT tunnels."""

    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append(("GET", self.path, self.headers.get("Proxy-Authorization")))
        target = urlsplit(self.path)
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=5)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-authorization"}
        upstream.request("GET", target.path + (f"?{target.query}" if target.query else ""), headers=headers)
        response = upstream.getresponse()
        data = response.read()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    def do_CONNECT(self) -> None:
        self.server.seen.append(("CONNECT", self.path, self.headers.get("Proxy-Authorization")))
        host, _, port = self.path.rpartition(":")
        upstream = socket.create_connection((host, int(port)), timeout=5)
        self.send_response(200, "Connection established")
        self.end_headers()
        deadline = time.monotonic() + 10
        sockets = [self.connection, upstream]
        try:
            while time.monotonic() < deadline:
                readable, _, _ = select.select(sockets, [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is self.connection else self.connection).sendall(data)
        finally:
            upstream.close()
            self.close_connection = True


@pytest.fixture
def proxy() -> Iterator[_ProxyServer]:
    srv = _ProxyServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def test_http_through_proxy(server: _Recorder, proxy: _ProxyServer) -> None:
    url = _base(server) + "/ok"
    provider = _provider(url, networkProxy=f"http://user:pw@127.0.0.1:{proxy.server_address[1]}")
    verdict, reason = probe(provider, VALUES, timeout=5)
    assert verdict is Verdict.VALID, reason
    [(method, target, auth)] = proxy.seen
    assert (method, target) == ("GET", url) and auth and auth.startswith("Basic ")
    assert server.seen[0]["headers"]["cookie"] == f"session={SECRET}"


def test_https_through_proxy_tunnel(https_echo: Any, proxy: _ProxyServer) -> None:
    provider = _provider(https_echo.url_for("/ok"), caFile=https_echo.ca_path,
                         networkProxy=f"127.0.0.1:{proxy.server_address[1]}")
    verdict, reason = probe(provider, VALUES, timeout=5)
    assert verdict is Verdict.VALID, reason
    assert proxy.seen == [("CONNECT", f"127.0.0.1:{https_echo.port}", None)]
    assert https_echo.last_request["headers"]["cookie"] == f"session={SECRET}"


def test_unsupported_proxy_scheme_is_a_config_error() -> None:
    provider = _provider("https://127.0.0.1:9/ok", networkProxy="socks4://user:pw-SECRET@127.0.0.1:1080")
    with pytest.raises(SigError) as info:
        probe(provider, VALUES, timeout=1)
    assert info.value.code == "CONFIG_ERROR" and "socks4://" in info.value.message
    assert "pw-SECRET" not in info.value.message + info.value.hint
