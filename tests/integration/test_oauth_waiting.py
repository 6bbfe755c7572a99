"""The waiting line during OAuth2 device-code and authorization-code logins: elapsed time and when sig
gives up, on stderr only; a live line on a terminal, an occasional line off one."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator

import pytest

from harness.sigproc import Sig
from harness.terminal import Terminal, read_until

pytest.importorskip("authlib")
from harness.oauth_server import OAuthServer


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    server = OAuthServer()
    server.add_client("cli", None, auth_method="none")
    try:
        yield server
    finally:
        server.close()


def _device_argv(oauth: OAuthServer) -> list[str]:
    return ["login", f"{oauth.url}/", "--as", "dev", "--strategy", "oauth2", "--grant", "device_code",
            "--device-url", oauth.device_url, "--token-url", oauth.token_url, "--client-id", "cli"]


def test_device_code_off_a_terminal_prints_an_occasional_line(sig_init: Sig, oauth: OAuthServer) -> None:
    proc = sig_init.popen(*_device_argv(oauth), text=False, encoding=None, errors=None)
    assert proc.stderr is not None
    err, found = read_until(proc.stderr.fileno(), b"", rb"enter the code: (\S+)", 30)
    code = found.group(1).decode()
    err, _ = read_until(proc.stderr.fileno(), err,
                         rb"Waiting for the code to be approved: still waiting after \ds \(gives up in 4m \d\ds\)\n",
                         30)
    oauth.approve_device(code)
    out, rest = proc.communicate(timeout=60)
    err += rest
    assert proc.returncode == 0, err
    assert b"still waiting" not in out and b"\x1b" not in err  # stderr only; no cursor codes in a log
    assert err.count(b"still waiting") == 1  # occasional: not every poll


def test_device_code_on_a_terminal_is_one_live_line(sig_init: Sig, oauth: OAuthServer) -> None:
    term = Terminal.running(sig_init, _device_argv(oauth))
    code = term.expect(rb"enter the code: (\S+)").group(1).decode()
    # the same line redrawn in place: 0s, then 1s, then 2s…
    term.expect(re.escape("\r\x1b[2KWaiting for the code to be approved… 2s (gives up in 4m 5".encode()))
    assert "\r\x1b[2KWaiting for the code to be approved… 1s".encode() in term.seen
    oauth.approve_device(code)
    assert term.finish() == 0, term.seen.decode("utf-8", "replace")
    shown = term.seen
    tail = shown[shown.rindex(b"Waiting for the code"):]
    assert b"\r\x1b[2K" in tail and b"Logged in" in tail  # the line is cleared before the result
    assert b"still waiting" not in shown


def test_authorization_code_line_sits_above_the_paste_prompt(sig_init: Sig, oauth: OAuthServer) -> None:
    term = Terminal.running(sig_init, ["login", f"{oauth.url}/", "--as", "app", "--strategy", "oauth2", "--grant",
                                       "authorization_code", "--auth-url", oauth.authorize_url, "--token-url",
                                       oauth.token_url, "--client-id", "cli"])
    url = term.expect(rb"(http://127\.0\.0\.1:\d+/oauth/authorize\?\S+)").group(1).decode()
    term.expect(b"paste the full URL the browser was redirected to: ")
    # redrawn above the prompt: cursor saved, one line up, line cleared, text, cursor restored
    term.expect(re.escape("\x1b7\x1b[1A\r\x1b[2KWaiting for the sign-in in the browser… 1s"
                          " (gives up in 4m 5".encode()))
    with urllib.request.urlopen(url, timeout=30) as resp:  # the user's browser finishes the sign-in
        assert resp.status == 200
    assert term.finish() == 0, term.seen.decode("utf-8", "replace")
    shown = term.seen
    plain = re.sub(rb"\x1b7.*?\x1b8", b"", shown, flags=re.DOTALL)  # without the redraws above the prompt
    assert re.search(rb"redirected to: \r?\nLogged in", plain), shown  # not glued to the prompt
