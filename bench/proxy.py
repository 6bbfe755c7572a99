#!/usr/bin/env python3
"""Proxy figures: keep-alive HTTPS GETs through `sig proxy` vs direct (req/s, p50/p99 added latency),
the first request to a provider host, the first TLS contact with a new host (a leaf certificate and its
key minted), throughput with the audit of injections on vs off, and with response redaction on vs off
(`redactResponses: false`) on an upstream that echoes nothing (pairs of daemons measured in alternating
rounds in the same run, so both see the same machine load). Loopback only, bounded request counts.

Usage: python bench/proxy.py [--requests 1000] [--rounds 5] [--control] [--body N]

--control starts the "on" daemons with the audit and redaction off too: the on/off figures then show the
noise floor of this machine (two identical daemons), against which a real run's figures are read.
--body N makes the upstream answer N bytes of JSON instead of 12 (redaction scans every byte).
"""

from __future__ import annotations

import http.client
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from _common import Upstream, open_tunnel, process_cpu, proxy_endpoint, start_echo_proxy  # (this folder)


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


BODY = b'{"ok": true}'
if "--body" in sys.argv:
    _n = int(sys.argv[sys.argv.index("--body") + 1])
    BODY = (b'{"items": [' + b'{"id": 12345, "name": "item name", "tags": ["a", "b"]}, ' * (_n // 50 + 1))[:_n - 2] + b"]}"


class _Upstream(Upstream):
    """The upstream every daemon here injects for: it answers BODY."""

    def __init__(self) -> None:
        super().__init__(lambda _path, _authorization: BODY)


class _Daemon:
    """A `sig proxy` in its own SIG_HOME with provider "echo" (API token) for the upstream; `env` is given
    to `sig proxy start`, so it reaches the daemon."""

    def __init__(self, sig: str, echo: _Upstream, env: dict[str, str] | None = None, redact: bool = True) -> None:
        self.sig = sig
        self.home = tempfile.mkdtemp(prefix="sig-proxy-bench-")
        self.env = dict(os.environ, SIG_HOME=self.home, **(env or {}))
        # a wildcard domain: each of its names is a host the proxy has never seen (first contact)
        start_echo_proxy(sig, self.env, echo, "tok-BENCH-PROXY-0001", entry=() if redact else ("redactResponses: false",),
                         domains=("*.bench.invalid",))
        out = subprocess.run([sig, "proxy", "env", "--format", "json"], env=self.env, capture_output=True,
                             check=True).stdout
        self.port, self.auth, ctx, self.pid = proxy_endpoint(out, self.home)
        self.ctx: ssl.SSLContext = ctx  # type: ignore[assignment]

    def cpu(self) -> float:
        """The daemon's CPU seconds so far (user + system, all threads: the audit writer included)."""
        return process_cpu(self.pid)

    def proxy(self) -> tuple[int, str]:
        return self.port, self.auth

    def audit_lines(self) -> int:
        try:
            with open(os.path.join(self.home, "audit.log"), encoding="utf-8") as fh:
                return sum(1 for line in fh if '"action":"proxy_request"' in line)
        except OSError:
            return 0

    def close(self) -> None:
        subprocess.run([self.sig, "proxy", "stop"], env=self.env, capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)


def tls_contact(daemon: _Daemon, host: str) -> float:
    """CONNECT host:443 + the TLS handshake with the proxy (its leaf for `host`), in seconds."""
    import socket

    start = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=30)
    try:
        open_tunnel(sock, f"{host}:443", daemon.auth)
        tls = daemon.ctx.wrap_socket(sock, server_hostname=host)  # verifies the leaf against sig's CA
        elapsed = time.perf_counter() - start
        tls.close()
        return elapsed
    finally:
        sock.close()


def concurrent(c: int, n: int, port: int, ctx: ssl.SSLContext, proxy: tuple[int, str]) -> float:
    """req/s of `c` keep-alive clients (threads) making n requests in all."""
    errors: list[BaseException] = []

    def one() -> None:
        try:
            run(n // c, port, ctx, proxy)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(c)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return (n // c) * c / elapsed


def _audit_costs() -> tuple[float, float]:
    """(µs the request path spends queuing an event, µs the writer spends rendering one)."""
    from sigcli.proxy.audit_events import InjectionAudit, _Render

    folder = tempfile.mkdtemp(prefix="sig-bench-audit-")
    hook = InjectionAudit(os.path.join(folder, "audit.log"), interval=600)
    render = _Render()
    item = (time.time(), ("echo",), "GET", b"127.0.0.1:8443", b"/bench?page=2", 200)
    k = 20000
    try:
        start = time.perf_counter()
        for _ in range(k):
            hook(("echo",), "GET", b"127.0.0.1:8443", b"/bench?page=2", 200)
        hook_us = (time.perf_counter() - start) / k * 1e6
        start = time.perf_counter()
        for _ in range(k):
            render(item)
        render_us = (time.perf_counter() - start) / k * 1e6
    finally:
        hook.close()
        shutil.rmtree(folder, ignore_errors=True)
    return hook_us, render_us


def _redaction_costs() -> float:
    """µs the proxy's fast path adds per injected request for redacting a clean answer like the bench's
    (the same calls server.py makes, on this run's answer head and body)."""
    import timeit

    from sigcli.core.secret_forms import secret_forms
    from sigcli.proxy import h1, redaction

    forms = tuple(sorted({f.encode() for f in secret_forms({"token": "tok-BENCH-PROXY-0001"})},
                         key=lambda f: (-len(f), f)))
    request = [(b"host", b"127.0.0.1:8443"), (b"accept-encoding", b"identity"),
               (b"authorization", b"Bearer tok-BENCH-PROXY-0001")]
    response = [(b"server", b"BaseHTTP/0.6 Python/3.11"), (b"date", b"Thu, 01 Jan 2026 00:00:00 GMT"),
                (b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]

    detector = redaction.Detector()  # one per client connection in the proxy, reused while clean

    def one() -> None:
        redaction.limit_accept_encoding(request)
        codings = redaction.content_codings(response)
        redaction.undecodable(codings)
        detector.found(forms, h1.downstream_response_headers(response), BODY)

    k = 5000
    return min(timeit.repeat(one, number=k, repeat=5)) / k * 1e6


def audit_on_off(on: _Daemon, off: _Daemon, echo: _Upstream, n: int, rounds: int, what: str = "audit of injections",
                 extra: bool = True) -> int:
    """`what` on vs off (audit of injections, response redaction); prints the figures, returns how many
    requests went through `on`.

    The machine may be shared, so each round measures the two daemons back to back (order alternating)
    and the figure is the median of the per-round ratios. CPU per request is the daemon's CPU time (the
    audit writer's thread included, _common.process_cpu), summed over all rounds. Both daemons
    have served exactly the same requests before this (a daemon's history changes its CPU per request)."""
    ratios: dict[int, list[float]] = {1: [], 8: []}
    rps: dict[tuple[str, int], list[float]] = {}
    cpu: dict[tuple[str, int], float] = {}
    count: dict[tuple[str, int], int] = {}
    sent_on = 0
    for r in range(rounds):
        for c in (1, 8):
            rate: dict[str, float] = {}
            for daemon in ((on, off) if r % 2 == 0 else (off, on)):
                name = "on" if daemon is on else "off"
                before = daemon.cpu()
                if c == 1:
                    rate[name] = n / sum(run(n, echo.port, daemon.ctx, daemon.proxy()))
                else:
                    rate[name] = concurrent(c, n, echo.port, daemon.ctx, daemon.proxy())
                time.sleep(0.3)  # (both) the writer's batch for these requests lands in this window
                done = n if c == 1 else (n // c) * c
                cpu[(name, c)] = cpu.get((name, c), 0.0) + daemon.cpu() - before
                count[(name, c)] = count.get((name, c), 0) + done
                rps.setdefault((name, c), []).append(rate[name])
                if daemon is on:
                    sent_on += done
            ratios[c].append(rate["on"] / rate["off"])
    print(f"{what} on vs off: {rounds} rounds of {n} requests per daemon and concurrency, "
          f"the two daemons back to back in each; {len(BODY)}-byte answers" + (" (CONTROL: both daemons have it off)"
                                                    if "--control" in sys.argv else ""))
    for c in (1, 8):
        ordered = sorted(ratios[c])
        c_on = cpu[("on", c)] / count[("on", c)] * 1e6
        c_off = cpu[("off", c)] / count[("off", c)] * 1e6
        print(f"  c={c}: req/s on {statistics.median(rps[('on', c)]):6.0f}, off "
              f"{statistics.median(rps[('off', c)]):6.0f}; on/off per round: median {statistics.median(ordered):.3f}"
              f" (middle half {ordered[len(ordered) // 4]:.3f}-{ordered[(3 * len(ordered)) // 4]:.3f}); "
              f"proxy CPU/request on {c_on:4.0f} µs, off {c_off:4.0f} µs ({(c_on / c_off - 1) * 100:+.1f}%)")
    if not extra:
        c_off = cpu[("off", 1)] / count[("off", 1)] * 1e6
        redact_us = _redaction_costs()
        print(f"  the redaction's own work, measured in this process: {redact_us:.2f} µs per request "
              f"(Accept-Encoding, codings, one redactor pass over header values and body) = "
              f"{redact_us / c_off * 100:.1f}% of the proxy's CPU per request at c=1")
        return sent_on
    hook_us, render_us = _audit_costs()
    c_off = cpu[("off", 1)] / count[("off", 1)] * 1e6
    print(f"  the audit's own work, measured in this process: {hook_us:.2f} µs on the request path + "
          f"{render_us:.2f} µs in the writer per request = {(hook_us + render_us) / c_off * 100:.1f}% of the "
          f"proxy's CPU per request at c=1")
    return sent_on


def main() -> int:
    n = int(sys.argv[sys.argv.index("--requests") + 1]) if "--requests" in sys.argv else 1000
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 5
    from _common import setup

    sig = setup(needs=("trustme",))
    echo = _Upstream()
    daemons: list[_Daemon] = []
    try:
        on = _Daemon(sig, echo, {"SIG_PROXY_AUDIT": "off"} if "--control" in sys.argv else None)
        daemons.append(on)
        off = _Daemon(sig, echo, {"SIG_PROXY_AUDIT": "off"})
        daemons.append(off)
        plain = _Daemon(sig, echo, {"SIG_PROXY_AUDIT": "off"}, redact="--control" in sys.argv)
        daemons.append(plain)
        direct_ctx = ssl.create_default_context(cafile=echo.ca_path)
        first_direct = run(1, echo.port, direct_ctx, None)[0]  # a new connection, full TLS handshake
        first = run(1, echo.port, on.ctx, on.proxy())[0]
        warm = run(1, echo.port, on.ctx, on.proxy())[0]
        run(2, echo.port, off.ctx, off.proxy())  # (the same history for both daemons)
        run(50, echo.port, direct_ctx, None)
        run(50, echo.port, off.ctx, off.proxy())
        run(50, echo.port, on.ctx, on.proxy())
        direct = run(n, echo.port, direct_ctx, None)
        proxied = run(n, echo.port, on.ctx, on.proxy())
        run(n, echo.port, off.ctx, off.proxy())
        sent_on = 2 + 50 + n  # requests through the daemon with the audit on (each one is injected)
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

        sent_on += audit_on_off(on, off, echo, n, rounds)
        run(52 + n + 2 + n * rounds * 2, echo.port, plain.ctx, plain.proxy())  # the same history as `off`
        audit_on_off(off, plain, echo, n, rounds, "response redaction (redactResponses)", extra=False)
        deadline = time.monotonic() + 5
        while on.audit_lines() < sent_on and time.monotonic() < deadline:
            time.sleep(0.05)
        print(f"  proxy_request lines in the audit log: {on.audit_lines()} for {sent_on} requests (audit on); "
              f"{off.audit_lines()} (audit off)")

        # first TLS contact with a host: known (leaf made earlier) vs never seen (leaf + key minted now)
        for _ in range(5):
            tls_contact(on, "warm.bench.invalid")
        known = [tls_contact(on, "warm.bench.invalid") for _ in range(30)]
        new = [tls_contact(on, f"h{i}.bench.invalid") for i in range(30)]
        k50, n50 = statistics.median(known), statistics.median(new)
        print(f"first contact: CONNECT + TLS with the proxy, median of 30: known host {k50 * 1000:.2f} ms, "
              f"never-seen host {n50 * 1000:.2f} ms (new leaf and its key: +{(n50 - k50) * 1000:.2f} ms; "
              "limit 5 ms)")
    finally:
        for daemon in daemons:
            daemon.close()
        echo.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
