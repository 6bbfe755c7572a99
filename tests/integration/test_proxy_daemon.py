"""`sig proxy` end to end: the detached daemon, its env, real clients (curl, requests), run --proxy."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import PROXY_TOKEN as TOKEN
from harness.servers import ServerHandle
from harness.sigproc import Sig


def _client_env(sig: Sig, env: dict[str, str]) -> dict[str, str]:
    return {**sig.env, **env}


def test_curl_through_the_proxy(proxied: tuple[Sig, dict[str, str]], https_echo: ServerHandle) -> None:
    sig, env = proxied
    assert env["HTTPS_PROXY"].startswith("http://sig:") and "@127.0.0.1:" in env["HTTPS_PROXY"]
    assert TOKEN not in json.dumps(env)
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    out = subprocess.run(["curl", "-sS", f"{https_echo.url}/through-proxy"], env=_client_env(sig, env),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["headers"]["authorization"] == "Bearer ****"  # the echo comes back redacted
    assert https_echo.requests[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert https_echo.requests[-1]["path"] == "/through-proxy"


def test_requests_and_run_proxy(proxied: tuple[Sig, dict[str, str]], https_echo: ServerHandle) -> None:
    sig, _env = proxied
    code = ("import os, requests\n"
            f"r = requests.get('{https_echo.url}/req', timeout=30)\n"
            "assert not any(k.startswith('SIG_') and k != 'SIG_HOME' for k in os.environ)\n"
            "print(r.status_code, r.json()['headers'].get('authorization', '')[:7])")
    pytest.importorskip("requests")
    r = sig("run", "--proxy", "--", "python3" if shutil.which("python3") else "python", "-c", code, check=0)
    assert r.out.strip() == "200 Bearer"
    assert https_echo.requests[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"


def test_status_second_start_and_stop(proxied: tuple[Sig, dict[str, str]]) -> None:
    sig, _env = proxied
    status = sig("proxy", "status", "--format", "json", check=0).json()
    assert status["running"] is True and status["providers"] == ["echo"]
    again = sig("proxy", "start", check=0)
    assert "already running" in again.err
    sig("proxy", "stop", check=0)
    sig("proxy", "status", "--format", "json", check=1)


def test_requires_the_proxy_token(proxied: tuple[Sig, dict[str, str]], https_echo: ServerHandle) -> None:
    _sig, env = proxied
    port = env["HTTPS_PROXY"].rsplit(":", 1)[1]
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--proxy",
                          f"http://127.0.0.1:{port}", "--cacert", env["CURL_CA_BUNDLE"], f"{https_echo.url}/x"],
                         capture_output=True, text=True, timeout=60)
    assert "407" in out.stdout + out.stderr
    assert all(r["path"] != "/x" for r in https_echo.requests)


def test_stale_state_after_sigkill(proxied: tuple[Sig, dict[str, str]]) -> None:
    sig, _env = proxied
    state = json.loads((sig.home / "proxy" / "state.json").read_text())
    os.kill(state["pid"], signal.SIGKILL)
    for _ in range(100):
        try:
            os.kill(state["pid"], 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    sig("proxy", "status", "--format", "json", check=1)
    assert not (sig.home / "proxy" / "state.json").exists()
    sig("proxy", "start", "--port", "0", check=0)


def test_trust_prints_the_ca(sig_init: Sig) -> None:
    r = sig_init("proxy", "trust", check=0)
    assert r.out.strip().endswith("ca.crt")
    assert "update-ca-certificates" in r.err
    key = sig_init.home / "proxy" / "ca.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_load_50_concurrent_clients(proxied: tuple[Sig, dict[str, str]], https_echo: ServerHandle) -> None:
    """2,000 keep-alive HTTPS requests from 50 concurrent clients: no errors, memory roughly flat."""
    import base64
    import http.client
    import ssl
    import threading

    sig, env = proxied
    creds, _, hostport = env["HTTPS_PROXY"][len("http://"):].rpartition("@")
    pport = int(hostport.rsplit(":", 1)[1])
    auth = "Basic " + base64.b64encode(creds.encode()).decode()
    ctx = ssl.create_default_context(cafile=str(sig.home / "proxy" / "ca.crt"))
    pid = json.loads((sig.home / "proxy" / "state.json").read_text())["pid"]
    errors: list[str] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def client(count: int) -> None:
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", pport, context=ctx, timeout=60)
            conn.set_tunnel("127.0.0.1", https_echo.port, headers={"Proxy-Authorization": auth})
            for _ in range(count):
                conn.request("GET", "/load")
                resp = conn.getresponse()
                resp.read()
                with lock:
                    statuses.append(resp.status)
            conn.close()
        except Exception as exc:
            with lock:
                errors.append(repr(exc))

    def wave(clients: int, each: int) -> None:
        threads = [threading.Thread(target=client, args=(each,)) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=180)

    wave(50, 4)  # warm up: leaf minted, pools filled
    before = _rss_kb(pid)
    wave(50, 40)
    after = _rss_kb(pid)
    assert errors == []
    assert len(statuses) == 50 * 44 and set(statuses) == {200}
    assert after - before < 40 * 1024, f"proxy RSS grew from {before} KB to {after} KB"


def test_git_clone_through_the_proxy(sig_init: Sig, tmp_path: Path) -> None:
    """git over https (smart HTTP, `git http-backend` behind a TLS server that demands the token)."""
    import trustme

    from harness.git_http import GitHttpServer

    if shutil.which("git") is None:
        pytest.skip("git not installed")
    ca = trustme.CA()
    ca_file = tmp_path / "git-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with GitHttpServer(tmp_path, ca, "hello through sig\n", token=TOKEN) as git:
        sig_init("login", f"{git.url}/", "--token-stdin", "--as", "git", input=TOKEN, check=0)
        cfg = sig_init.home / "config.yaml"
        cfg.write_text(cfg.read_text().replace("    strategy: api-token\n",
                                               f"    strategy: api-token\n    caFile: {ca_file}\n", 1))
        sig_init("proxy", "start", "--port", "0", check=0)
        try:
            r = sig_init("run", "--proxy", "--", "git", "clone", "-q", git.repo_url, str(tmp_path / "clone"),
                         timeout=120, check=0)
            assert (tmp_path / "clone" / "README").read_text() == "hello through sig\n", r.err
        finally:
            sig_init("proxy", "stop", check=None)


def test_logout_and_new_login_take_effect_at_once(proxied: tuple[Sig, dict[str, str]],
                                                   https_echo: ServerHandle) -> None:
    sig, env = proxied
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")

    def fetch() -> tuple[str, str]:
        out = subprocess.run(["curl", "-sS", "-w", "\\n%{http_code}", f"{https_echo.url}/again"],
                             env=_client_env(sig, env), capture_output=True, text=True, timeout=60)
        body, _, code = out.stdout.rpartition("\n")
        return code, body

    code, body = fetch()
    assert code == "200" and json.loads(body)["headers"]["authorization"] == "Bearer ****"
    assert https_echo.requests[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"
    sig("logout", "echo", check=0)
    code, body = fetch()
    assert code == "502" and "CREDENTIAL_NOT_FOUND" in body and TOKEN not in body
    sig("login", "echo", "--token-stdin", input="tok-PROXY-NEWER-1234", check=0)
    code, body = fetch()
    assert code == "200" and json.loads(body)["headers"]["authorization"] == "Bearer ****"
    assert https_echo.requests[-1]["headers"]["authorization"] == "Bearer tok-PROXY-NEWER-1234"


def test_proxy_on_error_passthrough(proxied: tuple[Sig, dict[str, str]], https_echo: ServerHandle) -> None:
    sig, env = proxied
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    cfg = sig.home / "config.yaml"
    cfg.write_text(cfg.read_text().replace("    strategy: api-token\n", "    strategy: api-token\n"
                                           "    proxyOnError: passthrough\n", 1))
    sig("logout", "echo", check=0)
    out = subprocess.run(["curl", "-sS", "-w", "\\n%{http_code}", f"{https_echo.url}/anon"],
                         env=_client_env(sig, env), capture_output=True, text=True, timeout=60)
    body, _, code = out.stdout.rpartition("\n")
    assert code == "200" and "authorization" not in json.loads(body)["headers"]
