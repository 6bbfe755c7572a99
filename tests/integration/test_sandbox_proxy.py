"""`sig run --sandbox` with the real proxy (`sig proxy start`), real bubblewrap and real clients against
loopback HTTPS upstreams, as root and as nobody: the issue's acceptance block as written, credentials
injected for every client (the upstream saw them; the output shows ****), the profile's limits (other
hosts, raw TCP, local addresses), placeholders swapped for their provider and refused elsewhere
(audited), and sig's own commands inside."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.sandbox_rig import TOKEN, ProxiedSandbox

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(params=["root", "nobody"])
def box(request: pytest.FixtureRequest) -> Iterator[ProxiedSandbox]:
    rig = ProxiedSandbox(unprivileged=request.param == "nobody")
    try:
        yield rig
    finally:
        rig.close()


@pytest.fixture
def root_box() -> Iterator[ProxiedSandbox]:
    rig = ProxiedSandbox()
    try:
        yield rig
    finally:
        rig.close()


def _auth_seen(box: ProxiedSandbox) -> list[str | None]:
    return [r["headers"].get("authorization") for r in box.upstream.requests]


# -- the acceptance block, as written -------------------------------------------------------------

def _acceptance(unprivileged: bool) -> None:
    """printf 'tok-SANDBOX-…' | sig login https://127.0.0.1:PORT --token-stdin --as api; sig proxy start;
    then the three sandboxed commands. (The rig does the first two, plus caFile for the test upstream.)"""
    box = ProxiedSandbox(unprivileged)
    try:
        port = box.upstream.port
        r = box.run("--", "curl", "-s", f"https://127.0.0.1:{port}/echo")
        assert r.returncode == 0, r.stderr
        assert _auth_seen(box) == [f"Bearer {TOKEN}"]  # the upstream saw the token
        assert "****" in r.stdout and TOKEN not in r.stdout + r.stderr  # the output shows ****

        r = box.run("--", "sh", "-c", 'cat "$SIG_HOME"/encryption.key ~/.sig/encryption.key; '
                    "sig get api --no-redaction")
        assert r.returncode != 0  # nothing readable, non-zero
        assert TOKEN not in r.stdout + r.stderr
        key = (box.user.sig_home / "encryption.key").read_text().strip()
        assert key not in r.stdout + r.stderr and r.stdout == ""
        assert "No such file or directory" in r.stderr and "not available inside the sandbox" in r.stderr

        r = box.run("--", "curl", "-s", "-m", "3", "--noproxy", "*", f"https://127.0.0.1:{port}/")
        assert r.returncode != 0  # no route around the proxy
        assert len(box.upstream.requests) == 1
    finally:
        box.close()


def test_acceptance_as_root() -> None:
    _acceptance(False)


def test_acceptance_as_a_normal_user() -> None:
    _acceptance(True)


# -- real clients ---------------------------------------------------------------------------------------------

NODE_CONNECT = r"""
// Node 20 has no env-proxy support in fetch (NODE_USE_ENV_PROXY needs Node >= 22.21): the https module
// over a CONNECT tunnel to HTTPS_PROXY, trusting NODE_EXTRA_CA_CERTS (read by Node at start).
const http = require('http'), https = require('https'), tls = require('tls');
const proxy = new URL(process.env.HTTPS_PROXY), target = new URL(process.argv[2]);
const req = http.request({host: proxy.hostname, port: proxy.port, method: 'CONNECT',
                          path: `${target.hostname}:${target.port}`});
req.on('connect', (res, socket) => {
  if (res.statusCode !== 200) { console.error('CONNECT', res.statusCode); process.exit(2); }
  const net = require('net');
  const s = tls.connect({socket, servername: net.isIP(target.hostname) ? undefined : target.hostname,
                         host: target.hostname}, () => {
    https.get(target, {createConnection: () => s}, (r) => {
      let body = ''; r.on('data', (d) => body += d); r.on('end', () => { console.log(r.statusCode, body); });
    }).on('error', (e) => { console.error(e.message); process.exit(3); });
  });
  s.on('error', (e) => { console.error('tls', e.message); process.exit(4); });
});
req.on('error', (e) => { console.error(e.message); process.exit(5); });
req.end();
"""

PY_CLIENTS = r"""
import sys, requests, httpx
url = sys.argv[1]
r = requests.get(url, timeout=30)
print("requests", r.status_code, r.text)
with httpx.Client(timeout=30) as c:
    h = c.get(url)
