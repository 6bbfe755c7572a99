"""`sig login --cdp-url` / browser.cdpUrl: drive a Chrome the user already runs with
--remote-debugging-port instead of starting one. sig opens its own tab there, logs in, closes only that
tab and leaves the browser running; only loopback endpoints are accepted unless the user opts in."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.browser_login import CHROMIUM, browser_pids, configure, creds, wait_for
from harness.login_sites import LoginSites
from harness.sigproc import Sig

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium/Chrome installed (apt-get install chromium)"),
    pytest.mark.timeout(180),
]

SPA = """\
  app-spa:
    domains: ["127.0.0.1"]
    entryUrl: {url}/
    validateUrl: {url}/api/me
    strategy: browser
    extract:
      - {{from: localStorage, as: token, match: auth, jsonPath: accessToken, expiresJsonPath: expiresAt}}
    apply:
      - {{in: header, name: Authorization, value: "Bearer ${{token}}"}}
"""


class UserBrowser:
    """The user's own browser: started with a DevTools port (headless here, a temp profile)."""

    def __init__(self, profile: Path) -> None:
        assert CHROMIUM is not None
        args = [CHROMIUM, "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={profile}",
                "--no-first-run", *(["--no-sandbox"] if os.geteuid() == 0 else []), "about:blank"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        port_file = profile / "DevToolsActivePort"
        self.port = int(wait_for(lambda: port_file.exists() and port_file.read_text().split()[0],
                                 "the browser to write DevToolsActivePort"))
        self.url = f"http://127.0.0.1:{self.port}"

    def tabs(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.url + "/json/list", timeout=10) as resp:
            return [t for t in json.loads(resp.read()) if t.get("type") == "page"]

    def close(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def sites() -> Iterator[LoginSites]:
    with LoginSites() as running:
        yield running


@pytest.fixture
def user_browser(tmp_path: Path) -> Iterator[UserBrowser]:
    browser = UserBrowser(tmp_path / "user-profile")
    try:
        yield browser
    finally:
        browser.close()


def test_cdp_url_logs_in_in_the_open_browser_and_leaves_it_running(sig: Sig, sites: LoginSites,
                                                                   user_browser: UserBrowser) -> None:
    configure(sig, SPA.format(url=sites.spa))
    before = [t["id"] for t in user_browser.tabs()]
    # No display: attaching needs none, the window (if any) is the user's.
    result = sig("login", "app-spa", "--cdp-url", user_browser.url, "--verbose",
                 env={"DISPLAY": None, "WAYLAND_DISPLAY": None}, timeout=120)
    assert result.code == 0, result.err
    assert "attached phase" in result.err
    token = sites.issued("spa")[-1]
    assert creds(sig, "app-spa")["headers"]["Authorization"] == f"Bearer {token}"
    # sig started no browser of its own, and left the user's running with only the user's tabs.
    assert not browser_pids(str(sig.home / "browser-data"))
    assert user_browser.proc.poll() is None
    wait_for(lambda: [t["id"] for t in user_browser.tabs()] == before, "sig's tab to be closed", timeout_s=20)
    assert not any(sites.spa in t["url"] for t in user_browser.tabs())

    # The same from the config (browser.cdpUrl), in headless mode (no window wait): the session the
    # browser now holds is captured again.
    cfg = sig.home / "config.yaml"
    cfg.write_text(cfg.read_text().replace("browser:\n", f"browser:\n  cdpUrl: {user_browser.url}\n", 1))
    again = sig("login", "app-spa", "--force", "--mode", "headless", timeout=120)
    assert again.code == 0, again.err
    assert user_browser.proc.poll() is None
    assert not browser_pids(str(sig.home / "browser-data"))


def test_a_cdp_url_that_is_not_loopback_is_refused_before_any_connection(sig: Sig, sites: LoginSites) -> None:
    configure(sig, SPA.format(url=sites.spa))
    result = sig("login", "app-spa", "--cdp-url", "http://192.0.2.7:9222", "--format", "json", timeout=30)
    assert result.code == 1
    error = json.loads(result.err.strip().splitlines()[-1])["error"]
    assert error["code"] == "CONFIG_ERROR"
    assert "not this machine" in error["message"] and "cdpAllowRemote" in error["hint"]


def test_a_cdp_url_where_nothing_listens_says_how_to_start_the_browser(sig: Sig, sites: LoginSites) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens here once it is closed
    configure(sig, SPA.format(url=sites.spa))
    result = sig("login", "app-spa", "--cdp-url", f"http://127.0.0.1:{port}", "--format", "json", timeout=60)
    assert result.code == 1
    error = json.loads(result.err.strip().splitlines()[-1])["error"]
    assert error["code"] == "BROWSER_LAUNCH_ERROR"
    assert "--remote-debugging-port" in error["hint"]


def test_a_network_proxy_cannot_be_applied_to_an_attached_browser(sig: Sig, sites: LoginSites,
                                                                  user_browser: UserBrowser) -> None:
    configure(sig, SPA.format(url=sites.spa) + "    networkProxy: http://127.0.0.1:3128\n")
    result = sig("login", "app-spa", "--cdp-url", user_browser.url, timeout=60)
    assert result.code == 1
    assert "networkProxy" in result.err and "--proxy-server" in result.err
    assert user_browser.tabs()  # untouched
