"""Conventions people and agents bring from curl and gh: `request -X/-H/-d/-o`, `--json`, "did you mean",
the doctor's report on stdout, and a server's status line shown escaped, never obeyed."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from harness.servers import HandlerServer, ServerHandle
from harness.sigproc import Sig

TOKEN = "tok-CONVENTIONS-5e6f7a"


@pytest.fixture
def echo(sig_init: Sig, http_echo: ServerHandle) -> Sig:
    sig_init("login", http_echo.url, "--token-stdin", "--as", "echo", input=TOKEN, check=0)
    return sig_init


# -- doctor ----------------------------------------------------------------------------------------------


def test_doctor_report_is_on_stdout(sig_init: Sig) -> None:
    r = sig_init("doctor", check=None)
    assert "Python" in r.out and "Config is valid" in r.out and "Encryption key" in r.out
    assert r.out.rstrip().endswith(("All checks passed.", "found."))
    assert "Python" not in r.err
    (sig_init.home / "encryption.key").chmod(0o644)  # a failed check: still on stdout, still exit 1
    r = sig_init("doctor", check=1)
    assert "chmod 400" in r.out and r.err == ""


# -- --json ----------------------------------------------------------------------------------------------


def test_json_is_format_json_everywhere(echo: Sig, http_echo: ServerHandle) -> None:
    assert echo("status", "--json", check=0).json() == echo("status", "--format", "json", check=0).json()
    assert echo("providers", "--json", check=0).json()[0]["id"] == "echo"
    assert echo("--json", "status", check=0).json()[0]["id"] == "echo"  # before the command, as --format
    assert json.loads(echo("doctor", "--json", check=None).out)["checks"]
    assert echo("get", "echo", "--json", check=0).json()["provider"] == "echo"
    assert echo("request", f"{http_echo.url}/x", "--json", check=0).json()["status"] == 200
    # errors as JSON too, and a clash with another --format is an error, not a guess
    err = echo("get", "nope", "--json", check=2).err
    assert json.loads(err)["error"]["code"] == "PROVIDER_NOT_FOUND"
    r = echo("status", "--json", "--format", "table", check=1)
    assert "--format given twice with different values: --json (--format json) and --format table" in r.err


# -- did you mean ----------------------------------------------------------------------------------------


def test_did_you_mean_for_commands_flags_and_subcommands(echo: Sig) -> None:
    r = echo("stauts", check=1)
    assert 'unknown command "stauts"' in r.err and "did you mean `sig status`?" in r.err
    r = echo("help", "requst", check=1)
    assert "did you mean `sig request`?" in r.err
    r = echo("status", "--fromat", "json", check=1)
    assert "unknown option --fromat" in r.err and "did you mean --format?" in r.err
    r = echo("request", "http://127.0.0.1:1/", "--hedaer", "A: b", check=1)
    assert "did you mean --header?" in r.err
    r = echo("config", "sett", "mode", "browser", check=1)
    assert "did you mean `sig config set`?" in r.err
    r = echo("sync", "psh", check=1)
    assert "did you mean `sig sync push`?" in r.err
    r = echo("remote", "lst", check=1)
    assert "did you mean `sig remote list`?" in r.err
    echo("remote", "add", "prod", "ssh://deploy@127.0.0.1:1/srv/sig", check=0)
    r = echo("remote", "remove", "prd", check=4)
    assert 'did you mean "prod"?' in r.err
    r = echo("xyzzy", check=1)
    assert "did you mean" not in r.err and "sig --help" in r.err


# -- request: curl's short flags -------------------------------------------------------------------------


def test_request_short_flags(echo: Sig, http_echo: ServerHandle, tmp_path: Path) -> None:
    item = tmp_path / "item.json"
    item.write_text('{"name": "widget"}')
    r = echo("request", f"{http_echo.url}/v1/items", "-X", "POST", "-d", f"@{item}", "-H", "X-Trace: 1",
             "-H", "X-Other: 2", "--format", "body", check=0)
    seen = json.loads(r.out)
    assert seen["method"] == "POST" and json.loads(seen["body"]) == {"name": "widget"}
    assert seen["headers"]["x-trace"] == "1" and seen["headers"]["x-other"] == "2"
    r = echo("request", f"{http_echo.url}/v1", "-XPUT", "-dhello", "--format", "body", check=0)
    seen = json.loads(r.out)
    assert seen["method"] == "PUT" and seen["body"] == "hello"
    seen = json.loads(echo("request", f"{http_echo.url}/v1", "-d", "x=1", "--format", "body", check=0).out)
    assert seen["method"] == "POST"  # a body without a method is a POST, as with curl -d
    r = echo("request", f"{http_echo.url}/v1", "-X", "GET", "--method", "POST", check=1)
    assert "-X (--method GET) and --method POST" in r.err
    r = echo("request", f"{http_echo.url}/v1", "-X", check=1)
    assert "-X (--method) needs a value" in r.err


def test_request_output_file(echo: Sig, http_echo: ServerHandle, tmp_path: Path) -> None:
    out = tmp_path / "body.json"
    r = echo("request", f"{http_echo.url}/v1/me", "-o", str(out), check=0)
    assert r.out == ""
    body = json.loads(out.read_text())
    assert body["headers"]["authorization"] == "Bearer ****"  # redacted like stdout
    assert TOKEN not in out.read_text()
    r = echo("request", f"{http_echo.url}/v1/me", "--output", str(out), "--format", "headers", check=0)
    assert r.out.splitlines()[0] == "200 OK" and "content-type: application/json" in r.out
    assert json.loads(out.read_text())["path"] == "/v1/me"
    raw = tmp_path / "raw.json"
    echo("request", f"{http_echo.url}/v1/me", "-o", str(raw), "--no-redaction", check=0)
    assert TOKEN in raw.read_text()
    assert stat.S_IMODE(os.stat(raw).st_mode) == 0o600  # an unredacted body may hold a secret
    r = echo("request", f"{http_echo.url}/v1/me", "-o", "-", check=0)
    assert json.loads(r.out)["path"] == "/v1/me"
    r = echo("request", f"{http_echo.url}/v1/me", "-o", str(out), "--format", "json", check=1)
    assert "-o/--output writes the response body" in r.err
    r = echo("request", f"{http_echo.url}/v1/me", "-o", str(tmp_path / "no" / "dir" / "x"), check=1)
    assert "cannot write" in r.err


# -- request --format headers: the server's words are shown, not obeyed ------------------------------------


class _Hostile(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200, "OK\x1b]0;owned\x07\x1b[2J")
        self.send_header("X-Note", "fine")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hostile() -> Iterator[str]:
    with HandlerServer(_Hostile) as server:
        yield server.url


def test_headers_format_escapes_the_reason_phrase(sig_init: Sig, hostile: str) -> None:
    sig_init("login", hostile, "--token-stdin", "--as", "hostile", input=TOKEN, check=0)
    r = sig_init("request", f"{hostile}/", "--format", "headers", check=0)
    first = r.out.splitlines()[0]
    assert "\x1b" not in r.out and "\x07" not in r.out
    assert first == "200 OK\\x1b]0;owned\\x07\\x1b[2J"
