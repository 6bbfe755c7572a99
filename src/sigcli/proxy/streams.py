"""Byte streams on the proxy's loop: a non-blocking TCP socket, TLS on a non-blocking `ssl.SSLSocket`
(one C call per read or write: OpenSSL does the socket I/O), and TLS through memory BIOs for the one case
that needs them (a client whose ClientHello arrived together with its CONNECT head).

A stream tries each operation first and parks its task on the loop only when the operation would block.
Times are absolute deadlines on the loop's clock (`Loop.now` + seconds). Errors: TimeoutError when a
deadline passes, OSError (ssl.SSLError included) when the connection fails; recv() returns b"" at the end
of the stream (a TLS close_notify or a TCP FIN; an unclean TLS end counts as an end too, as before).

Handshakes: the step of a TLS handshake that does the public-key work (the server's answer to a
ClientHello, the client's check of the server's certificate chain) runs in a worker thread
(`Loop.to_thread`); the other steps are cheap and run on the loop. CPython releases the GIL inside
OpenSSL, so handshakes of several connections proceed in parallel with the loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import ssl
import termios
from typing import TYPE_CHECKING, Any

from .loop import NOTHING, Loop, Watch

if TYPE_CHECKING:
    from collections.abc import Awaitable

READ_SIZE = 64 * 1024  # below malloc's mmap threshold: every recv allocates a buffer of this size
LINGER_SECONDS = 2.0
LINGER_BYTES = 1024 * 1024

_WantRead = ssl.SSLWantReadError
_WantWrite = ssl.SSLWantWriteError
_TLSEnd = (ssl.SSLZeroReturnError, ssl.SSLEOFError)
_ioctl = fcntl.ioctl
_FIONREAD = termios.FIONREAD  # bytes waiting in a socket's receive queue (the end of the stream not counted)
_ZERO = bytes(4)


def nodelay(sock: socket.socket) -> None:
    """Heads and bodies leave in one write each: Nagle would only add a delayed-ACK wait."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Stream:
    """A connected non-blocking socket registered with the loop: plain TCP, or TLS once `start_tls`-ed
    (the same file descriptor: the watch stays)."""

    __slots__ = ("_count", "_pending", "_read", "_write", "closed", "loop", "send_timeout", "sock", "tls", "watch")

    def __init__(self, loop: Loop, sock: socket.socket, send_timeout: float) -> None:
        sock.setblocking(False)
        self.loop = loop
        self.sock: socket.socket = sock
        self.watch: Watch = loop.watch(sock.fileno())
        self.tls = False
        self.closed = False
        self.send_timeout = send_timeout
        self._read: Any = sock.recv
        self._write: Any = sock.send
        self._pending: Any = None  # (TLS) the SSL object's pending(), once start_tls made one
        self._count = bytearray(4)  # FIONREAD's answer, written in place: no new bytes object per look

    # -- reading -------------------------------------------------------------------------------------

    async def recv(self, n: int, deadline: float, reply: bool = False) -> bytes:
        """Up to n bytes; b"" at the end. TimeoutError past `deadline`.

        `reply`: the caller just sent something this is the answer to, so usually nothing is there yet:
        when the kernel holds no byte for this socket (and OpenSSL none, and the peer has not closed),
        wait for the next edge before the first read instead of a read that fails (a raised
        SSLWantReadError costs more than the ioctl that tells). Whatever arrives after the look raises
        an edge, so the wait cannot miss it."""
        read = self._read
        if reply:
            await self.reply_wait(deadline)
        while True:
            try:
                return read(n)  # type: ignore[no-any-return]
            except (BlockingIOError, _WantRead):
                await self.loop.wait_readable(self.watch, deadline)
            except _WantWrite:
                await self.loop.wait_writable(self.watch, deadline)
            except _TLSEnd:
                return b""
            except ValueError:  # closed under us
                raise ConnectionAbortedError("the connection was closed") from None

    def reply_wait(self, deadline: float) -> Awaitable[None]:
        """`await` it before recv_now() where recv(reply=True) would wait: the wait for the answer to what
        was just sent, as an awaitable of the loop (no coroutine of its own on the hot path). Returns at
        once when something may be there; recv_now() may still find nothing (then recv() waits)."""
        if self._nothing_in():
            return self.loop.wait_readable(self.watch, deadline)
        return NOTHING

    def _nothing_in(self) -> bool:
        """Nothing to read: no edge kept, no end seen, no decrypted byte in OpenSSL, none in the kernel."""
        w = self.watch
        if w.rflag or w.ended or (self.tls and self._pending()):
            return False
        count = self._count
        try:
            _ioctl(w.fd, _FIONREAD, count, True)
        except OSError:
            return False
        return count == _ZERO

    def recv_now(self, n: int) -> bytes | None:
        """What can be read without waiting: bytes, b"" at the end, None when nothing is there."""
        try:
            return self._read(n)  # type: ignore[no-any-return]
        except (BlockingIOError, _WantRead, _WantWrite):
            return None
        except _TLSEnd:
            return b""
        except ValueError:  # closed under us (as recv())
            raise ConnectionAbortedError("the connection was closed") from None

    def pending(self) -> bool:
        """Decrypted bytes already inside OpenSSL (a read returns them without the socket)."""
        return self.tls and bool(self.sock.pending())  # type: ignore[attr-defined]

    async def readable(self, timeout: float) -> bool:
        """Whether something (bytes or the end) can be read, waiting up to `timeout` seconds."""
        if self.pending():
            return True
        try:  # bytes already in the kernel raise no new edge: look before waiting for one
            socket.socket.recv(self.sock, 1, socket.MSG_PEEK)
            return True
        except BlockingIOError:
            pass
        except OSError:
            return True
        try:
            await self.loop.wait_readable(self.watch, self.loop.now + timeout)
        except TimeoutError:
            return False
        return True

    def stale(self) -> bool:
        """An idle keep-alive connection was signalled readable since `mark_idle()`: an EOF, an alert or
        stray bytes, so it cannot carry another request."""
        return self.watch.rflag or self.closed

    def mark_idle(self) -> None:
        """Forget readiness seen so far: the connection now waits in a pool, and stale() watches it."""
        self.watch.rflag = False

    # -- writing -------------------------------------------------------------------------------------

    def send_now(self, data: bytes) -> int:
        """How much of `data` went out without waiting (TLS: all of it or nothing); send() the rest. Saves
        the coroutine of send() for the usual write that the kernel takes at once."""
        if not data:
            return 0
        try:
            if self.tls:
                self._write(data)
                return len(data)
            return self._write(data)  # type: ignore[no-any-return]
        except (BlockingIOError, _WantWrite, _WantRead):
            return 0
        except ValueError:
            raise ConnectionAbortedError("the connection was closed") from None

    async def send(self, data: bytes) -> None:
        """All of `data`; TimeoutError when the peer takes none of it for send_timeout."""
        if not data:
            return
        write = self._write
        if self.tls:
            # OpenSSL writes all of it or asks to be called again with the same bytes
            while True:
                try:
                    write(data)
                    return
                except _WantWrite:
                    await self.loop.wait_writable(self.watch, self.loop.now + self.send_timeout)
                except _WantRead:
                    await self.loop.wait_readable(self.watch, self.loop.now + self.send_timeout)
                except ValueError:
                    raise ConnectionAbortedError("the connection was closed") from None
        view = memoryview(data)
        while True:
            try:
                sent = write(view)
            except BlockingIOError:
                sent = 0
            except ValueError:
                raise ConnectionAbortedError("the connection was closed") from None
            if sent == len(view):
                return
            view = view[sent:]
            await self.loop.wait_writable(self.watch, self.loop.now + self.send_timeout)

    def write_eof(self) -> None:
        """TCP half-close (TLS has none: the splice closes both sides instead)."""
        if not self.tls:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)

    # -- TLS -----------------------------------------------------------------------------------------

    async def start_tls(self, ctx: ssl.SSLContext, *, server_side: bool, deadline: float,
                        server_hostname: str | None = None, session: ssl.SSLSession | None = None,
                        attrs: dict[str, Any] | None = None) -> ssl.SSLSocket:
        """Handshake on this socket; afterwards reads and writes are TLS. Raises ssl.SSLError,
        TimeoutError, OSError; the stream is then unusable (close it).

        Every step runs in a worker thread, the wrapping included: measured, each costs 30-400 µs of
        OpenSSL (setting a resumed session copies it, certificate chain checks, key shares, session
        tickets), which would stop every other connection on the loop meanwhile; the loop only waits
        for the socket between steps."""
        loop = self.loop
        raw = self.sock
        holder: list[ssl.SSLSocket] = []

        def first() -> None:
            sslsock = ctx.wrap_socket(raw, server_side=server_side, do_handshake_on_connect=False,
                                      server_hostname=server_hostname, session=session)
            for name, value in (attrs or {}).items():
                setattr(sslsock, name, value)
            holder.append(sslsock)
            sslsock._sslobj.do_handshake()  # type: ignore[attr-defined]  # (SSLSocket's own adds 2 syscalls)

        if server_side:
            await loop.wait_readable(self.watch, deadline)  # the ClientHello
        step: Any = first
        while True:
            try:
                await loop.to_thread(step)
                break
            except _WantRead:
                await loop.wait_readable(self.watch, deadline)
            except _WantWrite:
                await loop.wait_writable(self.watch, deadline)
            finally:
                if holder and self.sock is raw:
                    self.sock = holder[0]  # the SSLSocket took over the descriptor
            step = holder[0]._sslobj.do_handshake  # type: ignore[attr-defined]
        sslsock = holder[0]
        self.tls = True
        obj = sslsock._sslobj  # type: ignore[attr-defined]
        # the C methods themselves: SSLSocket.recv/send add three Python frames per call
        self._read = obj.read
        self._write = obj.write
        self._pending = obj.pending
        return sslsock

    # -- closing -------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the socket; tasks waiting on it get ConnectionAbortedError."""
        if self.closed:
            return
        self.closed = True
        self.loop.forget(self.watch)
        with contextlib.suppress(OSError):
            self.sock.close()

    def close_notify(self) -> None:
        """Send TLS close_notify without waiting for the peer's (so close-delimited bodies end cleanly for
        OpenSSL 3 clients); close() follows."""
        if self.tls and not self.closed:
            with contextlib.suppress(Exception):
                self.sock.unwrap()  # type: ignore[attr-defined]

    def shutdown(self) -> None:
        """Wake whoever waits on this socket (server close)."""
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)

    async def linger_close(self) -> None:
        """Close after a lingering read: a client that already closed costs one read; one still sending
        gets its bytes read and dropped (up to LINGER_BYTES or LINGER_SECONDS), then the close, so an
        error answer is not wiped out by the RST a close with unread input makes the kernel send."""
        if self.closed:
            return
        raw = self.sock
        try:
            socket.socket.shutdown(raw, socket.SHUT_WR)
            deadline = self.loop.now + LINGER_SECONDS
            drained = 0
            while drained < LINGER_BYTES:
                try:
                    data = socket.socket.recv(raw, READ_SIZE)
                except BlockingIOError:
                    await self.loop.wait_readable(self.watch, deadline)
                    continue
                if not data:
                    break
                drained += len(data)
        except (OSError, ValueError):
            pass
        self.close()


