#!/usr/bin/env python3
"""Sandbox figures (`sig run --sandbox`), each paired with its reference in the same run:

- start-up: `sig run --sandbox -- true` against `sig run --proxy -- true` (goal: at most +60 ms);
- keep-alive throughput: HTTPS GETs on one connection through the sandbox's door (the proxy accepting on
  the socket the sandbox opened) against the same client through the proxy's own port, both run by
  `sig run` so that only the way in differs (goal: at least 0.9 of the proxy alone).

Usage: python bench/sandbox.py [--runs 20] [--requests 2000] [--rounds 3]
Needs Linux with bubblewrap (`sig doctor` says whether the sandbox works here). Loopback only.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# The client both ways: one CONNECT, then N GETs on the tunnel; prints req/s. Reads the proxy and CA from
# the variables sig run gives it (HTTPS_PROXY, SSL_CERT_FILE), as any client would.
CLIENT = r"""
import base64, http.client, os, ssl, sys, time, urllib.parse
n, port = int(sys.argv[1]), int(sys.argv[2])
proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
ctx = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
conn = http.client.HTTPSConnection(proxy.hostname, proxy.port, context=ctx, timeout=30)
headers = {}
if proxy.username:
    headers["Proxy-Authorization"] = "Basic " + base64.b64encode(
        f"{proxy.username}:{proxy.password}".encode()).decode()
conn.set_tunnel("127.0.0.1", port, headers=headers)
for _ in range(50):
    conn.request("GET", "/warm"); conn.getresponse().read()
start = time.perf_counter()
for _ in range(n):
    conn.request("GET", "/bench"); r = conn.getresponse(); r.read()
    assert r.status == 200, r.status
print(n / (time.perf_counter() - start))
"""


def _timed(argv: list[str], env: dict[str, str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 20
    n = int(sys.argv[sys.argv.index("--requests") + 1]) if "--requests" in sys.argv else 2000
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 3
    from _common import Upstream, setup, start_echo_proxy

    sig = setup(needs=("trustme",))
    echo = Upstream(lambda _path, _authorization: b'{"ok": true}')
    top = tempfile.mkdtemp(prefix="sig-sandbox-bench-")
    home = os.path.join(top, "home")
    project = os.path.join(home, "project")
    os.makedirs(project)
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and not k.startswith("SIG_")}
    env.update(HOME=home, SIG_HOME=os.path.join(home, ".sig"))
    try:
        start_echo_proxy(sig, env, echo, "tok-BENCH-SANDBOX-0001", init=("--remote",))
        probe = subprocess.run([sig, "run", "--sandbox", "--", "true"], env=env, cwd=project, capture_output=True,
                               text=True)
        if probe.returncode != 0:
            print(f"the sandbox does not start here:\n{probe.stderr}")
            return 1
        with_proxy = [sig, "run", "--proxy", "--", "true"]
        with_sandbox = [sig, "run", "--sandbox", "--", "true"]
        for _ in range(3):
            _timed(with_proxy, env, project)
            _timed(with_sandbox, env, project)
        plain, boxed = [], []
        for _ in range(runs):  # alternating: both see the same machine load
            plain.append(_timed(with_proxy, env, project))
            boxed.append(_timed(with_sandbox, env, project))
        p50, s50 = statistics.median(plain), statistics.median(boxed)
        print(f"start-up, median of {runs} ({os.cpu_count()} cpus)")
        print(f"  sig run --proxy -- true     {p50 * 1000:7.1f} ms")
        print(f"  sig run --sandbox -- true   {s50 * 1000:7.1f} ms   (+{(s50 - p50) * 1000:.1f} ms; goal +60 ms)")

        python = sys.executable
        client = os.path.join(top, "client.py")
        with open(client, "w") as fh:
            fh.write(CLIENT)
        proxied, sandboxed = [], []
        for _ in range(rounds):
            out = subprocess.run([sig, "run", "--proxy", "--", python, client, str(n), str(echo.port)], env=env,
                                 cwd=project, capture_output=True, text=True, check=True).stdout
            proxied.append(float(out.strip().splitlines()[-1]))
            out = subprocess.run([sig, "run", "--sandbox", "--", python, client, str(n), str(echo.port)], env=env,
                                 cwd=top, capture_output=True, text=True, check=True).stdout
            sandboxed.append(float(out.strip().splitlines()[-1]))
        p, s = statistics.median(proxied), statistics.median(sandboxed)
        print(f"keep-alive HTTPS GETs, {n} per round, median of {rounds} rounds (one connection, credential added)")
        print(f"  through the proxy's port       {p:8.0f} req/s")
        print(f"  through the sandbox's door     {s:8.0f} req/s   ({s / p:.2f} of the proxy alone; goal 0.90)")
        print(json.dumps({"startupAddedMs": round((s50 - p50) * 1000, 1), "keepAliveRatio": round(s / p, 3)}))
    finally:
        subprocess.run([sig, "proxy", "stop"], env=env, capture_output=True)
        shutil.rmtree(top, ignore_errors=True)
        echo.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
