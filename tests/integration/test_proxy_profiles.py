"""Client profiles of the proxy server (proxy/profiles.py: the hook the agent sandbox plugs into) and its
Unix socket listener, on loopback with real clients: extra tokens minted and revoked at run time, other
hosts refused, raw TCP targets, per-run placeholders swapped into requests to their provider's hosts and
refused (403 + the on_blocked hook) anywhere else."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from harness.servers import start_http_echo, start_https_echo
from sigcli.net.tls import client_context
from sigcli.proxy.profiles import USER, Profile
from sigcli.proxy.server import ProxyServer

pytestmark = pytest.mark.timeout(60)

USER_TOKEN = "user-token-0123"
RUN_TOKEN = "run-token-4567"
SECRET = "S3CRET-value-for-openai"
PLACEHOLDER = "sig-ph-0123456789abcdef0123"


def _auth(token: str) -> str:
    return "Basic " + base64.b64encode(f"sig:{token}".encode()).decode()


class Additions:
    def __init__(self, cafiles: list[str], providers: list[str], headers: dict[str, str] | None = None) -> None:
        self.headers = headers or {}
        self.query: dict[str, str] = {}
        self.body: dict[str, str] = {}
        self.cafiles = cafiles
        self.providers = providers
        self.values = {"openai": {"token": SECRET}} if providers else {}
        self.redact = (SECRET.encode(),) if providers else ()


class Policy:
    """`localhost` is provider "openai"'s host (header injection over https); nothing else is."""

    def __init__(self, ca: str) -> None:
        self.ca = ca

    def intercept(self, host: str, port: int) -> bool:
        return host == "localhost"

    def additions(self, scheme: str, host: str, port: int) -> Additions | None:
        if host != "localhost":
            return None
        return Additions([self.ca], ["openai"], {"X-Sig": "added"})


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.echo = start_https_echo()
        self.plain = start_http_echo()
        self.ca = trustme.CA()
        self.ca_file = str(tmp / "mitm.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.blocked: list[tuple[Any, ...]] = []
        self.logs: list[str] = []
        self.sock_path = str(tmp / "p.sock")
        contexts: dict[str, ssl.SSLContext] = {}

        def server_context(host: str) -> ssl.SSLContext:
            if host not in contexts:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                self.ca.issue_cert(host).configure_cert(ctx)
                contexts[host] = ctx
            return contexts[host]

        self.server = ProxyServer(Policy(str(self.echo.ca_path)), server_context, token=USER_TOKEN,
                                  upstream_context=client_context, log=self.logs.append,
                                  on_blocked=lambda *a: self.blocked.append(a), unix_path=self.sock_path)
        self.port = self.server.open()

    def close(self) -> None:
        self.server.shutdown()
        self.echo.close()
        self.plain.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    try:
        yield r
    finally:
        r.close()


def _tunnel(rig: Rig, host: str, port: int, token: str) -> http.client.HTTPSConnection:
    ctx = ssl.create_default_context(cafile=rig.ca_file)
    conn = http.client.HTTPSConnection("127.0.0.1", rig.port, context=ctx, timeout=15)
    conn.set_tunnel(host, port, headers={"Proxy-Authorization": _auth(token)})
    return conn


def _connect_status(rig: Rig, target: str, token: str) -> bytes:
    with socket.create_connection(("127.0.0.1", rig.port), timeout=10) as sock:
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: {_auth(token)}\r\n\r\n"
                     .encode())
        return sock.recv(4096).split(b"\r\n", 1)[0]


def test_extra_token_gets_its_profile_and_dies_with_revoke(rig: Rig) -> None:
    profile = Profile("run-1", providers=frozenset({"openai"}), other_hosts="refuse")
    assert _connect_status(rig, f"localhost:{rig.echo.port}", RUN_TOKEN).startswith(b"HTTP/1.1 407")
    rig.server.add_token(RUN_TOKEN, profile)
    conn = _tunnel(rig, "localhost", rig.echo.port, RUN_TOKEN)
    conn.request("GET", "/run")
    resp = conn.getresponse()
    assert resp.status == 200
    assert json.loads(resp.read())["headers"]["x-sig"] == "added"  # its provider is injected
    # other hosts: refused for this profile, before any connection
    assert _connect_status(rig, f"127.0.0.1:{rig.echo.port}", RUN_TOKEN).startswith(b"HTTP/1.1 403")
    # the user's own token still tunnels them
    assert _connect_status(rig, f"127.0.0.1:{rig.echo.port}", USER_TOKEN).startswith(b"HTTP/1.1 200")
    rig.server.revoke_token(RUN_TOKEN)
    deadline = time.monotonic() + 5
    closed = False
    while time.monotonic() < deadline and not closed:  # its open connection is closed too
        try:
            conn.request("GET", "/after-revoke")
            conn.getresponse().read()
            time.sleep(0.05)
        except (OSError, http.client.HTTPException):
            closed = True
    assert closed
    assert _connect_status(rig, f"localhost:{rig.echo.port}", RUN_TOKEN).startswith(b"HTTP/1.1 407")


