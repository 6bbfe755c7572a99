"""The watch loop renews credentials that came from a browser login with a headless login (issue 19 item 6):
the session cookies kept with the credential go back into a headless Chromium, and a site that still honours
them is logged in again with nobody at the page. Never a window, never a prompt, never in `mode: browserless`;
`sig get` never starts a browser. When the site wants a person, the old credential stays as it was, the run
ends within browser.headlessTimeout (plus the browser's start), and the loop does not try again until the
credential or the config changes.

The site is scenario 5 of tests/harness/login_sites.py (session cookies only); its page JavaScript plays the
user only while `auto_user` is on, so after the first login every later login is a headless one or fails."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.browser_login import CHROMIUM, STATE_WAIT_S
from harness.browser_login import configure as _configure
from harness.browser_login import creds as _creds
from harness.login_sites import LoginSites
from harness.sigproc import Sig
from sigcli.core.timeutil import iso_from_ms, ms_from_iso, now_ms
from sigcli.store.credentials import CredentialStore

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium/Chrome installed (apt-get install chromium)"),
    pytest.mark.timeout(300),
]

INTRANET = """\
  intranet:
    domains: ["127.0.0.1"]
    entryUrl: {url}/
    validateUrl: {url}/api/me
    strategy: browser
    ttl: 1h
    requiredCookies: [sid]
    extract:
      - {{from: cookies, as: sid, match: sid}}
    apply:
      - {{in: header, name: Cookie, value: "sid=${{sid}}"}}
