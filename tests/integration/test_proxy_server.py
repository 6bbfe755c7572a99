"""The proxy server core (sigcli.proxy.server) on loopback: a fake policy, a trustme MITM CA, the harness
echo servers as upstreams, and real clients (curl, requests, httpx, http.client, raw sockets)."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from harness.servers import ServerHandle, start_http_echo, start_https_echo
from sigcli.core.errors import ErrorCode, SigError
from sigcli.net.tls import client_context
from sigcli.proxy.server import ProxyServer

pytestmark = pytest.mark.timeout(60)

TOKEN = "t0ken-for-tests"
SECRET = "Bearer S3CRET-header-value"
QSECRET = "Q-S3CRET"
BSECRET = "B-S3CRET"
HTTP_SECRET = "plain-S3CRET"
AUTH = "Basic " + base64.b64encode(f"sig:{TOKEN}".encode()).decode()


class FakeAdditions:
    def __init__(self, headers: dict[str, str] | None = None, query: dict[str, str] | None = None,
                 body: dict[str, str] | None = None, cafiles: list[str] | None = None) -> None:
        self.headers = headers or {}
        self.query = query or {}
        self.body = body or {}
        self.cafiles = cafiles or []
        self.passthrough_on_error = False


class FakePolicy:
    """MITM `localhost` and `expired.test`; inject over https on localhost, over http on localhost only."""

    def __init__(self, upstream_ca: str) -> None:
        self.upstream_ca = upstream_ca
        self.calls: list[tuple[str, str, int]] = []

    def intercept(self, host: str, port: int) -> bool:
        return host in ("localhost", "expired.test")

    def additions(self, scheme: str, host: str, port: int) -> FakeAdditions | None:
        self.calls.append((scheme, host, port))
        if host == "expired.test":
            raise SigError(ErrorCode.CREDENTIAL_EXPIRED, 'the credential of provider "exp" has expired',
                           "run: sig login exp")
        if host != "localhost":
            return None
        if scheme == "https":
            return FakeAdditions({"Authorization": SECRET}, {"api_key": QSECRET}, {"token": BSECRET},
                                 [self.upstream_ca])
        return FakeAdditions({"X-Api-Key": HTTP_SECRET})


def make_server_context(ca: trustme.CA) -> Callable[[str], ssl.SSLContext]:
    cache: dict[str, ssl.SSLContext] = {}
    lock = threading.Lock()

    def server_context(host: str) -> ssl.SSLContext:
        with lock:
            ctx = cache.get(host)
            if ctx is None:
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                ca.issue_cert(host).configure_cert(ctx)
                cache[host] = ctx
            return ctx

    return server_context


class RunningProxy:
    """A ProxyServer on its own event loop in a background thread."""

    def __init__(self, policy: FakePolicy, ca: trustme.CA, **kwargs: Any) -> None:
        self.logs: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="proxy-loop", daemon=True)
        self.thread.start()
        kwargs.setdefault("token", TOKEN)
        self.server = ProxyServer(policy, make_server_context(ca), upstream_context=client_context,
                                  log=self.logs.append, **kwargs)
        self.port = self.call(self.server.start())
        self.url = f"http://sig:{TOKEN}@127.0.0.1:{self.port}"

    def call(self, coro: Any, timeout: float = 15) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        try:
            self.call(self.server.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


class Env:
    def __init__(self, tmp: Path) -> None:
        self.echo = start_https_echo()
        self.http_echo = start_http_echo()
        self.mitm_ca = trustme.CA()
        self.ca_file = str(tmp / "mitm-ca.pem")
        self.mitm_ca.cert_pem.write_to_path(self.ca_file)
        self.policy = FakePolicy(str(self.echo.ca_path))
        self.proxy = RunningProxy(self.policy, self.mitm_ca, header_timeout=5.0, idle_timeout=10.0)

    def close(self) -> None:
        self.proxy.close()
        self.echo.close()
        self.http_echo.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    e = Env(tmp_path_factory.mktemp("proxy"))
    try:
        yield e
        deadline = time.monotonic() + 5
        while e.proxy.server.stats["active"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert e.proxy.server.stats["active"] == 0  # every connection was closed
    finally:
        e.close()


def _requests_to(server: ServerHandle, path: str) -> list[dict[str, Any]]:
    return [r for r in server.requests if r["path"] == path]


def _no_secret_in_logs(env: Env) -> None:
    text = "\n".join(env.proxy.logs)
    for secret in (SECRET, QSECRET, BSECRET, HTTP_SECRET, TOKEN, "api_key"):
        assert secret not in text


# -- client helpers ----------------------------------------------------------------------------------

CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl not installed")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def curl(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    assert CURL is not None
    return subprocess.run([CURL, "-sS", "--max-time", "15", *args], capture_output=True, text=True,
                          timeout=timeout, env=_clean_env(), check=False)


def raw_connect(port: int, target: str, *, auth: str | None = AUTH, timeout: float = 10) -> tuple[socket.socket, bytes]:
    """Send CONNECT target; return the socket and the response head."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if auth:
        lines.append(f"Proxy-Authorization: {auth}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock, read_head(sock)


def read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def read_until_close(sock: socket.socket, limit: float = 10) -> bytes:
    sock.settimeout(limit)
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        out += chunk
    return out


def tls_tunnel(env: Env, host: str, port: int, *, sni: str | None = None) -> ssl.SSLSocket:
    sock, head = raw_connect(env.proxy.port, f"{host}:{port}")
    assert head.startswith(b"HTTP/1.1 200"), head
    ctx = ssl.create_default_context(cafile=env.ca_file)
    return ctx.wrap_socket(sock, server_hostname=sni or host)


def tunnel_conn(env: Env, port: int, host: str = "localhost") -> http.client.HTTPSConnection:
    ctx = ssl.create_default_context(cafile=env.ca_file)
    conn = http.client.HTTPSConnection("127.0.0.1", env.proxy.port, context=ctx, timeout=15)
    conn.set_tunnel(host, port, headers={"Proxy-Authorization": AUTH})
    return conn


# -- injection on intercepted hosts ------------------------------------------------------------------


@needs_curl
def test_curl_gets_header_and_query_injected(env: Env) -> None:
    url = f"https://localhost:{env.echo.port}/inject?keep=a%20b&api_key=client-value"
    res = curl("--proxy", env.proxy.url, "--cacert", env.ca_file, "-H", "Authorization: Bearer client", url)
    assert res.returncode == 0, res.stderr
    seen = _requests_to(env.echo, "/inject")[-1]
    assert seen["headers"]["authorization"] == SECRET  # sig's header replaces the client's
    assert seen["query"] == {"keep": "a b", "api_key": QSECRET}  # set/replaced, others kept
    assert seen["headers"]["host"] == f"localhost:{env.echo.port}"
    assert "proxy-authorization" not in seen["headers"]
    assert "proxy-connection" not in seen["headers"]
    assert json.loads(res.stdout)["path"] == "/inject"
    assert any(f"GET https://localhost:{env.echo.port}/inject -> 200 injected=yes" in line
               for line in env.proxy.logs)
    _no_secret_in_logs(env)


def test_httpx_json_body_and_requests_form_body(env: Env) -> None:
    httpx = pytest.importorskip("httpx")
    requests = pytest.importorskip("requests")
    base = f"https://localhost:{env.echo.port}"
    with httpx.Client(proxy=env.proxy.url, verify=ssl.create_default_context(cafile=env.ca_file),
                      trust_env=False, timeout=15) as client:
        r = client.post(f"{base}/json", json={"a": 1, "token": "client"})
        assert r.status_code == 200
        r = client.post(f"{base}/text", content=b"not json", headers={"Content-Type": "text/plain"})
        assert r.status_code == 200
        r = client.post(f"{base}/array", json=[1, 2])
        assert r.status_code == 200
    assert json.loads(_requests_to(env.echo, "/json")[-1]["body"]) == {"a": 1, "token": BSECRET}
    assert _requests_to(env.echo, "/text")[-1]["body"] == "not json"  # other content types: unchanged
    assert json.loads(_requests_to(env.echo, "/array")[-1]["body"]) == [1, 2]  # not an object: unchanged

    with requests.Session() as session:
        session.trust_env = False
        r = session.post(f"{base}/form", data={"x": "1 2", "token": "client"},
                         proxies={"https": env.proxy.url}, verify=env.ca_file, timeout=15)
        assert r.status_code == 200
    form = _requests_to(env.echo, "/form")[-1]
    assert form["body"] == f"x=1+2&token={BSECRET}"
    assert form["headers"]["content-length"] == str(len(form["body"]))


def test_keep_alive_two_requests_one_upstream_connection(env: Env) -> None:
    before = env.proxy.server.stats["upstream_connections"]
    conn = tunnel_conn(env, env.echo.port)
    try:
        conn.request("HEAD", "/ka-head")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b""
        for i in range(2):
            conn.request("GET", f"/ka?i={i}")
            resp = conn.getresponse()
            assert resp.status == 200
            resp.read()
            if i == 0:
                first_sock = conn.sock
        assert conn.sock is first_sock  # same client connection
    finally:
        conn.close()
    seen = _requests_to(env.echo, "/ka")[-2:]
    assert [r["query"]["i"] for r in seen] == ["0", "1"]
    assert all(r["headers"]["authorization"] == SECRET and r["query"]["api_key"] == QSECRET for r in seen)
    # upstream reused: three requests, at most one new upstream connection (none when one that an earlier
    # client connection left in the server's shared idle pool was taken)
    assert env.proxy.server.stats["upstream_connections"] - before in (0, 1)


def test_chunked_uploads(env: Env) -> None:
    conn = tunnel_conn(env, env.echo.port)
    try:
        conn.request("POST", "/chunked-json", body=iter([b'{"a":', b' "b"}']), encode_chunked=True,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
        big = os.urandom(3 * 1024 * 1024).hex().encode()[: 3 * 1024 * 1024]
        parts = [big[i : i + 100_000] for i in range(0, len(big), 100_000)]
        conn.request("POST", "/chunked-big", body=iter(parts), encode_chunked=True,
                     headers={"Content-Type": "application/octet-stream"})
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
    finally:
        conn.close()
    assert json.loads(_requests_to(env.echo, "/chunked-json")[-1]["body"]) == {"a": "b", "token": BSECRET}
    seen = _requests_to(env.echo, "/chunked-big")[-1]
    assert seen["body"] == big.decode()  # streamed through unchanged
    assert seen["headers"]["transfer-encoding"] == "chunked"


@needs_curl
def test_expect_100_continue(env: Env, tmp_path: Path) -> None:
    payload = tmp_path / "body.json"
    payload.write_text(json.dumps({"big": "x" * 200_000}))
    res = curl("--proxy", env.proxy.url, "--cacert", env.ca_file, "-H", "Expect: 100-continue",
               "-H", "Content-Type: application/json", "--data-binary", f"@{payload}",
               f"https://localhost:{env.echo.port}/expect")
    assert res.returncode == 0, res.stderr
    seen = _requests_to(env.echo, "/expect")[-1]
    assert json.loads(seen["body"]) == {"big": "x" * 200_000, "token": BSECRET}
    assert "expect" not in seen["headers"]


def test_several_set_cookie_lines_kept(env: Env) -> None:
    # The echo server sends one Set-Cookie per query parameter (sig's api_key among them).
    want = ["a=1; Path=/", "b=2; Path=/", f"api_key={QSECRET}; Path=/"]
    conn = tunnel_conn(env, env.echo.port)
    try:
        conn.request("GET", "/set-cookie?a=1&b=2")
        resp = conn.getresponse()
        resp.read()
        assert resp.msg.get_all("Set-Cookie") == want
    finally:
        conn.close()
    httpx = pytest.importorskip("httpx")
    with httpx.Client(proxy=env.proxy.url, verify=ssl.create_default_context(cafile=env.ca_file),
                      trust_env=False, timeout=15) as client:
        r = client.get(f"https://localhost:{env.echo.port}/set-cookie?a=1&b=2")
        assert r.headers.get_list("set-cookie") == want
        r = client.get(f"http://127.0.0.1:{env.http_echo.port}/set-cookie")  # plain HTTP, no additions
        assert r.headers.get_list("set-cookie") == ["session=abc123; Path=/; HttpOnly", "theme=dark; Path=/"]


# -- not intercepted, refused, failing ---------------------------------------------------------------


@needs_curl
def test_other_hosts_get_a_blind_tunnel(env: Env) -> None:
    # 127.0.0.1 is not intercepted: the client must see the upstream's own certificate (its CA, not sig's).
    res = curl("--proxy", env.proxy.url, "--cacert", str(env.echo.ca_path),
               f"https://127.0.0.1:{env.echo.port}/tunnel?q=1")
    assert res.returncode == 0, res.stderr
    seen = _requests_to(env.echo, "/tunnel")[-1]
    assert "authorization" not in seen["headers"]
    assert seen["query"] == {"q": "1"}
    assert ("https", "127.0.0.1", env.echo.port) not in env.policy.calls
    assert any(f"CONNECT 127.0.0.1:{env.echo.port} -> tunnel" in line for line in env.proxy.logs)


def test_proxy_token_required(env: Env) -> None:
    for auth in (None, "Basic " + base64.b64encode(b"sig:wrong").decode(), "Bearer " + TOKEN):
        sock, head = raw_connect(env.proxy.port, f"localhost:{env.echo.port}", auth=auth)
        sock.close()
        assert head.startswith(b"HTTP/1.1 407"), head
        assert b'proxy-authenticate: basic realm="sig"' in head.lower()
    with socket.create_connection(("127.0.0.1", env.proxy.port), timeout=10) as sock:
        sock.sendall(f"GET http://127.0.0.1:{env.http_echo.port}/noauth HTTP/1.1\r\n"
                     f"Host: 127.0.0.1:{env.http_echo.port}\r\n\r\n".encode())
        assert read_head(sock).startswith(b"HTTP/1.1 407")
    assert _requests_to(env.http_echo, "/noauth") == []


@needs_curl
def test_curl_without_token_gets_407(env: Env) -> None:
    res = curl("-o", "/dev/null", "-w", "%{http_code}", "--proxy", f"http://127.0.0.1:{env.proxy.port}",
               f"http://localhost:{env.http_echo.port}/x")
    assert res.stdout == "407"


def test_bad_connect_targets(env: Env) -> None:
    for target in ("localhost:99999", "localhost:0", "localhost:abc", "localhost", ":443", "a@b:443",
                   "exa%0Dmple.com:443", "[::1:443"):
        sock, head = raw_connect(env.proxy.port, target)
        sock.close()
        assert head.startswith(b"HTTP/1.1 400"), (target, head)
    # A raw CR inside the target never reaches the policy.
    with socket.create_connection(("127.0.0.1", env.proxy.port), timeout=10) as sock:
        sock.sendall(b"CONNECT evil.test\r:443 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_head(sock).startswith(b"HTTP/1.1 400")
    assert not any(call[1].startswith("evil") for call in env.policy.calls)


def test_sni_mismatch_is_refused(env: Env) -> None:
    sock, head = raw_connect(env.proxy.port, f"localhost:{env.echo.port}")
    assert head.startswith(b"HTTP/1.1 200")
    ctx = ssl.create_default_context(cafile=env.ca_file)
    ctx.check_hostname = False
    with pytest.raises((ssl.SSLError, ConnectionError)):
        ctx.wrap_socket(sock, server_hostname="evil.example")
    sock.close()


def test_host_header_mismatch_is_refused(env: Env) -> None:
    before = len(env.echo.requests)
    tls = tls_tunnel(env, "localhost", env.echo.port)
    try:
        tls.sendall(b"GET /host-mismatch HTTP/1.1\r\nHost: evil.example\r\n\r\n")
        data = read_until_close(tls)
    finally:
        tls.close()
    assert data.startswith(b"HTTP/1.1 421"), data
    tls = tls_tunnel(env, "localhost", env.echo.port)
    try:
        tls.sendall(f"GET https://evil.example:{env.echo.port}/host-mismatch HTTP/1.1\r\n"
                    f"Host: localhost:{env.echo.port}\r\n\r\n".encode())
        data = read_until_close(tls)
    finally:
        tls.close()
    assert data.startswith(b"HTTP/1.1 421"), data
    assert len(env.echo.requests) == before


def test_untrusted_upstream_certificate_is_502_and_gets_nothing(env: Env) -> None:
    with start_https_echo() as other:  # its own CA, not in the policy's cafiles
        conn = tunnel_conn(env, other.port)
        try:
            conn.request("GET", "/secret-target")
            resp = conn.getresponse()
            body = resp.read().decode()
        finally:
            conn.close()
        assert resp.status == 502
        assert "not trusted" in body
        assert other.requests == []  # the TLS check failed before any request was sent
    assert SECRET not in body


def test_policy_error_is_502_with_the_fix(env: Env) -> None:
    tls = tls_tunnel(env, "expired.test", 443)
    try:
        tls.sendall(b"GET /x?api_key=1 HTTP/1.1\r\nHost: expired.test\r\n\r\n")
        data = read_until_close(tls).decode()
    finally:
        tls.close()
    assert data.startswith("HTTP/1.1 502")
    assert "CREDENTIAL_EXPIRED" in data and "sig login exp" in data


def test_upstream_down_is_502(env: Env) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    conn = tunnel_conn(env, dead)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 502
        assert "cannot connect" in resp.read().decode()
    finally:
        conn.close()


# -- plain HTTP --------------------------------------------------------------------------------------


@needs_curl
def test_plain_http_with_and_without_additions(env: Env) -> None:
    res = curl("--proxy", env.proxy.url, f"http://localhost:{env.http_echo.port}/plain-add?a=1")
    assert res.returncode == 0, res.stderr
    seen = _requests_to(env.http_echo, "/plain-add")[-1]
    assert seen["headers"]["x-api-key"] == HTTP_SECRET
    assert seen["query"] == {"a": "1"}
    assert "proxy-authorization" not in seen["headers"]

    res = curl("--proxy", env.proxy.url, f"http://127.0.0.1:{env.http_echo.port}/plain-none")
    assert res.returncode == 0, res.stderr
    seen = _requests_to(env.http_echo, "/plain-none")[-1]
    assert "x-api-key" not in seen["headers"]
    assert seen["headers"]["host"] == f"127.0.0.1:{env.http_echo.port}"


def test_plain_http_keep_alive_and_origin_form(env: Env) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", env.proxy.port, timeout=10)
    try:
        for i in range(2):
            conn.request("GET", f"http://127.0.0.1:{env.http_echo.port}/plain-ka?i={i}",
                         headers={"Proxy-Authorization": AUTH})
            resp = conn.getresponse()
            assert resp.status == 200
            resp.read()
        conn.request("GET", "/origin-form", headers={"Proxy-Authorization": AUTH})
        resp = conn.getresponse()
        assert resp.status == 400
        resp.read()
    finally:
        conn.close()
    assert len(_requests_to(env.http_echo, "/plain-ka")) >= 2
    with socket.create_connection(("127.0.0.1", env.proxy.port), timeout=10) as sock:
        sock.sendall(f"GET https://localhost:{env.echo.port}/x HTTP/1.1\r\nHost: localhost\r\n"
                     f"Proxy-Authorization: {AUTH}\r\n\r\n".encode())
        assert read_head(sock).startswith(b"HTTP/1.1 400")  # https goes through CONNECT, never cleartext


# -- load and abuse ----------------------------------------------------------------------------------


def test_fifty_concurrent_requests(env: Env) -> None:
    barrier = threading.Barrier(50, timeout=20)

    def one(i: int) -> tuple[int, str]:
        conn = tunnel_conn(env, env.echo.port) if i % 2 else \
            http.client.HTTPConnection("127.0.0.1", env.proxy.port, timeout=20)
        try:
            barrier.wait()
            if i % 2:
                conn.request("GET", f"/conc?i={i}")
            else:
                conn.request("GET", f"http://localhost:{env.http_echo.port}/conc?i={i}",
                             headers={"Proxy-Authorization": AUTH})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())["headers"].get("authorization", "")
        finally:
            conn.close()

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        results = list(pool.map(one, range(50)))
    assert [status for status, _ in results] == [200] * 50
    assert all(auth == SECRET for i, (_, auth) in enumerate(results) if i % 2)
    assert len(_requests_to(env.echo, "/conc")) >= 25
    assert len(_requests_to(env.http_echo, "/conc")) >= 25


def test_huge_header_and_garbage_are_rejected_and_the_server_survives(env: Env) -> None:
    with socket.create_connection(("127.0.0.1", env.proxy.port), timeout=10) as sock:
        head = f"GET http://localhost:{env.http_echo.port}/ HTTP/1.1\r\nHost: x\r\nX-Big: ".encode()
        answer = b""
        try:
            sock.sendall(head)
            chunk = b"a" * 65536
            for _ in range(160):  # 10 MB
                sock.sendall(chunk)
        except OSError:
            pass
        answer = read_until_close(sock)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer[:100]  # b"": reset mid-send
    assert any(line == "proxy: request head too large -> 431" for line in env.proxy.logs)
    for garbage in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64) + b"\r\n\r\n",
                    b"HELLO THERE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
                    b"GET / HTTP/1.1\r\n\r\n", b"\x00\xff" * 100 + b"\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", env.proxy.port), timeout=10) as sock:
            sock.sendall(garbage)
            data = read_until_close(sock)
            assert data.startswith(b"HTTP/1.1 400"), data[:100]
    # still serving
    conn = tunnel_conn(env, env.echo.port)
    try:
        conn.request("GET", "/after-abuse")
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def test_slow_clients_time_out(env: Env) -> None:
    proxy = RunningProxy(env.policy, env.mitm_ca, header_timeout=0.5, idle_timeout=1.0)
    try:
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
            sock.sendall(b"GET http://localhost/ HTTP/1.1\r\nHost: loc")  # never finishes the head
            data = read_until_close(sock)
        assert data.startswith(b"HTTP/1.1 408"), data
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
            assert read_until_close(sock) == b""  # silent client: closed
        # keep-alive connection left idle: closed after idle_timeout
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        conn.request("GET", f"http://127.0.0.1:{env.http_echo.port}/idle", headers={"Proxy-Authorization": AUTH})
        assert conn.getresponse().read()
        assert read_until_close(conn.sock) == b""
        conn.close()
        assert time.monotonic() - start < 8
        assert proxy.server.stats["active"] == 0
    finally:
        proxy.close()


