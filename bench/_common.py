"""What every bench script needs before it measures: the `sig` to measure, its Python, and for the benches
that start test servers, the test harness's packages.

The benches run right after README's install command, with any Python 3.11+ (`python3 bench/startup.py`):
- the `sig` measured is $SIG_BENCH_SIG if set, else the one next to the running interpreter (a venv's
  python), else the one on PATH;
- the bench runs itself again under that sig's own Python (its #! line), so what it does in-process
  (the redactor alone, `-X importtime`) uses the interpreter and packages of the sig it measures;
- packages the harness needs (trustme, authlib, flask, joserfc) that this Python lacks are installed
  once into bench/.deps with its pip (never into sig's own environment) and imported from there.

The proxy and sandbox benches also share the upstream they measure against (`Upstream`) and the sig
folder that logs in to it and runs the proxy (`start_echo_proxy`).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parent.parent
DEPS = ROOT / "bench" / ".deps"
# import name -> what pip installs (the versions the test extra in pyproject.toml asks for; uvloop, which it
# does not, only for proxy_floor's reference relay)
PACKAGES = {"trustme": "trustme>=1.1", "authlib": "authlib>=1.8", "flask": "flask>=3", "joserfc": "joserfc>=1.6",
            "uvloop": "uvloop>=0.19"}
INSTALL = "python3 -m venv ~/.local/sig && ~/.local/sig/bin/pip install -q --upgrade pip ."


def find_sig() -> str | None:
    chosen = os.environ.get("SIG_BENCH_SIG")
    if chosen:
        return chosen
    beside = Path(sys.executable).with_name("sig")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("sig")


def sig_python(sig: str) -> str:
    """The interpreter a `sig` script starts with (its #! line), else this one. A venv's python is a symlink: compared as written, not resolved."""
    try:
        with open(sig, "rb") as fh:
            first = fh.readline(512).decode("utf-8", "replace").strip()
    except OSError:
        return sys.executable
    if first.startswith("#!"):
        parts = first[2:].split()
        if parts and os.path.basename(parts[0]).startswith("python") and os.access(parts[0], os.X_OK):
            return parts[0]
    return sys.executable


def setup(needs: tuple[str, ...] = ()) -> str:
    """Return the path of the `sig` to measure, with this process running on its Python and the
    modules in `needs` importable (installed into bench/.deps when missing). Exits with the command to
    run when no sig is installed."""
    sig = find_sig()
    if sig is None:
        print(f"no `sig` found next to {sys.executable} or on PATH; install it first (from the checkout):\n"
              f"  {INSTALL}\nthen run this bench with ~/.local/sig/bin/python, or set SIG_BENCH_SIG=/path/to/sig")
        raise SystemExit(1)
    python = sig_python(sig)
    if os.path.abspath(python) != os.path.abspath(sys.executable) and not os.environ.get("SIG_BENCH_REEXEC"):
        os.environ["SIG_BENCH_REEXEC"] = "1"
        os.environ["SIG_BENCH_SIG"] = sig
        os.execv(python, [python, *sys.argv])
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)  # the loopback servers of the test harness
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        if str(DEPS) not in sys.path:
            sys.path.append(str(DEPS))  # after sig's own packages: only fills what they lack
        importlib.invalidate_caches()
        missing = [m for m in missing if importlib.util.find_spec(m) is None]
    if missing:
        wanted = [PACKAGES.get(m, m) for m in missing]
        print(f"bench: installing {', '.join(wanted)} into {DEPS} (once)", flush=True)
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--upgrade",
                               "--target", str(DEPS), *wanted], check=False)
        if proc.returncode != 0:
            print(f"bench: could not install {', '.join(wanted)}; install them into {sys.executable}'s "
                  "environment yourself (pip install ...) and run again")
            raise SystemExit(1)
        importlib.invalidate_caches()
    return sig


