"""A small but real SOCKS5 server (RFC 1928 CONNECT, RFC 1929 user/password) on 127.0.0.1 for tests.

It relays bytes both ways between the client and the target, and records every CONNECT (what the client
asked for: a name or an address, and who authenticated) with the bytes relayed, so a test can assert that
traffic really went through it::

    with Socks5Server(users={"u": "p"}, hosts={"app.corp.test": "127.0.0.1"}) as socks:
        ...  # networkProxy: socks5h://u:p@127.0.0.1:{socks.port}
        [conn] = socks.wait_for_connections(1)
        assert conn.atyp == "domain" and conn.host == "app.corp.test" and conn.bytes_up > 0

`hosts` is the proxy's own name resolution (socks5h sends names; the proxy resolves them): a name not in
it is answered "host unreachable", so tests never depend on real DNS.
"""

from __future__ import annotations

import contextlib
import ipaddress
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"
IDLE_TIMEOUT_S = 20.0
JOIN_TIMEOUT_S = 5.0

REP_OK, REP_FAILURE, REP_NOT_ALLOWED, REP_HOST_UNREACHABLE, REP_REFUSED = 0, 1, 2, 4, 5
REP_CMD_UNSUPPORTED, REP_ATYP_UNSUPPORTED = 7, 8


@dataclass
class Connection:
    """One CONNECT request: what the client asked for, the user it authenticated as, the outcome."""

    host: str
    port: int
    atyp: str  # "ipv4" | "ipv6" | "domain"
    user: str | None
    reply: int = REP_FAILURE
    bytes_up: int = 0  # client -> target
    bytes_down: int = 0  # target -> client
    done: bool = False


class Socks5Server:
    def __init__(self, users: dict[str, str] | None = None, hosts: dict[str, str] | None = None) -> None:
        self.users = dict(users or {})
        self.hosts = {k.lower(): v for k, v in (hosts or {}).items()}
        self.auth_failures = 0
        self._cond = threading.Condition()
        self._connections: list[Connection] = []
        self._sock = socket.create_server((LOOPBACK, 0))
        self._sock.settimeout(0.1)
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._accept_loop, name="socks5-accept", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def url(self, scheme: str = "socks5h", user: str | None = None, password: str | None = None) -> str:
        auth = f"{user}:{password}@" if user is not None else ""
        return f"{scheme}://{auth}{LOOPBACK}:{self.port}"

    @property
    def connections(self) -> list[Connection]:
        with self._cond:
            return list(self._connections)

    def wait_for_connections(self, count: int, timeout: float = 10.0, finished: bool = True) -> list[Connection]:
        """At least `count` CONNECTs (by default: whose relay has ended), or what there is after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                ready = [c for c in self._connections if c.done or not finished]
                remaining = deadline - time.monotonic()
                if len(ready) >= count or remaining <= 0:
                    return list(self._connections)
                self._cond.wait(remaining)

    # -- serving ------------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                client, _addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), name="socks5-conn", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(IDLE_TIMEOUT_S)
        try:
            with client:
                user = self._negotiate(client)
                if user is False:
                    return
                self._connect(client, user if isinstance(user, str) else None)
        except (OSError, ValueError, struct.error):
            return

    def _negotiate(self, client: socket.socket) -> str | bool | None:
        """Method selection and (when users are set) RFC 1929 authentication: the user, None, or False."""
        ver, count = _recv_exact(client, 2)
        if ver != 5:
            return False
        methods = _recv_exact(client, count)
        if self.users:
            if 2 not in methods:
                client.sendall(b"\x05\xff")
                return False
            client.sendall(b"\x05\x02")
            _ver, ulen = _recv_exact(client, 2)
            user = _recv_exact(client, ulen).decode("utf-8", "replace")
            (plen,) = _recv_exact(client, 1)
            password = _recv_exact(client, plen).decode("utf-8", "replace")
            if self.users.get(user) != password:
                with self._cond:
                    self.auth_failures += 1
                client.sendall(b"\x01\x01")
                return False
            client.sendall(b"\x01\x00")
            return user
        if 0 not in methods:
            client.sendall(b"\x05\xff")
            return False
        client.sendall(b"\x05\x00")
        return None

    def _connect(self, client: socket.socket, user: str | None) -> None:
        ver, cmd, _rsv, atyp = _recv_exact(client, 4)
        if atyp == 1:
            host, kind = str(ipaddress.IPv4Address(_recv_exact(client, 4))), "ipv4"
        elif atyp == 4:
            host, kind = str(ipaddress.IPv6Address(_recv_exact(client, 16))), "ipv6"
        elif atyp == 3:
            (length,) = _recv_exact(client, 1)
            host, kind = _recv_exact(client, length).decode("latin-1"), "domain"  # as sent, no IDNA codec
        else:
            _reply(client, REP_ATYP_UNSUPPORTED)
            return
        (port,) = struct.unpack("!H", _recv_exact(client, 2))
        record = Connection(host=host, port=port, atyp=kind, user=user)
        with self._cond:
            self._connections.append(record)
            self._cond.notify_all()
        try:
            if ver != 5 or cmd != 1:
                record.reply = REP_CMD_UNSUPPORTED
                _reply(client, record.reply)
                return
            address = self.hosts.get(host.lower()) if kind == "domain" else host
            if address is None:
                record.reply = REP_HOST_UNREACHABLE
                _reply(client, record.reply)
                return
            try:
                upstream = socket.create_connection((address, port), timeout=5)
            except OSError:
                record.reply = REP_REFUSED
                _reply(client, record.reply)
                return
            with upstream:
                record.reply = REP_OK
                _reply(client, REP_OK, upstream.getsockname())
                self._relay(client, upstream, record)
        finally:
            with self._cond:
                record.done = True
                self._cond.notify_all()

    def _relay(self, client: socket.socket, upstream: socket.socket, record: Connection) -> None:
        deadline = time.monotonic() + IDLE_TIMEOUT_S
        pair = [client, upstream]
        while time.monotonic() < deadline and not self._closing.is_set():
            readable, _, _ = select.select(pair, [], [], 0.1)
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                deadline = time.monotonic() + IDLE_TIMEOUT_S
                if sock is client:
                    upstream.sendall(data)
                    record.bytes_up += len(data)
                else:
                    client.sendall(data)
                    record.bytes_down += len(data)

    def close(self) -> None:
        self._closing.set()
        with contextlib.suppress(OSError):
            self._sock.close()
        self._thread.join(JOIN_TIMEOUT_S)
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT_S)

    def __enter__(self) -> Socks5Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ValueError("the client closed the connection mid-handshake")
        data += chunk
    return data


def _reply(client: socket.socket, code: int, bound: tuple[str, int] | tuple[str, int, int, int] = ("0.0.0.0", 0)
           ) -> None:
    address = ipaddress.ip_address(bound[0])
    atyp = 1 if address.version == 4 else 4
    client.sendall(bytes([5, code, 0, atyp]) + address.packed + struct.pack("!H", bound[1]))
