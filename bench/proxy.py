#!/usr/bin/env python3
"""Proxy figures: keep-alive HTTPS GETs through `sig proxy` vs direct (req/s, p50/p99 added latency),
and the first request to a new host (leaf certificate minted). Loopback only, bounded request counts.

Usage: python bench/proxy.py [--requests 1000]
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))


def run(n: int, port: int, ctx: ssl.SSLContext, proxy: tuple[int, str] | None) -> list[float]:
    if proxy is None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", proxy[0], context=ctx, timeout=30)
        conn.set_tunnel("127.0.0.1", port, headers={"Proxy-Authorization": proxy[1]})
    times = []
    for _ in range(n):
        start = time.perf_counter()
        conn.request("GET", "/bench")
        resp = conn.getresponse()
        resp.read()
        times.append(time.perf_counter() - start)
    conn.close()
    return times


class _Upstream:
    """A small keep-alive HTTPS server (TCP_NODELAY, one write per response) so the figures measure the
    proxy, not the test server's Nagle delays."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import trustme

        self.ca = trustme.CA()
        folder = tempfile.mkdtemp(prefix="sig-bench-ca-")
        self.ca_path = os.path.join(folder, "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_path)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                body = b'{"ok": true}'
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


def main() -> int:
    start_https_echo = _Upstream

    from _common import setup

    sig = setup(needs=("trustme",))
    n = int(sys.argv[sys.argv.index("--requests") + 1]) if "--requests" in sys.argv else 1000
    home = tempfile.mkdtemp(prefix="sig-proxy-bench-")
    env = dict(os.environ, SIG_HOME=home)
    echo = start_https_echo()
    try:
        subprocess.run([sig, "init", "--yes"], env=env, capture_output=True, check=True)
        subprocess.run([sig, "login", echo.url, "--token-stdin", "--as", "echo"], env=env,
                       input=b"tok-BENCH-PROXY-0001", capture_output=True, check=True)
        cfg = os.path.join(home, "config.yaml")
        with open(cfg) as fh:
            text = fh.read().replace("    strategy: api-token\n",
                                     f"    strategy: api-token\n    caFile: {echo.ca_path}\n", 1)
        with open(cfg, "w") as fh:
            fh.write(text)
        subprocess.run([sig, "proxy", "start", "--port", "0"], env=env, capture_output=True, check=True)
        penv = json.loads(subprocess.run([sig, "proxy", "env", "--format", "json"], env=env, capture_output=True,
                                         check=True).stdout)
        url = penv["HTTPS_PROXY"]
        creds, _, hostport = url[len("http://"):].rpartition("@")
        pport = int(hostport.rsplit(":", 1)[1])
        auth = "Basic " + base64.b64encode(creds.encode()).decode()
        direct_ctx = ssl.create_default_context(cafile=echo.ca_path)
        proxy_ctx = ssl.create_default_context(cafile=os.path.join(home, "proxy", "ca.crt"))
        first_direct = run(1, echo.port, direct_ctx, None)[0]  # a new connection, full TLS handshake
        first = run(1, echo.port, proxy_ctx, (pport, auth))[0]
        warm = run(1, echo.port, proxy_ctx, (pport, auth))[0]
        run(50, echo.port, direct_ctx, None)
        direct = run(n, echo.port, direct_ctx, None)
        proxied = run(n, echo.port, proxy_ctx, (pport, auth))
        d_rps, p_rps = n / sum(direct), n / sum(proxied)
        added = sorted(p - d for p, d in zip(sorted(proxied), sorted(direct), strict=True))
        print(f"proxy, {n} keep-alive HTTPS GETs on one connection (loopback, {os.cpu_count()} cpus)")
        print(f"  direct   {d_rps:8.0f} req/s   p50 {statistics.median(direct) * 1000:6.2f} ms")
        print(f"  proxied  {p_rps:8.0f} req/s   p50 {statistics.median(proxied) * 1000:6.2f} ms   "
              f"({p_rps / d_rps * 100:.0f}% of direct)")
        print(f"  added latency: p50 {statistics.median(added) * 1000:.2f} ms   "
              f"p99 {added[int(len(added) * 0.99)] * 1000:.2f} ms")
        print(f"  first request to a provider host after start (CONNECT + TLS both sides): {first * 1000:.1f} ms; "
              f"second connection: {warm * 1000:.1f} ms; a first direct connection: {first_direct * 1000:.1f} ms "
              f"(first contact adds {(first - first_direct) * 1000:.1f} ms)")
    finally:
        subprocess.run([sig, "proxy", "stop"], env=env, capture_output=True)
        echo.close()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
