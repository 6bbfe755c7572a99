"""A program that TRIES: tests/integration/sandbox_adversary.py runs under `sig run --sandbox` (real
bubblewrap, as root and as nobody) from the worst working directory — the home folder, which holds
sig's data, a credentials folder and a browser profile configured elsewhere in it, the usual secret
stores and a git repository — and tries every way to a secret or around the proxy. Each attempt is a
test; none may win, and nothing secret may appear in what it managed to read."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.sandbox_rig import SandboxUser, require_bwrap

pytestmark = pytest.mark.timeout(300)

ADVERSARY = Path(__file__).with_name("sandbox_adversary.py")
TOKEN = "tok-ESCAPE-5f2e9a1c7b3d"
STORE_SECRET = "STORE-SECRET-0b8d1e"


def _attempt_names() -> list[str]:
    import ast

    tree = ast.parse(ADVERSARY.read_text())
    return [n.name.removeprefix("try_") for n in tree.body if isinstance(n, ast.FunctionDef)
            and n.name.startswith("try_")]


class _Listener:
    """A TCP server on the host's loopback (v4 and v6) and an abstract Unix socket: what a sandboxed
    program must not reach."""

    def __init__(self) -> None:
        self.v4 = socket.create_server(("127.0.0.1", 0))
        self.port = self.v4.getsockname()[1]
        self.v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.v6.bind(("::1", self.port))
        self.v6.listen(8)
        self.abstract_name = f"sig-test-{os.getpid()}-{os.urandom(4).hex()}"
        self.abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.abstract.bind("\0" + self.abstract_name)
        self.abstract.listen(8)
        self.accepted: list[str] = []
        for sock, name in ((self.v4, "v4"), (self.v6, "v6"), (self.abstract, "abstract")):
            threading.Thread(target=self._accept, args=(sock, name), daemon=True).start()

    def _accept(self, sock: socket.socket, name: str) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            self.accepted.append(name)
            conn.close()

    def close(self) -> None:
        for s in (self.v4, self.v6, self.abstract):
            s.close()


def _prepare(user: SandboxUser) -> dict[str, Any]:
    user.sig("init", "--yes", "--remote", check=0)
    cfg = user.sig_home / "config.yaml"
    creds = user.mkdir("creds-elsewhere")
    browser = user.mkdir("browser-profile/Default")
    (browser / "Cookies").write_text(STORE_SECRET)
    user.own(browser / "Cookies")
    text = cfg.read_text()
    text = text.replace("credentialsDir: ~/.sig/credentials", f"credentialsDir: {creds}")
    text = text.replace("browserDataDir: ~/.sig/browser-data", f"browserDataDir: {browser.parent}")
    cfg.write_text(text)
    user.sig("login", "https://api.example.test", "--token-stdin", "--as", "api", input=TOKEN, check=0)
    assert any(creds.iterdir()), "the credential should live in the configured folder"
    user.sig("proxy", "trust", check=0)
    for rel in (".ssh/id_ed25519", ".aws/credentials", ".netrc", ".git-credentials", ".docker/config.json",
                ".config/gh/hosts.yml", ".gnupg/private-keys-v1.d/key.key", ".config/google-chrome/Default/Cookies"):
        user.write(rel, STORE_SECRET)
    user.write(".bashrc", "# original\n", 0o644)
    import subprocess

    subprocess.run(["git", "init", "-q", str(user.home)], check=True)
    for p in [user.home / ".git", *(user.home / ".git").rglob("*")]:
        user.own(p)
    return {"sig_paths": [str(user.sig_home), str(creds), str(browser.parent)], "creds": creds}


@pytest.fixture(scope="module", params=["root", "nobody"])
def outcome(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    require_bwrap()
    user = SandboxUser(unprivileged=request.param == "nobody")
    listener = _Listener()
    try:
        prepared = _prepare(user)
        user.sig("proxy", "start", "--port", "0", check=0)
        proxy_port = json.loads(user.sig("proxy", "status", "--format", "json", check=0).stdout)["port"]
        agent_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a socket file the sandbox can see
        agent_sock.bind(str(user.home / "agent.sock"))
        agent_sock.listen(1)
        spec = {
            "sig_paths": prepared["sig_paths"],
            "host_ports": [listener.port, proxy_port],
            "listener_port": listener.port,
            "abstract": [listener.abstract_name],
            "unix_paths": [str(user.home / "agent.sock"), str(user.sig_home / "proxy" / "sandbox.sock"),
                           str(user.sig_home / "proxy" / "proxy.sock"),
                           "/run/dbus/system_bus_socket", "/var/run/docker.sock", f"/run/user/{user.uid}/bus"],
            "outside_pids": [os.getpid(), os.getppid()],
            "providers": ["api"],
        }
        master, slave = os.openpty()  # stdin a terminal: TIOCSTI has something to aim at
        try:
            if user.unprivileged:
                os.chown(os.ttyname(slave), user.uid, -1)
            # A copy in the working directory: the checkout may be under /tmp, which is private inside.
            script = user.write("sandbox_adversary.py", ADVERSARY.read_text(), 0o644)
            proc = user.popen("run", "--sandbox", "--", user.python, str(script), json.dumps(spec),
                              stdin=slave, cwd=user.home)
            out, err = proc.communicate(timeout=240)
        finally:
            os.close(slave)
            os.set_blocking(master, False)
            try:
                typed = os.read(master, 65536)
            except OSError:
                typed = b""
            os.close(master)
        agent_sock.close()
        assert proc.returncode == 0, f"adversary failed to run:\n{err}\n{out}"
        report = json.loads(out.strip().splitlines()[-1])
        if os.environ.get("SIG_TEST_DUMP"):
            Path(os.environ["SIG_TEST_DUMP"] + f".{request.param}.json").write_text(
                json.dumps(report["results"], indent=1))
        yield {"user": user, "report": report, "loot": base64.b64decode(report["loot"]), "stderr": err,
               "listener": listener, "typed": typed, "prepared": prepared}
    finally:
        listener.close()
        user.close()  # (stops the proxy too)


@pytest.mark.parametrize("attempt", _attempt_names())
def test_attempt_fails(outcome: dict[str, Any], attempt: str) -> None:
    result = outcome["report"]["results"][attempt]
    assert result["won"] is False, f"{attempt} won: {result['detail']}"


def test_nothing_secret_in_what_it_read(outcome: dict[str, Any]) -> None:
    user: SandboxUser = outcome["user"]
    key = (user.sig_home / "encryption.key").read_bytes().strip()
    ca_key = (user.sig_home / "proxy" / "ca.key").read_bytes()
    loot = outcome["loot"] + outcome["stderr"].encode()
    for secret in (TOKEN.encode(), key, base64.b64decode(key), STORE_SECRET.encode(), ca_key[40:120]):
        assert secret not in loot


def test_no_connection_reached_the_host(outcome: dict[str, Any]) -> None:
    assert outcome["listener"].accepted == []


def test_nothing_planted_outside(outcome: dict[str, Any]) -> None:
    user: SandboxUser = outcome["user"]
    assert (user.home / "written-inside-cwd").read_text() == "ok"  # the working directory is writable
    for path in (Path("/etc/planted"), Path("/usr/planted"), user.top / "planted-next-to-cwd",
                 user.top / "planted-dotdot", user.home / ".git/hooks/post-checkout",
                 *[Path(p) / "planted" for p in outcome["prepared"]["sig_paths"]]):
        assert not path.exists(), path
    assert (user.home / ".bashrc").read_text() == "# original\n"
    assert "planted" not in (user.home / ".git/config").read_text()


def test_nothing_injected_into_the_terminal(outcome: dict[str, Any]) -> None:
    detail = outcome["report"]["results"]["tiocsti"]["detail"]
    assert "EPERM" in detail or "EIO" in detail, detail  # the attempt really ran against a terminal
    assert b"INJECTED" not in outcome["typed"]


def test_the_sandbox_sees_only_itself(outcome: dict[str, Any]) -> None:
    detail = outcome["report"]["results"]["proc_of_every_process"]["detail"]
    pids = json.loads(detail.split("pids visible ")[1].split(";")[0])
    assert max(pids) < 50, pids  # its own PID namespace: a handful of processes, numbered from 1
