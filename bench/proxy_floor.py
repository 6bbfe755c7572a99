#!/usr/bin/env python3
"""The floor under `sig proxy`'s CPU per request: a feature-free relay on sig's own event loop, measured
side by side with `sig proxy` and direct, in one run (issue: proxy speed).

The relay (`--serve-relay`, its own process like the daemon) uses sig's `proxy.loop.Loop` and
`proxy.streams.Stream` (non-blocking `ssl.SSLSocket`s on edge-triggered epoll, handshakes in worker
threads) and does only what every proxied request through sig needs at the least: answer CONNECT, TLS
with the client and with the upstream (verified), find the end of each request head, add an
Authorization header, read a Content-Length response, mask the token in it (`bytes.replace`) with the
length fixed, write it back. No policy, no routes, no parsing beyond that, no audit, no limits, no
redaction engine, no logs, no error answers. Whatever sig spends beyond this relay is what its
features and guarantees cost; what the relay spends is the loop, TLS and the kernel on this machine.

A second relay does the same on uvloop (`--serve-uvrelay`; asyncio protocols on libuv, TLS in uvloop's
compiled SSL protocol over memory BIOs: one read per burst of records, where an `ssl.SSLSocket` reads
each record's header and body separately). It is the floor of an event loop written in C on this
machine, as the issue that asked for these figures measured it. It is not sig's design: uvloop does a
TLS handshake's public-key work on the loop thread, where every other connection waits for it; sig does
it in worker threads beside the loop (bench/proxy_speed.py's 50-client burst). It needs `uvloop`
(installed into bench/.deps once, as the other bench packages; `--no-uvloop` leaves it out).

Same upstream, clients and checks as bench/proxy_speed.py (every answer must carry "Bearer ****" and
never the token). Usage: python bench/proxy_floor.py [--rounds 5] [--requests 2000] [--lean-upstream]
[--no-uvloop]
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import subprocess
import sys
import threading
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import proxy_speed as speed  # (this folder, after the path above)
from _common import process_cpu


def _relay_parts(certfile: str, keyfile: str, cafile: str) -> tuple[ssl.SSLContext, ssl.SSLContext, bytes, bytes,
                                                                    re.Pattern[bytes]]:
    """What both relays use: (TLS context towards clients, TLS context towards the upstream, the header line
    to add with the head's end, the token to mask, a Content-Length finder)."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certfile, keyfile)
    client_ctx = ssl.create_default_context(cafile=cafile)
    token = speed.TOKEN.encode()
    return (server_ctx, client_ctx, b"authorization: Bearer " + token + b"\r\n\r\n", token,
            re.compile(rb"(?i)\r\ncontent-length: *([0-9]+)"))


def serve_relay(certfile: str, keyfile: str, cafile: str, upstream_port: int) -> None:
    """`--serve-relay CERT KEY CA UPSTREAM_PORT`: print the port, then relay until stdin closes."""
    from sigcli.proxy.loop import INFINITE, Loop
    from sigcli.proxy.streams import READ_SIZE, Stream, nodelay

    server_ctx, client_ctx, auth, token, length_re = _relay_parts(certfile, keyfile, cafile)
    loop = Loop(workers=8)
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    listener.setblocking(False)
    print(listener.getsockname()[1], flush=True)

    async def upstream() -> Stream:
        sock = socket.socket()
        sock.setblocking(False)
        up = Stream(loop, sock, 60.0)
        if sock.connect_ex(("127.0.0.1", upstream_port)):
            await loop.wait_writable(up.watch, loop.now + 10)
        nodelay(sock)
        await up.start_tls(client_ctx, server_side=False, deadline=loop.now + 10, server_hostname="127.0.0.1")
        return up

    async def serve(client: Stream) -> None:
        try:
            buf = b""
            while b"\r\n\r\n" not in buf:
                data = await client.recv(READ_SIZE, loop.now + 60)
                if not data:
                    return
                buf += data
            await client.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await client.start_tls(server_ctx, server_side=True, deadline=loop.now + 10)
            up = await upstream()
            cbuf = ubuf = b""
            while True:
                end = cbuf.find(b"\r\n\r\n")
                while end == -1:
                    data = await client.recv(READ_SIZE, loop.now + 60)
                    if not data:
                        return
                    cbuf += data
                    end = cbuf.find(b"\r\n\r\n")
                head, cbuf = cbuf[:end + 2], cbuf[end + 4:]  # GETs: no body
                await up.send(head + auth)
                end = ubuf.find(b"\r\n\r\n")
                while end == -1:
                    data = await up.recv(READ_SIZE, loop.now + 60)
                    if not data:
                        return
                    ubuf += data
                    end = ubuf.find(b"\r\n\r\n")
                m = length_re.search(ubuf, 0, end + 2)
                if m is None:
                    return
                total = end + 4 + int(m.group(1))
                while len(ubuf) < total:
                    data = await up.recv(READ_SIZE, loop.now + 60)
                    if not data:
                        return
                    ubuf += data
                body = ubuf[end + 4:total].replace(token, b"****")
                out = ubuf[:m.start(1)] + str(len(body)).encode() + ubuf[m.end(1):end + 4] + body
                ubuf = ubuf[total:]
                await client.send(out)
        except OSError:
            return
        finally:
            client.close()

    async def accept() -> None:
        watch = loop.watch(listener.fileno())
        while True:
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                await loop.wait_readable(watch, INFINITE)
                continue
            nodelay(sock)
            loop.spawn(serve(Stream(loop, sock, 60.0)), "client")

    def stop_at_eof() -> None:
        sys.stdin.read()
        loop.stop()

    loop.spawn(accept(), "accept")
    threading.Thread(target=stop_at_eof, daemon=True).start()
    loop.run()


def serve_uvrelay(certfile: str, keyfile: str, cafile: str, upstream_port: int) -> None:
    """`--serve-uvrelay CERT KEY CA UPSTREAM_PORT`: serve_relay's job on uvloop (callbacks, no coroutine
    per request): print the port, then relay until stdin closes."""
    import asyncio

    from _common import DEPS

    sys.path.append(str(DEPS))
    import uvloop

    server_ctx, client_ctx, auth, token, length_re = _relay_parts(certfile, keyfile, cafile)

    class Up(asyncio.Protocol):
        def __init__(self, down: Down) -> None:
            self.down = down
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            buf = self.buf + data if self.buf else data
            while True:
                end = buf.find(b"\r\n\r\n")
                m = length_re.search(buf, 0, end + 2) if end != -1 else None
                if m is None:
                    break
                total = end + 4 + int(m.group(1))
                if len(buf) < total:
                    break
                body = buf[end + 4:total].replace(token, b"****")
                self.down.transport.write(buf[:m.start(1)] + str(len(body)).encode() + buf[m.end(1):end + 4]
                                          + body)
                buf = buf[total:]
            self.buf = buf

        def connection_lost(self, exc: Exception | None) -> None:
            self.down.transport.close()

    class Down(asyncio.Protocol):
        def __init__(self) -> None:
            self.buf = b""
            self.tunnel = False
            self.up: Any = None
            self.waiting: list[bytes] = []

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: Any = transport  # (uvloop's: not asyncio.Transport subclasses)

        def data_received(self, data: bytes) -> None:
            buf = self.buf + data if self.buf else data
            if not self.tunnel:
                if b"\r\n\r\n" in buf:
                    self.tunnel = True
                    self.transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    asyncio.get_running_loop().create_task(self.open())
                    buf = b""
                self.buf = buf
                return
            while True:
                end = buf.find(b"\r\n\r\n")
                if end == -1:
                    break
                message, buf = buf[:end + 2] + auth, buf[end + 4:]  # GETs: no body
                if self.up is None:
                    self.waiting.append(message)
                else:
                    self.up.write(message)
            self.buf = buf

        async def open(self) -> None:
            loop = asyncio.get_running_loop()
            self.transport = await loop.start_tls(self.transport, self, server_ctx, server_side=True)
            up, _ = await loop.create_connection(lambda: Up(self), "127.0.0.1", upstream_port, ssl=client_ctx,
                                                 server_hostname="127.0.0.1")
            self.up = up
            for message in self.waiting:
                up.write(message)
            self.waiting = []

        def connection_lost(self, exc: Exception | None) -> None:
            if self.up is not None:
                self.up.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Down, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        done = loop.create_future()
        threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(done.set_result, None)),
                         daemon=True).start()
        await done

    uvloop.run(main())


