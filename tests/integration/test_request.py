"""`sig request` against loopback echo servers: injection, output formats, redirects, TLS, bad input."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from harness.servers import HandlerServer, ServerHandle
from harness.sigproc import Sig

TOKEN = "tok-REQUEST-8c1d2e"


@pytest.fixture
def echo_login(sig_init: Sig, http_echo: ServerHandle) -> Sig:
    sig_init("login", http_echo.url, "--token-stdin", "--as", "echo", input=TOKEN, check=0)
    return sig_init


def test_get_injects_and_redacts_echo(echo_login: Sig, http_echo: ServerHandle) -> None:
    r = echo_login("request", f"{http_echo.url}/v1/me?x=1", check=0)
    out = r.json()
    assert out["status"] == 200 and out["statusText"] == "OK"
    assert out["headers"]["content-type"] == "application/json"
    body = out["body"]  # a JSON answer is emitted as JSON, not as a string to decode again
    assert body["headers"]["authorization"] == "Bearer ****"  # the echoed token is redacted
    assert TOKEN not in r.out
    assert http_echo.requests[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert http_echo.requests[-1]["query"] == {"x": "1"}
    raw = echo_login("request", f"{http_echo.url}/v1/me", "--no-redaction", check=0)
    assert TOKEN in raw.out
    audit = (echo_login.home / "audit.log").read_text()
    assert '"action":"request"' in audit and TOKEN not in audit


def test_formats_method_body_headers(echo_login: Sig, http_echo: ServerHandle, tmp_path: Path) -> None:
    item = tmp_path / "item.json"
    item.write_text('{"name": "widget"}')
    r = echo_login("request", f"{http_echo.url}/v1/items", "--method", "post", "--body", f"@{item}",
                   "--header", "X-Trace: 1", "--format", "body", check=0)
    seen = json.loads(r.out)
    assert seen["method"] == "POST"
    assert json.loads(seen["body"]) == {"name": "widget"}
    assert seen["headers"]["x-trace"] == "1"
    assert seen["headers"]["content-type"] == "application/json"
    r = echo_login("request", f"{http_echo.url}/x", "--format", "headers", check=0)
    assert r.out.splitlines()[0] == "200 OK"
    assert "content-type: application/json" in r.out
    r = echo_login("request", f"{http_echo.url}/x", "--method", "PUT", "--body", "-", "--format", "body",
                   input="from stdin", check=0)
    assert json.loads(r.out)["body"] == "from stdin"


def test_user_header_overrides_case_insensitively(echo_login: Sig, http_echo: ServerHandle) -> None:
    echo_login("request", f"{http_echo.url}/x", "--header", "authorization: Bearer mine", check=0)
    headers = http_echo.requests[-1]["headers"]
    assert headers["authorization"] == "Bearer mine"


def test_non_2xx_exits_1(echo_login: Sig, http_echo: ServerHandle) -> None:
    r = echo_login("request", f"{http_echo.url}/status/404", check=1)
    assert r.json()["status"] == 404
    r = echo_login("request", f"{http_echo.url}/status/401", check=1)
    assert "401" in r.err and "sig login" in r.err
    assert echo_login("status", "echo", check=0).json()["valid"] is True  # nothing deleted


def test_cross_origin_redirect_drops_credentials(echo_login: Sig, http_echo: ServerHandle) -> None:
    other = f"http://localhost:{http_echo.port}/elsewhere"
    r = echo_login("request", f"{http_echo.url}/redirect?to={other}&code=302", "--format", "body", check=0)
    final = json.loads(r.out)
    assert final["path"] == "/elsewhere"
    assert "authorization" not in final["headers"]
    assert "authorization" not in http_echo.requests[-1]["headers"]
    # same origin: kept
    same = f"{http_echo.url}/same"
    echo_login("request", f"{http_echo.url}/redirect?to={same}&code=307", check=0)
    assert http_echo.requests[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"


def test_query_and_body_rules(sig_init: Sig, http_echo: ServerHandle) -> None:
    sig_init.add_providers(f"""\
  q:
    domains: [127.0.0.1]
    entryUrl: {http_echo.url}/
    strategy: api-token
    apply:
      - {{in: query, name: api_key, value: "${{token}}"}}
      - {{in: body, name: auth, value: "${{token}}"}}
