"""Concurrency: many sig processes on one store at once.

- 50 concurrent `sig login --token-stdin --as pN` → all 50 providers in the config and all 50 credentials.
- 50 concurrent `sig get` while one process renews an expired OAuth2 token → all succeed, one token request.
- 50 processes on one expired OAuth2 credential → exactly one token request (with and without rotating
  refresh tokens); 50 first `sig get`s of a client-credentials provider set up only in the config → one.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.sigproc import Result, Sig

pytest.importorskip("authlib")
from harness.oauth_server import OAuthServer

N = 50
SECRET = "client-SECRET-concurrency-5"


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    server = OAuthServer()
    server.add_client("svc", SECRET)
    try:
        yield server
    finally:
        server.close()


def _all(sig: Sig, argvs: list[list[str]], inputs: list[str | None] | None = None,
         timeout: float = 180) -> list[Result]:
    """Start every process first (no forking from threads), then collect them in parallel."""
    procs = [sig.popen(*argv) for argv in argvs]
    results: list[Result | None] = [None] * len(procs)

    def finish(i: int) -> None:
        results[i] = sig.finish(procs[i], input=(inputs or [None] * len(procs))[i], timeout=timeout)

    threads = [threading.Thread(target=finish, args=(i,)) for i in range(len(procs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout + 30)
    assert all(r is not None for r in results), "a sig process did not finish"
    return results  # type: ignore[return-value]


def _failures(results: list[Result]) -> list[str]:
    return [f"{r.args}: exit {r.code}: {r.err.strip()[-300:]}" for r in results if r.code != 0]


def test_50_concurrent_logins_into_one_store(sig_init: Sig) -> None:
    argvs = [["login", f"https://h{i}.example.com", "--as", f"p{i}", "--token-stdin"] for i in range(N)]
    results = _all(sig_init, argvs, inputs=[f"tok-CONC-{i:04d}-abcdef" for i in range(N)])
    assert _failures(results) == []
    providers = {p["id"] for p in sig_init("providers", "--format", "json", check=0).json()}
    assert providers == {f"p{i}" for i in range(N)}
    creds = sorted(p.name for p in (sig_init.home / "credentials").iterdir() if p.name.endswith(".json"))
    assert creds == sorted(f"p{i}.json" for i in range(N))
    status = sig_init("status", "--format", "json", check=0).json()
    assert [s["id"] for s in status if not s["valid"]] == []
    for i in (0, N // 2, N - 1):  # each holds its own token
        value = sig_init("get", f"p{i}", "--format", "value", "--no-redaction", check=0).out.strip()
        assert value == f"Bearer tok-CONC-{i:04d}-abcdef"
    assert not [p for p in sig_init.home.rglob("*.tmp.*")]


def _login_cc(sig: Sig, oauth: OAuthServer, pid: str = "api") -> None:
    sig("login", f"{oauth.url}/", "--as", pid, "--strategy", "oauth2", "--token-url", oauth.token_url,
        "--client-id", "svc", "--client-secret-stdin", input=SECRET, check=0)


def _wait_until_expired(sig: Sig, pid: str) -> None:
    """Until sig itself says the stored token is no longer valid (its lifetime is seconds)."""
    deadline = time.monotonic() + 60
    while sig("status", pid, "--format", "json", check=0).json()["valid"]:
        assert time.monotonic() < deadline, f"the token of {pid} never expired"
        time.sleep(0.2)


def _lock_held(lock: Path) -> bool:
    """True while another process holds the credential's lock exclusively (a renewal in progress)."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_50_gets_while_one_process_renews(sig_init: Sig, oauth: OAuthServer) -> None:
    oauth.token_lifetime = 2
    _login_cc(sig_init, oauth)
    sig_init("login", "https://stable.example.com", "--as", "stable", "--token-stdin",
             input="tok-CONC-STABLE-77", check=0)
    _wait_until_expired(sig_init, "api")
    oauth.token_lifetime = 600
    oauth.mode = "slow"  # the renewal takes a while: the others arrive while it holds the lock
    oauth.slow_seconds = 3.0
    before = len(oauth.token_requests)
    renewer = sig_init.popen("get", "api")
    lock = sig_init.home / "credentials" / "api.json.lock"
    deadline = time.monotonic() + 60
    while not _lock_held(lock):
        assert renewer.poll() is None, "the renewing sig ended before taking the lock"
        assert time.monotonic() < deadline, "the renewing sig never took the lock"
        time.sleep(0.02)
    argvs = [["get", "api" if i % 2 == 0 else "stable"] for i in range(N)]
    results = _all(sig_init, argvs)
    oauth.mode = "normal"
    first = sig_init.finish(renewer, timeout=120)
    assert _failures([first, *results]) == []
    assert len(oauth.token_requests) - before == 1
    assert sig_init("status", "api", check=0).json()["valid"] is True


@pytest.mark.parametrize("rotate", [False, True], ids=["client-credentials", "rotating-refresh-token"])
def test_50_processes_on_one_expired_credential_make_one_token_request(sig_init: Sig, oauth: OAuthServer,
                                                                         rotate: bool) -> None:
    oauth.issue_refresh_for_client_credentials = rotate
    oauth.rotate_refresh_tokens = rotate
    oauth.token_lifetime = 2
    _login_cc(sig_init, oauth)
    _wait_until_expired(sig_init, "api")
    oauth.token_lifetime = 600  # the renewed token outlives the storm
    before = len(oauth.token_requests)
    results = _all(sig_init, [["get", "api"]] * N)
    assert _failures(results) == []
    assert len(oauth.token_requests) - before == 1
    assert sig_init("status", "api", check=0).json()["valid"] is True


def test_50_first_gets_of_a_config_only_provider_make_one_token_request(sig_init: Sig,
                                                                        oauth: OAuthServer) -> None:
    sig_init.add_providers(oauth.provider_entry(clientId="svc", clientSecret="${SVC_SECRET}", grant="client_credentials"))
    sig_init.env["SVC_SECRET"] = SECRET
    results = _all(sig_init, [["get", "api"]] * N)
    assert _failures(results) == []
    assert oauth.count("client_credentials") == 1
    assert sig_init("status", "api", check=0).json()["valid"] is True
