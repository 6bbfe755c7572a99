"""Odd input to `sig login` and `sig request`: non-UTF-8 bytes, huge values, non-Latin-1 headers, secrets in
argv, and `--as` with a URL on another port of a known host."""

from __future__ import annotations

import os
import subprocess

import pytest

from harness.servers import ServerHandle
from harness.sigproc import Sig

LIMIT = 64 * 1024
BAD = b"tok-\xff\xfe-not-utf8"


def _run(sig: Sig, *args: str | bytes, stdin: bytes | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """`sig` with raw bytes in argv, stdin or the environment (the harness speaks text only)."""
    return subprocess.run([*sig.cmd, *args], input=stdin if stdin is not None else b"",
                          env={**sig.env, **(env or {})}, capture_output=True, timeout=60)


def _providers(sig: Sig) -> list[str]:
    return [p["id"] for p in sig("providers", "--format", "json", check=0).json()]


@pytest.mark.parametrize(("flags", "what"), [
    (["--token-stdin"], "token"),
    (["--cookie-stdin"], "cookie"),
    (["--username", "bob", "--password-stdin"], "password"),
    (["--client-id", "cid", "--token-url", "https://idp.example.com/token", "--client-secret-stdin"],
     "client secret"),
])
def test_non_utf8_on_stdin_is_a_usage_error(sig_init: Sig, flags: list[str], what: str) -> None:
    proc = _run(sig_init, "login", "https://api.example.com", *flags, stdin=BAD)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert f"the {what} on standard input is not valid UTF-8 text" in err
    assert "internal error" not in err and "Traceback" not in err
    assert _providers(sig_init) == []


def test_non_utf8_in_argv_and_env_is_a_usage_error(sig_init: Sig) -> None:
    proc = _run(sig_init, "login", "https://api.example.com", "--token", BAD)
    assert proc.returncode == 1 and b"given with --token is not valid UTF-8" in proc.stderr
    proc = _run(sig_init, "login", "https://api.example.com", "--token-env", "MY_TOKEN",
                env={"MY_TOKEN": os.fsdecode(BAD)})
    assert proc.returncode == 1 and b"in $MY_TOKEN is not valid UTF-8" in proc.stderr
    proc = _run(sig_init, "login", "https://api.example.com", "--username", b"b\xffb", "--password-stdin",
                stdin=b"pw-12345678")
    assert proc.returncode == 1 and b"user name given with --username is not valid UTF-8" in proc.stderr
    proc = _run(sig_init, "login", "https://api.example.com", "--as", "x", "--token-url", b"https://i\xff/t",
                "--client-id", "c", "--client-secret-stdin", stdin=b"s")
    assert proc.returncode == 1 and b"not valid UTF-8" in proc.stderr and b"internal" not in proc.stderr
    # a URL with such bytes would be written into config.yaml and break every later command
    proc = _run(sig_init, "login", b"https://a\xff.example.com/", "--token-stdin", stdin=b"tok-12345678")
    assert proc.returncode == 1 and b"URL or provider given is not valid UTF-8" in proc.stderr
    assert _providers(sig_init) == []


def test_token_outside_latin1_is_refused(sig_init: Sig) -> None:
    r = sig_init("login", "https://api.example.com", "--token-stdin", input="tok-€-euro", check=1)
    assert "outside Latin-1" in r.err and "€" not in r.err
    assert _providers(sig_init) == []


def test_size_limit_per_value(sig_init: Sig) -> None:
    # 30 MB used to be accepted, and then `sig run` failed with "Argument list too long".
    huge = _run(sig_init, "login", "https://api.example.com", "--token-stdin", stdin=b"a" * (30 << 20))
    assert huge.returncode == 1 and b"larger than 64 KiB" in huge.stderr
    r = sig_init("login", "https://api.example.com", "--token-stdin", input="b" * (LIMIT + 1), check=1)
    assert "64 KiB" in r.err
    r = sig_init("login", "https://api.example.com", "--username", "u" * 40000, "--password-stdin",
                 input="p" * 40000, check=1)
    assert "together" in r.err and "64 KiB" in r.err
    assert _providers(sig_init) == []
    # the largest value allowed still reaches a child through `sig run` (every env form of it)
    token = "c" * LIMIT
    sig_init("login", "https://api.example.com", "--as", "big", "--token-stdin", input=token, check=0)
    r = sig_init("run", "big", "--no-redaction", "--", "sh", "-c", 'printf %s "$SIG_BIG_TOKEN" | wc -c', check=0)
    assert r.out.strip() == str(LIMIT)


def test_request_header_outside_latin1(sig_init: Sig, http_echo: ServerHandle) -> None:
    sig_init("login", http_echo.url_for("/"), "--token-stdin", input="tok-ECHO-1", check=0)
    r = sig_init("request", http_echo.url_for("/"), "--header", "X-Note: 5 €", check=1)
    assert 'header "X-Note"' in r.err and "outside Latin-1" in r.err and "internal" not in r.err
    proc = _run(sig_init, "request", http_echo.url_for("/"), "--header", b"X-Raw: \xff\xfe")
    assert proc.returncode == 1 and b"outside Latin-1" in proc.stderr and b"internal" not in proc.stderr
    assert http_echo.requests == []
    r = sig_init("request", http_echo.url_for("/"), "--header", "X-Note: café", check=0)  # Latin-1 is fine
    assert http_echo.requests


def test_every_secret_in_argv_warns(sig_init: Sig, http_echo: ServerHandle) -> None:
    r = sig_init("login", "https://a.example.com", "--cookie", "sid=cookie-ARGV-1", check=0)
    assert "a cookie in the command line is visible" in r.err and "--cookie-stdin" in r.err
    r = sig_init("login", "https://b.example.com", "--token", "tok-ARGV-2", check=0)
    assert "a token in the command line is visible" in r.err
    r = sig_init("login", "https://c.example.com", "--username", "u", "--password", "pw-ARGV-3", check=0)
    assert "a password in the command line is visible" in r.err
    r = sig_init("login", "https://d.example.com", "--token-stdin", "--network-proxy",
                 "http://user:pw-PROXY-4@127.0.0.1:9", input="tok-5", check=0)
    assert "a proxy password in the command line is visible" in r.err
    r = sig_init("login", "https://e.example.com", "--token-stdin", "--network-proxy", "http://127.0.0.1:9",
                 input="tok-6", check=0)
    assert "visible" not in r.err
    sig_init("login", http_echo.url_for("/"), "--token-stdin", input="tok-ECHO-1", check=0)
    r = sig_init("request", http_echo.url_for("/"), "--header", "Authorization: Bearer tok-ARGV-7", check=0)
    assert "credential header in the command line is visible" in r.err
    sig_init.assert_no_secret("cookie-ARGV-1", "tok-ARGV-2", "pw-ARGV-3", "pw-PROXY-4", "tok-ARGV-7")


def test_as_new_on_another_port_takes_the_url_given(sig_init: Sig, http_echo: ServerHandle) -> None:
    # A provider already exists for the host (https, default port); the new one is for http on the echo port.
    sig_init("login", "https://127.0.0.1/", "--as", "old", "--token-stdin", input="tok-OLD-1111", check=0)
    url = http_echo.url_for("/")
    sig_init("login", url, "--as", "new", "--token-stdin", input="tok-NEW-2222", check=0)
    providers = {p["id"]: p for p in sig_init("providers", "--format", "json", check=0).json()}
    assert set(providers) == {"old", "new"}
    assert f"entryUrl: {url}" in (sig_init.home / "config.yaml").read_text()
    sig_init("request", http_echo.url_for("/me"), "--provider", "new", check=0)
    assert http_echo.last_request is not None
    assert http_echo.last_request["headers"]["authorization"] == "Bearer tok-NEW-2222"
    # the same origin still makes a copy of the existing provider (its rules kept)
    sig_init("login", "https://127.0.0.1/", "--as", "old2", "--token-stdin", input="tok-OLD-3333", check=0)
    assert "old2:" in (sig_init.home / "config.yaml").read_text()
