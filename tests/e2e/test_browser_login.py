"""Browser SSO login end to end: the real `sig` command drives headless Debian Chromium against login sites
served on 127.0.0.1 (tests/harness/login_sites.py), where page JavaScript plays the user.

Each scenario needs what it tests: the multi-hop SSO needs the off-site wait and `cookiePaths`, the
tracking site needs `validateUrl`, the 200-with-an-error API needs `validateRule`, the SPA needs
localStorage `jsonPath`/`expiresJsonPath`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.browser_login import CHROMIUM, cmdlines, wait_for
from harness.browser_login import browser_pids as _browser_pids
from harness.browser_login import configure as _configure
from harness.browser_login import creds as _creds
from harness.browser_login import drop_exec_path as _drop_exec_path
from harness.forward_proxy import ForwardProxy
from harness.login_sites import LoginSites
from harness.sigproc import Sig

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
    sig("login", "corp-wiki", "--force", timeout=90, check=0)
    assert sites.hits("idp", "/sso/login") == idp_logins  # the profile still held the session


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
    _configure(sig, SSO.format(app=sites.sso_app), browser_extra="  headlessTimeout: 60000\n")
    sites.auto_user = False  # stays on the IdP page until we kill the browser
    try:
        authorize_hits = sites.hits("idp", "/sso/authorize")
        proc = sig.popen("login", "corp-wiki", "--mode", "headless")
        profile = str(sig.home / "browser-data")
        # Mid-login: the browser is on the IdP's login page (seen by the IdP, not guessed from time).
        wait_for(lambda: sites.hits("idp", "/sso/authorize") > authorize_hits, "the browser to reach the IdP")
        pids = _browser_pids(profile)
        assert pids, "the browser that reached the IdP is not on the profile"
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
        wait_for(lambda: os.path.lexists(profile / "SingletonLock"), "the other browser to lock the profile")
        result = sig("login", "corp-wiki", "--mode", "headless", timeout=60)
        assert result.code == 1
        assert "in use by another browser" in result.err
        assert "browserDataDir" in result.err
    finally:
        os.killpg(other.pid, 9)
        other.wait(timeout=10)


def test_concurrent_visible_logins_share_one_browser(sig: Sig, sites: LoginSites) -> None:
    """Two logins at once on one profile: the second joins the first one's browser (a new tab) through
    the relay's Unix socket instead of failing on Chrome's one-instance-per-profile lock; no TCP port
    listens anywhere in the browser's process tree; both complete; the browser is gone after."""
    providers = API.format(url=sites.api) + SPA.format(url=sites.spa)
    _configure(sig, providers)
    env = {"SIG_BROWSER_VISIBLE_HEADLESS": "1"}
    profile = str(sig.home / "browser-data")
    sites.hold_users()  # both logins stay in the window until the test has seen them there
    try:
        first = sig.popen("login", "status-api", "--mode", "visible", env=env)
        wait_for(lambda: sites.hits("api", "/__gate"), "the first login's page in the window")
        second = sig.popen("login", "app-spa", "--mode", "visible", env=env)
        wait_for(lambda: sites.hits("spa", "/__gate"), "the second login's page in the window")
        pids = _browser_pids(profile)
        assert len(pids) == 1, f"expected one shared browser, saw {pids}"
        state = json.loads((sig.home / "browser-data" / ".cdp-state.json").read_text())
        assert state["pid"] == pids[0]
        sock = sig.home / "browser-data" / ".sig-cdp" / "cdp.sock"
        assert (sock.stat().st_mode & 0o777) == 0o600
        assert (sock.parent.stat().st_mode & 0o777) == 0o700
        tree = _process_tree(pids[0]) | _process_tree(state["relayPid"])
        assert _tcp_listeners(tree) == set()
        cmdline = Path(f"/proc/{pids[0]}/cmdline").read_bytes()
        assert b"--remote-debugging-pipe" in cmdline and b"--remote-debugging-port" not in cmdline
    finally:
        sites.release_users()
    r1 = sig.finish(first, timeout=120)
    r2 = sig.finish(second, timeout=120)
    assert r1.code == 0, r1.err
    assert r2.code == 0, r2.err
    assert not (sig.home / "browser-data" / ".cdp-state.json").exists()
    assert not sock.exists()
    wait_for(lambda: not _browser_pids(profile), "the shared browser to be gone", timeout_s=20)


def _process_tree(root: int) -> set[int]:
    """`root`, its descendants and the members of its process group (from /proc)."""
    parents: dict[int, int] = {}
    groups: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()  # state ppid pgrp ...
        parents[int(entry)] = int(fields[1])
        groups[int(entry)] = int(fields[2])
    tree = {root} | {pid for pid, pgid in groups.items() if pgid == root}
    while more := {pid for pid, ppid in parents.items() if ppid in tree} - tree:
        tree |= more
    return tree


def _tcp_listeners(pids: set[int]) -> set[str]:
    """TCP/TCP6 sockets in LISTEN state held by `pids` (each process's own /proc/<pid>/net)."""
    inodes = set()
    for pid in pids:
        try:
            for name in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{name}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = set()
    for pid in pids:
        for table in ("tcp", "tcp6"):
            try:
                lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
            except OSError:
                continue
            found |= {f"{table} {c[1]}" for c in map(str.split, lines) if c[3] == "0A" and c[9] in inodes}
    return found


