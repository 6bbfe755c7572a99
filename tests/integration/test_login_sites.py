"""The loopback login sites behave as the browser-login end-to-end tests expect.

Two layers: plain HTTP checks (``requests``, no redirects followed) pin each scenario's server
logic, and one headless-Chromium smoke test per scenario proves the page JS really plays the
user to the "logged in" state without any help, which is what ``sig login`` relies on.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests

from harness.login_sites import LoginSites

CHROMIUM = "/usr/bin/chromium"
BROWSER_WAIT_S = 45.0  # a bound for waits on observed page state, far above a loaded machine's page loads
CREDS = {"user": "alice", "password": "hunter2"}


@pytest.fixture
def sites() -> Iterator[LoginSites]:
    with LoginSites() as running:
        yield running


def _set_cookies(resp: requests.Response) -> list[str]:
    """Every Set-Cookie header separately (requests folds them into one string)."""
    return list(resp.raw.headers.getlist("Set-Cookie"))


def _cookie(resp: requests.Response, name: str) -> tuple[str, dict[str, str]]:
    """(value, lower-cased attributes) of the Set-Cookie header for ``name``."""
    for header in _set_cookies(resp):
        first, *attrs = [part.strip() for part in header.split(";")]
        cname, _, value = first.partition("=")
        if cname == name:
            parsed = {}
            for attr in attrs:
                key, _, val = attr.partition("=")
                parsed[key.lower()] = val
            return value, parsed
    raise AssertionError(f"no Set-Cookie for {name!r} in {_set_cookies(resp)}")


def _get(url: str, **kwargs: Any) -> requests.Response:
    return requests.get(url, allow_redirects=False, timeout=5, **kwargs)


def _post(url: str, **kwargs: Any) -> requests.Response:
    return requests.post(url, allow_redirects=False, timeout=5, **kwargs)


# -- (a) server logic over plain HTTP ------------------------------------------------------------


@pytest.mark.timeout(90)
def test_sso_flow_over_http(sites: LoginSites) -> None:
    app, idp = sites.sso_app, sites.idp
    assert urlsplit(app).hostname == "127.0.0.1" and urlsplit(idp).hostname == "localhost"

    root = _get(app + "/")
    assert root.status_code == 302 and root.headers["Location"] == "/wiki/home"
    assert _cookie(root, "lang") == ("en", {"path": "/"})
    assert _cookie(root, "static_ver") == ("3", {"path": "/static"})

    home = _get(app + "/wiki/home")
    callback = f"{app}/callback"
    assert home.status_code == 302
    assert home.headers["Location"] == f"{idp}/sso/authorize?return={quote(callback, safe='')}"

    authorize = _get(home.headers["Location"])
    assert authorize.status_code == 200 and 'action="/sso/login"' in authorize.text
    assert f'value="{callback}"' in authorize.text
    assert _get(f"{idp}/sso/authorize?return=http://evil.example/").status_code == 400

    wrong = _post(f"{idp}/sso/login", data={"username": "alice", "password": "nope", "return": callback})
    assert wrong.status_code == 401 and sites.issued("idp") == []

    login = _post(f"{idp}/sso/login", data={"username": "alice", "password": "hunter2", "return": callback})
    assert login.status_code == 302 and login.headers["Location"] == f"/mfa?return={quote(callback, safe='')}"
    idp_session, attrs = _cookie(login, "idp_session")
    assert attrs == {"path": "/", "httponly": ""} and sites.issued("idp") == [idp_session]

    assert _get(f"{idp}{login.headers['Location']}").status_code == 401  # no idp_session
    mfa_page = _get(f"{idp}{login.headers['Location']}", cookies={"idp_session": idp_session})
    assert mfa_page.status_code == 200 and 'name="code"' in mfa_page.text
    assert _post(f"{idp}/mfa", data={"code": "123456", "return": callback}).status_code == 401
    bad_code = _post(
        f"{idp}/mfa", data={"code": "000000", "return": callback}, cookies={"idp_session": idp_session}
    )
    assert bad_code.status_code == 401
    mfa = _post(
        f"{idp}/mfa", data={"code": "123456", "return": callback}, cookies={"idp_session": idp_session}
    )
    assert mfa.status_code == 302 and mfa.headers["Location"].startswith(f"{callback}?code=")
    code = parse_qs(urlsplit(mfa.headers["Location"]).query)["code"][0]

    assert _get(f"{callback}?code=bogus").status_code == 401
    back = _get(mfa.headers["Location"])
    assert back.status_code == 302 and back.headers["Location"] == "/wiki/home"
    session, attrs = _cookie(back, "session")
    assert attrs == {"path": "/wiki", "httponly": "", "max-age": "28800"}
    assert len(session) >= 24 and sites.issued("sso") == [session]
    assert _get(f"{callback}?code={code}").status_code == 401  # one-time code

    validate = f"{app}/wiki/rest/api/myself"
    denied = _get(validate)
    assert denied.status_code == 401 and denied.json() == {"error": "unauthorized"}
    assert _get(validate, cookies={"session": "forged"}).status_code == 401
    ok = _get(validate, cookies={"session": session})
    assert ok.status_code == 200 and ok.json() == {"name": "alice"}
    assert sites.hits("sso", "/wiki/rest/api/myself") == 3
    assert sites.authorized_hits("sso", "/wiki/rest/api/myself") == 1

    welcome = _get(app + "/wiki/home", cookies={"session": session})
    assert welcome.status_code == 200 and "Welcome alice" in welcome.text

    sites.revoke("sso")
    assert _get(validate, cookies={"session": session}).status_code == 401


@pytest.mark.timeout(90)
def test_tracking_site_over_http(sites: LoginSites) -> None:
    base = sites.tracking
    home = _get(base + "/")
    assert home.status_code == 200 and 'fetch("/login"' in home.text
    ga, ga_attrs = _cookie(home, "_ga")
    assert ga.startswith("GA1.2.") and ga_attrs == {"path": "/", "max-age": "63072000"}
    assert _cookie(home, "_gid")[1] == {"path": "/", "max-age": "86400"}
    assert _cookie(home, "_gat") == ("1", {"path": "/", "max-age": "30"})

    assert _post(base + "/login", json={"user": "alice", "password": "nope"}).status_code == 401
    assert _post(base + "/login", data="not json").status_code == 401
    login = _post(base + "/login", json=CREDS)
    assert login.status_code == 200
    sid, attrs = _cookie(login, "sid")
    assert attrs == {"path": "/", "httponly": "", "max-age": "7200"}
    assert sites.issued("tracking") == [sid]
    _cookie(login, "_ga")  # tracking cookies on every response, the login included

    assert _get(base + "/api/me").status_code == 401
    me = _get(base + "/api/me", cookies={"sid": sid})
    assert me.status_code == 200 and me.json() == {"user": "alice"}
    anon_account = _get(base + "/account")
    assert anon_account.status_code == 302 and anon_account.headers["Location"] == "/"
    assert _get(base + "/account", cookies={"sid": sid}).status_code == 200
    assert sites.hits("tracking", "/api/me") == 2 and sites.authorized_hits("tracking", "/api/me") == 1


@pytest.mark.timeout(90)
def test_api_site_over_http(sites: LoginSites) -> None:
    base = sites.api
    assert _get(base + "/").status_code == 200
    assert _post(base + "/session", json={"user": "alice", "password": "nope"}).status_code == 401
    login = _post(base + "/session", json=CREDS)
    assert login.status_code == 200
    auth, attrs = _cookie(login, "auth")
    assert attrs == {"path": "/", "httponly": ""}  # a session cookie: no Max-Age/Expires
    assert sites.issued("api") == [auth]

    anon = _get(base + "/api/status")
    assert anon.status_code == 200 and anon.json() == {"ok": False, "error": "not logged in"}
    forged = _get(base + "/api/status", cookies={"auth": "forged"})
    assert forged.status_code == 200 and forged.json()["ok"] is False
    ok = _get(base + "/api/status", cookies={"auth": auth})
    assert ok.status_code == 200 and ok.json() == {"ok": True, "user": "alice"}
    assert _get(base + "/app").status_code == 200
    assert sites.hits("api", "/api/status") == 3 and sites.authorized_hits("api", "/api/status") == 1


@pytest.mark.timeout(90)
def test_spa_site_over_http(sites: LoginSites) -> None:
    base = sites.spa
    page = _get(base + "/")
    assert page.status_code == 200 and 'localStorage.setItem("auth"' in page.text
    assert _post(base + "/api/login", json={"user": "alice", "password": "nope"}).status_code == 401
    before_ms = int(time.time() * 1000)
    login = _post(base + "/api/login", json=CREDS)
    assert login.status_code == 200
    body = login.json()
    assert sites.issued("spa") == [body["accessToken"]]
    assert before_ms + 3_600_000 - 5_000 <= body["expiresAt"] <= int(time.time() * 1000) + 3_600_000
    d, attrs = _cookie(login, "d")
    assert attrs == {"path": "/", "max-age": "86400"} and sites.issued("spa-cookie") == [d]

    assert _get(base + "/api/me").status_code == 401
    assert _get(base + "/api/me", headers={"Authorization": "Bearer forged"}).status_code == 401
    assert _get(base + "/api/me", cookies={"d": d}).status_code == 401  # the cookie alone is not auth
    me = _get(base + "/api/me", headers={"Authorization": f"Bearer {body['accessToken']}"})
    assert me.status_code == 200 and me.json() == {"user": "alice"}
    assert sites.hits("spa", "/api/me") == 4 and sites.authorized_hits("spa", "/api/me") == 1


def test_unknown_scenario_names_are_rejected(sites: LoginSites) -> None:
    """A typo in a test must fail loudly rather than read as "0 hits"."""
    with pytest.raises(ValueError):
        sites.hits("sso_app", "/")
    with pytest.raises(ValueError):
        sites.issued("nope")


def test_close_is_bounded_with_open_keepalive_connections() -> None:
    sites = LoginSites()
    with sites:
        session = requests.Session()
        session.get(sites.tracking + "/", timeout=5)  # leaves a keep-alive connection open
        started = time.monotonic()
    assert time.monotonic() - started < 5
    session.close()


# -- (b) the pages play the user in a real headless Chromium -------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed")
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_api.sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context()
    try:
        yield ctx
    finally:
        ctx.close()


def _wait_until(page: Any, check: Callable[[], bool], what: str, timeout: float = BROWSER_WAIT_S) -> None:
    """Poll ``check`` (bounded). Sleeps through ``page.wait_for_timeout`` because the sync Playwright
    API only processes browser events (navigations, so ``page.url``) while inside a Playwright call."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # the page may be mid-navigation; try again
            pass
        page.wait_for_timeout(100)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _cookies(context: Any, url: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in context.cookies(url)}