class Upstream:
    """A keep-alive HTTPS server on 127.0.0.1 (TCP_NODELAY, one write per answer) with a CA of its own, so
    that the figures measure sig, not the test server's Nagle delays. `answer(path, authorization)` is the
    JSON body of a GET (always 200)."""

    def __init__(self, answer: Callable[[str, str], bytes]) -> None:
        import ssl
        import tempfile
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import trustme

        self.ca = trustme.CA()
        self.folder = tempfile.mkdtemp(prefix="sig-bench-ca-")
        self.ca_path = os.path.join(self.folder, "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_path)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                body = answer(self.path, self.headers.get("Authorization", ""))
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                                 + str(len(body)).encode() + b"\r\n\r\n" + body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_echo_proxy(sig: str, env: dict[str, str], upstream: Upstream, token: str, init: tuple[str, ...] = (),
                     entry: tuple[str, ...] = (), domains: tuple[str, ...] = ()) -> None:
    """In the sig folder env["SIG_HOME"]: `sig init` (+ `init` flags), log in to `upstream` as provider
    "echo" with API token `token`, trust the upstream's CA for it (caFile; `entry` adds more lines to its
    entry, `domains` more domains), then `sig proxy start` on a free port. Stop it with `sig proxy stop`."""
    subprocess.run([sig, "init", "--yes", *init], env=env, capture_output=True, check=True)
    subprocess.run([sig, "login", upstream.url, "--token-stdin", "--as", "echo"], env=env, input=token.encode(),
                   capture_output=True, check=True)
    cfg = os.path.join(env["SIG_HOME"], "config.yaml")
    with open(cfg) as fh:
        text = fh.read()
    lines = "".join(f"    {line}\n" for line in (f"caFile: {upstream.ca_path}", *entry))
    text = text.replace("    strategy: api-token\n", "    strategy: api-token\n" + lines, 1)
    if domains:
        more = "".join(f'      - "{d}"\n' for d in domains)
        text = text.replace("    domains:\n      - 127.0.0.1\n", "    domains:\n      - 127.0.0.1\n" + more, 1)
    with open(cfg, "w") as fh:
        fh.write(text)
    subprocess.run([sig, "proxy", "start", "--port", "0"], env=env, capture_output=True, check=True)


def open_tunnel(sock: object, target: str, auth: str) -> None:
    """Send CONNECT `target` (host:port) with the proxy token `auth` over `sock` and read the answer;
    RuntimeError unless the proxy answers 200."""
    import socket

    assert isinstance(sock, socket.socket)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: {auth}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(4096)
        if not data:
            raise RuntimeError("the proxy closed the CONNECT")
        head += data
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.split(b"\r\n", 1)[0].decode())


def process_cpu(pid: int) -> float:
    """Seconds of CPU (user + system, all threads, ended ones included) process `pid` has used so far, to
    the nanosecond: the kernel's CPU-time clock of that process (clock_getcpuclockid). /proc's utime +
    stime count whole clock ticks (10 ms): over a 0.2 s run that alone is ±8% of a per-request figure.
    Falls back to those ticks where the clock cannot be had."""
    clock = _cpu_clock(pid)
    if clock is not None:
        try:
            return time.clock_gettime(clock)
        except OSError:
            pass
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_CLOCKS: dict[int, int | None] = {}


def _cpu_clock(pid: int) -> int | None:
    """The CPU-time clock id of process `pid` (libc's clock_getcpuclockid), None when unavailable."""
    if pid not in _CLOCKS:
        import ctypes
        import ctypes.util

        clock = None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            out = ctypes.c_int(0)
            if libc.clock_getcpuclockid(ctypes.c_int(pid), ctypes.byref(out)) == 0:
                clock = out.value
        except (OSError, AttributeError):
            clock = None
        _CLOCKS[pid] = clock
    return _CLOCKS[pid]


def proxy_endpoint(env_json: str | bytes, home: str) -> tuple[int, str, object, int]:
    """(port, Proxy-Authorization value, an SSL context trusting sig's CA, daemon pid) of the proxy
    running under SIG_HOME `home`, from the output of `sig proxy env --format json`."""
    import base64
    import json
    import ssl

    penv = json.loads(env_json)
    creds, _, hostport = penv["HTTPS_PROXY"][len("http://"):].rpartition("@")
    auth = "Basic " + base64.b64encode(creds.encode()).decode()
    ctx = ssl.create_default_context(cafile=os.path.join(home, "proxy", "ca.crt"))
    with open(os.path.join(home, "proxy", "state.json")) as fh:
        pid = int(json.load(fh)["pid"])
    return int(hostport.rsplit(":", 1)[1]), auth, ctx, pid