"""
HEADLESS_TIMEOUT_MS = 3000
VISIBLE_HEADLESS = {"SIG_BROWSER_VISIBLE_HEADLESS": "1"}  # the first login's "window" runs headless (CI)
# A failed headless attempt: sig's start, the browser's start (cold, on a loaded machine) and the timeout.
ATTEMPT_BOUND_S = HEADLESS_TIMEOUT_MS / 1000 + 45


@pytest.fixture
def sites() -> Iterator[LoginSites]:
    with LoginSites() as running:
        yield running


def _store(sig: Sig) -> CredentialStore:
    return CredentialStore(str(sig.home / "credentials"), str(sig.home / "encryption.key"))


def _set_expiry(sig: Sig, expires_at_ms: int) -> None:
    """Age the stored credential: the same credential, re-sealed with another expiresAt."""
    store = _store(sig)
    credential = store.read("intranet")
    assert credential is not None
    credential.expires_at = iso_from_ms(expires_at_ms)
    store.write(credential)


def _file(sig: Sig) -> Path:
    return sig.home / "credentials" / "intranet.json"


def _logged_in(sig: Sig, sites: LoginSites, extra_config: str = "") -> str:
    """Configure the intranet provider, watch it, log in once (a person, in a window); from then on nobody is
    at the page. The session id the site issued."""
    _configure(sig, INTRANET.format(url=sites.session),
               browser_extra=f"  headlessTimeout: {HEADLESS_TIMEOUT_MS}\n")
    if extra_config:
        cfg = sig.home / "config.yaml"
        cfg.write_text(cfg.read_text() + extra_config)
    first = sig("login", "intranet", "--mode", "visible", env=VISIBLE_HEADLESS, timeout=120)
    assert first.code == 0, first.err
    sig("watch", "add", "intranet", check=0)
    sites.auto_user = False
    (sid,) = sites.issued("session")
    return sid


def _once(sig: Sig, *extra: str) -> tuple[dict[str, Any], str, float]:
    t0 = time.monotonic()
    r = sig("watch", "start", "--once", "--format", "json", *extra, check=0, timeout=180)
    elapsed = time.monotonic() - t0
    (result,) = r.json()
    assert result["provider"] == "intranet"
    return result, r.err, elapsed


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


def test_watch_renews_an_expired_session_cookie_login_headlessly(sig: Sig, sites: LoginSites) -> None:
    sid = _logged_in(sig, sites)
    entry_loads = sites.hits("session", "/")
    login_pages = sites.hits("session", "/login")

    # Expired: `sig get` says so (exit 3) and starts no browser: nothing asked the site for a page.
    _set_expiry(sig, now_ms() - 60_000)
    t0 = time.monotonic()
    r = sig("get", "intranet", check=3)
    assert "expired" in r.err and "sig login" in r.err
    assert time.monotonic() - t0 < 10
    assert sites.hits("session", "/") == entry_loads

    # The watch loop renews it: a headless browser with the kept session cookie, nobody at the page.
    result, err, _ = _once(sig, "--verbose")
    assert result["action"] == "renewed", err
    assert "renewed by a headless browser login" in result["detail"]
    assert "restored 1 session cookie(s)" in err
    assert sites.hits("session", "/") == entry_loads + 1  # one browser, one entry page
    assert sites.hits("session", "/login") == login_pages  # never on the login page: no interactive login
    assert sites.issued("session") == [sid]  # the same session: the site saw no new login
    expiry = ms_from_iso(_store(sig).read("intranet").expires_at or "")  # type: ignore[union-attr]
    assert expiry is not None and expiry > now_ms() + 50 * 60_000  # ttl 1h from the renewal

    # `sig get` works again, with the same session.
    assert _creds(sig, "intranet")["headers"]["Cookie"] == f"sid={sid}"

    # Valid for the next pass: left alone.
    result, _, _ = _once(sig)
    assert result["action"] == "fresh"
    assert sites.hits("session", "/") == entry_loads + 1

    # Valid now but not by the next pass (an interval of 2h > ttl 1h): renewed ahead of expiry.
    result, err, _ = _once(sig, "--interval", "2h")
    assert result["action"] == "renewed", err
    assert sites.hits("session", "/") == entry_loads + 2
    assert sites.issued("session") == [sid]
    sig.assert_no_secret(sid)


def test_watch_keeps_the_credential_when_the_site_wants_a_person(sig: Sig, sites: LoginSites) -> None:
    sid = _logged_in(sig, sites)
    sites.revoke("session")  # the server ended the session: the kept cookie is not a login any more
    _set_expiry(sig, now_ms() - 60_000)
    before = _file(sig).read_bytes()
    login_pages = sites.hits("session", "/login")

    result, err, elapsed = _once(sig)
    assert result["action"] == "needs-login", err
    assert result["detail"] == f"needs login: run sig login {sites.session}/"
    assert f"intranet: needs login: run sig login {sites.session}/" in err
    assert "browser.headlessTimeout (3 s)" in err and "login page" in err  # why, and which timeout ended it
    assert elapsed < ATTEMPT_BOUND_S
    assert sites.hits("session", "/login") > login_pages  # it did try, headless, and met the login page
    assert sites.issued("session") == [sid]  # nobody logged in
    assert _file(sig).read_bytes() == before  # the old credential, byte for byte
    sig("get", "intranet", check=3)
    sig.assert_no_secret(sid)


def test_watch_in_browserless_mode_starts_no_browser(sig: Sig, sites: LoginSites) -> None:
    sid = _logged_in(sig, sites)
    cfg = sig.home / "config.yaml"
    cfg.write_text(cfg.read_text().replace("mode: browser", "mode: browserless", 1))
    _set_expiry(sig, now_ms() - 60_000)
    before = _file(sig).read_bytes()
    entry_loads = sites.hits("session", "/")

    result, err, elapsed = _once(sig)
    assert result["action"] == "needs-login", err
    assert "sig login" in result["detail"]
    assert sites.hits("session", "/") == entry_loads  # no browser asked for the entry page
    assert elapsed < 15
    assert _file(sig).read_bytes() == before
    sig.assert_no_secret(sid)


def test_two_watchers_launch_one_browser(sig: Sig, sites: LoginSites) -> None:
    """Single flight: a second sig process that finds the provider's renewal in progress waits for it and
    uses its result instead of starting a browser of its own."""
    sid = _logged_in(sig, sites)
    _set_expiry(sig, now_ms() - 60_000)
    entry_loads = sites.hits("session", "/")
    lock = sig.home / "credentials" / "intranet.json.lock"

    first = sig.popen("watch", "start", "--once", "--format", "json")
    deadline = time.monotonic() + STATE_WAIT_S
    while not _lock_held(lock):
        assert first.poll() is None, "the first watcher ended before taking the lock"
        assert time.monotonic() < deadline, "the first watcher never took the lock"
        time.sleep(0.02)
    second = sig.popen("watch", "start", "--once", "--format", "json")
    a = sig.finish(first, timeout=180)
    b = sig.finish(second, timeout=180)
    assert a.code == 0 and b.code == 0, a.err + b.err
    assert a.json()[0]["action"] == "renewed", a.err
    assert b.json()[0]["action"] in ("renewed", "fresh"), b.err
    assert sites.hits("session", "/") == entry_loads + 1  # one browser between them
    assert sites.issued("session") == [sid]
    assert _creds(sig, "intranet")["headers"]["Cookie"] == f"sid={sid}"
    sig.assert_no_secret(sid)


def test_a_login_page_is_not_retried_every_pass(sig: Sig, sites: LoginSites,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop of a long-running `sig watch start` (and the proxy daemon), on the real store, config and
    Chromium: a headless attempt that met the login page is not repeated on later passes until the
    credential or the config changes."""
    from sigcli.watch.loop import make_loop

    sid = _logged_in(sig, sites)
    sites.revoke("session")
    _set_expiry(sig, now_ms() + 120_000)  # still valid, but not by the next pass (5m)
    before = _file(sig).read_bytes()
    monkeypatch.setenv("SIG_HOME", str(sig.home))
    monkeypatch.setenv("HOME", str(sig.user_home))
    lines: list[str] = []
    loop = make_loop(lines.append)

    def attempts() -> int:
        return sites.hits("session", "/")

    start = attempts()
    (result,) = loop.run_once()
    assert result["action"] == "fresh" and "a headless login could not renew it" in result["detail"], lines
    assert attempts() == start + 1
    for _ in range(3):
        (result,) = loop.run_once()
        assert result["action"] == "fresh"
    assert attempts() == start + 1  # not tried again: nothing changed
    assert sum("could not renew it" in line for line in lines) == 1, lines  # logged once
    assert _file(sig).read_bytes() == before

    # The config changes (here the browser section): worth one more attempt.
    cfg = sig.home / "config.yaml"
    cfg.write_text(cfg.read_text().replace(f"headlessTimeout: {HEADLESS_TIMEOUT_MS}", "headlessTimeout: 2500"))
    loop.run_once()
    assert attempts() == start + 2
    loop.run_once()
    assert attempts() == start + 2

    # The credential changes (a login elsewhere, or a sync): tried again — and once the site honours the
    # session again, renewed.
    sites.auto_user = True
    assert sig("login", "intranet", "--mode", "visible", "--force", env=VISIBLE_HEADLESS, timeout=120).code == 0
    sites.auto_user = False
    _set_expiry(sig, now_ms() + 120_000)
    after_login = attempts()
    (result,) = loop.run_once()
    assert result["action"] == "renewed", lines
    assert attempts() == after_login + 1
    assert not any(sid in line for line in lines)
    for new_sid in sites.issued("session"):
        assert not any(new_sid in line for line in lines)


