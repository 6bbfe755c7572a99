"""`sig watch`: the watch list in config.yaml (comments kept), the refresh loop end to end against a real
OAuth2 server on 127.0.0.1, signals, auto-sync to a remote that is down, and WatchLoop on its own."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from harness.sigproc import Sig
from sigcli.config.load import Config, parse_config
from sigcli.core.errors import ErrorCode, SigError
from sigcli.core.model import Credential
from sigcli.core.secret import Secret
from sigcli.core.timeutil import iso_from_ms, ms_from_iso, now_ms
from sigcli.watch.loop import BACKOFF_CAP_S, WatchLoop

SECRET = "client-SECRET-7a6b5c"
TOKEN = "tok-Watch-9f8e7d6c"
COMMENT_TOP = "# my own note at the top"
COMMENT_INLINE = "# keep this inline comment"
DOWN_REMOTE = """
remotes:
  box:
    type: ssh
    host: 127.0.0.1
    port: 1
    user: nobody
"""


def _yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def _annotate(sig: Sig) -> Path:
    """Put comments of our own into config.yaml; every edit must keep them."""
    cfg = sig.home / "config.yaml"
    text = cfg.read_text().replace("mode: browser", f"mode: browser  {COMMENT_INLINE}", 1)
    cfg.write_text(f"{COMMENT_TOP}\n{text}")
    return cfg


def _assert_comments(cfg: Path) -> None:
    text = cfg.read_text()
    assert COMMENT_TOP in text and COMMENT_INLINE in text, text


def _login_token(sig: Sig, pid: str = "api") -> None:
    sig("login", "https://api.example.com", "--token-stdin", "--as", pid, input=TOKEN, check=0)


# -- the watch list ---------------------------------------------------------------------------------


def test_add_list_set_interval_remove_keep_comments(sig_init: Sig) -> None:
    _login_token(sig_init)
    cfg = _annotate(sig_init)
    assert "watch:" not in cfg.read_text()

    r = sig_init("watch", "add", "api", check=0)
    assert 'Added "api"' in r.err
    doc = _yaml(cfg)
    assert doc["watch"] == {"interval": "5m", "providers": {"api": None}}
    assert "watch:\n  interval: 5m\n  providers:\n    api:" in cfg.read_text()  # block style
    _assert_comments(cfg)

    # by URL: stored under the resolved id, not the raw input; replaces the entry
    r = sig_init("watch", "add", "https://api.example.com/v1", check=0)
    assert 'Updated "api"' in r.err
    assert _yaml(cfg)["watch"]["providers"] == {"api": None}

    sig_init("watch", "set-interval", "90s", check=0)
    assert _yaml(cfg)["watch"]["interval"] == "90s"
    _assert_comments(cfg)

    rows = sig_init("watch", "list", "--format", "json", check=0).json()
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == "api" and row["interval"] == "90s" and row["autoSync"] == []
    assert row["valid"] is True and row["configured"] is True
    table = sig_init("watch", "list", "--format", "table", check=0).out
    assert "INTERVAL" in table and "AUTO-SYNC" in table and "api" in table and "90s" in table

    r = sig_init("watch", "remove", "api", check=0)
    assert 'Removed "api"' in r.err
    assert _yaml(cfg)["watch"]["providers"] == {}
    r = sig_init("watch", "remove", "api", check=1)
    assert "not in the watch list" in r.err
    _assert_comments(cfg)
    assert sig_init("watch", "list", "--format", "json", check=0).json() == []
    sig_init.assert_no_secret(TOKEN)


def test_set_interval_creates_section(sig_init: Sig) -> None:
    cfg = _annotate(sig_init)
    sig_init("watch", "set-interval", "1h", check=0)
    assert _yaml(cfg)["watch"] == {"interval": "1h", "providers": {}}
    _assert_comments(cfg)


def test_auto_sync_is_stored_and_listed(sig_init: Sig) -> None:
    _login_token(sig_init)
    cfg = sig_init.home / "config.yaml"
    cfg.write_text(cfg.read_text() + DOWN_REMOTE)
    sig_init("watch", "add", "api", "--auto-sync", "box", check=0)
    assert _yaml(cfg)["watch"]["providers"] == {"api": {"autoSync": ["box"]}}
    rows = sig_init("watch", "list", "--format", "json", check=0).json()
    assert rows[0]["autoSync"] == ["box"]
    # `sig status` sees the same watch list
    table = sig_init("status", "--format", "table", check=0).out
    assert "box" in table


def test_errors_leave_config_alone(sig_init: Sig) -> None:
    _login_token(sig_init)
    cfg = sig_init.home / "config.yaml"
    before = cfg.read_text()

    r = sig_init("watch", "add", "nope", check=2)
    assert "nope" in r.err
    r = sig_init("watch", "add", "api", "--auto-sync", "nowhere", check=4)
    assert 'no remote named "nowhere"' in r.err and "sig remote list" in r.err
    r = sig_init("watch", "add", "api", "--auto-sync", "nowhere", "--format", "json", check=4)
    assert json.loads(r.err)["error"]["code"] == "REMOTE_NOT_FOUND"
    for bad in ("x", "5", "0s", "5 minutes"):
        r = sig_init("watch", "set-interval", bad, check=1)
        assert f'Invalid interval "{bad}"' in r.err
    r = sig_init("watch", "set-interval", "x", check=1)
    assert 'Invalid interval "x": use e.g. 30s, 5m, 1h' in r.err
    r = sig_init("watch", "start", "--once", "--interval", "soon", check=1)
    assert "Invalid interval" in r.err
    r = sig_init("watch", check=1)
    assert "Usage: sig watch" in r.err and r.out == ""
    r = sig_init("watch", "frobnicate", check=1)
    assert "frobnicate" in r.err
    sig_init("watch", "list", "--auto-sync", "box", check=1)
    assert cfg.read_text() == before


# -- the loop end to end (OAuth2 on 127.0.0.1) --------------------------------------------------------


@pytest.fixture
def oauth() -> Iterator[Any]:
    pytest.importorskip("authlib")
    from harness.oauth_server import OAuthServer

    server = OAuthServer()
    server.add_client("svc", SECRET, auth_method="client_secret_basic")
    try:
        yield server
    finally:
        server.close()


def _login_oauth(sig: Sig, srv: Any) -> None:
    sig("login", f"{srv.url}/", "--as", "api", "--strategy", "oauth2", "--token-url", srv.token_url,
        "--client-id", "svc", "--client-secret-stdin", input=SECRET, check=0)


def _results(r: Any) -> dict[str, dict[str, Any]]:
    return {x["provider"]: x for x in r.json()}


def test_start_once_renews_credential_about_to_expire(sig_init: Sig, oauth: Any) -> None:
    oauth.token_lifetime = 120  # expires before the next pass (5m): must be renewed now
    _login_oauth(sig_init, oauth)
    assert oauth.count("client_credentials") == 1
    old = sig_init("status", "api", check=0).json()["expiresAt"]
    sig_init("watch", "add", "api", check=0)

    oauth.token_lifetime = 3600
    r = sig_init("watch", "start", "--once", check=0)
    res = _results(r)["api"]
    assert res["action"] == "renewed", r.err
    assert oauth.count("client_credentials") == 2
    new = sig_init("status", "api", check=0).json()["expiresAt"]
    assert ms_from_iso(new) > ms_from_iso(old) + 30 * 60_000
    assert "api: renewed" in r.err

    # a token good for an hour is left alone
    r = sig_init("watch", "start", "--once", check=0)
    assert _results(r)["api"]["action"] == "fresh"
    assert oauth.count("client_credentials") == 2
    # ...unless the interval says the next pass comes too late
    r = sig_init("watch", "start", "--once", "--interval", "2h", check=0)
    assert _results(r)["api"]["action"] == "renewed"
    assert oauth.count("client_credentials") == 3
    sig_init.assert_no_secret(SECRET)
    assert SECRET not in "".join(x.out for x in sig_init.results)


def test_start_once_reports_needs_login(sig_init: Sig) -> None:
    sig_init.add_providers("""\
  jira:
    domains: [jira.example.com]
    entryUrl: https://jira.example.com/
    strategy: cookie