@pytest.mark.timeout(90)
def test_browser_sso_with_mfa(sites: LoginSites, context: Any) -> None:
    page = context.new_page()
    page.goto(sites.sso_app + "/")
    home = f"{sites.sso_app}/wiki/home"

    def done() -> bool:
        session = _cookies(context, home).get("session")
        return page.url == home and session is not None and session["path"] == "/wiki"

    _wait_until(page, done, "the SSO round trip to end on /wiki/home with a /wiki session cookie")
    assert "Welcome alice" in page.content()
    cookies = _cookies(context, home)
    assert cookies["session"]["value"] == sites.issued("sso")[-1] and cookies["session"]["httpOnly"]
    assert cookies["lang"]["path"] == "/"
    assert "static_ver" in _cookies(context, sites.sso_app + "/static/x.css")
    assert "idp_session" in _cookies(context, sites.idp + "/")
    assert "idp_session" not in cookies  # localhost and 127.0.0.1 are different sites
    assert sites.hits("idp", "/mfa") == 2  # GET the form, POST the code


@pytest.mark.timeout(90)
def test_browser_tracking_site(sites: LoginSites, context: Any) -> None:
    page = context.new_page()
    page.goto(sites.tracking + "/")
    _wait_until(page, lambda: "sid" in _cookies(context, sites.tracking), "the sid cookie")
    cookies = _cookies(context, sites.tracking)
    assert cookies["sid"]["value"] == sites.issued("tracking")[-1]
    assert {"_ga", "_gid", "_gat"} <= set(cookies)
    _wait_until(page, lambda: page.url == sites.tracking + "/account", "the page to move to /account")


