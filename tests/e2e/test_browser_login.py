"""Browser SSO login end to end: the real `sig` command drives headless Debian Chromium against login sites
served on 127.0.0.1 (tests/harness/login_sites.py), where page JavaScript plays the user.

Each scenario needs what it tests: the multi-hop SSO needs the off-site wait and `cookiePaths`, the
tracking site needs `validateUrl`, the 200-with-an-error API needs `validateRule`, the SPA needs
localStorage `jsonPath`/`expiresJsonPath`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.login_sites import LoginSites
from harness.sigproc import Sig

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium/Chrome installed (apt-get install chromium)"),
    pytest.mark.timeout(120),
]

try:
    import playwright  # noqa: F401

    HAVE_PLAYWRIGHT = True
except ImportError:
    HAVE_PLAYWRIGHT = False


@pytest.fixture(scope="module")
def sites() -> Iterator[LoginSites]:
    with LoginSites() as running:
        yield running


def _configure(sig: Sig, providers: str, adapter: str = "cdp", browser_extra: str = "") -> None:
    sig("init", "--yes", check=0)
    cfg = sig.home / "config.yaml"
    text = _drop_exec_path(cfg.read_text())
    if "headlessTimeout" in browser_extra:
        text = text.replace("  headlessTimeout: 20000\n", "")
    text = text.replace("  visibleTimeout: 120000\n",
                        f"  visibleTimeout: 30000\n  adapter: {adapter}\n  execPath: {CHROMIUM}\n{browser_extra}")
    text = text.replace("providers: {}\n", "providers:\n" + providers)
    cfg.write_text(text)


def _drop_exec_path(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("  execPath:"))


def _creds(sig: Sig, provider: str) -> dict[str, Any]:
    """The stored payload, decrypted the way the upstream SDK does (interop)."""
    result = sig("get", provider, "--no-redaction", "--format", "json", check=0)
    return json.loads(result.out)


def _status(sig: Sig, provider: str) -> dict[str, Any]:
    data = json.loads(sig("status", provider, "--format", "json", check=0).out)
    return data[0] if isinstance(data, list) else data


SSO = """\
  corp-wiki:
    domains: ["127.0.0.1"]
    entryUrl: {app}/
    validateUrl: {app}/wiki/rest/api/myself
    strategy: browser
    cookiePaths: [/wiki]
    requiredCookies: [session]
    extract:
      - {{from: cookies, as: cookie, match: "*"}}
    apply:
      - {{in: header, name: Cookie, value: "${{cookie}}"}}
"""


@pytest.mark.parametrize("adapter", [
    "cdp",
    pytest.param("playwright", marks=pytest.mark.skipif(not HAVE_PLAYWRIGHT, reason="playwright not installed")),
])
def test_multi_hop_sso_with_mfa_and_sub_path_cookie(sig: Sig, sites: LoginSites, adapter: str) -> None:
    _configure(sig, SSO.format(app=sites.sso_app), adapter=adapter)
    before = len(sites.issued("sso"))
    result = sig("login", "corp-wiki", "--mode", "headless", timeout=90)
    assert result.code == 0, result.err
    assert json.loads(result.out)["provider"] == "corp-wiki"
    session = sites.issued("sso")[-1]
    assert len(sites.issued("sso")) == before + 1
    headers = _creds(sig, "corp-wiki")["headers"]
    cookie = headers["Cookie"]
    assert f"session={session}" in cookie
    assert "lang=en" in cookie  # root cookie kept
    assert "static_ver" not in cookie  # path-scoped elsewhere: cookiePaths drops it
    assert "idp_session" not in cookie  # the IdP's cookie never goes to the app
    status = _status(sig, "corp-wiki")
    assert status["valid"] is True
    # 8 h session cookie → expiry about now + 8 h
    expires = time.mktime(time.strptime(status["expiresAt"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert 7.5 * 3600 < expires - time.time() < 8.5 * 3600
    # the captured cookie works through sig request (the validate URL answers 200 with it)
    body = sig("request", f"{sites.sso_app}/wiki/rest/api/myself", "--format", "body", check=0).out
    assert json.loads(body) == {"name": "alice"}
    sig.assert_no_secret(session)


def test_second_login_reuses_the_session_the_profile_holds(sig: Sig, sites: LoginSites) -> None:
    """A second login reuses the profile's session at once (existing-session phase): no new IdP round."""
    _configure(sig, SSO.format(app=sites.sso_app))
    sig("login", "corp-wiki", "--mode", "headless", timeout=90, check=0)
    idp_logins = sites.hits("idp", "/sso/login")
    start = time.monotonic()
    sig("login", "corp-wiki", "--force", timeout=90, check=0)
    assert sites.hits("idp", "/sso/login") == idp_logins  # the profile still held the session
    assert time.monotonic() - start < 30


