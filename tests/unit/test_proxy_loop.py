"""The proxy's own event loop (proxy/loop.py, proxy/streams.py), its rotating log (proxy/logfile.py) and
the one-pass masking of whole answers (proxy/redaction.py), on real sockets and files."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.loop_rig import Running
from sigcli.core.redactor import StreamRedactor
from sigcli.core.secret_forms import secret_forms
from sigcli.proxy import redaction
from sigcli.proxy.logfile import LogFile, rotate_if_big
from sigcli.proxy.loop import INFINITE, Cancelled
from sigcli.proxy.streams import Stream


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    return a, b


def test_recv_waits_for_data_and_times_out(running: Running) -> None:
    a, b = _pair()
    loop = running.loop
    stream_box: list[Stream] = []

    async def read_one() -> bytes:
        stream = Stream(loop, a, 5)
        stream_box.append(stream)
        return await stream.recv(100, loop.now + 5)

    threading.Timer(0.1, lambda: b.sendall(b"hello")).start()
    assert running.run(read_one) == b"hello"

    async def timeout() -> float:
        start = time.monotonic()
        try:
            await stream_box[0].recv(100, loop.now + 0.2)
        except TimeoutError:
            return time.monotonic() - start
        raise AssertionError("no timeout")

    took = running.run(timeout)
    assert 0.15 <= took < 2
    b.close()
    assert running.run(lambda: stream_box[0].recv(100, loop.now + 5)) == b""  # the end
    stream_box[0].close()


def test_readiness_that_came_while_nobody_waited_is_not_lost(running: Running) -> None:
    """Edge-triggered: data that arrives while the task is busy elsewhere raises its only edge then; the
    next wait must still return (the watch keeps the flag)."""
    a, b = _pair()
    loop = running.loop

    async def scenario() -> bytes:
        stream = Stream(loop, a, 5)
        assert stream.recv_now(10) is None
        b.sendall(b"early")  # arrives while this task is not parked on the socket
        await loop.sleep(0.1)  # the loop polls meanwhile: the edge is seen with no reader
        await loop.wait_readable(stream.watch, loop.now + 2)  # must not hang
        data = stream.recv_now(10)
        stream.close()
        return data or b""

    assert running.run(scenario) == b"early"
    b.close()


def test_send_waits_for_a_slow_reader(running: Running) -> None:
    a, b = _pair()
    loop = running.loop
    payload = os.urandom(4 * 1024 * 1024)  # far more than the socket buffers hold
    got = bytearray()

    def reader() -> None:
        while len(got) < len(payload):
            time.sleep(0.001)
            got.extend(b.recv(65536))

    thread = threading.Thread(target=reader)
    thread.start()

    async def write() -> None:
        stream = Stream(loop, a, 10)
        await stream.send(payload)
        stream.close()

    running.run(write, timeout=60)
    thread.join(30)
    assert bytes(got) == payload
    b.close()


def test_to_thread_result_error_and_parallel(running: Running) -> None:
    loop = running.loop

    async def result() -> int:
        return await loop.to_thread(sum, [1, 2, 3])

    assert running.run(result) == 6

    def boom() -> None:
        raise ValueError("no")

    async def error() -> None:
        await loop.to_thread(boom)

    with pytest.raises(ValueError):
        running.run(error)

    # a blocking call in a worker does not stop the loop: a second task finishes meanwhile
    order: list[str] = []

    async def slow() -> None:
        await loop.to_thread(time.sleep, 0.3)
        order.append("slow")

    async def both() -> list[str]:
        task = loop.spawn(slow(), "slow")
        await loop.sleep(0.01)
        order.append("fast")
        await loop.join(task, deadline=loop.now + 5)
        return order

    assert running.run(both) == ["fast", "slow"]


def test_cancel_and_join_timeout(running: Running) -> None:
    loop = running.loop
    a, b = _pair()
    seen: list[str] = []

    async def parked() -> None:
        stream = Stream(loop, a, 5)
        try:
            await stream.recv(10, INFINITE)
        except Cancelled:
            seen.append("cancelled")
            raise
        finally:
            stream.close()

    async def scenario() -> list[str]:
        task = loop.spawn(parked(), "parked")
        try:
            await loop.join(task, deadline=loop.now + 0.1)
        except TimeoutError:
            seen.append("join timed out")
        loop.cancel(task)
        await loop.join(task, deadline=loop.now + 5)
        return seen

    assert running.run(scenario) == ["join timed out", "cancelled"]
    b.close()


def test_stop_cancels_what_is_left() -> None:
    r = Running()
    a, b = _pair()
    ended = threading.Event()

    async def forever() -> None:
        stream = Stream(r.loop, a, 5)
        try:
            await stream.recv(10, INFINITE)
        finally:
            stream.close()
            ended.set()

    r.loop.call_soon_threadsafe(lambda: r.loop.spawn(forever(), "forever"))
    time.sleep(0.05)
    r.loop.stop()
    r.thread.join(10)
    assert ended.is_set() and not r.thread.is_alive()
    r.loop.close()
    b.close()


# -- the rotating log ---------------------------------------------------------------------------------


def test_log_rotates_by_size_and_keeps_n(tmp_path: Path) -> None:
    path = str(tmp_path / "proxy.log")
    log = LogFile(path, max_bytes=1000, keep=2)
    for i in range(100):
        log.write(f"line {i:03d} " + "x" * 40 + "\n")
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["proxy.log", "proxy.log.1", "proxy.log.2"]  # the oldest beyond 2 are gone
    for name in names:
        assert (tmp_path / name).stat().st_size <= 1000
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    assert "line 099" in (tmp_path / "proxy.log").read_text()
    assert "line 000" not in "".join((tmp_path / n).read_text() for n in names)  # dropped, not kept forever
    # lines are whole in every file (each write is one line)
    for name in names:
        assert all(line.startswith("line ") for line in (tmp_path / name).read_text().splitlines())


def test_rotate_before_start_only_when_big(tmp_path: Path) -> None:
    path = tmp_path / "proxy.log"
    path.write_text("small\n")
    rotate_if_big(str(path), max_bytes=100)
    assert path.read_text() == "small\n" and not (tmp_path / "proxy.log.1").exists()
    path.write_text("x" * 200)
    rotate_if_big(str(path), max_bytes=100)
    assert (tmp_path / "proxy.log.1").read_text() == "x" * 200
    assert not path.exists() or path.read_text() == ""


# -- one-pass masking of a whole answer ---------------------------------------------------------------

_ALPHABET = st.sampled_from(list(b"ab%\\\"{}XYZ09 \r\n=-_+/"))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(token=st.text(alphabet="abcXYZ0129-_.~", min_size=4, max_size=24),
       pieces=st.lists(st.tuples(st.binary(max_size=12), st.integers(0, 40), st.booleans()), max_size=5))
def test_mask_message_is_what_the_stream_redactor_gives(token: str, pieces: list[tuple[bytes, int, bool]]) -> None:
    forms = tuple(sorted({f.encode() for f in secret_forms({"token": token})}, key=lambda f: (-len(f), f)))
    blob = b"HTTP/1.1 200 OK\r\n"
    for filler, cut, with_secret in pieces:
        blob += filler + (forms[cut % len(forms)][: cut + 4] if with_secret else b"")
    reference = StreamRedactor(forms)
    expected = reference.feed(blob) + reference.flush()
    detector = redaction.Detector()
    for _ in range(2):  # a reused detector gives the same answer
        got = detector.mask_message(forms, blob, b"")
        assert (blob if got is None else got) == expected