""")
    sig_init("login", "q", "--token-stdin", input=TOKEN, check=0)
    sig_init("request", f"{http_echo.url}/a?api_key=old&b=2", "--method", "POST", "--body", '{"x": 1}', check=0)
    seen = http_echo.requests[-1]
    assert seen["query"] == {"b": "2", "api_key": TOKEN}
    assert json.loads(seen["body"]) == {"x": 1, "auth": TOKEN}
    other = f"http://localhost:{http_echo.port}/o"
    sig_init("request", f"{http_echo.url}/redirect?to={other}&code=307", check=0)
    assert "api_key" not in http_echo.requests[-1]["query"]


def test_several_providers(sig_init: Sig, http_echo: ServerHandle) -> None:
    sig_init("login", http_echo.url, "--token-stdin", "--as", "a", input=TOKEN, check=0)
    sig_init("login", "a", "--as", "b", "--token-stdin", "--header-name", "X-Other", "--header-prefix", "",
             input="other-SECRET-77", check=0)
    sig_init("request", f"{http_echo.url}/x", "--provider", "a,b", check=0)
    headers = http_echo.requests[-1]["headers"]
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["x-other"] == "other-SECRET-77"


def test_https_with_cacert(sig_init: Sig, https_echo: ServerHandle) -> None:
    sig_init("login", https_echo.url, "--token-stdin", "--as", "tls", input=TOKEN, check=0)
    r = sig_init("request", f"{https_echo.url}/x", check=1)
    assert "TLS verification" in r.err and "--cacert" in r.err
    r = sig_init("request", f"{https_echo.url}/x", "--cacert", https_echo.ca_path, "--format", "body", check=0)
    assert https_echo.requests[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"


def test_refuses_hosts_outside_domains(echo_login: Sig, http_echo: ServerHandle) -> None:
    r = echo_login("request", f"http://localhost:{http_echo.port}/x", "--provider", "echo", check=1)
    assert "refusing to send credentials" in r.err
    assert not http_echo.requests
    r = echo_login("request", f"http://localhost:{http_echo.port}/x", check=2)
    assert "no provider" in r.err


@pytest.mark.parametrize(("argv", "message"), [
    (["--body", "@missing.json"], "cannot read the body file"),
    (["--header", "NoColonHere"], "not in the form"),
    (["--format", "xml"], "unknown format"),
])
def test_bad_input(echo_login: Sig, http_echo: ServerHandle, argv: list[str], message: str) -> None:
    r = echo_login("request", f"{http_echo.url}/x", *argv, check=1)
    assert message in r.err and "Traceback" not in r.err


def test_invalid_url_and_timeout(echo_login: Sig, http_echo: ServerHandle) -> None:
    assert "not an http(s) URL" in echo_login("request", "ftp://127.0.0.1/x", check=1).err
    assert "not a valid URL" in echo_login("request", "http://127.0.0.1:99999/x", check=1).err
    r = echo_login("request", f"{http_echo.url}/slow?ms=3000", "--timeout", "0.5", check=1)
    assert "did not answer within" in r.err


class _BigHandler(BaseHTTPRequestHandler):
    size = 50 << 20

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(self.size))
        self.end_headers()
        chunk = b"x" * 65536
        sent = 0
        while sent < self.size:
            self.wfile.write(chunk)
            sent += len(chunk)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def big_server() -> Iterator[str]:
    with HandlerServer(_BigHandler) as server:
        yield server.url


def _peak_rss_kb(proc: subprocess.Popen[bytes]) -> int:
    """Peak resident size of a running child, sampled from /proc until it exits. (ru_maxrss would also
    count the copy of the test process the child was forked from, before it exec'd sig.)"""
    import time

    peak = 0
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with open(f"/proc/{proc.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.01)
    proc.wait(timeout=10)
    return peak


def test_large_response_streams_in_bounded_memory(sig_init: Sig, big_server: str, tmp_path: Path) -> None:
    sig_init("login", big_server, "--token-stdin", "--as", "big", input=TOKEN, check=0)
    for fmt in ("body", "json"):
        out = tmp_path / f"out.{fmt}"
        with open(out, "wb") as fh:
            proc = subprocess.Popen([*sig_init.cmd, "request", f"{big_server}/big", "--format", fmt,
                                     "--timeout", "120"], env=sig_init.env, stdout=fh, stderr=subprocess.DEVNULL)
            peak = _peak_rss_kb(proc)
        assert proc.returncode == 0
        size = out.stat().st_size
        assert size == 50 << 20 if fmt == "body" else size > 50 << 20
        assert peak < 100 * 1024, f"sig request --format {fmt} peaked at {peak} KB"


def test_refuses_other_ports_on_the_same_host(echo_login: Sig, http_echo: ServerHandle,
                                              https_echo: ServerHandle) -> None:
    # the provider was made for 127.0.0.1:<echo port>; another port on that host is another service
    r = echo_login("request", f"http://127.0.0.1:{https_echo.port}/x", "--provider", "echo", check=1)
    assert "port" in r.err and "refusing" in r.err
    assert not https_echo.requests
