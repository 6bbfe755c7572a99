"""Proxy injections in the audit log, through the real daemon: one `proxy_request` event per request sig
added credentials to, with the original's field names, no secret and no query value, written in batches
and at `sig proxy stop`."""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import PROXY_TOKEN as TOKEN
from harness.servers import ServerHandle
from harness.sigproc import Sig

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
QUERY_SECRET = "qv-SHOULD-NOT-BE-LOGGED-7731"


def _start(sig: Sig, https_echo: ServerHandle, **env: str) -> dict[str, str]:
    """A provider "echo" for https_echo (API token) and a proxy started with `env`; the client env."""
    sig("login", https_echo.url, "--token-stdin", "--as", "echo", input=TOKEN, check=0)
    cfg = sig.home / "config.yaml"
    cfg.write_text(cfg.read_text().replace("    strategy: api-token\n",
                                           f"    strategy: api-token\n    caFile: {https_echo.ca_path}\n", 1))
    sig("proxy", "start", "--port", "0", env=env, check=0)
    return sig("proxy", "env", "--format", "json", check=0).json()


@pytest.fixture
def proxy_env(sig_init: Sig, https_echo: ServerHandle, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    env = getattr(request, "param", {})
    try:
        yield _start(sig_init, https_echo, **env)
    finally:
        sig_init("proxy", "stop", check=None)


def _connection(env: dict[str, str], https_echo: ServerHandle) -> http.client.HTTPSConnection:
    """A keep-alive HTTPS connection to the echo server through the proxy (CONNECT with the token)."""
    creds, _, hostport = env["HTTPS_PROXY"][len("http://"):].rpartition("@")
    host, port = hostport.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=env["SSL_CERT_FILE"])
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=30)
    conn.set_tunnel("127.0.0.1", https_echo.port,
                    headers={"Proxy-Authorization": "Basic " + base64.b64encode(creds.encode()).decode()})
    return conn


def _exchange(conn: http.client.HTTPSConnection, method: str, path: str, **kw: object) -> int:
    conn.request(method, path, **kw)  # type: ignore[arg-type]
    resp = conn.getresponse()
    resp.read()
    return resp.status


def _audit_events(home: Path, action: str = "proxy_request") -> list[dict]:
    path = home / "audit.log"
    if not path.exists():
        return []
    raw = path.read_text(encoding="utf-8")
    assert raw == "" or raw.endswith("\n"), "the audit log ends mid-line"
    return [e for e in (json.loads(line) for line in raw.splitlines()) if e["action"] == action]


def _wait_events(home: Path, n: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    events = _audit_events(home)
    while len(events) < n and time.monotonic() < deadline:
        time.sleep(0.05)
        events = _audit_events(home)
    return events


def test_one_event_per_injected_request(sig_init: Sig, proxy_env: dict[str, str],
                                        https_echo: ServerHandle) -> None:
    host = f"127.0.0.1:{https_echo.port}"
    conn = _connection(proxy_env, https_echo)
    sent = [
        # fast path: plain GETs with and without a query, an error status
        ("GET", f"/items?q={QUERY_SECRET}&page=2&flag{QUERY_SECRET}", {}, 200,
         "/items?q=&page="),
        ("GET", "/plain", {}, 200, "/plain"),
        ("GET", "/status/404", {}, 404, "/status/404"),
        # h11 path: a HEAD (no body to frame) and a chunked upload
        ("HEAD", "/head?token=" + QUERY_SECRET, {}, 200, "/head?token="),
        ("POST", "/upload#frag" + QUERY_SECRET, {"body": iter([b"a=1", b"&b=2"]), "encode_chunked": True,
                                                 "headers": {"Content-Type": "text/plain"}}, 200, "/upload"),
    ]
    for method, path, kw, status, _shown in sent:
        assert _exchange(conn, method, path, **kw) == status
    conn.close()
    # every request reached the echo server with the credential
    assert [r["headers"]["authorization"] for r in https_echo.requests[-len(sent):]] == [f"Bearer {TOKEN}"] * 5

    events = _wait_events(sig_init.home, len(sent))
    assert len(events) == len(sent)
    for event, (method, _path, _kw, status, shown) in zip(events, sent, strict=True):
        assert list(event) == ["timestamp", "action", "status", "provider", "metadata"]
        assert TIMESTAMP.match(event["timestamp"])
        assert event["provider"] == "echo"
        assert event["status"] == ("success" if status < 400 else "failure")
        assert event["metadata"] == {"host": host, "method": method, "path": shown, "statusCode": status}
    text = (sig_init.home / "audit.log").read_text()
    assert TOKEN not in text and QUERY_SECRET not in text
    # the proxy log still has its own lines, and no secret either
    log = (sig_init.home / "proxy" / "proxy.log").read_text()
    assert TOKEN not in log and QUERY_SECRET not in log


def test_many_requests_many_lines_and_other_writers_stay_whole(sig_init: Sig, proxy_env: dict[str, str],
                                                               https_echo: ServerHandle) -> None:
    """N keep-alive requests → N events (batched), while other sig commands append their own lines."""
    n = 300
    conn = _connection(proxy_env, https_echo)
    for i in range(n):
        assert _exchange(conn, "GET", f"/n/{i}?i={i}") == 200
        if i % 100 == 0:
            sig_init("get", "echo", check=0)  # another process appending to the same log meanwhile
    conn.close()
    events = _wait_events(sig_init.home, n)
    assert sorted(e["metadata"]["path"] for e in events) == sorted(f"/n/{i}?i=" for i in range(n))
    assert len(_audit_events(sig_init.home, "credential_access")) == 3
    assert TOKEN not in (sig_init.home / "audit.log").read_text()


def test_requests_sig_adds_nothing_to_are_not_recorded(sig_init: Sig, proxy_env: dict[str, str],
                                                       https_echo: ServerHandle) -> None:
    """A provider whose credential is missing is refused (502, nothing sent): no proxy_request event."""
    sig_init("logout", "echo", check=0)
    conn = _connection(proxy_env, https_echo)
    assert _exchange(conn, "GET", "/after-logout") == 502
    conn.close()
    time.sleep(0.6)  # longer than the batch interval: a wrongly queued event would be written by now
    assert _audit_events(sig_init.home) == []


@pytest.mark.parametrize("proxy_env", [{"SIG_PROXY_AUDIT_FLUSH_MS": "600000"}], indirect=True)
def test_events_still_queued_are_written_at_stop(sig_init: Sig, proxy_env: dict[str, str],
                                                 https_echo: ServerHandle) -> None:
    conn = _connection(proxy_env, https_echo)
    for i in range(20):
        assert _exchange(conn, "GET", f"/queued/{i}") == 200
    conn.close()
    assert _audit_events(sig_init.home) == [], "with a 10-minute interval nothing is written before stop"
    r = sig_init("proxy", "stop", check=0)
    assert "stopped" in r.err
    events = _audit_events(sig_init.home)
    assert [e["metadata"]["path"] for e in events] == [f"/queued/{i}" for i in range(20)]
    # the stop itself is still recorded after them, as before
    assert _audit_events(sig_init.home, "proxy_stop")


@pytest.mark.parametrize("proxy_env", [{"SIG_PROXY_AUDIT": "off"}], indirect=True)
def test_audit_of_injections_can_be_turned_off(sig_init: Sig, proxy_env: dict[str, str],
                                               https_echo: ServerHandle) -> None:
    conn = _connection(proxy_env, https_echo)
    assert _exchange(conn, "GET", "/off") == 200
    conn.close()
    sig_init("proxy", "stop", check=0)
    assert https_echo.requests[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert _audit_events(sig_init.home) == []