SEED_COOKIE = """\
  board:
    domains: ["127.0.0.1"]
    entryUrl: {url}/
    validateUrl: {url}/api/me
    strategy: cookie
    requiredCookies: [sid]
"""


def test_a_cookie_provider_is_renewed_in_the_browser_only_when_a_browser_captured_it(sig: Sig,
                                                                                     sites: LoginSites) -> None:
    """Seed 000's cookie strategy logs in with a browser when no cookie is given: such a credential is renewed
    headlessly like a browser one. A cookie the user pasted is not: no browser is started for it."""
    _configure(sig, SEED_COOKIE.format(url=sites.session),
               browser_extra=f"  headlessTimeout: {HEADLESS_TIMEOUT_MS}\n")
    assert sig("login", "board", "--mode", "visible", env=VISIBLE_HEADLESS, timeout=120).code == 0
    sig("watch", "add", "board", check=0)
    sites.auto_user = False
    (sid,) = sites.issued("session")
    store = _store(sig)

    def age() -> None:
        credential = store.read("board")
        assert credential is not None
        credential.expires_at = iso_from_ms(now_ms() - 60_000)
        store.write(credential)

    age()
    entry_loads = sites.hits("session", "/")
    r = sig("watch", "start", "--once", "--format", "json", check=0, timeout=180)
    assert r.json()[0]["action"] == "renewed", r.err
    assert sites.hits("session", "/") == entry_loads + 1 and sites.issued("session") == [sid]
    assert f"sid={sid}" in _creds(sig, "board")["headers"]["Cookie"]

    # Pasted by hand: the same site, but sig does not know a browser can make it again.
    sig("login", "board", "--cookie-stdin", "--force", input=f"sid={sid}", check=0)
    age()
    entry_loads = sites.hits("session", "/")
    r = sig("watch", "start", "--once", "--format", "json", check=0, timeout=60)
    assert r.json()[0]["action"] == "needs-login", r.err
    assert sites.hits("session", "/") == entry_loads
    sig.assert_no_secret(sid)


def test_an_unreachable_site_is_retried_with_backoff(sig: Sig, sites: LoginSites,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A headless renewal that failed for a reason other than a login page (here the site does not answer)
    is retried, but not on every pass: 30 s, then 1 m, … on the loop's clock."""
    import socket

    from sigcli.auth.manager import AuthManager
    from sigcli.config.load import load_config
    from sigcli.watch.loop import WatchLoop

    sid = _logged_in(sig, sites)
    _set_expiry(sig, now_ms() - 60_000)
    before = _file(sig).read_bytes()
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    cfg = sig.home / "config.yaml"
    cfg.write_text(cfg.read_text().replace(f"entryUrl: {sites.session}/", f"entryUrl: {dead}/"))
    monkeypatch.setenv("SIG_HOME", str(sig.home))
    monkeypatch.setenv("HOME", str(sig.user_home))
    clock = [1000.0]
    debug: list[str] = []
    lines: list[str] = []

    def auth(config: Any) -> AuthManager:
        return AuthManager(_store(sig), debug.append)

    loop = WatchLoop(lambda: load_config()[0], auth, None, lines.append, clock=lambda: clock[0])

    def attempts() -> int:
        return sum("renewing with a headless browser login" in line for line in debug)

    (result,) = loop.run_once()
    assert result["action"] == "error" and "could not open" in result["detail"], result
    assert result["detail"].endswith("retrying in 30s")
    assert attempts() == 1
    clock[0] += 29
    (result,) = loop.run_once()
    assert attempts() == 1 and "retrying in 1s" in result["detail"]
    clock[0] += 1
    (result,) = loop.run_once()
    assert attempts() == 2 and result["detail"].endswith("retrying in 1m")
    assert sum("could not open" in line for line in lines) == 1, lines  # one state, logged once
    assert _file(sig).read_bytes() == before
    assert not any(sid in line for line in lines + debug)
