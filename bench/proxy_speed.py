#!/usr/bin/env python3
"""Proxy speed against direct, measured side by side in one run (issue: proxy speed).

An HTTPS echo upstream runs in its own process (the standard library's HTTP server, a thread per
connection, keep-alive; it answers each GET with the Authorization value it received; `--lean-upstream`
swaps in a minimal hand-written one). Clients are lean raw-socket HTTPS clients in this process
(one thread each), so the figures weigh the proxy, not a client library. Every answer through the proxy
is checked: it must carry "Bearer ****" (sig injected the token, and redacted its echo) and never the
token itself (a leak fails the bench).

Figures, each over several rounds (median, and the spread min..max), direct and through `sig proxy`
measured back to back in every round so both see the same machine load:
1. keep-alive GETs at concurrency 1, 8 and 50: req/s, ratio to direct, the daemon's CPU per request
   (its user + system CPU time, all threads, read from the kernel's per-process CPU clock to the
   nanosecond, over the timed requests of warm clients, divided by them: their connections and
   handshakes are not in it, see 3.), p50/p99 latency and the p99 the proxy adds, and each round's CPU
   beside its req/s (the proxy's CPU per request falls as the upstream's pace rises: kept busy, it
   handles several events per wake-up);
2. a burst of 50 clients connecting at once (TCP + TLS + one GET each; through the proxy CONNECT too):
   p50/p99 of their times, ratio to the same burst sent directly;
3. a new TLS connection per request (no keep-alive, one client after the other): req/s, ratio to the
   plain TLS upstream; once with full handshakes, once with the client resuming its TLS session;
and the daemon's RSS, the machine's load average before and after (a busy machine shows there).

Usage: python bench/proxy_speed.py [--rounds 5] [--requests 2000] [--audit off] [--lean-upstream]
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

TOKEN = "tok-BENCH-SPEED-0123456789"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import open_tunnel, process_cpu, proxy_endpoint  # noqa: E402  (this folder, after the path above)

# -- the upstream (its own process) ---------------------------------------------------------------------


def serve_upstream(certfile: str, keyfile: str, lean: bool) -> None:
    """`--serve-upstream CERT KEY [lean]`: print the port, then serve until stdin closes.

    Default: the standard library's HTTP server (ThreadingHTTPServer + BaseHTTPRequestHandler, HTTP/1.1
    keep-alive, TLS in each connection's thread), as the project's test echo servers are built: what
    "a loopback HTTPS echo server" costs per request in Python. `lean`: a hand-written minimal server
    (a few µs per request), against which any proxy's ratio is far lower."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    if not lean:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Echo(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                auth = (self.headers.get("Authorization") or "none").encode()
                body = b'{"auth": "' + auth + b'", "ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 1024

            def finish_request(self, request: socket.socket, client_address: object) -> None:
                try:
                    conn = ctx.wrap_socket(request, server_side=True)
                except OSError:
                    return
                self.RequestHandlerClass(conn, client_address, self)

        server = Server(("127.0.0.1", 0), Echo)
        print(server.server_address[1], flush=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        sys.stdin.read()
        return
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    print(listener.getsockname()[1], flush=True)

    def one(raw: socket.socket) -> None:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn = ctx.wrap_socket(raw, server_side=True)
        except OSError:
            raw.close()
            return
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                auth = b"none"
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"authorization":
                        auth = value.strip()
                body = b'{"auth": "' + auth + b'", "ok": true}'
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
        except OSError:
            return
        finally:
            conn.close()

    def accept() -> None:
        while True:
            raw, _ = listener.accept()
            threading.Thread(target=one, args=(raw,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    sys.stdin.read()

# -- a lean client -------------------------------------------------------------------------------------


class Client:
    """One HTTPS connection (direct, or through the proxy with CONNECT), GET after GET."""

    def __init__(self, port: int, ctx: ssl.SSLContext, proxy: tuple[int, str] | None,
                 session: ssl.SSLSession | None = None) -> None:
        if proxy is None:
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        else:
            sock = socket.create_connection(("127.0.0.1", proxy[0]), timeout=30)
            open_tunnel(sock, f"127.0.0.1:{port}", proxy[1])
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1", session=session)
        self.request = f"GET /bench HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        self.buf = b""

    def get(self) -> bytes:
        """One GET; its body (Content-Length or chunked: the proxy re-frames an answer it masked while
        streaming it, when the upstream paused between head and body)."""
        self.sock.sendall(self.request)
        buf = self.buf
        while True:
            end = buf.find(b"\r\n\r\n")
            if end != -1:
                head = buf[:end].lower()
                i = head.find(b"\r\ncontent-length:")
                if i != -1:
                    length = int(head[i + 17:head.find(b"\r\n", i + 2) if head.find(b"\r\n", i + 2) != -1 else None])
                    total = end + 4 + length
                    if len(buf) >= total:
                        self.buf = buf[total:]
                        return buf[end + 4:total]
                elif b"transfer-encoding: chunked" in head:
                    body, rest = _chunked(buf[end + 4:])
                    if body is not None:
                        self.buf = rest
                        return body
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("connection closed mid-answer")
            buf += data

    def close(self) -> None:
        self.sock.close()


def _chunked(data: bytes) -> tuple[bytes | None, bytes]:
    """(body, what follows) of a complete chunked body at the start of `data`; (None, data) if incomplete."""
    out = b""
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol == -1:
            return None, data
        size = int(data[pos:eol].split(b";")[0], 16)
        if size == 0:
            end = data.find(b"\r\n\r\n", eol)
            if end == -1 and data[eol:eol + 4] != b"\r\n\r\n":
                return None, data
            end = eol if data[eol:eol + 4] == b"\r\n\r\n" else end
            return out, data[end + 4:]
        if len(data) < eol + 2 + size + 2:
            return None, data
        out += data[eol + 2:eol + 2 + size]
        pos = eol + 2 + size + 2


def check(body: bytes, proxied: bool) -> None:
    if TOKEN.encode() in body:
        raise SystemExit("LEAK: the token came back to the client")
    if proxied and b"Bearer ****" not in body:
        raise SystemExit(f"not injected (or not redacted): {body[:100]!r}")


def keep_alive(c: int, n: int, port: int, ctx: ssl.SSLContext, proxy: tuple[int, str] | None,
               meter: Callable[[], float] | None = None) -> tuple[float, list[float], float]:
    """(req/s, latencies, CPU seconds) of c warm keep-alive clients making n requests in all. The CPU is
    `meter()` (a process's CPU time, _common.process_cpu) over the timed requests only: the clients' connections, TLS
    handshakes and first requests come before (a connection's cost is measured on its own, in 3.)."""
    per = n // c
    lat: list[list[float]] = [[] for _ in range(c)]
    errors: list[BaseException] = []
    clients = [Client(port, ctx, proxy) for _ in range(c)]
    for client in clients:  # warm: the first request pays for connections and caches
        check(client.get(), proxy is not None)
    start_line = threading.Barrier(c + 1)

    def one(i: int) -> None:
        client, out = clients[i], lat[i]
        try:
            start_line.wait()
            for _ in range(per):
                t0 = time.perf_counter()
                body = client.get()
                out.append(time.perf_counter() - t0)
                check(body, proxy is not None)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(c)]
    for t in threads:
        t.start()
    cpu = meter() if meter is not None else 0.0
    start_line.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if meter is not None:
        cpu = meter() - cpu
    for client in clients:
        client.close()
    if errors:
        raise errors[0]
    return per * c / elapsed, [x for xs in lat for x in xs], cpu


def burst(c: int, port: int, ctx: ssl.SSLContext, proxy: tuple[int, str] | None) -> list[float]:
    """c clients connecting at once: each one's time for TCP (+ CONNECT) + TLS + one GET."""
    times: list[float] = [0.0] * c
    errors: list[BaseException] = []
    gate = threading.Barrier(c)

    def one(i: int) -> None:
        try:
            gate.wait()
            t0 = time.perf_counter()
            client = Client(port, ctx, proxy)
            check(client.get(), proxy is not None)
            times[i] = time.perf_counter() - t0
            client.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return times


def per_connection(n: int, port: int, ctx: ssl.SSLContext, proxy: tuple[int, str] | None,
                   resume: bool) -> float:
    """req/s with a new TLS connection per request (one after the other)."""
    session = None
    t0 = time.perf_counter()
    for _ in range(n):
        client = Client(port, ctx, proxy, session if resume else None)
        check(client.get(), proxy is not None)
        if resume:
            session = client.sock.session
        client.close()
    return n / (time.perf_counter() - t0)


# -- the daemon ----------------------------------------------------------------------------------------


def certificates(prefix: str) -> tuple[str, str, str, str]:
    """(folder, CA file, cert file, key file): a test CA and a leaf for 127.0.0.1, in a new folder."""
    import trustme

    ca = trustme.CA()
    folder = tempfile.mkdtemp(prefix=prefix)
    ca_path = os.path.join(folder, "ca.pem")
    ca.cert_pem.write_to_path(ca_path)
    leaf = ca.issue_cert("127.0.0.1")
    cert_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    leaf.cert_chain_pems[0].write_to_path(cert_path)
    leaf.private_key_pem.write_to_path(key_path)
    return folder, ca_path, cert_path, key_path


class Daemon:
    def __init__(self, sig: str, upstream_url: str, ca_path: str, env: dict[str, str]) -> None:
        self.sig = sig
        self.home = tempfile.mkdtemp(prefix="sig-speed-")
        self.env = dict(os.environ, SIG_HOME=self.home, **env)
        run = lambda *a, **k: subprocess.run([sig, *a], env=self.env, capture_output=True, check=True, **k)  # noqa: E731
        run("init", "--yes")
        run("login", upstream_url, "--token-stdin", "--as", "echo", input=TOKEN.encode())
        cfg = os.path.join(self.home, "config.yaml")
        with open(cfg) as fh:
            text = fh.read().replace("    strategy: api-token\n",
                                     f"    strategy: api-token\n    caFile: {ca_path}\n", 1)
        with open(cfg, "w") as fh:
            fh.write(text)
        run("proxy", "start", "--port", "0")
        self.port, self.auth, ctx, self.pid = proxy_endpoint(run("proxy", "env", "--format", "json").stdout,
                                                             self.home)
        self.ctx: ssl.SSLContext = ctx  # type: ignore[assignment]

    def cpu(self) -> float:
        return process_cpu(self.pid)

    def rss_mib(self) -> float:
        with open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def close(self) -> None:
        subprocess.run([self.sig, "proxy", "stop"], env=self.env, capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)


def spread(xs: list[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(statistics.median(xs))} ({fmt.format(min(xs))}..{fmt.format(max(xs))})"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def main() -> int:
    if len(sys.argv) >= 4 and sys.argv[1] == "--serve-upstream":
        serve_upstream(sys.argv[2], sys.argv[3], sys.argv[4:] == ["lean"])
        return 0
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 5
    n = int(sys.argv[sys.argv.index("--requests") + 1]) if "--requests" in sys.argv else 2000
    audit = sys.argv[sys.argv.index("--audit") + 1] if "--audit" in sys.argv else "on"
    from _common import setup

    sig = setup(needs=("trustme",))
    folder, ca_path, cert_path, key_path = certificates("sig-speed-ca-")
    lean = "--lean-upstream" in sys.argv
    upstream = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve-upstream", cert_path, key_path,
                                 *(["lean"] if lean else [])], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert upstream.stdout is not None
    port = int(upstream.stdout.readline())
    load_before = os.getloadavg()
    daemon = Daemon(sig, f"https://127.0.0.1:{port}", ca_path,
                    {"SIG_PROXY_AUDIT": "off"} if audit == "off" else {})
    direct_ctx = ssl.create_default_context(cafile=ca_path)
    proxy = (daemon.port, daemon.auth)
    try:
        print(f"sig proxy vs direct: {rounds} rounds, {n} keep-alive requests per concurrency and side; "
              f"{os.cpu_count()} cpus, load average before {load_before[0]:.2f}; audit {audit}; upstream: "
              + ("lean hand-written server" if lean else "stdlib http.server echo"))
        keep_alive(8, 800, port, direct_ctx, None)  # warm both sides
        keep_alive(8, 800, port, daemon.ctx, proxy)
        results: dict[int, dict[str, list[float]]] = {}
        for r in range(rounds):
            for c in (1, 8, 50):
                got = results.setdefault(c, {k: [] for k in ("d", "p", "ratio", "cpu", "dlat", "plat")})
                order = (False, True) if r % 2 == 0 else (True, False)
                for through in order:
                    rate, lat, cpu = keep_alive(c, n, port, daemon.ctx if through else direct_ctx,
                                                proxy if through else None, daemon.cpu if through else None)
                    if through:
                        got["cpu"].append(cpu / (n // c * c) * 1e6)
                        got["p"].append(rate)
                        got["plat"] += lat
                    else:
                        got["d"].append(rate)
                        got["dlat"] += lat
                got["ratio"].append(got["p"][-1] / got["d"][-1])
        print("1. keep-alive GETs (median (min..max) over rounds)")
        for c, got in results.items():
            added99 = (pct(got["plat"], 0.99) - pct(got["dlat"], 0.99)) * 1000
            print(f"  c={c:<2}  direct {spread(got['d'], '{:.0f}')} req/s   proxied {spread(got['p'], '{:.0f}')} req/s"
                  f"   ratio {spread(got['ratio'])}   proxy CPU {spread(got['cpu'], '{:.0f}')} µs/request")
            print(f"        latency p50 direct {statistics.median(got['dlat']) * 1000:.2f} ms, proxied "
                  f"{statistics.median(got['plat']) * 1000:.2f} ms; p99 direct {pct(got['dlat'], 0.99) * 1000:.2f} ms,"
                  f" proxied {pct(got['plat'], 0.99) * 1000:.2f} ms (added p99 {added99:.2f} ms)")
            # The proxy's CPU per request moves with the upstream's pace (a proxy kept busy handles several
            # events per wake-up; one waiting on a slow upstream pays a wake-up for nearly each): by CPU.
            rounds_by_cpu = sorted(zip(got["cpu"], got["p"], strict=True))
            print("        rounds by proxy CPU: " + ", ".join(f"{cpu:.0f} µs at {rate:.0f} req/s"
                                                           for cpu, rate in rounds_by_cpu))

        bursts: dict[str, list[float]] = {"d": [], "p": []}
        p99s: dict[str, list[float]] = {"d": [], "p": []}
        for r in range(rounds):
            for through in ((False, True) if r % 2 == 0 else (True, False)):
                times = burst(50, port, daemon.ctx if through else direct_ctx, proxy if through else None)
                key = "p" if through else "d"
                bursts[key] += times
                p99s[key].append(pct(times, 0.99))
            time.sleep(0.2)
        ratios = [p / d for p, d in zip(p99s["p"], p99s["d"], strict=True)]
        print("2. 50 clients connecting at once (TCP + TLS + one GET each)")
        print(f"  direct  p50 {statistics.median(bursts['d']) * 1000:.1f} ms  p99 {spread([x * 1000 for x in p99s['d']], '{:.1f}')} ms")
        print(f"  proxied p50 {statistics.median(bursts['p']) * 1000:.1f} ms  p99 {spread([x * 1000 for x in p99s['p']], '{:.1f}')} ms"
              f"   p99 ratio {spread(ratios)}")

        print("3. a new TLS connection per request (one client, one after the other)")
        k = max(100, n // 10)
        for resume in (False, True):
            d, p, cpu = [], [], []
            for r in range(rounds):
                for through in ((False, True) if r % 2 == 0 else (True, False)):
                    before = daemon.cpu()
                    rate = per_connection(k, port, daemon.ctx if through else direct_ctx,
                                          proxy if through else None, resume)
                    if through:
                        p.append(rate)
                        cpu.append((daemon.cpu() - before) / k * 1e6)
                    else:
                        d.append(rate)
            what = "client resumes its TLS session" if resume else "full handshakes"
            print(f"  {what:31} direct {spread(d, '{:.0f}')} req/s   proxied {spread(p, '{:.0f}')} req/s   ratio "
                  f"{spread([a / b for a, b in zip(p, d, strict=True)])}   proxy CPU {spread(cpu, '{:.0f}')} µs/connection")
        load_after = os.getloadavg()
        print(f"daemon RSS {daemon.rss_mib():.1f} MiB; load average after {load_after[0]:.2f} "
              f"(before {load_before[0]:.2f}; above ~1 the machine was busy with other work too)")
    finally:
        daemon.close()
        upstream.terminate()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