# -- upgrades and broken upstreams (tiny hand-written TLS upstreams) ---------------------------------


class TinyTLSServer:
    """Accepts TLS connections for `localhost` (cert from `ca`) and runs handler(conn) for each."""

    def __init__(self, ca: trustme.CA, handler: Callable[[ssl.SSLSocket], None]) -> None:
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost").configure_cert(self.ctx)
        self.handler = handler
        self.heads: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(raw,), daemon=True).start()

    def _one(self, raw: socket.socket) -> None:
        try:
            raw.settimeout(10)
            with self.ctx.wrap_socket(raw, server_side=True) as conn:
                self.heads.append(read_head(conn))
                self.handler(conn)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


def test_websocket_upgrade_is_injected_then_spliced(env: Env) -> None:
    def ws(conn: ssl.SSLSocket) -> None:
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: abc\r\n\r\n")
        while True:
            data = conn.recv(4096)
            if not data:
                return
            conn.sendall(b"echo:" + data)

    assert env.echo.ca is not None
    upstream = TinyTLSServer(env.echo.ca, ws)
    try:
        tls = tls_tunnel(env, "localhost", upstream.port)
        try:
            tls.sendall(f"GET /ws HTTP/1.1\r\nHost: localhost:{upstream.port}\r\nConnection: Upgrade\r\n"
                        "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZQ==\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n".encode())
            head = read_head(tls)
            assert head.startswith(b"HTTP/1.1 101"), head
            assert b"upgrade: websocket" in head.lower()
            for msg in (b"ping", b"\x00\x01binary"):
                tls.sendall(msg)
                assert tls.recv(4096) == b"echo:" + msg
        finally:
            tls.close()
        sent = upstream.heads[0].decode().lower()
        assert f"authorization: {SECRET.lower()}" in sent
        assert "connection: upgrade" in sent and "upgrade: websocket" in sent
        assert "api_key=" in sent.split("\r\n")[0]
    finally:
        upstream.close()


