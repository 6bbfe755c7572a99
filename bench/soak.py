#!/usr/bin/env python3
"""Proxy soak: many requests through one `sig proxy` daemon; prints requests, errors, throughput and the
daemon's RSS, threads and open files at the start (after a warm-up), middle and end.

The traffic is a mix, like an agent's: keep-alive clients (each one reconnects every --reconnect
requests: a new CONNECT and TLS handshake), mostly small JSON answers, some answers that echo the
injected token (redacted by the proxy), some 256 KiB answers. Every answer is checked: status 200, the
token never in it, an echo shows `****`. Loopback only; the run is bounded by --requests.

Usage: python bench/soak.py [--requests 20000] [--concurrency 8] [--reconnect 200]
(needs the test extra for trustme: run it with .venv-test/bin/python after scripts/test, or pip install
'.[test]' into the venv you use)
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import sys
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = "tok-BENCH-PROXY-0001"  # what bench/proxy.py's daemon logs in with
BIG = b"b" * (256 * 1024)


def _bench_proxy() -> Any:
    """bench/proxy.py as a module (its _Daemon sets up SIG_HOME, the provider and the daemon)."""
    spec = importlib.util.spec_from_file_location("sig_bench_proxy", os.path.join(HERE, "proxy.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _answer(path: str, authorization: str) -> bytes:
    """/echo answers the Authorization it got, /big 256 KiB, anything else a small JSON body."""
    if path == "/echo":
        return b'{"auth": "' + authorization.encode() + b'"}'
    if path == "/big":
        return BIG
    return b'{"ok": true}'


def _proc(pid: int) -> dict[str, int]:
    out = {"rss_kib": 0, "threads": 0, "fds": 0}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                out["rss_kib"] = int(line.split()[1])
            elif line.startswith("Threads:"):
                out["threads"] = int(line.split()[1])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def _path(i: int) -> str:
    if i % 100 == 0:
        return "/big"
    if i % 10 == 0:
        return "/echo"
    return "/small"


def main() -> int:
    def arg(name: str, default: int) -> int:
        return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default

    total, concurrency, reconnect = arg("--requests", 20000), arg("--concurrency", 8), arg("--reconnect", 200)
    from _common import Upstream, setup

    sig = setup(needs=("trustme",))
    bench = _bench_proxy()
    upstream = Upstream(_answer)
    daemon = None
    try:
        daemon = bench._Daemon(sig, upstream)
        counter = [0]
        errors: list[str] = []
        samples: list[tuple[int, float, dict[str, int]]] = []
        lock = threading.Lock()
        marks = {max(1, total // 10) * k for k in range(1, 11)}
        warm = min(500, total // 10)

        def client() -> None:
            conn: http.client.HTTPSConnection | None = None
            used = 0
            while True:
                with lock:
                    i = counter[0]
                    if i >= total:
                        break
                    counter[0] += 1
                if conn is None or used >= reconnect:
                    if conn is not None:
                        conn.close()
                    conn = http.client.HTTPSConnection("127.0.0.1", daemon.port, context=daemon.ctx, timeout=60)
                    conn.set_tunnel("127.0.0.1", upstream.port, headers={"Proxy-Authorization": daemon.auth})
                    used = 0
                path = _path(i)
                try:
                    conn.request("GET", path)
                    resp = conn.getresponse()
                    body = resp.read()
                    used += 1
                    bad = resp.status != 200 or TOKEN.encode() in body or \
                        (path == "/echo" and body != b'{"auth": "Bearer ****"}') or \
                        (path == "/big" and len(body) != len(BIG))
                    if bad:
                        with lock:
                            errors.append(f"{path}: {resp.status} {body[:60]!r}")
                except (OSError, http.client.HTTPException) as exc:
                    with lock:
                        errors.append(f"{path}: {type(exc).__name__}")
                    conn.close()
                    conn = None
                done = i + 1
                if done in marks or done == warm:
                    with lock:
                        samples.append((done, time.monotonic(), _proc(daemon.pid)))
            if conn is not None:
                conn.close()

        cpu_before = daemon.cpu()
        start = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        samples.sort()
        first = next(s for s in samples if s[0] >= warm)
        middle = min(samples, key=lambda s: abs(s[0] - total // 2))
        last = samples[-1]
        print(f"proxy soak: {total} requests, concurrency {concurrency}, a new connection every {reconnect} "
              f"requests per client; 1% 256 KiB answers, 9% echoing the token (redacted), 90% small JSON")
        print(f"  errors: {len(errors)}" + (f" (first: {errors[:3]})" if errors else ""))
        cpu = daemon.cpu() - cpu_before
        print(f"  throughput: {total / elapsed:.0f} req/s over {elapsed:.1f} s; daemon CPU "
              f"{cpu:.1f} s ({cpu / total * 1e6:.0f} µs per request)")
        print("  daemon      after    RSS MiB  threads  fds")
        for name, (n, _t, proc) in (("start", first), ("middle", middle), ("end", last)):
            print(f"  {name:<8} {n:>9}  {proc['rss_kib'] / 1024:9.1f}  {proc['threads']:7d}  {proc['fds']:3d}")
        growth = (last[2]["rss_kib"] / first[2]["rss_kib"] - 1) * 100
        print(f"  RSS end vs start: {growth:+.1f}%")
        print("  trace: " + ", ".join(f"{n}: {p['rss_kib'] // 1024} MiB" for n, _t, p in samples))
        return 1 if errors else 0
    finally:
        if daemon is not None:
            daemon.close()
        upstream.close()


if __name__ == "__main__":
    raise SystemExit(main())