@pytest.mark.timeout(90)
def test_browser_api_site(sites: LoginSites, context: Any) -> None:
    page = context.new_page()
    page.goto(sites.api + "/")
    _wait_until(page, lambda: "auth" in _cookies(context, sites.api), "the auth cookie")
    auth = _cookies(context, sites.api)["auth"]
    assert auth["expires"] == -1  # a session cookie
    status = _get(sites.api + "/api/status", cookies={"auth": auth["value"]})
    assert status.json() == {"ok": True, "user": "alice"}
    _wait_until(page, lambda: page.url == sites.api + "/app", "the page to move to /app")


@pytest.mark.timeout(90)
def test_browser_spa_site(sites: LoginSites, context: Any) -> None:
    page = context.new_page()
    page.goto(sites.spa + "/")

    def stored() -> dict[str, Any] | None:
        raw = page.evaluate("localStorage.getItem('auth')")
        return json.loads(raw) if raw else None

    _wait_until(page, lambda: bool((stored() or {}).get("accessToken")), "localStorage.auth")
    _wait_until(page, lambda: sites.authorized_hits("spa", "/api/me") > 0, "a bearer call to /api/me")
    auth = stored()
    assert auth is not None and auth["accessToken"] == sites.issued("spa")[-1]
    assert auth["expiresAt"] > time.time() * 1000
    assert page.evaluate("localStorage.getItem('theme')") == "dark"
    assert _cookies(context, sites.spa)["d"]["value"] == sites.issued("spa-cookie")[-1]
    assert page.url == sites.spa + "/"


@pytest.mark.timeout(90)
def test_browser_pages_wait_when_auto_user_is_off(sites: LoginSites, context: Any) -> None:
    """With auto_user off nobody logs in, so sig's "still waiting" path can be tested too."""
    sites.auto_user = False
    page = context.new_page()
    page.goto(sites.tracking + "/")
    _wait_until(page, lambda: page.evaluate("document.documentElement.dataset.user") == "idle",
                "the page to pass the moment its user would have acted")
    assert sites.issued("tracking") == [] and page.url == sites.tracking + "/"


@pytest.mark.timeout(90)
def test_browser_pages_wait_at_the_gate_while_users_are_held(sites: LoginSites, context: Any) -> None:
    """hold_users(): the page's user waits at /__gate (a state tests can wait on) until released."""
    sites.hold_users()
    try:
        page = context.new_page()
        page.goto(sites.api + "/")
        _wait_until(page, lambda: sites.hits("api", "/__gate") >= 2, "the page to ask the gate")
        assert sites.issued("api") == [] and "auth" not in _cookies(context, sites.api)
    finally:
        sites.release_users()
    _wait_until(page, lambda: "auth" in _cookies(context, sites.api), "the auth cookie after the release")
    assert _cookies(context, sites.api)["auth"]["value"] == sites.issued("api")[-1]
