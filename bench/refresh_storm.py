#!/usr/bin/env python3
"""Refresh storm: N concurrent `sig get` on an expired OAuth2 credential (default 50).

Prints how many requests the token endpoint saw (the refresh broker should make it exactly 1) and the
p50/p99 wall time of the N processes. Uses the test suite's Authlib server on 127.0.0.1.
Usage: python bench/refresh_storm.py [--procs 50] [--rotate]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def main() -> int:
    from _common import setup

    sig = setup(needs=("authlib", "flask", "joserfc", "trustme"))  # the OAuth2 server of the test harness
    from harness.oauth_server import OAuthServer

    procs = int(sys.argv[sys.argv.index("--procs") + 1]) if "--procs" in sys.argv else 50
    rotate = "--rotate" in sys.argv
    home = tempfile.mkdtemp(prefix="sig-storm-")
    env = dict(os.environ, SIG_HOME=home)
    with OAuthServer() as server:
        server.add_client("svc", "storm-secret-0000")
        server.issue_refresh_for_client_credentials = rotate
        server.rotate_refresh_tokens = rotate
        server.token_lifetime = 2
        subprocess.run([sig, "init", "--yes"], env=env, capture_output=True, check=True)
        subprocess.run([sig, "login", f"{server.url}/", "--as", "api", "--strategy", "oauth2", "--token-url",
                        server.token_url, "--client-id", "svc", "--client-secret-stdin"], env=env,
                       input=b"storm-secret-0000", capture_output=True, check=True)
        time.sleep(2.5)  # the access token is now expired
        server.token_lifetime = 3600
        before = len(server.token_requests)

        # Start every process first (no forking from threads), then wait for them in parallel.
        import threading

        starts: list[float] = []
        children = []
        wall = time.perf_counter()
        for _ in range(procs):
            starts.append(time.perf_counter())
            children.append(subprocess.Popen([sig, "get", "api"], env=env, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL))
        results: list[tuple[float, int]] = [(0.0, -1)] * procs

        def wait(i: int) -> None:
            code = children[i].wait(timeout=120)
            results[i] = (time.perf_counter() - starts[i], code)

        waiters = [threading.Thread(target=wait, args=(i,)) for i in range(procs)]
        for t in waiters:
            t.start()
        for t in waiters:
            t.join(timeout=150)
        wall = time.perf_counter() - wall
        seen = len(server.token_requests) - before
    times = sorted(t for t, _ in results)
    ok = sum(1 for _, c in results if c == 0)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"refresh storm: {procs} concurrent `sig get` on an expired OAuth2 credential"
          f"{' (rotating refresh tokens)' if rotate else ''}")
    print(f"  token endpoint requests: {seen}   successes: {ok}/{procs}   wall: {wall * 1000:.0f} ms")
    print(f"  per-process latency: p50 {statistics.median(times) * 1000:.0f} ms   p99 {p99 * 1000:.0f} ms")
    shutil.rmtree(home, ignore_errors=True)
    return 0 if seen == 1 and ok == procs else 1


if __name__ == "__main__":
    raise SystemExit(main())