""")
    _login_token(sig_init)
    r = sig_init("watch", "add", "jira", check=0)
    assert "no credential" in r.err and "sig login" in r.err
    sig_init("watch", "add", "api", check=0)
    r = sig_init("watch", "start", "--once", "--format", "json", check=0)
    res = _results(r)
    assert res["jira"]["action"] == "needs-login" and "sig login" in res["jira"]["detail"]
    assert res["api"]["action"] == "fresh"
    assert "jira: needs login: run sig login https://jira.example.com/" in r.err
    rows = {x["id"]: x for x in sig_init("watch", "list", "--format", "json", check=0).json()}
    assert rows["jira"]["configured"] is False and rows["api"]["valid"] is True


def test_auto_sync_to_remote_that_is_down_is_logged(sig_init: Sig, oauth: Any) -> None:
    oauth.token_lifetime = 60
    _login_oauth(sig_init, oauth)
    cfg = sig_init.home / "config.yaml"
    cfg.write_text(cfg.read_text() + DOWN_REMOTE)
    sig_init("watch", "add", "api", "--auto-sync", "box", check=0)
    t0 = time.monotonic()
    r = sig_init("watch", "start", "--once", check=0, timeout=60)
    assert time.monotonic() - t0 < 30
    res = _results(r)["api"]
    assert res["action"] == "renewed"
    assert res["sync"]["box"].startswith("failed"), res
    assert "auto-sync of api to box failed" in r.err and "retrying in 30s" in r.err
    sig_init.assert_no_secret(SECRET)


def _readline(stream: Any, timeout: float) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box else ""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_start_stops_cleanly_on_signal(sig_init: Sig, signum: int) -> None:
    _login_token(sig_init)
    sig_init("watch", "add", "api", check=0)
    proc = sig_init.popen("watch", "start", "--interval", "1s")
    seen = ""
    deadline = time.monotonic() + 20
    while "watching 1 provider" not in seen and time.monotonic() < deadline:
        line = _readline(proc.stderr, max(0.1, deadline - time.monotonic()))
        if not line:
            break
        seen += line
    assert "watching 1 provider(s) every 1s" in seen, seen
    assert "api: valid (no expiry)" in seen + _readline(proc.stderr, 10)
    time.sleep(1.5)  # a few passes: the loop keeps running
    assert proc.poll() is None
    t0 = time.monotonic()
    proc.send_signal(signum)
    r = sig_init.finish(proc, timeout=10)
    assert r.code == 0, r.err
    assert time.monotonic() - t0 < 5
    assert "stopped" in r.err
    assert "Traceback" not in r.err


# -- WatchLoop on its own -----------------------------------------------------------------------------

CONFIG = """
version: 2
remotes:
  box: {host: 127.0.0.1}
  spare: {host: 127.0.0.1}