class BioStream:
    """TLS over a plain Stream with memory BIOs, server side: the bytes that arrived right after the
    CONNECT head (the ClientHello) are fed in first. Same interface as Stream."""

    __slots__ = ("_in", "_obj", "_out", "loop", "raw", "sni_mismatch_attr", "tls")

    def __init__(self, raw: Stream, ctx: ssl.SSLContext, expected_host: str) -> None:
        self.raw = raw
        self.loop = raw.loop
        self.tls = True
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(self._in, self._out, server_side=True)
        self._obj._sig_expected_host = expected_host  # type: ignore[attr-defined]

    @property
    def sslobj(self) -> ssl.SSLObject:
        """The TLS object (the SNI check reads what the handshake noted on it)."""
        return self._obj

    @property
    def closed(self) -> bool:
        """Whether the underlying socket is closed."""
        return self.raw.closed

    @property
    def watch(self) -> Watch:
        """The underlying socket's loop registration."""
        return self.raw.watch

    async def _flush(self) -> None:
        if self._out.pending:
            await self.raw.send(self._out.read())

    async def handshake(self, initial: bytes, deadline: float) -> None:
        """The server side of the TLS handshake, the `initial` bytes (read with the CONNECT head) first.
        Raises ssl.SSLError, TimeoutError, OSError."""
        if initial:
            self._in.write(initial)
        first = True
        while True:
            try:
                if first:
                    await self.loop.to_thread(self._obj.do_handshake)
                else:
                    self._obj.do_handshake()
                break
            except _WantRead:
                first = False
                await self._flush()
                data = await self.raw.recv(READ_SIZE, deadline)
                if not data:
                    raise ConnectionResetError("the peer closed the connection during the TLS handshake") from None
                self._in.write(data)
            except ssl.SSLError:
                with contextlib.suppress(OSError):
                    await self._flush()  # the alert
                raise
        await self._flush()

    async def recv(self, n: int, deadline: float, reply: bool = False) -> bytes:
        """Up to n decrypted bytes; b"" at the end. TimeoutError past `deadline` (`reply`: as Stream.recv)."""
        while True:
            try:
                data = self._obj.read(n)
            except _WantRead:
                if self._out.pending:
                    await self._flush()
                if self._in.eof:
                    return b""
                raw = await self.raw.recv(READ_SIZE, deadline)
                if raw:
                    self._in.write(raw)
                else:
                    self._in.write_eof()
                continue
            except _TLSEnd:
                return b""
            if self._out.pending:  # TLS 1.3 may answer while reading (key update)
                await self._flush()
            return data

    def recv_now(self, n: int) -> bytes | None:
        """What can be decrypted without waiting: bytes, b"" at the end, None when nothing is there."""
        try:
            return self._obj.read(n)
        except _WantRead:
            raw = self.raw.recv_now(READ_SIZE)
            if raw is None:
                return None
            if raw:
                self._in.write(raw)
            else:
                self._in.write_eof()
            return self.recv_now(n)
        except _TLSEnd:
            return b""

    def reply_wait(self, deadline: float) -> Awaitable[None]:
        """As Stream.reply_wait()."""
        return NOTHING if self.pending() else self.raw.reply_wait(deadline)

    def pending(self) -> bool:
        """Whether bytes wait in the BIO or inside OpenSSL (a read needs no socket)."""
        return bool(self._in.pending) or bool(self._obj.pending())

    async def readable(self, timeout: float) -> bool:
        """Whether something can be read, waiting up to `timeout` seconds."""
        if self.pending():
            return True
        return await self.raw.readable(timeout)

    def stale(self) -> bool:
        """As Stream.stale(), and bytes still buffered in TLS count too."""
        return self.pending() or self.raw.stale()

    def mark_idle(self) -> None:
        """As Stream.mark_idle()."""
        self.raw.mark_idle()

    def send_now(self, data: bytes) -> int:
        """Nothing sent here: a TLS-in-memory stream's send() may have to wait for the raw stream."""
        return 0  # (send() does it all: it may have to wait for the raw stream)

    async def send(self, data: bytes) -> None:
        """Encrypt all of `data` and send it."""
        if data:
            self._obj.write(data)  # writes everything (SSL_MODE_ENABLE_PARTIAL_WRITE is off)
            await self.raw.send(self._out.read())

    def write_eof(self) -> None:
        """No half-close in TLS: nothing to do (the splice closes both sides)."""
        return None

    def close_notify(self) -> None:
        """Send TLS close_notify, best effort and without waiting; close() follows."""
        with contextlib.suppress(Exception):
            try:
                self._obj.unwrap()
            except _WantRead:
                pass
            out = self._out.read()
            if out:
                self.raw.sock.send(out)  # best effort, non-blocking

    def close(self) -> None:
        """Close the underlying socket."""
        self.raw.close()

    def shutdown(self) -> None:
        """Wake whoever waits on the underlying socket (server close)."""
        self.raw.shutdown()

    async def linger_close(self) -> None:
        """As Stream.linger_close() on the underlying socket."""
        await self.raw.linger_close()


AnyStream = Stream | BioStream