class Relay:
    def __init__(self, python: str, cert: str, key: str, ca: str, upstream_port: int,
                 kind: str = "--serve-relay") -> None:
        self.proc = subprocess.Popen([python, os.path.abspath(__file__), kind, cert, key, ca,
                                      str(upstream_port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():  # (it said why on stderr)
            self.proc.kill()
            raise SystemExit(f"bench: the relay ({kind}) did not start")
        self.port = int(line)
        self.pid = self.proc.pid
        self.auth = "Basic none"

    def cpu(self) -> float:
        return process_cpu(self.pid)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def main() -> int:
    if len(sys.argv) >= 6 and sys.argv[1] in ("--serve-relay", "--serve-uvrelay"):
        serve = serve_relay if sys.argv[1] == "--serve-relay" else serve_uvrelay
        serve(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return 0
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 5
    n = int(sys.argv[sys.argv.index("--requests") + 1]) if "--requests" in sys.argv else 2000
    from _common import setup

    with_uv = "--no-uvloop" not in sys.argv
    sig = setup(needs=("trustme", "uvloop") if with_uv else ("trustme",))
    folder, ca_path, cert, key = speed.certificates("sig-floor-")
    lean = "--lean-upstream" in sys.argv
    upstream = subprocess.Popen([sys.executable, speed.__file__, "--serve-upstream", cert, key,
                                 *(["lean"] if lean else [])], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert upstream.stdout is not None
    port = int(upstream.stdout.readline())
    load_before = os.getloadavg()
    direct_ctx = ssl.create_default_context(cafile=ca_path)
    sides: dict[str, tuple[speed.Daemon | Relay, ssl.SSLContext, tuple[int, str]]] = {}
    try:  # (each side is stopped in the end, also when a later one fails to start)
        daemon = speed.Daemon(sig, f"https://127.0.0.1:{port}", ca_path, {})
        sides["sig"] = (daemon, daemon.ctx, (daemon.port, daemon.auth))
        for name, kind in (("relay", "--serve-relay"), *([("uvloop relay", "--serve-uvrelay")] if with_uv else [])):
            relay = Relay(sys.executable, cert, key, ca_path, port, kind)
            sides[name] = (relay, direct_ctx, (relay.port, relay.auth))
        print(f"sig proxy and feature-free relays ({', '.join(name for name in sides if name != 'sig')}) vs direct: "
              f"{rounds} rounds, {n} keep-alive "
              f"requests per concurrency and side; load average before {load_before[0]:.2f}; upstream: "
              + ("lean hand-written server" if lean else "stdlib http.server echo"))
        for _proc, ctx, proxy in sides.values():
            speed.keep_alive(8, 800, port, ctx, proxy)
        got: dict[tuple[int, str], list[float]] = {}
        for r in range(rounds):
            for c in (1, 8, 50):
                direct, _, _ = speed.keep_alive(c, n, port, direct_ctx, None)
                for name in (list(sides) if r % 2 == 0 else list(reversed(sides))):
                    proc, ctx, proxy = sides[name]
                    rate, _, cpu = speed.keep_alive(c, n, port, ctx, proxy, proc.cpu)
                    got.setdefault((c, name + " cpu"), []).append(cpu / (n // c * c) * 1e6)
                    got.setdefault((c, name + " ratio"), []).append(rate / direct)
        for c in (1, 8, 50):
            print(f"  c={c:<2} " + "   ".join(
                f"{name}: ratio {speed.spread(got[(c, name + ' ratio')])} CPU "
                f"{speed.spread(got[(c, name + ' cpu')], '{:.0f}')} µs/request" for name in sides))
        print(f"load average after {os.getloadavg()[0]:.2f} (before {load_before[0]:.2f})")
        print("  (medians (min..max) over rounds)")
    finally:
        for proc, _ctx, _proxy in sides.values():
            proc.close()
        upstream.terminate()
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
