"""The proxy loop's pieces behind the keep-alive shortcuts (issue 26), on real sockets: a read that waits
for the edge first only when nothing is there (Stream.recv's `reply`), and a task whose end (an exception
included) is handed to the task that joins it (Loop.spawn's `hand_over`)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from harness.loop_rig import Running
from sigcli.proxy.loop import INFINITE
from sigcli.proxy.streams import Stream


@pytest.fixture
def pair(running: Running) -> Iterator[tuple[Stream, socket.socket]]:
    """A Stream on the loop (one end of a socket pair) and the other end, a peer the test writes with."""
    a, b = socket.socketpair()
    stream = Stream(running.loop, a, 5.0)
    try:
        yield stream, b
    finally:
        running.run(lambda: _close(stream))
        b.close()


def test_a_reply_read_takes_bytes_already_there_without_a_new_edge(running: Running,
                                                                    pair: tuple[Stream, socket.socket]) -> None:
    stream, b = pair
    loop = running.loop
    b.sendall(b"one")

    async def first() -> bytes:
        await loop.wait_readable(stream.watch, loop.now + 5)  # the edge taken, as a woken reader would
        return await stream.recv(1, loop.now + 5)  # one byte: the rest stays in the kernel

    assert running.run(first) == b"o"

    async def reply() -> bytes:
        # No edge comes for "ne" any more (it arrived before): the look into the kernel finds it.
        return await stream.recv(100, loop.now + 2, True)

    assert running.run(reply) == b"ne"


def test_a_reply_read_sees_an_end_that_came_with_the_last_bytes(running: Running) -> None:
    a, b = socket.socketpair()
    loop = running.loop
    try:
        b.sendall(b"last")
        b.shutdown(socket.SHUT_WR)  # the end, counted by no byte in the kernel
        stream = Stream(loop, a, 5.0)

        async def first() -> bytes:
            await loop.sleep(0.05)  # the bytes and the end: one event, kept as the watch's flags
            await loop.wait_readable(stream.watch, loop.now + 5)  # that edge taken, as a woken reader would
            return await stream.recv(100, loop.now + 5)

        assert running.run(first) == b"last"

        async def reply() -> bytes:
            return await stream.recv(100, loop.now + 2, True)

        assert running.run(reply) == b""  # at once, not after the 2 s deadline
    finally:
        running.run(lambda: _close(stream))
        b.close()


def test_a_reply_read_waits_for_bytes_that_come_later(running: Running, pair: tuple[Stream, socket.socket]) -> None:
    stream, b = pair
    loop = running.loop
    timer = threading.Timer(0.1, lambda: b.sendall(b"later"))
    timer.start()

    async def reply() -> bytes:
        return await stream.recv(100, loop.now + 5, True)

    assert running.run(reply) == b"later"
    timer.join()


def test_the_inline_reply_wait_then_recv_now_takes_bytes_there_and_waits_for_later_ones(
        running: Running, pair: tuple[Stream, socket.socket]) -> None:
    # The form the tunnel loop and the upstream answer use (no coroutine of Stream.recv on the hot path).
    stream, b = pair
    loop = running.loop
    b.sendall(b"one")

    async def first() -> bytes | None:
        await loop.wait_readable(stream.watch, loop.now + 5)  # the edge taken, as a woken reader would
        return stream.recv_now(1)

    assert running.run(first) == b"o"

    async def inline() -> bytes | None:
        await stream.reply_wait(loop.now + 2)  # "ne" is in the kernel: no wait for an edge that never comes
        return stream.recv_now(100)

    assert running.run(inline) == b"ne"
    timer = threading.Timer(0.1, lambda: b.sendall(b"later"))
    timer.start()
    assert running.run(inline) == b"later"
    timer.join()


def test_recv_now_on_a_stream_closed_under_it_says_so_like_recv(running: Running,
                                                                pair: tuple[Stream, socket.socket]) -> None:
    stream, _b = pair

    async def closed_read() -> bytes | None:
        stream.close()
        return stream.recv_now(100)

    with pytest.raises(OSError) as caught:  # ConnectionAbortedError, or the socket's own EBADF
        running.run(closed_read)
    assert not isinstance(caught.value, ValueError)


async def _close(stream: Stream) -> None:
    stream.close()


def test_a_handed_over_error_reaches_the_joiner_and_is_not_logged(running: Running) -> None:
    loop = running.loop

    async def failing() -> None:
        await loop.sleep(0.01)
        raise ConnectionResetError("gone")

    async def parent() -> BaseException | None:
        inner = loop.spawn(failing(), "inner", hand_over=True)
        await loop.join(inner, deadline=INFINITE)
        return inner.error

    error = running.run(parent)
    assert isinstance(error, ConnectionResetError)
    assert not running.logged  # the joiner decides what to say about it

    async def unhanded() -> bool:
        inner = loop.spawn(failing(), "inner")
        await loop.join(inner, deadline=INFINITE)
        return inner.error is None

    assert running.run(unhanded)
    assert running.logged and "ConnectionResetError" in running.logged[0]