def test_upstream_closing_mid_body_closes_the_client(env: Env) -> None:
    def cut(conn: ssl.SSLSocket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789")
        time.sleep(0.2)

    assert env.echo.ca is not None
    upstream = TinyTLSServer(env.echo.ca, cut)
    try:
        start = time.monotonic()
        tls = tls_tunnel(env, "localhost", upstream.port)
        try:
            tls.sendall(f"GET /cut HTTP/1.1\r\nHost: localhost:{upstream.port}\r\n\r\n".encode())
            data = read_until_close(tls, limit=10)
        finally:
            tls.close()
        assert data.startswith(b"HTTP/1.1 200")
        assert data.endswith(b"0123456789")
        assert time.monotonic() - start < 5  # no hang
    finally:
        upstream.close()


def test_server_rejects_non_loopback_bind() -> None:
    with pytest.raises(ValueError):
        ProxyServer(FakePolicy(""), lambda h: ssl.create_default_context(), host="0.0.0.0", token=None,
                    upstream_context=client_context, log=lambda m: None)


class FlakyKeepAlive:
    """Answers the first request on each connection, then drops the next one unanswered (a keep-alive
    server timing out just as the proxy reuses the connection)."""

    OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    def __call__(self, conn: ssl.SSLSocket) -> None:
        conn.sendall(self.OK)
        read_head(conn)


def test_reused_upstream_that_drops_the_request_is_retried(env: Env) -> None:
    assert env.echo.ca is not None
    upstream = TinyTLSServer(env.echo.ca, FlakyKeepAlive())
    before = env.proxy.server.stats["upstream_connections"]
    try:
        conn = tunnel_conn(env, upstream.port)
        try:
            for _ in range(2):
                conn.request("GET", "/flaky")
                resp = conn.getresponse()
                assert (resp.status, resp.read()) == (200, b"ok")
        finally:
            conn.close()
        assert env.proxy.server.stats["upstream_connections"] - before == 2
        assert len(upstream.heads) == 2
    finally:
        upstream.close()


def _pipelined_get(proxy_port: int, host: str, port: int, cafile: str, path: str) -> bytes:
    """CONNECT and the TLS ClientHello in one write (as some clients do), then one GET."""
    ctx = ssl.create_default_context(cafile=cafile)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=host)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
    try:
        sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     f"Proxy-Authorization: {AUTH}\r\n\r\n".encode() + outgoing.read())
        head = b""
        while not head.endswith(b"\r\n\r\n"):  # byte by byte: what follows is TLS
            byte = sock.recv(1)
            assert byte, head
            head += byte
        assert head.startswith(b"HTTP/1.1 200"), head
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if outgoing.pending:
                    sock.sendall(outgoing.read())
                data = sock.recv(65536)
                assert data, "closed during the handshake"
                incoming.write(data)
        tls.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        sock.sendall(outgoing.read())
        response = b""
        while True:
            try:
                chunk = tls.read(65536)
            except ssl.SSLWantReadError:
                data = sock.recv(65536)
                if not data:
                    break
                incoming.write(data)
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            if not chunk:
                break
            response += chunk
        return response
    finally:
        sock.close()