def test_raw_tcp_only_to_listed_targets(rig: Rig) -> None:
    profile = Profile("run-2", providers=frozenset(), other_hosts="refuse",
                      tcp=frozenset({("127.0.0.1", rig.plain.port)}))
    rig.server.add_token(RUN_TOKEN, profile)
    assert _connect_status(rig, f"127.0.0.1:{rig.plain.port}", RUN_TOKEN).startswith(b"HTTP/1.1 200")
    assert _connect_status(rig, f"127.0.0.1:{rig.echo.port}", RUN_TOKEN).startswith(b"HTTP/1.1 403")


def test_placeholder_swapped_for_its_provider_and_refused_elsewhere(rig: Rig) -> None:
    profile = Profile("run-3", other_hosts="mitm", placeholders={PLACEHOLDER.encode(): ("openai", "token")})
    rig.server.add_token(RUN_TOKEN, profile)
    conn = _tunnel(rig, "localhost", rig.echo.port, RUN_TOKEN)
    conn.request("POST", f"/v1?key={PLACEHOLDER}", body=json.dumps({"k": PLACEHOLDER}),
                 headers={"Authorization": f"Bearer {PLACEHOLDER}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    answer = resp.read()
    assert resp.status == 200
    seen = rig.echo.requests[-1]
    assert seen["headers"]["authorization"] == f"Bearer {SECRET}"  # swapped in head, query and body
    assert seen["query"]["key"] == SECRET and json.loads(seen["body"]) == {"k": SECRET}
    assert SECRET.encode() not in answer  # the echo of the real value is masked on the way back
    conn.close()
    # the same placeholder to a host it does not belong to: 403, nothing forwarded, reported
    before = len(rig.plain.requests)
    with socket.create_connection(("127.0.0.1", rig.port), timeout=10) as sock:
        sock.sendall(f"GET http://127.0.0.1:{rig.plain.port}/exfil?x={PLACEHOLDER} HTTP/1.1\r\nHost: x\r\n"
                     f"Proxy-Authorization: {_auth(RUN_TOKEN)}\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 403")
    assert len(rig.plain.requests) == before
    assert rig.blocked and rig.blocked[-1][0] == "run-3" and rig.blocked[-1][1] == "GET"
    # and in a body to another https host (MITM'd for this profile, so it is seen)
    conn = _tunnel(rig, "127.0.0.1", rig.echo.port, RUN_TOKEN)
    conn.request("POST", "/exfil", body=f"secret={PLACEHOLDER}",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert conn.getresponse().status == 403
    conn.close()
    assert all("/exfil" not in r["path"] for r in rig.echo.requests)
    assert all(PLACEHOLDER not in line and SECRET not in line for line in rig.logs)


def test_the_user_token_is_unrestricted(rig: Rig) -> None:
    assert rig.server.tokens.check([_auth(USER_TOKEN).encode()]) is USER
    assert rig.server.tokens.check([_auth("nope").encode()]) is None
    assert rig.server.tokens.check([]) is None


def test_unix_socket_listener_is_0600_and_serves_the_same_proxy(rig: Rig) -> None:
    mode = os.stat(rig.sock_path).st_mode
    assert stat.S_ISSOCK(mode) and mode & 0o777 == 0o600
    request = (f"GET http://127.0.0.1:{rig.plain.port}/via-unix HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               f"Proxy-Authorization: {_auth(USER_TOKEN)}\r\n\r\n").encode()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(rig.sock_path)
        sock.sendall(request)
        answer = b""
        while data := sock.recv(65536):
            answer += data
    assert answer.startswith(b"HTTP/1.1 200")
    assert rig.plain.requests[-1]["path"] == "/via-unix"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(rig.sock_path)
        sock.sendall(request.replace(_auth(USER_TOKEN).encode(), b"Basic eA=="))
        assert sock.recv(4096).startswith(b"HTTP/1.1 407")


def test_handshakes_do_not_block_the_loop(rig: Rig) -> None:
    """A client stuck in the middle of its TLS handshake (ClientHello sent, never finishing) does not
    hold up others: keep-alive requests on another connection keep being answered quickly."""
    stuck = socket.create_connection(("127.0.0.1", rig.port), timeout=10)
    try:
        stuck.sendall(f"CONNECT localhost:{rig.echo.port} HTTP/1.1\r\nHost: x\r\n"
                      f"Proxy-Authorization: {_auth(USER_TOKEN)}\r\n\r\n".encode())
        assert stuck.recv(4096).startswith(b"HTTP/1.1 200")
        stuck.sendall(b"\x16\x03\x01\x00\x10")  # the start of a TLS record, never completed
        conn = _tunnel(rig, "localhost", rig.echo.port, USER_TOKEN)
        times = []
        for _ in range(20):
            start = time.monotonic()
            conn.request("GET", "/quick")
            conn.getresponse().read()
            times.append(time.monotonic() - start)
        conn.close()
        assert sorted(times)[10] < 0.1, times
    finally:
        stuck.close()


def test_fifty_handshakes_at_once(rig: Rig) -> None:
    results: list[int] = []
    lock = threading.Lock()
    gate = threading.Barrier(50, timeout=20)

    def one() -> None:
        gate.wait()
        conn = _tunnel(rig, "localhost", rig.echo.port, USER_TOKEN)
        try:
            conn.request("GET", "/burst")
            status = conn.getresponse().status
        finally:
            conn.close()
        with lock:
            results.append(status)

    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [200] * 50