TRACKING = """\
  news:
    domains: ["127.0.0.1"]
    entryUrl: {url}/
    {validate}
    strategy: browser
    ttl: 12h
    extract:
      - {{from: cookies, as: cookie, match: "*"}}
    apply:
      - {{in: header, name: Cookie, value: "${{cookie}}"}}
"""


def test_tracking_cookies_alone_are_not_a_login(sig: Sig, sites: LoginSites) -> None:
    _configure(sig, TRACKING.format(url=sites.tracking, validate=f"validateUrl: {sites.tracking}/api/me"))
    result = sig("login", "news", "--mode", "headless", timeout=90)
    assert result.code == 0, result.err
    sid = sites.issued("tracking")[-1]
    cookie = _creds(sig, "news")["headers"]["Cookie"]
    assert f"sid={sid}" in cookie and "_ga=" in cookie
    # expiry: sid (2 h) is the earliest persistent cookie; _gat (30 s) is a tracker's and ignored
    status = _status(sig, "news")
    expires = time.mktime(time.strptime(status["expiresAt"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert 1.5 * 3600 < expires - time.time() < 2.5 * 3600
    assert sites.hits("tracking", "/api/me") >= 1


def test_without_validate_url_the_public_page_never_proves_a_login(sig: Sig, sites: LoginSites) -> None:
    """The control for the test above: everyone gets the entry page and its tracking cookies, so it cannot
    tell a login apart; without validateUrl the login does not complete (and nothing is stored)."""
    _configure(sig, TRACKING.format(url=sites.tracking, validate=""), browser_extra="  headlessTimeout: 6000\n")
    result = sig("login", "news", "--mode", "headless", timeout=90)
    assert result.code == 1
    assert "did not complete" in result.err
    assert sig("status", "news", "--format", "json").code == 3


API = """\
  status-api:
    domains: ["127.0.0.1"]
    entryUrl: {url}/
    validateUrl: {url}/api/status
    validateRule: "res.status === 200 && res.body.ok === true"
    strategy: browser
    ttl: 1h
    extract:
      - {{from: cookies, as: auth, match: auth}}
    apply:
      - {{in: header, name: Cookie, value: "auth=${{auth}}"}}
"""


def test_api_answering_200_with_an_error_body_needs_validate_rule(sig: Sig, sites: LoginSites) -> None:
    _configure(sig, API.format(url=sites.api))
    result = sig("login", "status-api", "--mode", "headless", timeout=90)
    assert result.code == 0, result.err
    token = sites.issued("api")[-1]
    assert _creds(sig, "status-api")["headers"]["Cookie"] == f"auth={token}"
    status = _status(sig, "status-api")
    # a session cookie: the provider's ttl gives the expiry
    expires = time.mktime(time.strptime(status["expiresAt"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert 0.5 * 3600 < expires - time.time() < 1.5 * 3600


def test_rule_that_never_passes_times_out_with_reason(sig: Sig, sites: LoginSites) -> None:
    cfg = API.format(url=sites.api).replace("res.body.ok === true", "res.body.ok === 'never'")
    _configure(sig, cfg, browser_extra="  headlessTimeout: 6000\n")
    result = sig("login", "status-api", "--mode", "headless", timeout=90)
    assert result.code == 1
    assert "BROWSER_TIMEOUT" in result.err or "did not complete" in result.err
    assert "validateRule" in result.err
    for token in sites.issued("api"):
        assert token not in result.err


def test_validate_rule_syntax_error_is_a_config_error(sig: Sig, sites: LoginSites) -> None:
    _configure(sig, API.format(url=sites.api).replace("res.body.ok === true", "res.body.ok ===="))
    result = sig("login", "status-api", "--mode", "headless", timeout=30)
    assert result.code == 1
    assert "validateRule" in result.err and "JavaScript" in result.err


def test_runaway_rule_is_stopped_and_counted_invalid(sig: Sig, sites: LoginSites) -> None:
    cfg = API.format(url=sites.api).replace("res.status === 200 && res.body.ok === true", "(() => { while (true) {} })()")
    _configure(sig, cfg, browser_extra="  headlessTimeout: 5000\n")
    start = time.monotonic()
    result = sig("login", "status-api", "--mode", "headless", timeout=90)
    assert result.code == 1
    assert time.monotonic() - start < 60


SPA = """\
  app-spa:
    domains: ["127.0.0.1"]
    entryUrl: {url}/
    validateUrl: {url}/api/me
    strategy: browser
    extract:
      - {{from: localStorage, as: token, match: auth, jsonPath: accessToken, expiresJsonPath: expiresAt}}
      - {{from: cookies, as: d, match: d}}
    apply:
      - {{in: header, name: Authorization, value: "Bearer ${{token}}"}}
"""


def test_spa_token_in_local_storage_json_with_expiry(sig: Sig, sites: LoginSites) -> None:
    _configure(sig, SPA.format(url=sites.spa))
    result = sig("login", "app-spa", "--mode", "headless", timeout=90)
    assert result.code == 0, result.err
    token = sites.issued("spa")[-1]
    assert _creds(sig, "app-spa")["headers"]["Authorization"] == f"Bearer {token}"
    status = _status(sig, "app-spa")
    expires = time.mktime(time.strptime(status["expiresAt"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert 0.5 * 3600 < expires - time.time() < 1.1 * 3600  # the token's own expiry (1 h), not the cookie's day
    env = sig("run", "app-spa", "--no-redaction", "--", "env", check=0).out
    assert f"SIG_APP_SPA_TOKEN={token}" in env
    assert "SIG_APP_SPA_CREDENTIAL_TYPE=bearer" in env


def test_json_path_that_does_not_resolve_times_out_naming_it(sig: Sig, sites: LoginSites) -> None:
    _configure(sig, SPA.format(url=sites.spa).replace("jsonPath: accessToken", "jsonPath: data.nope"),
               browser_extra="  headlessTimeout: 5000\n")
    result = sig("login", "app-spa", "--mode", "headless", timeout=90)
    assert result.code == 1
    assert "data.nope" in result.err


def test_bearer_seen_on_outgoing_requests(sig: Sig, sites: LoginSites) -> None:
    """seed 000's oauth2-via-browser: the Authorization header the page sends is the credential."""
    cfg = f"""\
  spa-bearer:
    domains: ["127.0.0.1"]
    entryUrl: {sites.spa}/
    validateUrl: {sites.spa}/api/me
    strategy: browser
    extract:
      - {{from: header, as: access_token, match: Authorization}}
    apply:
      - {{in: header, name: Authorization, value: "Bearer ${{access_token}}"}}
"""
    _configure(sig, cfg)
    result = sig("login", "spa-bearer", "--mode", "headless", timeout=90)
    assert result.code == 0, result.err
    token = sites.issued("spa")[-1]
    assert _creds(sig, "spa-bearer")["headers"]["Authorization"] == f"Bearer {token}"


def test_auto_provision_then_auto_mode_falls_back_to_visible(sig: Sig, sites: LoginSites, tmp_path: Path) -> None:
    """`sig login URL` on an unknown site: a provider is added (comments kept) and, as the page needs a
    person (auto_user off: nobody submits), the cascade gives up headless and opens the visible phase,
    run headless here (no display in CI) where the test plays the user by logging in over HTTP... no:
    the visible phase just times out — proving the fallback path and the timeout error."""
    sig("init", "--yes", check=0)
    cfg = sig.home / "config.yaml"
    cfg.write_text(_drop_exec_path(cfg.read_text()).replace(
        "  visibleTimeout: 120000\n", f"  visibleTimeout: 4000\n  execPath: {CHROMIUM}\n") + "# keep me\n")
    env = {"SIG_BROWSER_VISIBLE_HEADLESS": "1"}
    sites.auto_user = False
    try:
        result = sig("login", f"{sites.spa}/", "--verbose", env=env, timeout=90)
    finally:
        sites.auto_user = True
    assert result.code == 1
    assert "BROWSER_TIMEOUT" in result.err or "did not complete" in result.err
    assert "browser window" in result.err  # the visible phase was reached
    assert "127-0" not in cfg.read_text()  # a failed login adds no provider
    # now with the user: the same command succeeds and persists the provider, keeping comments
    result = sig("login", f"{sites.spa}/", "--as", "spa-site", env=env, timeout=90)
    assert result.code == 0, result.err
    text = cfg.read_text()
    assert "spa-site:" in text and "# keep me" in text
    cookie = _creds(sig, "spa-site")["headers"]["Cookie"]
    assert cookie == f"d={sites.issued('spa-cookie')[-1]}"


def test_browserless_mode_refuses_with_alternatives(sig: Sig, sites: LoginSites) -> None:
    sig("init", "--remote", "--yes", check=0)
    result = sig("login", f"{sites.sso_app}/", timeout=30)
    assert result.code == 1
    assert "BROWSER_UNAVAILABLE" in result.err or "without one" in result.err
    assert "sync pull" in result.err and "--token" in result.err


def test_no_browser_installed_is_a_launch_error_with_the_fix(sig: Sig, sites: LoginSites) -> None:
    sig("init", "--yes", check=0)
    cfg = sig.home / "config.yaml"
    cfg.write_text(_drop_exec_path(cfg.read_text()).replace(
        "browser:\n", "browser:\n  execPath: /nonexistent/chromium\n", 1))
    result = sig("login", f"{sites.sso_app}/", "--mode", "headless", "--format", "json", timeout=30)
    assert result.code == 1
    error = json.loads(result.err.strip().splitlines()[-1])["error"]
    assert error["code"] == "BROWSER_LAUNCH_ERROR"
    assert "execPath" in error["hint"]


def test_no_display_for_visible_login_says_what_to_do(sig: Sig, sites: LoginSites) -> None:
    _configure(sig, SSO.format(app=sites.sso_app))
    env = {"DISPLAY": None, "WAYLAND_DISPLAY": None}
    result = sig("login", "corp-wiki", "--mode", "visible", "--format", "json", env=env, timeout=30)
    assert result.code == 1
    error = json.loads(result.err.strip().splitlines()[-1])["error"]
    assert error["code"] == "BROWSER_UNAVAILABLE"
    assert "sync" in error["hint"]


def test_browser_crash_mid_login_is_reported(sig: Sig, sites: LoginSites) -> None:
    _configure(sig, SSO.format(app=sites.sso_app), browser_extra="  headlessTimeout: 30000\n")
    sites.auto_user = False  # stays on the IdP page until we kill the browser
    try:
        authorize_hits = sites.hits("idp", "/sso/authorize")
        proc = sig.popen("login", "corp-wiki", "--mode", "headless")
        profile = str(sig.home / "browser-data")
        pids: list[int] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not pids:
            pids = _browser_pids(profile)
            time.sleep(0.2)
        assert pids, "the browser never started"
        while time.monotonic() < deadline + 20 and sites.hits("idp", "/sso/authorize") == authorize_hits:
            time.sleep(0.2)  # mid-login: the browser is on the IdP's login page
        time.sleep(0.5)
        for pid in pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        result = sig.finish(proc, timeout=60)
    finally:
        sites.auto_user = True
    assert result.code == 1
    assert "closed before the login" in result.err or "BROWSER_LAUNCH_ERROR" in result.err
    assert "Traceback" not in result.err


def test_profile_locked_by_another_browser(sig: Sig, sites: LoginSites, tmp_path: Path) -> None:
    import subprocess

    _configure(sig, SSO.format(app=sites.sso_app))
    profile = sig.home / "browser-data"
    profile.mkdir(parents=True, exist_ok=True)
    args = [CHROMIUM, "--headless=new", f"--user-data-dir={profile}", "--no-first-run", "about:blank"]
    if os.geteuid() == 0:
        args.insert(1, "--no-sandbox")
    other = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not os.path.lexists(profile / "SingletonLock"):
            time.sleep(0.1)
        result = sig("login", "corp-wiki", "--mode", "headless", timeout=60)
        assert result.code == 1
        assert "in use by another browser" in result.err
        assert "browserDataDir" in result.err
    finally:
        os.killpg(other.pid, 9)
        other.wait(timeout=10)


def _browser_pids(profile: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read().decode(errors="replace")
        except OSError:
            continue
        if f"--user-data-dir={profile}" in cmd and "--type=" not in cmd:
            out.append(int(entry))
    return out


def test_concurrent_visible_logins_share_one_browser(sig: Sig, sites: LoginSites) -> None:
    """Two logins at once on one profile: the second joins the first one's browser (a new tab) instead
    of failing on Chrome's one-instance-per-profile lock; both complete; the browser is gone after."""
    providers = API.format(url=sites.api) + SPA.format(url=sites.spa)
    _configure(sig, providers)
    env = {"SIG_BROWSER_VISIBLE_HEADLESS": "1"}
    sites.user_delay_ms = 2500  # both logins are in the browser at the same time
    try:
        first = sig.popen("login", "status-api", "--mode", "visible", env=env)
        time.sleep(1.0)
        second = sig.popen("login", "app-spa", "--mode", "visible", env=env)
        profile = str(sig.home / "browser-data")
        seen: set[int] = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (first.poll() is None or second.poll() is None):
            seen.update(_browser_pids(profile))
            time.sleep(0.2)
        r1 = sig.finish(first, timeout=60)
        r2 = sig.finish(second, timeout=60)
    finally:
        sites.user_delay_ms = 300
    assert r1.code == 0, r1.err
    assert r2.code == 0, r2.err
    assert len(seen) == 1, f"expected one shared browser, saw {sorted(seen)}"
    assert not (sig.home / "browser-data" / ".cdp-state.json").exists()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _browser_pids(profile):
        time.sleep(0.2)
    assert not _browser_pids(profile)


def test_ctrl_c_closes_the_browser(sig: Sig, sites: LoginSites) -> None:
    import signal

    _configure(sig, SSO.format(app=sites.sso_app), browser_extra="  headlessTimeout: 60000\n")
    sites.auto_user = False
    try:
        proc = sig.popen("login", "corp-wiki", "--mode", "headless")
        profile = str(sig.home / "browser-data")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _browser_pids(profile):
            time.sleep(0.2)
        assert _browser_pids(profile), "the browser never started"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        result = sig.finish(proc, timeout=30)
    finally:
        sites.auto_user = True
    assert result.code == 130
    assert "Traceback" not in result.err
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _browser_pids(profile):
        time.sleep(0.2)
    assert not _browser_pids(profile)


def test_mode_cdp_uses_the_native_adapter_without_automation_markers(sig: Sig, sites: LoginSites) -> None:
    """`--mode cdp` drives the real browser over CDP even when browser.adapter says playwright, and the
    page sees no automation marker (navigator.webdriver is false)."""
    _configure(sig, SPA.format(url=sites.spa), adapter="playwright")
    env = {"SIG_BROWSER_VISIBLE_HEADLESS": "1"}
    before = len(sites.webdriver_flags())
    result = sig("login", "app-spa", "--mode", "cdp", "--verbose", env=env, timeout=90)
    assert result.code == 0, result.err
    assert "cdp adapter" in result.err
    assert "playwright adapter" not in result.err
    flags = sites.webdriver_flags()[before:]
    assert flags and not any(flags)


def test_seed_oauth2_provider_without_token_url_captures_the_bearer(sig: Sig, sites: LoginSites) -> None:
    """Seed 000 format: `url` + `strategy: oauth2` and no token endpoint — the browser login keeps the
    bearer token the site's pages send."""
    _configure(sig, f"  spa-oauth:\n    url: {sites.spa}/\n    strategy: oauth2\n")
    result = sig("login", "spa-oauth", "--mode", "headless", timeout=90)
    assert result.code == 0, result.err
    token = sites.issued("spa")[-1]
    assert _creds(sig, "spa-oauth")["headers"]["Authorization"] == f"Bearer {token}"
    env = sig("run", "spa-oauth", "--no-redaction", "--", "env", check=0).out
    assert "SIG_SPA_OAUTH_CREDENTIAL_TYPE=bearer" in env


class _ForwardProxy:
    """A minimal HTTP forward proxy on 127.0.0.1 (absolute-form requests only) that counts what it relays."""

    def __init__(self) -> None:
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        outer = self
        self.seen: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _relay(self) -> None:
                parts = urlsplit(self.path)
                if parts.hostname != "127.0.0.1":
                    self.send_error(403)  # loopback only
                    return
                outer.seen.append(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("proxy-connection", "connection", "keep-alive")}
                conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=10)
                try:
                    target = parts.path + (f"?{parts.query}" if parts.query else "")
                    conn.request(self.command, target or "/", body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("adapter", [
    "cdp",
    pytest.param("playwright", marks=pytest.mark.skipif(not HAVE_PLAYWRIGHT, reason="playwright not installed")),
])
def test_network_proxy_carries_the_browser_traffic(sig: Sig, sites: LoginSites, adapter: str) -> None:
    proxy = _ForwardProxy()
    try:
        cfg = API.format(url=sites.api) + f"    networkProxy: {proxy.url}\n    waitUntil: domcontentloaded\n"
        _configure(sig, cfg, adapter=adapter)
        result = sig("login", "status-api", "--mode", "headless", timeout=90)
        assert result.code == 0, result.err
    finally:
        proxy.close()
    assert any(p.startswith(f"{sites.api}/") for p in proxy.seen), proxy.seen
    assert any("/session" in p for p in proxy.seen)  # the page's own login went through it too


def test_force_visible_skips_the_headless_phase(sig: Sig, sites: LoginSites) -> None:
    _configure(sig, SPA.format(url=sites.spa) + "    forceVisible: true\n")
    result = sig("login", "app-spa", "--verbose", env={"SIG_BROWSER_VISIBLE_HEADLESS": "1"}, timeout=90)
    assert result.code == 0, result.err
    assert "visible phase" in result.err and "headless phase" not in result.err
    no_display = sig("login", "app-spa", "--force", "--format", "json",
                     env={"DISPLAY": None, "WAYLAND_DISPLAY": None}, timeout=30)
    assert no_display.code == 1
    assert json.loads(no_display.err.strip().splitlines()[-1])["error"]["code"] == "BROWSER_UNAVAILABLE"


def test_init_channel_chromium_and_doctor_start_the_browser(sig: Sig) -> None:
    r = sig("init", "--yes", "--channel", "chromium", check=0)
    text = (sig.home / "config.yaml").read_text()
    exec_line = next(line for line in text.splitlines() if line.strip().startswith("execPath:"))
    assert "chrom" in exec_line, exec_line
    assert "Traceback" not in r.err
    doctor = sig("doctor", "--format", "json", timeout=60)
    checks = {c["check"]: c for c in json.loads(doctor.out)["checks"]}
    browser = checks["Browser"]
    assert browser["ok"] is True and "answered over CDP" in browser["detail"]
    bad = sig("init", "--yes", "--force", "--channel", "netscape")
    assert bad.code == 1 and "chrome, msedge or chromium" in bad.err


def test_doctor_reports_a_browser_that_does_not_start(sig: Sig, tmp_path: Path) -> None:
    sig("init", "--yes", check=0)
    fake = tmp_path / "fake-chrome"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    cfg = sig.home / "config.yaml"
    cfg.write_text(_drop_exec_path(cfg.read_text()).replace("browser:\n", f"browser:\n  execPath: {fake}\n", 1))
    doctor = sig("doctor", timeout=60)
    assert doctor.code == 1
    assert "did not start" in doctor.out + doctor.err