def test_client_hello_sent_with_the_connect_head(env: Env) -> None:
    mitm = _pipelined_get(env.proxy.port, "localhost", env.echo.port, env.ca_file, "/pipelined-mitm")
    assert mitm.startswith(b"HTTP/1.1 200")
    assert _requests_to(env.echo, "/pipelined-mitm")[-1]["headers"]["authorization"] == SECRET
    blind = _pipelined_get(env.proxy.port, "127.0.0.1", env.echo.port, str(env.echo.ca_path), "/pipelined-blind")
    assert blind.startswith(b"HTTP/1.1 200")
    assert "authorization" not in _requests_to(env.echo, "/pipelined-blind")[-1]["headers"]


class PassthroughPolicy(FakePolicy):
    passthrough_on_error = True

    def additions(self, scheme: str, host: str, port: int) -> FakeAdditions | None:
        raise SigError(ErrorCode.CREDENTIAL_NOT_FOUND, "no credential", "run: sig login x")


def test_policy_error_with_passthrough_forwards_without_injection(env: Env) -> None:
    proxy = RunningProxy(PassthroughPolicy(""), env.mitm_ca)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        try:
            conn.request("GET", f"http://localhost:{env.http_echo.port}/passthrough",
                         headers={"Proxy-Authorization": AUTH})
            resp = conn.getresponse()
            assert resp.status == 200
            resp.read()
        finally:
            conn.close()
        assert "x-api-key" not in _requests_to(env.http_echo, "/passthrough")[-1]["headers"]
        assert any("CREDENTIAL_NOT_FOUND; forwarding without credentials" in line for line in proxy.logs)
    finally:
        proxy.close()