watch:
  interval: 5m
  providers:
    api: {autoSync: [box]}
    jira:
providers:
  api:
    domains: [api.example.com]
    strategy: oauth2
    oauth2: {tokenUrl: 'https://auth.example.com/token', clientId: x}
  jira:
    domains: [jira.example.com]
    strategy: cookie
"""


class World:
    """A fake credential store and token endpoint for WatchLoop."""

    def __init__(self, config_text: str = CONFIG) -> None:
        self.config_text = config_text
        self.creds: dict[str, Credential] = {}
        self.renewals: list[str] = []
        self.fail: SigError | None = None
        self.lifetime_ms = 3600_000
        self.t = 1000.0
        self.sleeps: list[float] = []
        self.lines: list[str] = []
        self.synced: list[tuple[str, list[str]]] = []
        self.sync_error: Exception | None = None
        self._n = 0

    def cred(self, pid: str, lifetime_ms: int) -> Credential:
        self._n += 1
        now = now_ms()
        return Credential(pid, "oauth2", {"access_token": Secret(f"at-{self._n}-secret")},
                          updated_at=iso_from_ms(now - 1000 + self._n), expires_at=iso_from_ms(now + lifetime_ms))

    # the WatchLoop collaborators
    def load(self) -> Config:
        return parse_config(self.config_text, "/nonexistent/config.yaml")

    def auth(self, _config: Config) -> Any:
        world = self

        class FakeAuth:
            def stored(self, provider: Any) -> Credential | None:
                return world.creds.get(provider.id)

            def credential(self, provider: Any, ahead_ms: int = 0) -> Credential:
                world.renewals.append(provider.id)
                if world.fail is not None:
                    raise world.fail
                world.creds[provider.id] = world.cred(provider.id, world.lifetime_ms)
                return world.creds[provider.id]

        return FakeAuth()

    def sync(self, config: Config, remote: str, ids: list[str]) -> None:
        assert isinstance(config, Config)
        self.synced.append((remote, list(ids)))
        if self.sync_error is not None:
            raise self.sync_error

    def clock(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds

    def loop(self, **kw: Any) -> WatchLoop:
        return WatchLoop(self.load, self.auth, kw.pop("sync", self.sync), self.lines.append, clock=self.clock,
                         sleep=self.sleep, **kw)


def test_loop_renews_and_syncs_once() -> None:
    w = World()
    w.creds["api"] = w.cred("api", 90_000)  # expires before the next pass
    loop = w.loop()
    res = {r["provider"]: r for r in loop.run_once()}
    assert res["api"]["action"] == "renewed" and res["api"]["sync"] == {"box": "ok"}
    assert res["jira"]["action"] == "needs-login"
    assert w.renewals == ["api"] and w.synced == [("box", ["api"])]
    # next pass: fresh, no renewal, no push; needs-login is not logged again
    res = {r["provider"]: r for r in loop.run_once()}
    assert res["api"]["action"] == "fresh" and "sync" not in res["api"]
    assert w.renewals == ["api"] and w.synced == [("box", ["api"])]
    assert sum("jira: needs login" in line for line in w.lines) == 1
    assert not any("at-" in line for line in w.lines)  # never a token value


def test_loop_pushes_credential_renewed_elsewhere() -> None:
    w = World()
    w.creds["api"] = w.cred("api", 3600_000)
    loop = w.loop()
    assert loop.run_once()[0]["action"] == "fresh" and w.synced == []
    w.creds["api"] = w.cred("api", 3600_000)  # another sig process renewed it
    res = loop.run_once()[0]
    assert res["action"] == "fresh" and "renewed elsewhere" in res["detail"]
    assert w.synced == [("box", ["api"])] and w.renewals == []


def test_loop_sync_backoff_and_recovery() -> None:
    w = World()
    w.creds["api"] = w.cred("api", 10_000)
    w.sync_error = SigError(ErrorCode.SYNC_ERROR, "ssh: connect to host 127.0.0.1 port 1: Connection refused")
    loop = w.loop()
    res = loop.run_once()[0]
    assert res["action"] == "renewed" and res["sync"]["box"].startswith("failed")
    assert len(w.synced) == 1 and loop.pending() == {"box": ["api"]}
    assert any("retrying in 30s" in line for line in w.lines)
    loop.retry_due()
    assert len(w.synced) == 1  # not yet due
    w.t += 29
    loop.retry_due()
    assert len(w.synced) == 1
    w.t += 1
    loop.retry_due()
    assert len(w.synced) == 2 and any("retrying in 1m" in line for line in w.lines)
    # a pass while the remote is backing off does not hammer it
    w.creds["api"] = w.cred("api", 10_000)
    res = loop.run_once()[0]
    assert res["action"] == "renewed" and res["sync"]["box"].startswith("waiting")
    assert len(w.synced) == 2
    # exponential, capped
    for _ in range(8):
        w.t = loop.next_retry() or w.t
        loop.retry_due()
    assert len(w.synced) == 10
    assert (loop.next_retry() or 0) - w.t == BACKOFF_CAP_S
    # the remote comes back
    w.sync_error = None
    w.t = loop.next_retry() or w.t
    loop.retry_due()
    assert w.synced[-1] == ("box", ["api"]) and loop.pending() == {}
    assert any("synced to box" in line for line in w.lines)


def test_loop_survives_odd_sync_failures_and_missing_engine() -> None:
    w = World()
    w.creds["api"] = w.cred("api", 10_000)
    w.sync_error = RuntimeError("token=at-1-secret")  # an unexpected error: its text is not logged
    loop = w.loop()
    assert loop.run_once()[0]["sync"]["box"] == "failed: unexpected RuntimeError"
    assert not any("secret" in line for line in w.lines)
    w2 = World()
    w2.creds["api"] = w2.cred("api", 10_000)
    res = w2.loop(sync=None).run_once()[0]
    assert res["action"] == "renewed" and res["sync"]["box"] == "failed: sync not available"


def test_real_sync_without_engine_is_a_sync_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from sigcli.watch.loop import push_sync

    monkeypatch.setitem(sys.modules, "sigcli.sync.engine", None)  # as if the module did not exist
    w = World()
    w.creds["api"] = w.cred("api", 10_000)
    res = w.loop(sync=push_sync(lambda _m: None)).run_once()[0]
    assert res["action"] == "renewed" and res["sync"]["box"] == "failed: sync not available in this version of sig"
    assert any("auto-sync of api to box failed" in line for line in w.lines)


def test_loop_renewal_failures() -> None:
    w = World()
    w.creds["api"] = w.cred("api", 10_000)
    w.fail = SigError(ErrorCode.REFRESH_FAILED, "the token endpoint said no", "check the client")
    loop = w.loop()
    res = loop.run_once()[0]
    assert res["action"] == "error" and "the token endpoint said no" in res["detail"]
    loop.run_once()
    assert sum("said no" in line for line in w.lines) == 1  # logged once per state
    w.fail = SigError(ErrorCode.CREDENTIAL_EXPIRED, "expired", "run: sig login api")
    assert loop.run_once()[0]["action"] == "needs-login"
    w.fail = None
    assert loop.run_once()[0]["action"] == "renewed"
    assert w.synced == [("box", ["api"])]


def test_loop_reloads_config_each_pass() -> None:
    w = World()
    w.creds["api"] = w.cred("api", 3600_000)
    loop = w.loop()
    assert [r["provider"] for r in loop.run_once()] == ["api", "jira"]
    w.config_text = CONFIG.replace("    jira:\n", "").replace("interval: 5m", "interval: 10s")
    assert [r["provider"] for r in loop.run_once()] == ["api"]
    assert loop.interval_ms() == 10_000
    w.config_text = "version: [broken"
    assert [r["provider"] for r in loop.run_once()] == ["api"]  # the last good config stays in use
    loop.run_once()
    assert sum("keeping the last good config" in line for line in w.lines) == 1
    w.config_text = CONFIG.replace("    jira:\n", "    jira:\n    ghost:\n")
    res = {r["provider"]: r for r in loop.run_once()}
    assert res["ghost"]["action"] == "error" and "not a configured provider" in res["ghost"]["detail"]
    assert any("config: loads again" in line for line in w.lines)


def test_run_is_bounded_and_stops() -> None:
    w = World()
    w.creds["api"] = w.cred("api", 3600_000)
    loop = w.loop(interval_ms=10_000)
    loop.run(threading.Event(), max_passes=3)
    assert loop.passes == 3 and w.sleeps == [10.0, 10.0]
    # with the real clock and the stop event as the sleeper, stop() wakes it at once
    real = WatchLoop(w.load, w.auth, w.sync, w.lines.append)
    stop = threading.Event()
    worker = threading.Thread(target=real.run, args=(stop,), daemon=True)
    worker.start()
    deadline = time.monotonic() + 5
    while real.passes == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    stop.set()
    worker.join(5)
    assert not worker.is_alive() and time.monotonic() - t0 < 2 and real.passes == 1