def test_ctrl_c_closes_the_browser(sig: Sig, sites: LoginSites) -> None:
    import signal

    _configure(sig, SSO.format(app=sites.sso_app), browser_extra="  headlessTimeout: 60000\n")
    sites.auto_user = False
    try:
        authorize_hits = sites.hits("idp", "/sso/authorize")
        proc = sig.popen("login", "corp-wiki", "--mode", "headless")
        profile = str(sig.home / "browser-data")
        # Ctrl-C mid-login, once the browser shows the IdP's login page (headless mode waits there for
        # all of headlessTimeout, counted from that page: a cold start cannot end the login first).
        wait_for(lambda: sites.hits("idp", "/sso/authorize") > authorize_hits, "the browser to reach the IdP")
        assert _browser_pids(profile), "the browser that reached the IdP is not on the profile"
        assert proc.poll() is None, sig.finish(proc).err
        proc.send_signal(signal.SIGINT)
        result = sig.finish(proc, timeout=30)
    finally:
        sites.auto_user = True
    assert result.code == 130, result.err
    assert "Traceback" not in result.err
    wait_for(lambda: not _browser_pids(profile), "the browser to be gone", timeout_s=20)


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


@pytest.mark.parametrize("adapter", [
    "cdp",
    pytest.param("playwright", marks=pytest.mark.skipif(not HAVE_PLAYWRIGHT, reason="playwright not installed")),
])
def test_network_proxy_carries_the_browser_traffic(sig: Sig, sites: LoginSites, adapter: str) -> None:
    proxy = ForwardProxy()
    try:
        cfg = API.format(url=sites.api) + f"    networkProxy: {proxy.url}\n    waitUntil: domcontentloaded\n"
        _configure(sig, cfg, adapter=adapter)
        result = sig("login", "status-api", "--mode", "headless", timeout=90)
        assert result.code == 0, result.err
    finally:
        proxy.close()
    assert any(p.startswith(f"{sites.api}/") for p in proxy.seen), proxy.seen
    assert any("/session" in p for p in proxy.seen)  # the page's own login went through it too


@pytest.mark.parametrize(("adapter", "mode"), [
    ("cdp", "headless"),
    ("cdp", "visible"),  # the shared window, started by its relay
    pytest.param("playwright", "headless",
                 marks=pytest.mark.skipif(not HAVE_PLAYWRIGHT, reason="playwright not installed")),
])
def test_login_through_a_proxy_that_asks_for_a_password(sig: Sig, sites: LoginSites, adapter: str,
                                                        mode: str) -> None:
    """networkProxy with user:password (the password holds / and #, percent-encoded in the config): the
    login goes through the proxy, whose 407 is answered over CDP; no process's command line ever shows the
    password while the login runs."""
    import secrets
    from urllib.parse import quote

    password = f"pa/ss#{secrets.token_hex(6)}"
    with ForwardProxy(user="bob", password=password) as proxy:
        network_proxy = f"http://bob:{quote(password, safe='')}@127.0.0.1:{proxy.port}"
        cfg = API.format(url=sites.api) + f'    networkProxy: "{network_proxy}"\n    waitUntil: domcontentloaded\n'
        _configure(sig, cfg, adapter=adapter)
        proc = sig.popen("login", "status-api", "--mode", mode, env={"SIG_BROWSER_VISIBLE_HEADLESS": "1"})
        leaks: set[str] = set()
        scans = 0
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            leaks |= {cmd for cmd in cmdlines().values() if password in cmd or quote(password, safe="") in cmd}
            scans += 1
            time.sleep(0.05)  # a command line is there for the browser's whole life
        result = sig.finish(proc, timeout=30)
    assert result.code == 0, result.err
    assert scans > 0 and not leaks, leaks
    assert proxy.challenges >= 1 and proxy.wrong == 0
    assert any("/session" in p for p in proxy.seen)  # the page's own login went through it
    sig.assert_no_secret(password, quote(password, safe=""))


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


def test_headless_mode_waits_all_of_headless_timeout_and_says_so(sig: Sig, sites: LoginSites) -> None:
    """--mode headless on a login page nobody submits: it gives up after browser.headlessTimeout (counted
    from the first page load), not after the 5 s auto mode allows before opening a window, and the error
    names the timeout that ended it."""
    _configure(sig, SSO.format(app=sites.sso_app), browser_extra="  headlessTimeout: 9000\n")
    sites.auto_user = False
    try:
        start = time.monotonic()
        result = sig("login", "corp-wiki", "--mode", "headless", timeout=120)
        elapsed = time.monotonic() - start
    finally:
        sites.auto_user = True
    assert result.code == 1
    assert 'did not complete within browser.headlessTimeout (9 s)' in result.err, result.err
    assert "the browser is on localhost" in result.err
    assert elapsed >= 9  # a lower bound only: the budget starts once the page shows


def test_a_slow_browser_start_does_not_count_against_headless_timeout(sig: Sig, sites: LoginSites,
                                                                       tmp_path: Path) -> None:
    """A cold first start (here: a browser that takes 6 s to come up) is not part of headlessTimeout
    (3 s here), which counts from the first page load: the SSO still completes."""
    slow = tmp_path / "slow-chromium"
    slow.write_text(f"#!/bin/sh\nsleep 6\nexec {CHROMIUM} \"$@\"\n")
    slow.chmod(0o755)
    _configure(sig, SSO.format(app=sites.sso_app), browser_extra="  headlessTimeout: 3000\n")
    cfg = sig.home / "config.yaml"
    cfg.write_text(cfg.read_text().replace(f"  execPath: {CHROMIUM}\n", f"  execPath: {slow}\n"))
    result = sig("login", "corp-wiki", "--mode", "headless", timeout=120)
    assert result.code == 0, result.err
    assert f"session={sites.issued('sso')[-1]}" in _creds(sig, "corp-wiki")["headers"]["Cookie"]
