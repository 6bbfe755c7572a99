"""The seccomp filter under the kernel: a program in bubblewrap with sig's filter tries AF_UNIX (EPERM),
io_uring (EPERM), and what must keep working: AF_INET/AF_INET6 sockets, socketpair (asyncio, libuv)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from harness.sandbox_rig import NOBODY, SYSTEM_PYTHON, require_bwrap
from sigcli.sandbox import bwrap as bw
from sigcli.sandbox.seccomp import program
from sigcli.sandbox.view import View

PROBE = r"""
import asyncio, ctypes, errno, json, socket
out = {}
def trial(name, fn):
    try:
        fn(); out[name] = "ok"
    except OSError as exc:
        out[name] = errno.errorcode.get(exc.errno, str(exc.errno))
trial("unix_stream", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())
trial("unix_dgram", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).close())
trial("unix_seqpacket", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).close())
trial("inet", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
trial("inet6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close())
trial("socketpair", lambda: [s.close() for s in socket.socketpair()])
trial("asyncio", lambda: asyncio.run(asyncio.sleep(0)))
libc = ctypes.CDLL(None, use_errno=True)
for nr, name in ((425, "io_uring_setup"), (426, "io_uring_enter"), (427, "io_uring_register")):
    rc = libc.syscall(nr, 4, ctypes.create_string_buffer(128), 0, 0, 0)
    out[name] = "ok" if rc >= 0 else errno.errorcode.get(ctypes.get_errno())
print(json.dumps(out))
"""


def _run_probe(python: str, prefix: list[str]) -> dict[str, str]:
    read_end, write_end = os.pipe()
    os.write(write_end, program())
    os.close(write_end)
    cwd = os.getcwd()
    argv = bw.argv(View(cwd="/"), [python, "-I", "-c", PROBE], bwrap=shutil.which("bwrap") or "bwrap",
                   seccomp_fd=read_end, is_symlink={"/var/run": os.path.islink("/var/run")})
    argv = [a if a != "--bind" else "--ro-bind" for a in argv]  # no writable place needed here
    try:
        proc = subprocess.run([*prefix, *argv], pass_fds=[read_end], capture_output=True, text=True, timeout=60,
                              cwd=cwd)
    finally:
        os.close(read_end)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("who", ["root", "nobody"])
def test_filter_refuses_unix_sockets_and_io_uring(who: str) -> None:
    require_bwrap()
    if who == "nobody":
        if os.geteuid() != 0 or not shutil.which("setpriv") or not os.access(SYSTEM_PYTHON, os.X_OK):
            pytest.skip("needs root, setpriv and the system Python")
        prefix = [shutil.which("setpriv") or "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        python = SYSTEM_PYTHON
    else:
        prefix, python = [], os.path.realpath(sys.executable)
    out = _run_probe(python, prefix)
    assert out["unix_stream"] == out["unix_dgram"] == out["unix_seqpacket"] == "EPERM"
    assert out["io_uring_setup"] == out["io_uring_enter"] == out["io_uring_register"] == "EPERM"
    assert out["inet"] == out["inet6"] == "ok"
    assert out["socketpair"] == "ok" and out["asyncio"] == "ok"


def test_without_the_filter_the_same_calls_work() -> None:
    """The probe itself can tell: outside the filter AF_UNIX works (so EPERM above is the filter's)."""
    proc = subprocess.run([sys.executable, "-I", "-c", PROBE], capture_output=True, text=True, timeout=60)
    out = json.loads(proc.stdout)
    assert out["unix_stream"] == "ok" and out["inet"] == "ok"
