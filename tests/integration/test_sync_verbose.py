"""`sig sync --verbose`: when ssh fails, what ssh itself said is shown (sig's message names the cause in
its own words; the raw text is for the person debugging it)."""

from __future__ import annotations

import shutil
import socket

import pytest

from harness.sigproc import Sig


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nobody listens there once the socket is closed


def test_verbose_shows_ssh_own_error(sig_init: Sig) -> None:
    if shutil.which("ssh") is None:
        pytest.skip("the OpenSSH client is not installed")
    port = _closed_port()
    sig_init("remote", "add", "down", f"ssh://deploy@127.0.0.1:{port}/srv/sig", check=0)
    quiet = sig_init("sync", "push", "down", check=1)
    assert "cannot reach" in quiet.err and "--verbose" in quiet.err
    assert "ssh:" not in quiet.err
    loud = sig_init("sync", "push", "down", "--verbose", check=1)
    assert "cannot reach" in loud.err
    assert "[sig] ssh exited with status 255; its stderr:" in loud.err
    assert f"[sig]   ssh: ssh: connect to host 127.0.0.1 port {port}: Connection refused" in loud.err
    pull = sig_init("sync", "pull", "down", "--verbose", check=1)
    assert "Connection refused" in pull.err
