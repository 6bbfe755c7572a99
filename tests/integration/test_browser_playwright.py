"""The Playwright adapter against headless Chromium and a loopback site (no browser download, no fixed port)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from harness.servers import HandlerServer
from harness.waiting import wait_while
from sigcli.browser.playwright_adapter import PlaywrightAdapter
from sigcli.browser.protocol import BrowserError, LaunchOptions
from sigcli.core.errors import ErrorCode, SigError


def _find_chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium") or shutil.which("google-chrome")


CHROMIUM = _find_chromium()
HAVE_PLAYWRIGHT = importlib.util.find_spec("playwright") is not None
needs_playwright = pytest.mark.skipif(
    not HAVE_PLAYWRIGHT, reason="needs the playwright package (pip install 'sigcli[playwright]')"
)
needs_browser = pytest.mark.skipif(
    not HAVE_PLAYWRIGHT or CHROMIUM is None,
    reason="needs the playwright package (pip install 'sigcli[playwright]') and a Chrome/Chromium binary"
    if not HAVE_PLAYWRIGHT
    else "no Chrome/Chromium binary found to drive headless",
)

PAGE = b"""<!doctype html><html><head><title>app</title></head><body><p>app</p><script>
localStorage.auth = JSON.stringify({token: "t1", expiresAt: Date.now() + 3600000});
fetch('/api', {headers: {Authorization: 'Bearer tok-123'}});
</script></body></html>"""


class _Site(BaseHTTPRequestHandler):
    seen_auth: list[str]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, body: bytes, ctype: str, cookies: tuple[str, ...] = ()) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for cookie in cookies:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/app":
            self._send(
                PAGE,
                "text/html",
                (
                    "sid=sess-abc; HttpOnly; Path=/",
                    "wikisess=w1; Path=/wiki",
                    "keep=k1; Max-Age=86400; Path=/",
                ),
            )
        elif self.path == "/slow":  # the DOM is there at once; "load" waits for an image that never comes
            self._send(b'<!doctype html><title>slow</title><p>slow</p><img src="/hang">', "text/html")
        elif self.path == "/hang":
            self.server.release.wait(60)  # type: ignore[attr-defined]
            self._send(b"", "image/png")
        elif self.path == "/api":
            self.server.seen_auth.append(self.headers.get("Authorization", ""))  # type: ignore[attr-defined]
            self._send(b'{"ok": true}', "application/json")
        else:  # /plain and anything else: no cookies, no script
            self._send(b"<!doctype html><p>plain</p>", "text/html")


@pytest.fixture
def site() -> Iterator[str]:
    with HandlerServer(_Site) as served:
        served.server.seen_auth = []  # type: ignore[attr-defined]
        served.server.release = threading.Event()  # type: ignore[attr-defined]
        try:
            yield served.url
        finally:
            served.server.release.set()  # type: ignore[attr-defined]


def _options(profile: Path, url: str, **kw: object) -> LaunchOptions:
    return LaunchOptions(executable=CHROMIUM or "", user_data_dir=str(profile), url=url, timeout_s=60, **kw)  # type: ignore[arg-type]


def _profile_pids(profile: Path) -> list[int]:
    needle = str(profile).encode()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                if needle in fh.read():
                    pids.append(int(name))
        except OSError:
            continue
    return pids


def _wait_no_profile_process(profile: Path, budget_s: float = 15.0) -> list[int]:
    return wait_while(lambda: _profile_pids(profile), budget_s)


def _driver_children() -> list[int]:
    """Playwright Node drivers started by this (xdist worker) process."""
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmd = fh.read()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == me and b"run-driver" in cmd:
            found.append(int(name))
    return found


def _wait_no_driver(budget_s: float = 10.0) -> list[int]:
    return wait_while(_driver_children, budget_s)


@needs_browser
@pytest.mark.timeout(90)
def test_launch_read_page_cookies_headers_close_and_relaunch(site: str, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    session = PlaywrightAdapter().launch(_options(profile, f"{site}/app"))
    try:
        assert session.adapter == "playwright"
        assert session.alive()
        assert session.navigation_error is None
        assert session.page.url() == f"{site}/app"
        assert session.page.ready_state() == "complete"
        assert session.page.evaluate("JSON.parse(localStorage.auth).token") == "t1"
        assert session.page.evaluate("({a: [1, 2]})") == {"a": [1, 2]}
        with pytest.raises(BrowserError):
            session.page.evaluate("(() => { throw new Error('boom') })()")
        with pytest.raises(BrowserError) as info:
            session.page.evaluate("JSON.parse('not-json-secret-123')")
        assert "secret-123" not in str(info.value)

        cookies = {c["name"]: c for c in session.cookies()}
        now = time.time()
        assert cookies["sid"]["httpOnly"] is True
        assert cookies["sid"]["value"] == "sess-abc"
        assert cookies["sid"]["expires"] == -1
        assert cookies["sid"]["domain"] == "127.0.0.1"
        assert cookies["wikisess"]["path"] == "/wiki"
        assert cookies["keep"]["expires"] > now + 3600
        assert cookies["keep"]["httpOnly"] is False
        for cookie in cookies.values():
            assert {"name", "value", "domain", "path", "expires", "httpOnly", "secure"} <= cookie.keys()

        deadline = time.monotonic() + 15
        while not any(url == f"{site}/api" for url, _ in session.authorization_headers()):
            assert time.monotonic() < deadline, "the /api request was never seen"
            session.wait(0.1)
        assert (f"{site}/api", "Bearer tok-123") in session.authorization_headers()

        session.wait(0.05)
        assert _profile_pids(profile), "the browser should run on the profile while the session is open"
    finally:
        session.close()
    assert not session.alive()
    assert session.page.url() == ""
    assert session.page.ready_state() == ""
    with pytest.raises(BrowserError):
        session.cookies()
    session.close()  # idempotent
    session.wait(0.01)  # a closed session still sleeps, without Playwright
    assert _wait_no_profile_process(profile) == []
    assert _wait_no_driver() == []

    # The persistent cookie was flushed to the profile; a page that sets no cookie still sees it.
    with PlaywrightAdapter().launch(_options(profile, f"{site}/plain")) as again:
        assert again.page.url() == f"{site}/plain"
        names = {c["name"]: c for c in again.cookies()}
        assert names["keep"]["value"] == "k1"
        assert names["keep"]["expires"] > time.time()
    assert not again.alive()
    assert _wait_no_profile_process(profile) == []
    assert _wait_no_driver() == []


@needs_playwright
@pytest.mark.timeout(90)
def test_missing_executable_is_a_launch_error_and_stops_the_driver(tmp_path: Path) -> None:
    options = LaunchOptions(
        executable=str(tmp_path / "no-such-chrome"), user_data_dir=str(tmp_path / "p"), url="about:blank"
    )
    with pytest.raises(SigError) as info:
        PlaywrightAdapter().launch(options)
    assert info.value.code == ErrorCode.BROWSER_LAUNCH_ERROR
    assert "browser.execPath" in info.value.hint
    assert _wait_no_driver() == []


@needs_browser
@pytest.mark.timeout(90)
def test_profile_in_use_is_a_launch_error_and_the_first_session_survives(site: str, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    adapter = PlaywrightAdapter()
    with adapter.launch(_options(profile, f"{site}/plain")) as first:
        with pytest.raises(SigError) as info:
            adapter.launch(_options(profile, f"{site}/plain", shared=True))
        assert info.value.code == ErrorCode.BROWSER_LAUNCH_ERROR
        assert "browserDataDir" in info.value.hint
        # Both sessions of this thread share one Playwright driver: the failure did not stop it.
        assert first.alive()
        assert first.page.evaluate("1 + 1") == 2
        assert len(_driver_children()) == 1
    assert _wait_no_profile_process(profile) == []
    assert _wait_no_driver() == []


@needs_browser
@pytest.mark.timeout(90)
def test_two_sessions_in_one_thread_and_a_crashed_browser(site: str, tmp_path: Path) -> None:
    adapter = PlaywrightAdapter()
    one = adapter.launch(_options(tmp_path / "one", f"{site}/plain"))
    two = adapter.launch(_options(tmp_path / "two", f"{site}/app", wait_until="domcontentloaded"))
    try:
        assert one.page.url() == f"{site}/plain"
        assert two.page.url() == f"{site}/app"
        one.close()
        assert two.alive()  # the shared driver stays up for the other session
        assert two.page.evaluate("document.title") == "app"
        # The browser goes away under the session (crash, or the user quit it).
        for pid in _profile_pids(tmp_path / "two"):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        deadline = time.monotonic() + 15
        while two.alive():
            assert time.monotonic() < deadline, "alive() never noticed the browser had gone"
            two.wait(0.1)
        with pytest.raises(BrowserError):
            two.page.evaluate("1")
    finally:
        one.close()
        two.close()
    assert _wait_no_driver() == []


@needs_playwright
@pytest.mark.timeout(90)
def test_launch_inside_a_running_asyncio_loop_is_a_launch_error(tmp_path: Path) -> None:
    async def main() -> None:
        PlaywrightAdapter().launch(_options(tmp_path / "p", "about:blank"))

    with pytest.raises(SigError) as info:
        asyncio.run(main())
    assert info.value.code == ErrorCode.BROWSER_LAUNCH_ERROR
    assert "asyncio" in info.value.message


@needs_browser
@pytest.mark.timeout(90)
def test_unreachable_url_is_not_a_launch_error(tmp_path: Path) -> None:
    # A closed port: the browser shows its error page; the caller polls (and times out) as for any page.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with PlaywrightAdapter().launch(_options(tmp_path / "p", f"http://127.0.0.1:{port}/")) as session:
        assert session.navigation_error is not None and session.navigation_error.startswith("net::ERR_")
        assert session.alive()
    assert session.authorization_headers() == []


@needs_browser
@pytest.mark.timeout(90)
def test_navigation_timeout_is_not_a_launch_error(site: str, tmp_path: Path) -> None:
    options = LaunchOptions(
        executable=CHROMIUM or "", user_data_dir=str(tmp_path / "p"), url=f"{site}/slow", timeout_s=20
    )
    with PlaywrightAdapter().launch(options) as session:
        assert session.navigation_error == "timeout"
        assert session.alive()
        assert session.page.url() == f"{site}/slow"
        assert session.page.evaluate("document.title") == "slow"
        assert session.page.ready_state() in ("interactive", "loading")


@pytest.mark.timeout(30)
def test_without_playwright_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)  # makes the import fail
    options = LaunchOptions(
        executable="/usr/bin/chromium", user_data_dir=str(tmp_path / "p"), url="about:blank"
    )
    with pytest.raises(SigError) as info:
        PlaywrightAdapter().launch(options)
    assert info.value.code == ErrorCode.BROWSER_LAUNCH_ERROR
    assert "sigcli[playwright]" in info.value.hint
    assert "browser.adapter: cdp" in info.value.hint
    assert not (tmp_path / "p").exists()
