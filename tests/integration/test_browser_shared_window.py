"""The shared visible window: reachable only through its relay's Unix socket, by sig processes of its user.

Runs the real relay (``python -m sigcli.browser.relay``) and a real headless Chromium. The unprivileged
user is ``nobody`` (via setpriv), so these checks need root; the profile lives in a folder ``nobody`` may
enter, so that only sig's own modes and its peer check keep it out.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.browser_login import CHROMIUM
from harness.servers import PageServer
from harness.waiting import wait_while
from sigcli.browser import launch as launch_mod
from sigcli.browser.cdp import CdpAdapter, SocketTransport
from sigcli.browser.protocol import BrowserError, LaunchOptions
from sigcli.browser.shared import socket_path

BROWSER = CHROMIUM
SYSTEM_PYTHON = "/usr/bin/python3"  # one `nobody` may run (a venv's interpreter may sit under /root)
pytestmark = [
    pytest.mark.skipif(BROWSER is None, reason="no Chromium/Chrome installed (apt-get install chromium)"),
    pytest.mark.timeout(120),
]

NOBODY_CONNECT = """
import json, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.settimeout(10)
try:
    sock.connect(sys.argv[1])
except OSError as exc:
    print(json.dumps({"connected": False, "errno": exc.errno}))
    sys.exit(0)
try:
    data = sock.recv(4096)
except OSError:
    data = b""
print(json.dumps({"connected": True, "received": data.decode("utf-8", "replace")}))
"""


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with PageServer(b"<!doctype html><html><body>page</body></html>",
                    (("Set-Cookie", "sid=cookie-only-sig-may-read; Path=/; HttpOnly"),)) as page:
        yield page.url


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder every user may enter (pytest's own tmp folders are 0700 root, which would keep `nobody`
    out whatever sig does)."""
    path = Path(tempfile.mkdtemp(prefix="sig-shared-window-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _options(profile: Path, url: str) -> LaunchOptions:
    assert BROWSER is not None
    return LaunchOptions(executable=BROWSER, user_data_dir=str(profile), url=url, headless=True, shared=True,
                         timeout_s=60.0)


def _as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *args],
                          capture_output=True, text=True, timeout=60, cwd="/")


def _nobody_connects(path: str) -> dict[str, object]:
    result = _as_nobody(SYSTEM_PYTHON, "-c", NOBODY_CONNECT, path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _wait_gone(pid: int, timeout_s: float = 15.0) -> bool:
    return not wait_while(lambda: launch_mod.pid_alive(pid), timeout_s, interval_s=0.05)


needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None
                                or not os.access(SYSTEM_PYTHON, os.X_OK),
                                reason="needs root, setpriv and /usr/bin/python3 to act as another user")


@needs_root
def test_another_user_cannot_reach_the_shared_window(site: str, open_dir: Path) -> None:
    profile = open_dir / "profile"
    profile.mkdir(mode=0o755)  # a browserDataDir the user made readable: sig keeps its mode
    profile.chmod(0o755)
    session = CdpAdapter().launch(_options(profile, site + "/"))
    try:
        path = socket_path(str(profile))
        assert (os.stat(path).st_mode & 0o777) == 0o600
        assert (os.stat(os.path.dirname(path)).st_mode & 0o777) == 0o700
        # The setup is fair: nobody can enter the profile folder itself.
        listing = _as_nobody(SYSTEM_PYTHON, "-c", "import os, sys; print(sorted(os.listdir(sys.argv[1])))",
                             str(profile))
        assert listing.returncode == 0 and ".sig-cdp" in listing.stdout, listing.stderr
        # ...but not the relay's socket.
        assert _nobody_connects(path) == {"connected": False, "errno": 13}

        # Even with the folder and socket opened up, the relay checks who connects and says nothing.
        os.chmod(os.path.dirname(path), 0o755)
        os.chmod(path, 0o777)
        answer = _nobody_connects(path)
        assert answer == {"connected": True, "received": ""}
        # while sig processes of the user still get in
        assert any(c["name"] == "sid" for c in session.cookies())
        with socket.socket(socket.AF_UNIX) as mine:
            mine.settimeout(10)
            mine.connect(path)
            assert b"Relay.hello" in mine.recv(4096)
        assert session.alive()
    finally:
        session.close()
    assert not os.path.exists(socket_path(str(profile)))


def test_a_login_cannot_close_the_window_under_the_others(site: str, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    first = CdpAdapter().launch(_options(profile, site + "/a"))
    second = CdpAdapter().launch(_options(profile, site + "/b"))
    try:
        assert isinstance(second._conn.transport, SocketTransport)
        with pytest.raises(BrowserError) as info:
            second._conn.call("Browser.close", timeout=10)
        assert "not allowed" in str(info.value)
        assert first.alive() and first.page.evaluate("1 + 1") == 2
    finally:
        second.close()
        first.close()


def test_a_killed_relay_takes_its_browser_along_and_the_next_login_starts_afresh(
        site: str, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    session = CdpAdapter().launch(_options(profile, site + "/a"))
    try:
        state = json.loads((profile / launch_mod.STATE_FILE).read_text())
        os.kill(state["relayPid"], signal.SIGKILL)
        # Its pipe closed with it: Chromium exits by itself, nothing is left to connect to.
        assert _wait_gone(state["pid"]), "the browser outlived its relay"
        deadline = time.monotonic() + 10
        while session.alive() and time.monotonic() < deadline:
            session.wait(0.05)
        assert not session.alive()
    finally:
        session.close()
    assert os.path.lexists(socket_path(str(profile)))  # left behind by the killed relay
    again = CdpAdapter().launch(_options(profile, site + "/b"))
    try:
        assert again.pid != state["pid"] and again.page.url() == site + "/b"
    finally:
        again.close()


def test_a_profile_path_longer_than_a_socket_address(site: str, tmp_path: Path) -> None:
    profile = tmp_path / ("deep-" * 12) / ("folder-" * 10) / "profile"
    assert len(str(socket_path(str(profile)))) > 108  # sun_path's limit
    first = CdpAdapter().launch(_options(profile, site + "/a"))
    try:
        second = CdpAdapter().launch(_options(profile, site + "/b"))
        try:
            assert second.pid == first.pid
        finally:
            second.close()
    finally:
        first.close()