print("httpx", h.status_code, h.text)
"""


def test_python_clients(box: ProxiedSandbox) -> None:
    """requests and httpx read HTTPS_PROXY and the CA bundle variables sig sets inside."""
    script = box.user.write("py_clients.py", PY_CLIENTS, 0o644)
    r = box.run("--", box.user.python, str(script), box.upstream.url_for("/py"))
    assert r.returncode == 0, r.stderr
    assert "requests 200" in r.stdout and "httpx 200" in r.stdout
    assert _auth_seen(box) == [f"Bearer {TOKEN}"] * 2
    assert TOKEN not in r.stdout and r.stdout.count("****") >= 2


def test_node_https_module_over_connect(box: ProxiedSandbox) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    script = box.user.write("client.js", NODE_CONNECT, 0o644)
    r = box.run("--", "node", str(script), box.upstream.url_for("/node"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("200 ") and TOKEN not in r.stdout and "****" in r.stdout
    assert _auth_seen(box) == [f"Bearer {TOKEN}"]


def test_git_ls_remote_over_https(root_box: ProxiedSandbox, tmp_path: Path) -> None:
    """git reads HTTPS_PROXY and GIT_SSL_CAINFO; the token reaches `git http-backend` behind the proxy."""
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    import trustme

    from harness.git_http import GitHttpServer

    box = root_box
    ca = trustme.CA()
    ca_file = box.user.write("certs/git-ca.pem", ca.cert_pem.bytes().decode(), 0o644)
    with GitHttpServer(tmp_path, ca, "hello\n") as git:
        box.user.sig("login", f"{git.url}/", "--token-stdin", "--as", "git", input=TOKEN, check=0)
        cfg = box.user.sig_home / "config.yaml"
        text = cfg.read_text()
        at = text.index("  git:")
        cfg.write_text(text[:at] + text[at:].replace("    strategy: api-token\n",
                                                     f"    strategy: api-token\n    caFile: {ca_file}\n", 1))
        r = box.run("--", "git", "ls-remote", git.repo_url, timeout=120)
        assert r.returncode == 0, r.stderr
        assert "refs/heads/main" in r.stdout
        assert git.seen and all(a == f"Bearer {TOKEN}" for a in git.seen)


# -- the profile ---------------------------------------------------------------------------------------------

def test_other_hosts_are_intercepted_and_logged(box: ProxiedSandbox) -> None:
    """(127.0.0.2 is a loopback address: reachable only when allowed, see the local-address test.)"""
    r = box.run("--allow-host", "127.0.0.2", "--", "curl", "-s", box.other.url + "/pkg")
    assert r.returncode == 0 and '"path": "/pkg"' in r.stdout, r.stderr
    assert box.other.seen and "authorization" not in {k.lower() for k in box.other.seen[0]["headers"]}
    assert "127.0.0.2" in box.proxy_log()  # TLS terminated by the proxy: it saw (and logged) the request


def test_deny_other_hosts_and_allow_host(box: ProxiedSandbox) -> None:
    code = ["-w", " %{http_connect} %{http_code}"]  # a refused CONNECT has no http_code of its own
    r = box.run("--deny-other-hosts", "--allow-host", "pypi.org", "--", "curl", "-s", *code, box.other.url + "/x")
    assert r.stdout.endswith(" 403 000") and box.other.seen == []
    r = box.run("--deny-other-hosts", "--", "curl", "-s", *code, box.upstream.url_for("/ok"))
    assert r.stdout.endswith(" 200 200")  # provider hosts stay reachable
    r = box.run("--deny-other-hosts", "--allow-host", "127.0.0.2", "--", "curl", "-s", *code, box.other.url + "/y")
    assert r.stdout.endswith(" 200 200") and len(box.other.seen) == 1
    cfg = box.user.sig_home / "config.yaml"
    cfg.write_text(cfg.read_text() + "sandbox:\n  denyOtherHosts: true\n  allowHosts: ['127.0.0.2']\n")
    r = box.run("--", "curl", "-s", *code, box.other.url + "/z")
    assert r.stdout.endswith(" 200 200") and len(box.other.seen) == 2
    cfg.write_text(cfg.read_text().replace("allowHosts: ['127.0.0.2']", "allowHosts: [pypi.org]"))
    r = box.run("--", "curl", "-s", *code, box.other.url + "/w")
    assert r.stdout.endswith(" 403 000") and len(box.other.seen) == 2


CONNECT_RAW = r"""
import os, socket, sys, urllib.parse
proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
s = socket.create_connection((proxy.hostname, proxy.port), timeout=10)
s.sendall(f"CONNECT {sys.argv[1]} HTTP/1.1\r\nHost: {sys.argv[1]}\r\n\r\n".encode())
head = b""
while b"\r\n\r\n" not in head:
    chunk = s.recv(4096)
    if not chunk:
        break
    head += chunk