def test_connection_limit(env: Env) -> None:
    proxy = RunningProxy(env.policy, env.mitm_ca, max_connections=1)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as held:
            deadline = time.monotonic() + 5
            while proxy.server.stats["active"] < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as extra:
                assert read_until_close(extra).startswith(b"HTTP/1.1 503")
            held.sendall(f"GET http://127.0.0.1:{env.http_echo.port}/limit HTTP/1.1\r\n"
                         f"Host: x\r\nProxy-Authorization: {AUTH}\r\n\r\n".encode())
            assert read_head(held).startswith(b"HTTP/1.1 200")
    finally:
        proxy.close()


# -- the sans-IO helpers -----------------------------------------------------------------------------


def test_h1_helpers() -> None:
    from sigcli.proxy import h1

    assert h1.parse_authority(b"API.Example.COM.:8443") == ("api.example.com", 8443)
    assert h1.parse_authority(b"[::1]:443") == ("::1", 443)
    assert h1.parse_authority(b"example.com", 443) == ("example.com", 443)
    for bad in (b"example.com", b"a b:1", b"a\r\n:1", b"a\x00:1", b"a:65536", b"a:-1", b"a:+1", b"u@a:1",
                b"a/b:1", b"[::1]x:1", b"..:1", b":1"):
        with pytest.raises(h1.BadTarget):
            h1.parse_authority(bad)
    assert h1.parse_absolute(b"http://u:p@Example.com:8080?x=1#f") == ("http", "example.com", 8080, b"/?x=1")
    assert h1.host_matches(b"localhost", "localhost", 443, 443)
    assert not h1.host_matches(b"localhost", "localhost", 8443, 443)
    assert not h1.host_matches(b"evil.com:443", "localhost", 443, 443)
    assert h1.with_query(b"/p?a=%20x&api_key=old&b", {"api_key": "n&w"}) == b"/p?a=%20x&b&api_key=n%26w"
    assert h1.inject_body(b"a=1&token=old", "form", {"token": "t t"}) == b"a=1&token=t+t"
    assert h1.inject_body(b"", "json", {"k": "v"}) == b'{"k":"v"}'
    assert h1.inject_body(b"[1]", "json", {"k": "v"}) is None
    assert h1.inject_body(b"{bad", "json", {"k": "v"}) is None
    assert h1.body_kind([(b"content-type", b"application/vnd.api+json; charset=utf-8")]) == "json"
    assert h1.body_kind([(b"content-type", b"text/plain")]) is None
    good = b"Basic " + base64.b64encode(b"sig:tok")
    from sigcli.proxy.profiles import USER, TokenTable

    assert TokenTable("tok").check([good]) is USER
    assert TokenTable("other").check([good]) is None
    assert TokenTable("tok").check([]) is None and TokenTable(None).check([]) is USER
    headers = h1.upstream_request_headers(
        [(b"host", b"x"), (b"connection", b"keep-alive, x-hop"), (b"x-hop", b"1"), (b"authorization", b"c"),
         (b"proxy-authorization", b"p"), (b"te", b"trailers"), (b"expect", b"100-continue"), (b"a", b"1")],
        host_value=b"api.test", add={"Authorization": "s"}, framing=("length", 3), upgrade=False)
    assert headers == [(b"host", b"api.test"), (b"a", b"1"), (b"Authorization", b"s"), (b"content-length", b"3")]
    assert h1.downstream_response_headers(
        [(b"transfer-encoding", b"chunked"), (b"content-length", b"5"), (b"set-cookie", b"a=1"),
         (b"set-cookie", b"b=2"), (b"keep-alive", b"timeout=5")]) == [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
    assert h1.loggable_path(b"/a/b?token=secret") == "/a/b"


# -- the fast path handing over to h11 mid-exchange ---------------------------------------------------


class ChunkedThenLength:
    """First response chunked (the fast path hands it to h11), the second with Content-Length (back on
    the fast path), both on one keep-alive upstream connection."""

    def __call__(self, conn: ssl.SSLSocket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n"
                     b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        read_head(conn)


def test_fast_request_with_chunked_response_then_keep_alive(env: Env) -> None:
    assert env.echo.ca is not None
    upstream = TinyTLSServer(env.echo.ca, ChunkedThenLength())
    before = env.proxy.server.stats["upstream_connections"]
    try:
        conn = tunnel_conn(env, upstream.port)
        try:
            conn.request("GET", "/chunked?api_key=x")
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b"hello world")
            assert resp.msg.get_all("Set-Cookie") == ["a=1", "b=2"]
            conn.request("GET", "/length")
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b"ok")
        finally:
            conn.close()
        assert env.proxy.server.stats["upstream_connections"] - before == 1
        first = upstream.heads[0].decode().lower()
        assert f"authorization: {SECRET.lower()}" in first and f"api_key={QSECRET.lower()}" in first
    finally:
        upstream.close()


class BadValuePolicy(FakePolicy):
    def additions(self, scheme: str, host: str, port: int) -> FakeAdditions | None:
        return FakeAdditions({"Authorization": "Bearer a\r\nX-Injected: 1"}, cafiles=[self.upstream_ca])


def test_injected_value_with_crlf_is_never_sent(env: Env) -> None:
    proxy = RunningProxy(BadValuePolicy(str(env.echo.ca_path)), env.mitm_ca)
    before = len(env.echo.requests)
    try:
        ctx = ssl.create_default_context(cafile=env.ca_file)
        conn = http.client.HTTPSConnection("127.0.0.1", proxy.port, context=ctx, timeout=15)
        conn.set_tunnel("localhost", env.echo.port, headers={"Proxy-Authorization": AUTH})
        try:
            conn.request("GET", "/crlf")
            resp = conn.getresponse()
            assert resp.status == 502
            assert "invalid header" in resp.read().decode()
        finally:
            conn.close()
    finally:
        proxy.close()
    assert len(env.echo.requests) == before
