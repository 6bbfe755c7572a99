"""A person at a terminal, for tests that need sig to see a real one.

Two ways, both real pseudo-terminals:
- `Terminal`: sig under util-linux `script`, which gives it a pty as stdin, stdout, stderr and controlling
  terminal (/dev/tty), as in a person's shell; the test types into it and reads what it shows.
- `on_pty`: sig's stdin and stderr (and stdout, unless captured) on a pty the test holds, without
  `script`; it answers the first question sig asks there.
Every read is bounded by a timeout.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence

import pytest

from harness.sigproc import Sig


def read_until(fd: int, seen: bytes, pattern: bytes, timeout: float) -> tuple[bytes, re.Match[bytes]]:
    """Read `fd` (bounded by `timeout`) until the regex `pattern` matches what was read so far."""
    deadline = time.monotonic() + timeout
    while True:
        found = re.search(pattern, seen)
        if found:
            return seen, found
        left = deadline - time.monotonic()
        assert left > 0, f"{pattern!r} not seen in {timeout:g}s; the terminal showed {seen[-2000:]!r}"
        ready, _w, _x = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            assert chunk, f"output ended before {pattern!r}: {seen[-2000:]!r}"
            seen += chunk


class Terminal:
    """`script -qefc LINE /dev/null`: LINE (a shell command line) runs on a fresh pty that is its
    controlling terminal. `type` writes keys to it; `expect` reads until a pattern shows."""

    def __init__(self, sig: Sig, line: str, env: Mapping[str, str] | None = None) -> None:
        if shutil.which("script") is None:
            pytest.skip("util-linux `script` is not installed")
        self.proc = subprocess.Popen(["script", "-qefc", line, "/dev/null"], env=dict(env or sig.env),
                                     cwd=sig.user_home, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()
        self.seen = b""

    @classmethod
    def running(cls, sig: Sig, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Terminal:
        """`sig argv…` on the terminal."""
        return cls(sig, shlex.join(sig.argv(*argv)), env)

    def expect(self, pattern: bytes, timeout: float = 30) -> re.Match[bytes]:
        """Read until the regex `pattern` shows (in all the terminal showed so far)."""
        self.seen, found = read_until(self.fd, self.seen, pattern, timeout)
        return found

    def type(self, keys: bytes) -> None:
        """Keys typed on the keyboard (\\r is Enter, \\x03 Ctrl-C)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(keys)
        self.proc.stdin.flush()

    def finish(self, timeout: float = 60) -> int:
        """Read to the end and wait for the exit; the exit code (the process is killed on a timeout)."""
        assert self.proc.stdout is not None
        try:
            while chunk := self.proc.stdout.read(4096):
                self.seen += chunk
            return self.proc.wait(timeout=timeout)
        finally:
            self._kill()

    def close(self) -> bytes:
        """Stop whatever still runs; everything the terminal showed."""
        if self.proc.poll() is None:
            self.proc.kill()
        rest, _ = self.proc.communicate(timeout=10)
        return self.seen + (rest or b"")

    def _kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


def at_terminal(sig: Sig, argv: Sequence[str], prompt: bytes, answer: bytes, *,
                env: Mapping[str, str] | None = None, timeout: float = 30) -> tuple[int, str]:
    """Run `sig argv…` under `script`, wait for `prompt`, type `answer` + Enter as a person would;
    (exit code, everything the terminal showed)."""
    term = Terminal.running(sig, argv, env)
    try:
        term.expect(re.escape(prompt), timeout)
        term.type(answer + b"\r")
        code = term.finish(timeout)
    finally:
        term._kill()
    return code, term.seen.decode("utf-8", "replace")


def on_pty(sig: Sig, argv: Sequence[str], *, answer: str | None, prompt: bytes = b"]: ",
           env: Mapping[str, str] | None = None, capture_stdout: bool = False,
           timeout: float = 30) -> tuple[int, str, str]:
    """Run `sig argv…` with stdin and stderr (and stdout, unless `capture_stdout`) on a pty; type `answer`
    once `prompt` shows there (None: answer nothing). (exit code, captured stdout, what the terminal
    showed with \\r\\n as \\n)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(sig.argv(*argv), stdin=slave, stdout=subprocess.PIPE if capture_stdout else slave,
                            stderr=slave, env=dict(env or sig.env), cwd=sig.user_home, close_fds=True,
                            start_new_session=True)
    os.close(slave)
    seen = b""
    answered = answer is None
    deadline = time.monotonic() + timeout
    try:
        while True:
            assert time.monotonic() < deadline, f"sig {list(argv)} did not finish on the terminal: {seen!r}"
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the terminal's last writer is gone
                    break
                if not chunk:
                    break
                seen += chunk
            if not answered and prompt in seen:
                os.write(master, (answer or "").encode() + b"\n")
                answered = True
            if proc.poll() is not None and not ready:
                break
        out = proc.stdout.read() if proc.stdout is not None else b""
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        if proc.stdout is not None:
            proc.stdout.close()
    assert answered, f"sig {list(argv)} asked nothing: {seen!r}"
    return code, out.decode("utf-8", "replace"), seen.decode("utf-8", "replace").replace("\r\n", "\n")
