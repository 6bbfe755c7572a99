"""The native CDP adapter against a real headless Chromium and a loopback page server."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.waiting import wait_while
from sigcli.browser import launch as launch_mod
from sigcli.browser.cdp import CdpAdapter, CdpConnection, CdpSession, PipeTransport, SocketTransport, answers
from sigcli.browser.protocol import BrowserError, LaunchOptions
from sigcli.core.errors import ErrorCode, SigError


def _find_browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


BROWSER = _find_browser()

pytestmark = [
    pytest.mark.skipif(BROWSER is None, reason="no chromium/chrome binary on PATH (apt-get install chromium)"),
    pytest.mark.timeout(120),  # a few browser starts each; one cold start alone may take many seconds
]

LOGIN_PAGE = """<!doctype html><html><head><title>login</title></head><body>logged in
<script>
localStorage.auth = JSON.stringify({token: "ls-tok-1", user: 42});
fetch("/api", {headers: {Authorization: "Bearer tok-123"}});
</script></body></html>"""

IDLE_PAGE = """<!doctype html><html><body>idle
<script>
window.addEventListener("load", () => setTimeout(() => fetch("/late-api"), 150));
</script></body></html>"""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: dict[str, float] = {}  # path -> monotonic time of the first hit

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, body: str, ctype: str = "text/html", cookies: tuple[str, ...] = ()) -> None:
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for cookie in cookies:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.server.hits.setdefault(path, time.monotonic())
        if path == "/login":
            self._send(LOGIN_PAGE, cookies=(
                "sid=sess-abc; Path=/; HttpOnly",
                "wk=wiki-1; Path=/wiki",
                "keep=persist-1; Path=/; Max-Age=3600",
            ))
        elif path == "/idle":
            self._send(IDLE_PAGE)
        elif path in ("/api", "/late-api"):
            self._send(json.dumps({"ok": True}), "application/json")
        else:
            self._send(f"<!doctype html><html><body>page {path}</body></html>")


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _options(profile: Path, url: str, **kw: object) -> LaunchOptions:
    assert BROWSER is not None
    return LaunchOptions(executable=BROWSER, user_data_dir=str(profile), url=url, headless=True,
                         timeout_s=60.0, **kw)  # type: ignore[arg-type]


def _profile_processes(profile: Path) -> list[int]:
    """Live (non-zombie) processes whose command line names this profile."""
    needle = f"--user-data-dir={profile}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        if needle in cmdline.replace(b"\0", b" ") and stat[stat.rfind(b")") + 2:][:1] != b"Z":
            found.append(int(entry))
    return found


def _wait_gone(profile: Path, timeout_s: float = 10.0) -> list[int]:
    return wait_while(lambda: _profile_processes(profile), timeout_s)


def _wait_auth(session: CdpSession, timeout_s: float = 10.0) -> list[tuple[str, str]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        headers = session.authorization_headers()
        if headers:
            return headers
        session.wait(0.1)
    return session.authorization_headers()


def test_launch_reads_page_cookies_and_authorization(server: _Server, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    url = server.base + "/login"
    session = CdpAdapter().launch(_options(profile, url))
    try:
        assert session.adapter == "cdp"
        assert (profile.stat().st_mode & 0o777) == 0o700
        assert session.page.url() == url
        assert session.page.ready_state() == "complete"
        assert session.page.evaluate("1 + 2") == 3
        assert json.loads(session.page.evaluate("localStorage.auth")) == {"token": "ls-tok-1", "user": 42}
        assert session.page.evaluate("Promise.resolve('later')") == "later"
        with pytest.raises(BrowserError) as info:
            session.page.evaluate("JSON.parse('{secret-value')")
        assert "secret-value" not in str(info.value)  # the page's text never reaches our errors

        cookies = {c["name"]: c for c in session.cookies()}
        assert set(cookies) >= {"sid", "wk", "keep"}
        assert cookies["sid"]["httpOnly"] is True
        assert cookies["sid"]["value"] == "sess-abc"
        assert cookies["sid"]["expires"] == -1
        assert cookies["wk"]["path"] == "/wiki"
        assert cookies["keep"]["expires"] > time.time() + 3000
        assert cookies["keep"]["domain"] == "127.0.0.1"
        assert set(cookies["keep"]) - {"sameSite"} == {"name", "value", "domain", "path", "expires", "httpOnly",
                                                       "secure", "partitioned"}
        assert cookies["keep"]["partitioned"] is False

        headers = _wait_auth(session)
        assert (server.base + "/api", "Bearer tok-123") in headers
        assert session.alive()
        # All of the above went over the DevTools pipe: a browser of our own opens no debugging port.
        assert isinstance(session._conn.transport, PipeTransport)
        cmdline = Path(f"/proc/{session.pid}/cmdline").read_bytes().split(b"\0")
        assert b"--remote-debugging-pipe" in cmdline
        assert not [a for a in cmdline if a.startswith(b"--remote-debugging-port")]
        assert not [a for a in cmdline if a.startswith(b"--remote-debugging-address")]
        proc = session._proc
        assert proc is not None
    finally:
        session.close()
    assert proc.poll() is not None
    assert not launch_mod.pid_alive(proc.pid)
    assert _wait_gone(profile) == []
    session.close()  # idempotent
    assert not session.alive()


def test_profile_persists_between_launches(server: _Server, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    with CdpAdapter().launch(_options(profile, server.base + "/login")) as first:
        assert "keep" in {c["name"] for c in first.cookies()}
    # /plain sets no cookie: what we see was written to disk by the first browser's graceful close.
    with CdpAdapter().launch(_options(profile, server.base + "/plain")) as second:
        cookies = {c["name"]: c for c in second.cookies()}
        assert cookies["keep"]["value"] == "persist-1"
        assert second.page.url() == server.base + "/plain"


def test_missing_or_unrunnable_executable(tmp_path: Path) -> None:
    not_exec = tmp_path / "chrome"
    not_exec.write_text("#!/bin/sh\n")
    for exe in (str(tmp_path / "nope" / "chromium"), str(not_exec), ""):
        options = LaunchOptions(executable=exe, user_data_dir=str(tmp_path / "p"), url="about:blank")
        with pytest.raises(SigError) as info:
            CdpAdapter().launch(options)
        assert info.value.code == ErrorCode.BROWSER_LAUNCH_ERROR
        assert "browser.execPath" in info.value.hint


def test_profile_in_use_by_another_browser(server: _Server, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    with CdpAdapter().launch(_options(profile, server.base + "/a")) as holder:
        with pytest.raises(SigError) as info:
            CdpAdapter().launch(_options(profile, server.base + "/b"))
        assert info.value.code == ErrorCode.BROWSER_LAUNCH_ERROR
        assert str(profile) in info.value.message and "in use" in info.value.message
        assert f"pid {holder.pid}" in info.value.message
        assert "browserDataDir" in info.value.hint

        # Without the early check, Chromium itself exits; the readiness wait must still say why.
        assert BROWSER is not None
        proc, read_fd, write_fd = launch_mod.spawn_piped(
            BROWSER, launch_mod.chrome_args(_options(profile, "about:blank")))
        conn = CdpConnection.over_pipe(read_fd, write_fd, alive=lambda: proc.poll() is None)
        try:
            with pytest.raises(SigError) as info:
                launch_mod.wait_ready(proc, lambda budget: answers(conn, proc, budget), 30.0, "answer")
            assert info.value.code == ErrorCode.BROWSER_LAUNCH_ERROR
            assert "in use" in info.value.message
        finally:
            launch_mod.terminate(proc, grace_s=1.0)
            conn.close()
        assert holder.alive() and holder.page.url() == server.base + "/a"


# -- the DevTools pipe (non-shared launches) -----------------------------------------------------------


def _process_tree(root: int) -> set[int]:
    """`root` and every live descendant of it, or member of its process group, from /proc."""
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
        if fields[0] == b"Z":
            continue
        parents[int(entry)] = int(fields[1])
        groups[int(entry)] = int(fields[2])
    tree = {root} | {pid for pid, pgid in groups.items() if pgid == root}
    while True:
        more = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        if not more:
            return tree
        tree |= more


def _listening_sockets(pids: set[int]) -> set[str]:
    """"local_address (inode)" of every TCP/TCP6 socket in LISTEN state that one of `pids` holds,
    read from each process's own /proc/<pid>/net (a sandboxed helper may sit in another netns)."""
    inodes: dict[str, int] = {}
    for pid in pids:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for name in names:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = pid
    assert inodes, "no socket found at all: the /proc walk itself is broken"
    listening = set()
    for pid in pids:
        for table in ("tcp", "tcp6"):
            try:
                lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                cols = line.split()  # sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
                if cols[3] == "0A" and cols[9] in inodes:
                    listening.add(f"{table} {cols[1]} ({cols[9]})")
    return listening