print(head.split(b"\r\n")[0].decode())
if b" 200 " in head.split(b"\r\n")[0] + b" ":
    s.sendall(b"ping\n")
    s.settimeout(5)
    try:
        print("got", s.recv(100).decode().strip())
    except OSError as exc:
        print("no answer", exc)
"""


def test_raw_tcp_only_with_allow_tcp(root_box: ProxiedSandbox) -> None:
    box = root_box
    server = socket.create_server(("127.0.0.2", 0))
    port = server.getsockname()[1]

    def echo() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(100)
                conn.sendall(b"pong " + data)

    threading.Thread(target=echo, daemon=True).start()
    script = box.user.write("raw.py", CONNECT_RAW, 0o644)
    try:
        r = box.run("--", box.user.python, str(script), f"127.0.0.2:{port}")
        assert "got pong" not in r.stdout  # intercepted as TLS: a raw stream gets nowhere
        r = box.run("--allow-tcp", f"127.0.0.2:{port}", "--", box.user.python, str(script), f"127.0.0.2:{port}")
        assert "200" in r.stdout and "got pong ping" in r.stdout, r.stdout + r.stderr
    finally:
        server.close()


@pytest.mark.parametrize("target", ["127.0.0.1:{hostport}", "[::1]:{hostport}", "169.254.169.254:80",
                                    "localhost:{hostport}", "0.0.0.0:{hostport}"])
def test_the_machines_own_addresses_are_refused(root_box: ProxiedSandbox, target: str) -> None:
    """Through the proxy, a sandbox reaches no loopback or link-local service of the machine (its own
    loopback is its own); a provider's host on 127.0.0.1 stays reachable."""
    box = root_box
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []
    threading.Thread(target=lambda: accepted.append(len(listener.accept())), daemon=True).start()
    try:
        url = "http://" + target.format(hostport=listener.getsockname()[1]) + "/"
        r = box.run("--", "curl", "-s", "--noproxy", "", "-m", "5", "-w", " %{http_code}", url)
        assert r.stdout.endswith(" 403"), r.stdout + r.stderr
        assert "loopback or link-local address" in r.stdout and "--allow-host" in r.stdout
        assert accepted == []
    finally:
        listener.close()


def test_sni_and_host_naming_another_host_get_nothing(root_box: ProxiedSandbox) -> None:
    """CONNECT to the provider's host with a Host header naming another one: 421, nothing sent anywhere."""
    box = root_box
    r = box.run("--", "curl", "-s", "-w", " %{http_code}", "-H", f"Host: 127.0.0.2:{box.other.port}",
                box.upstream.url_for("/sni"))
    assert r.stdout.endswith(" 421") and box.upstream.requests == [] and box.other.seen == []


