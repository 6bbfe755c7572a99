"""The outside end of the sandbox's channel accepts exactly one listening loopback TCP socket (real
sockets, no sandbox: the inside end is driven by hand as a hostile starter would)."""

from __future__ import annotations

import array
import os
import socket

import pytest

from sigcli.core.errors import SigError
from sigcli.sandbox.channel import Channel


def _send(channel: Channel, data: bytes, fds: list[int]) -> None:
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    channel.inside.sendmsg([data], anc)


def test_a_listening_loopback_socket_and_the_senders_pid() -> None:
    channel = Channel()
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        _send(channel, b"L", [listener.fileno()])
        got, pid = channel.receive()
        assert got.getsockname() == listener.getsockname() and pid == os.getpid()
        got.close()
    finally:
        listener.close()
        channel.close()


def _refused(data: bytes, make: list[socket.socket | int]) -> str:
    channel = Channel()
    fds = [m.fileno() if isinstance(m, socket.socket) else m for m in make]
    try:
        _send(channel, data, fds)
        with pytest.raises(SigError) as err:
            channel.receive()
        return err.value.message
    finally:
        channel.close()
        for m in make:
            m.close() if isinstance(m, socket.socket) else os.close(m)


def test_anything_else_is_refused() -> None:
    lst = socket.create_server(("127.0.0.1", 0))
    assert "something other" in _refused(b"X", [lst])
    assert "something other" in _refused(b"L", [])
    two = [socket.create_server(("127.0.0.1", 0)), socket.create_server(("127.0.0.1", 0))]
    assert "something other" in _refused(b"L", two)  # type: ignore[arg-type]
    assert "not a listening" in _refused(b"L", [socket.socket(socket.AF_INET, socket.SOCK_STREAM)])
    assert "not a listening" in _refused(b"L", [socket.socket(socket.AF_INET, socket.SOCK_DGRAM)])
    assert "not a listening" in _refused(b"L", [socket.create_server(("127.0.0.2", 0))])
    r, w = os.pipe()
    os.close(w)
    assert "not a listening" in _refused(b"L", [r])
    a, b = socket.socketpair()
    b.close()
    assert "not a listening" in _refused(b"L", [a])


def test_the_sandbox_ending_first() -> None:
    channel = Channel()
    channel.close_inside()
    try:
        with pytest.raises(SigError) as err:
            channel.receive()
        assert "ended before it was ready" in err.value.message and "not run" in err.value.hint
    finally:
        channel.close()