def test_no_browser_sig_starts_opens_a_debugging_port(server: _Server, tmp_path: Path) -> None:
    with CdpAdapter().launch(_options(tmp_path / "own", server.base + "/login")) as session:
        assert session.page.evaluate("1 + 1") == 2
        tree = _process_tree(session.pid)
        assert len(tree) > 1  # the browser and its helpers
        assert _listening_sockets(tree) == set()
    # The shared window too: other logins reach it through its relay's Unix socket, not a port.
    with CdpAdapter().launch(_options(tmp_path / "shared", server.base + "/a", shared=True)) as shared:
        assert isinstance(shared._conn.transport, SocketTransport)
        state = json.loads((tmp_path / "shared" / launch_mod.STATE_FILE).read_text())
        tree = _process_tree(shared.pid) | _process_tree(state["relayPid"])
        assert len(tree) > 2
        assert _listening_sockets(tree) == set()
        cmdline = Path(f"/proc/{shared.pid}/cmdline").read_bytes().split(b"\0")
        assert b"--remote-debugging-pipe" in cmdline
        assert not [a for a in cmdline if a.startswith(b"--remote-debugging-port")]
    # The check itself sees a listener where there is one: a browser started with a debugging port.
    assert BROWSER is not None
    other = tmp_path / "with-port"
    args = [BROWSER, "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={other}", "--no-first-run",
            *(["--no-sandbox"] if os.geteuid() == 0 else []), "about:blank"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        port_file = other / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        listening = _listening_sockets(_process_tree(proc.pid))
        assert any(f":{port:04X} " in entry for entry in listening), listening
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _open_fds() -> dict[str, str]:
    """Our open fds and what each points at (without the fd that lists them)."""
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[name] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass  # the listing's own fd, closed by now
    return fds


def test_pipe_session_close_leaves_no_process_and_no_fd(tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    url = "data:text/html,<script>document.title='x'</script>"  # no server: no sockets of its own
    # Warm up once, so that lazily created process-wide fds (imports, caches) are not counted.
    CdpAdapter().launch(_options(tmp_path / "warm", url)).close()
    before = _open_fds()
    session = CdpAdapter().launch(_options(profile, url))
    during = _open_fds()
    assert len(during) >= len(before) + 2  # at least our two pipe ends
    # Big messages both ways: partial writes into the 64 KiB pipe and replies read in many chunks.
    big = "x" * 3_000_000
    assert session.page.evaluate(f"'{big}'.length") == len(big)
    assert session.page.evaluate("'y'.repeat(5000000)") == "y" * 5_000_000
    assert session.page.evaluate("'a\\u0000b'") == "a\0b"  # a NUL inside a value is escaped in JSON
    proc = session._proc
    assert proc is not None
    session.close()
    assert proc.poll() is not None
    assert _wait_gone(profile) == []
    assert _open_fds() == before
    session.close()  # idempotent, and no double close of a fd number someone else may own now
    assert _open_fds() == before
    assert not session.alive()


@pytest.mark.parametrize("whole_group", [True, False], ids=["group", "browser-only"])
def test_killed_pipe_browser_fails_fast(tmp_path: Path, whole_group: bool) -> None:
    profile = tmp_path / "profile"
    session = CdpAdapter().launch(_options(profile, "about:blank"))
    try:
        assert session.alive()
        if whole_group:
            os.killpg(session.pid, signal.SIGKILL)
        else:
            os.kill(session.pid, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(BrowserError):
            session._conn.call("Browser.getVersion", timeout=30.0)
        assert time.monotonic() - started < 10.0  # noticed, not waited out (30 s)
        assert not session.alive()
        with pytest.raises(BrowserError):
            session.cookies()
        with pytest.raises(BrowserError):
            session.page.evaluate("1")
    finally:
        session.close()
    assert _wait_gone(profile) == []


def test_pipe_browser_that_exits_at_start_is_reported(tmp_path: Path) -> None:
    # A "browser" that exits at once, having written to stderr: the launch error carries the tail.
    fake = tmp_path / "chrome"
    fake.write_text("#!/bin/sh\necho 'cannot open display' >&2\nexit 3\n")
    fake.chmod(0o755)
    before = _open_fds()
    with pytest.raises(SigError) as info:
        CdpAdapter().launch(LaunchOptions(executable=str(fake), user_data_dir=str(tmp_path / "p"),
                                          url="about:blank", timeout_s=10.0))
    assert info.value.code == ErrorCode.BROWSER_LAUNCH_ERROR
    assert "status 3" in info.value.message and "cannot open display" in info.value.message
    assert _open_fds() == before


def test_pipe_child_gets_only_its_own_fds(tmp_path: Path) -> None:
    # An inheritable fd of ours must not reach the browser; fds 3 and 4 are its pipe.
    stray_read, stray_write = os.pipe()
    os.set_inheritable(stray_write, True)
    probe = tmp_path / "chrome"
    probe.write_text("#!/bin/sh\nexec sleep 30\n")  # what it holds after exec is what it inherited
    probe.chmod(0o755)
    try:
        proc, read_fd, write_fd = launch_mod.spawn_piped(str(probe), ["--x"])
        try:
            # Wait until `sleep` is sleeping: its name changes during exec *before* the kernel closes the
            # shell's close-on-exec descriptors, so the name alone is too early under load.
            deadline = time.monotonic() + 30
            while not _asleep(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            fds = {name: os.readlink(f"/proc/{proc.pid}/fd/{name}")
                   for name in os.listdir(f"/proc/{proc.pid}/fd")}
            assert set(fds) == {"0", "1", "2", "3", "4"}, fds
            assert fds["0"] == "/dev/null" and fds["1"] == "/dev/null"
            capture = launch_mod._STDERR[proc.pid]  # stderr goes to the launch-error tail capture
            assert os.stat(f"/proc/{proc.pid}/fd/2").st_ino == os.fstat(capture.fileno()).st_ino
            assert fds["3"] == f"pipe:[{os.fstat(write_fd).st_ino}]"  # it reads what we write
            assert fds["4"] == f"pipe:[{os.fstat(read_fd).st_ino}]"  # and writes what we read
            assert os.getpgid(proc.pid) == proc.pid and os.getsid(proc.pid) == proc.pid
        finally:
            launch_mod.terminate(proc, grace_s=1.0)
            os.close(read_fd)
            os.close(write_fd)
        assert proc.poll() is not None
    finally:
        os.close(stray_read)
        os.close(stray_write)


def _asleep(pid: int) -> bool:
    """`sleep` has finished exec and sits in its nanosleep (the kernel's wait channel, or its state)."""
    proc = Path(f"/proc/{pid}")
    if (proc / "comm").read_text().strip() != "sleep":
        return False
    wchan = (proc / "wchan").read_text().strip()
    if wchan not in ("", "0"):
        return "nanosleep" in wchan
    return (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "S"


def _page_targets(session: CdpSession) -> set[str]:
    infos = session._conn.call("Target.getTargets")["targetInfos"]
    return {t["targetId"] for t in infos if t["type"] == "page"}


def _socket(profile: Path) -> Path:
    return profile / ".sig-cdp" / "cdp.sock"


def test_shared_browser_one_process_own_tabs(server: _Server, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    state_file = profile / launch_mod.STATE_FILE
    first = CdpAdapter().launch(_options(profile, server.base + "/a", shared=True))
    second: CdpSession | None = None
    try:
        state = json.loads(state_file.read_text())
        assert state["pid"] == first.pid and launch_mod.pid_alive(state["relayPid"])
        assert (_socket(profile).stat().st_mode & 0o777) == 0o600
        assert (_socket(profile).parent.stat().st_mode & 0o777) == 0o700
        second = CdpAdapter().launch(_options(profile, server.base + "/b", shared=True))
        assert second.pid == first.pid
        assert first.page.url() == server.base + "/a"
        assert second.page.url() == server.base + "/b"
        assert first.page.target_id != second.page.target_id

        first.close()
        deadline = time.monotonic() + 10  # Target.closeTarget answers before the tab is gone
        while first.page.target_id in _page_targets(second) and time.monotonic() < deadline:
            second.wait(0.05)
        assert first.page.target_id not in _page_targets(second)  # its tab went with it
        assert launch_mod.pid_alive(second.pid)
        assert second.alive()
        assert second.page.url() == server.base + "/b"
        pid, relay = second.pid, state["relayPid"]

        second.close()  # the last user: returns once the relay has closed the browser
        assert not launch_mod.pid_alive(pid)
        assert not state_file.exists()
        assert not _socket(profile).exists()
        assert _wait_gone(profile) == []
        deadline = time.monotonic() + 10
        while launch_mod.pid_alive(relay) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not launch_mod.pid_alive(relay)
    finally:
        first.close()
        if second is not None:
            second.close()


CHILD = """
import json, sys
from sigcli.browser.cdp import CdpAdapter
from sigcli.browser.protocol import LaunchOptions
exe, profile, url = sys.argv[1:4]
session = CdpAdapter().launch(LaunchOptions(executable=exe, user_data_dir=profile, url=url, shared=True,
                                            headless=True, timeout_s=60.0))
print(json.dumps({"pid": session.pid, "url": session.page.url()}), flush=True)
if sys.stdin.readline().strip() == "kill":
    import os, signal
    os.kill(os.getpid(), signal.SIGKILL)  # a login that dies without closing anything
session.close()
"""


def _read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    return proc.stdout.readline() if ready else ""


@pytest.mark.parametrize("how", ["close", "kill"])
def test_shared_browser_outlives_the_process_that_started_it(server: _Server, tmp_path: Path, how: str) -> None:
    profile = tmp_path / "profile"
    state_file = profile / launch_mod.STATE_FILE
    assert BROWSER is not None
    child = subprocess.Popen([sys.executable, "-c", CHILD, BROWSER, str(profile), server.base + "/a"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    session: CdpSession | None = None
    try:
        started = json.loads(_read_line(child, 90) or "{}")
        assert started.get("url") == server.base + "/a"
        session = CdpAdapter().launch(_options(profile, server.base + "/b", shared=True))
        assert session.pid == started["pid"]
        child_tabs = _page_targets(session)
        assert len(child_tabs) == 2

        assert child.stdin is not None
        child.stdin.write(how + "\n")
        child.stdin.flush()
        child.wait(timeout=30)
        # The sig process that opened the window is gone (even killed): the window stays for us, its
        # remaining user, and the relay closed the tab the gone login had.
        assert launch_mod.pid_alive(session.pid)
        assert session.alive() and session.page.url() == server.base + "/b"
        deadline = time.monotonic() + 10
        while len(_page_targets(session)) > 1 and time.monotonic() < deadline:
            session.wait(0.05)
        assert _page_targets(session) == {session.page.target_id}

        pid = session.pid
        session.close()
        assert not launch_mod.pid_alive(pid)
        assert not state_file.exists()
        assert _wait_gone(profile) == []
    finally:
        if session is not None:
            session.close()
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)


def test_killed_browser_is_not_alive(server: _Server, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    session = CdpAdapter().launch(_options(profile, server.base + "/a"))
    try:
        assert session.alive()
        os.killpg(session.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while session.alive() and time.monotonic() < deadline:
            session.wait(0.1)
        assert not session.alive()
        with pytest.raises(BrowserError):
            session.page.evaluate("1")
        assert session.page.url() == ""
        session.wait(0.05)  # does not raise once the browser is gone
    finally:
        session.close()
    session.close()


def test_wait_until_networkidle_and_failed_navigation(server: _Server, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    with CdpAdapter().launch(_options(profile, server.base + "/idle", wait_until="networkidle")) as session:
        # The request the page makes 150 ms after load happened before launch() returned.
        assert "/late-api" in server.hits
        assert session.navigation_error is None

    # Nothing listens on a just-freed port: not an error at this level, the cascade decides.
    dead_url = f"http://127.0.0.1:{_free_port()}/"
    with CdpAdapter().launch(_options(profile, dead_url, wait_until="commit")) as session:
        assert session.navigation_error and "ERR_" in session.navigation_error
        assert session.alive()