def test_a_token_sent_inside_changes_nothing(root_box: ProxiedSandbox) -> None:
    """Every connection through the sandbox's door has the run's profile: a Proxy-Authorization header
    (even a guess at the user's token) neither opens more nor is needed."""
    box = root_box
    user_token = (box.user.sig_home / "proxy" / "token").read_text().strip()
    r = box.run("--deny-other-hosts", "--", "curl", "-s", "-w", " %{http_connect}", "--proxy-user",
                f"sig:{user_token}", box.other.url + "/t")
    assert r.stdout.endswith(" 403") and box.other.seen == []
    r = box.run("--", "curl", "-s", "-w", " %{http_code}", "--proxy-user", "sig:wrong", box.upstream.url_for("/t"))
    assert r.stdout.endswith(" 200") and _auth_seen(box) == [f"Bearer {TOKEN}"]


def test_the_host_proxy_port_is_not_reachable_inside(root_box: ProxiedSandbox) -> None:
    box = root_box
    r = box.run("--", "curl", "-s", "-m", "3", "-x", f"http://127.0.0.1:{box.proxy_port}",
                box.upstream.url_for("/around"))
    assert r.returncode != 0 and box.upstream.requests == []


# -- placeholders --------------------------------------------------------------------------------------------

def test_placeholder_swapped_for_its_provider(box: ProxiedSandbox) -> None:
    r = box.run("api", "--env", "OPENAI_API_KEY=api.token", "--", "sh", "-c",
                'echo "$OPENAI_API_KEY"; curl -s -H "X-Key: $SIG_API_TOKEN" -d "key=$OPENAI_API_KEY" '
                + box.upstream.url_for("/ph"))
    assert r.returncode == 0, r.stderr
    placeholder = r.stdout.splitlines()[0]
    assert placeholder.startswith("sig-ph-")
    seen = box.upstream.requests[-1]
    assert seen["headers"]["x-key"] == TOKEN and seen["body"] == f"key={TOKEN}"  # swapped on the way out
    assert seen["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in r.stdout  # the echo's answer is redacted


def test_placeholder_sent_elsewhere_is_refused_and_audited(box: ProxiedSandbox) -> None:
    r = box.run("api", "--allow-host", "127.0.0.2", "--", "sh", "-c",
                f'curl -s -w " %{{http_code}}" -H "X-Leak: $SIG_API_TOKEN" {box.other.url}/exfil')
    assert r.stdout.endswith(" 403"), r.stdout + r.stderr
    assert box.other.seen == []  # refused before anything went there
    deadline = time.monotonic() + 10  # the proxy writes audit events in batches (every 0.25 s)
    events: list[dict[str, object]] = []
    while not events and time.monotonic() < deadline:
        events = [e for e in box.audit() if e.get("action") == "proxy_blocked"]
        time.sleep(0.05)
    assert events and events[-1]["metadata"]["host"].startswith("127.0.0.2")  # type: ignore[index]
    assert events[-1]["metadata"]["profile"].startswith("run-")  # type: ignore[index]
    assert TOKEN not in json.dumps(box.audit())


def test_providers_not_named_are_not_injected(box: ProxiedSandbox) -> None:
    """With providers named, only theirs are added (a run for `other` gets nothing for `api`'s host)."""
    box.user.sig("login", "https://other.example.test", "--token-stdin", "--as", "other",
                 input="tok-OTHER-99887766", check=0)
    r = box.run("other", "--", "curl", "-s", "-w", " %{http_code}", box.upstream.url_for("/limited"))
    # not this run's provider, so an address of this machine like any other: refused before anything is sent
    assert r.stdout.endswith(" 403") and box.upstream.requests == []


# -- sig inside --------------------------------------------------------------------------------------------

def test_sig_request_status_and_providers_inside(box: ProxiedSandbox) -> None:
    r = box.run("--", "sig", "request", box.upstream.url_for("/inside"), "--format", "body")
    assert r.returncode == 0, r.stderr
    assert _auth_seen(box) == [f"Bearer {TOKEN}"] and TOKEN not in r.stdout and "****" in r.stdout
    r = box.run("--", "sig", "status", "--format", "json")
    assert r.returncode == 0, r.stderr
    statuses = json.loads(r.stdout)
    assert [(s["id"], s["valid"]) for s in statuses] == [("api", True)]
    r = box.run("--", "sig", "providers", "--format", "json")
    assert json.loads(r.stdout) == [{"id": "api", "name": "127.0.0.1", "strategy": "api-token",
                                     "configured": True, "valid": True}]
    r = box.run("--", "sig", "status", "api", "--format", "json")
    assert json.loads(r.stdout)["id"] == "api"
    assert TOKEN not in r.stdout + r.stderr


def test_the_run_ends_its_profile_in_the_proxy(box: ProxiedSandbox) -> None:
    r = box.run("--", "true")
    assert r.returncode == 0
    log = box.proxy_log()
    name = log.rsplit("sandbox: ", 1)[1].split()[0]
    assert f"sandbox: {name} started" in log and f"sandbox: {name} ended" in log


def test_a_wrong_token_gets_no_door(box: ProxiedSandbox) -> None:
    """The sandbox socket wants the user's proxy token (besides 0600 and the peer's uid)."""
    project = box.user.mkdir("proj")
    token_file = box.user.sig_home / "proxy" / "token"
    token_file.write_text("0" * 48)
    r = box.run("--", "touch", "ran", cwd=project)
    assert r.returncode == 1 and "wrong proxy token" in r.stderr
    assert not (project / "ran").exists()


DOOR_CLIENT = r"""
import array, json, os, socket, sys
path, token, kind = sys.argv[1], sys.argv[2], sys.argv[3]
fds = []
if kind == "udp":
    fds = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM).detach()]
elif kind == "pipe":
    fds = [os.pipe()[0]]
elif kind in ("listener", "bad-profile"):
    fds = [socket.create_server(("127.0.0.1", 0)).detach()]
profile = {"name": "door-test", "providers": None, "otherHosts": "mitm"}
if kind == "bad-profile":
    profile["placeholders"] = {"not-a-placeholder": ["api", "token"]}
line = b"{not json\n" if kind == "garbage" else json.dumps({"v": 1, "token": token, "profile": profile}).encode() + b"\n"
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
s.sendmsg([line], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else [])
print(s.recv(4096).decode().strip())
"""


@pytest.mark.parametrize("kind", ["udp", "pipe", "garbage", "bad-profile", "wrong-token", "listener"])
def test_the_door_takes_only_a_listening_socket_with_the_token(root_box: ProxiedSandbox, kind: str) -> None:
    box = root_box
    script = box.user.write("door.py", DOOR_CLIENT, 0o644)
    token = (box.user.sig_home / "proxy" / "token").read_text().strip()
    r = subprocess.run([box.user.python, str(script), str(box.user.sig_home / "proxy" / "sandbox.sock"),
                        "0" * 48 if kind == "wrong-token" else token, kind], capture_output=True, text=True,
                       timeout=30)
    answer = json.loads(r.stdout)
    assert answer["ok"] is (kind == "listener"), answer
    r = box.run("--", "curl", "-s", box.upstream.url_for("/after"))  # the proxy still serves
    assert r.returncode == 0 and _auth_seen(box) == [f"Bearer {TOKEN}"]


def test_a_sandbox_inside_a_plain_run_gets_none_of_its_values(root_box: ProxiedSandbox) -> None:
    """`sig run api --env APP_TOKEN=api.token -- sig run --sandbox -- env`: the outer run's variables hold
    the real token; the sandbox must not receive them (under any name), and says which it left out."""
    r = root_box.user.sig("run", "api", "--env", "APP_TOKEN=api.token", "--no-redaction", "--",
                          "sig", "run", "--sandbox", "--", "env")
    assert r.returncode == 0, r.stderr
    assert TOKEN not in r.stdout
    assert "APP_TOKEN=" not in r.stdout and "SIG_API_TOKEN=" not in r.stdout
    assert "APP_TOKEN" in r.stderr and "not passed into the sandbox" in r.stderr
