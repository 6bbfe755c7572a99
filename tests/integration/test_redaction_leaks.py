"""Redaction leaks found from outside (secrets with `=`, escaped and encoded forms, `request --format json`,
`/dev/tty`, output held back on an idle child), each through the real `sig`."""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shlex
import shutil
import sys
import time
from urllib.parse import quote, quote_plus

import pytest

from harness.servers import ServerHandle
from harness.sigproc import Sig
from harness.terminal import Terminal

PY = sys.executable
MASK = "****"


def _login_token(sig: Sig, token: str, name: str = "api") -> None:
    sig("login", f"https://{name}.example.com", "--token-stdin", "--as", name, input=token, check=0)


def _run_printing(sig: Sig, provider: str, code: str) -> str:
    """stdout of a Python child that runs `code` with `s` = the provider's token (read from its env)."""
    prelude = f"import base64, json, os, re, sys\ns = os.environ['SIG_{provider.upper()}_TOKEN']\n"
    return sig("run", provider, "--", PY, "-c", prelude + code, check=0).out


# -- secrets containing `=` (and every other character class) ------------------------------------------

CLASSES = ["hunter2=abc", "a=b=c=d", "k=v; w=u", "x;y;z;w", "pa ss word", 'q"uo\'te', "back\\slash",
           "pässwörd=ü", "🔑key🔑=", "dGVzdA==", "tok/LIVE+9f=", "<a&b>", "100%sure", "#$!*()[]{}"]


@pytest.mark.parametrize("value", CLASSES)
def test_whole_value_is_masked_in_get_and_run(sig_init: Sig, value: str) -> None:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        pass  # an HTTP header cannot carry it: sig takes it as a password, not as a token
    else:
        _login_token(sig_init, value)
        assert sig_init("get", "api", check=0).json()["headers"] == {"Authorization": "Bearer ****"}
        out = _run_printing(sig_init, "api", "print(s); print('t=' + s + ';'); sys.stderr.write(s)")
        assert out == "****\nt=****;\n"
    sig_init("login", "https://pw.example.com", "--username", "bob", "--password-stdin", "--as", "pw",
             input=value, check=0)
    assert sig_init("get", "pw", "--format", "value", check=0).out.strip() == "Basic ****"
    r = sig_init("run", "pw", "--", PY, "-c", "import os; print(os.environ['SIG_PW_PASSWORD'] + '|')", check=0)
    assert r.out == "****|\n"


def test_issue_example_hunter2(sig_init: Sig) -> None:
    _login_token(sig_init, "hunter2=abc")
    assert sig_init("get", "api", "--format", "header", check=0).out.strip() == "Authorization: Bearer ****"
    r = sig_init("run", "api", "--", "sh", "-c", 'echo $SIG_API_TOKEN', check=0)
    assert r.out == "****\n"


def test_basic_password_with_equals(sig_init: Sig) -> None:
    password = "correcthorse=battery"
    sig_init("login", "https://git.example.com", "--username", "alice", "--password-stdin", input=password,
             check=0)
    assert sig_init("get", "git-example", "--format", "value", check=0).out.strip() == "Basic ****"
    r = sig_init("run", "git-example", "--", "sh", "-c",
                 'echo "$SIG_GIT_EXAMPLE_PASSWORD"; printf %s "alice:$SIG_GIT_EXAMPLE_PASSWORD" | base64; '
                 'echo "user=$SIG_GIT_EXAMPLE_USERNAME"', check=0)
    assert r.out == "****\n****\nuser=alice\n"
    assert "correcthorse" not in r.out and "battery" not in r.out


# -- escaped and encoded forms ---------------------------------------------------------------------------

TOKEN = "tok/LIVE+9f8e7d6c5b4a/39281706f5e4=é"


def test_json_escapes_every_encoder(sig_init: Sig) -> None:
    _login_token(sig_init, TOKEN)
    code = ("for ascii in (True, False):\n"
            "    j = json.dumps(s, ensure_ascii=ascii)[1:-1]\n"
            "    print(j); print(j.replace('/', '\\\\/'))\n"  # PHP, Java: `\/`
            "    print(re.sub(r'\\\\u([0-9a-f]{4})', lambda m: '\\\\u' + m.group(1).upper(), j))\n"
            "print(''.join(f'\\\\u{ord(c):04x}' for c in s))\n"  # every character escaped
            "print(''.join(f'\\\\u{ord(c):04X}' for c in s))\n")
    out = _run_printing(sig_init, "api", code)
    assert out == "****\n" * 8


def _lower_escapes(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def _mixed_escapes(text: str) -> str:
    flip = iter([True, False] * len(text))
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower() if next(flip) else m.group(0), text)


def test_percent_encoding_any_case(sig_init: Sig) -> None:
    _login_token(sig_init, TOKEN)
    forms = [quote(TOKEN, safe=""), quote_plus(TOKEN), quote(TOKEN)]
    forms += [_lower_escapes(f) for f in forms] + [_mixed_escapes(f) for f in forms]
    assert any("%2b" in f for f in forms) and any("%2f" in f for f in forms)
    code = f"forms = {forms!r}\nprint('\\n'.join('q=' + f + '&' for f in forms))\n"
    out = _run_printing(sig_init, "api", code)
    assert out == "q=****&\n" * len(forms)


BEARER = "ghp_R4nd0mT0kenValue1234567890abcdXYZ"


def _stable_core(data: bytes, k: int, urlsafe: bool) -> str:
    """The base64 characters of `data` placed k bytes into a 3-byte group that do not depend on the
    neighbouring bytes (computed from bit positions, independently of sig)."""
    encoded = base64.b64encode(b"\0" * k + data + b"\0\0").decode()
    first, end = -(-8 * k // 6), 8 * (k + len(data)) // 6
    core = encoded[first:end]
    return core.translate(str.maketrans("+/", "-_")) if urlsafe else core


def test_base64_and_hex_of_a_bearer_token(sig_init: Sig) -> None:
    _login_token(sig_init, BEARER)
    code = ("b = s.encode()\n"
            "for enc in (base64.b64encode, base64.urlsafe_b64encode):\n"
            "    e = enc(b).decode(); print(e); print(e.rstrip('='))\n"
            "print(b.hex()); print(b.hex().upper())\n"
            "print('Basic ' + base64.b64encode(b'x-access-token:' + b).decode())\n"  # git's header
            "for k in range(3):\n"
            "    for enc in (base64.b64encode, base64.urlsafe_b64encode):\n"
            "        print(enc(b'\\x01\\xfe\\x7f'[:k] + b + b'!?').decode())\n")
    out = _run_printing(sig_init, "api", code)
    lines = out.splitlines()
    assert lines[:6] == [MASK] * 6
    assert lines[6].startswith("Basic eC1hY2Nlc3MtdG9rZW46" + MASK)  # "x-access-token:" stays readable
    data = BEARER.encode()
    for k in range(3):
        for urlsafe in (False, True):
            assert _stable_core(data, k, urlsafe) not in out
    assert all(MASK in line for line in lines[7:])
    assert len(lines) == 13


def test_short_value_has_no_base64_form(sig_init: Sig) -> None:
    """Base64 and hex forms need 8 bytes or more: a short secret must not mask unrelated base64 text."""
    _login_token(sig_init, "abcdefg")
    out = _run_printing(sig_init, "api", "print(s); print(base64.b64encode(b'xx' + s.encode()).decode())")
    assert out == "****\n" + base64.b64encode(b"xxabcdefg").decode() + "\n"


# -- sig request --format json ---------------------------------------------------------------------------

QUOTED = 'sk"quo\\ted/back=5521'


def test_request_json_with_quote_and_backslash(sig_init: Sig, http_echo: ServerHandle) -> None:
    sig_init("login", http_echo.url, "--token-stdin", "--as", "echo", input=QUOTED, check=0)
    r = sig_init("request", f"{http_echo.url}/v1/me", check=0)
    once = json.dumps(QUOTED)[1:-1]
    for form in (QUOTED, once, json.dumps(once)[1:-1], "quo", "back=5521"):
        assert form not in r.out
    out = r.json()
    assert isinstance(out["body"], dict)  # a JSON answer is emitted as JSON, not as a string
    assert out["body"]["headers"]["authorization"] == "Bearer ****"
    assert http_echo.last_request["headers"]["authorization"] == f"Bearer {QUOTED}"  # sent as it is


def test_request_json_body_that_is_not_json_stays_a_string(sig_init: Sig, http_echo: ServerHandle) -> None:
    sig_init("login", http_echo.url, "--token-stdin", "--as", "echo", input=QUOTED, check=0)
    r = sig_init("request", f"{http_echo.url}/status/404", check=1)
    assert isinstance(r.json()["body"], dict)  # any status: JSON is JSON
    r = sig_init("request", f"{http_echo.url}/x", "--method", "HEAD", check=0)
    assert r.json()["body"] == ""  # empty: not JSON, so the text as it is


# -- a real terminal: /dev/tty, the keyboard, Ctrl-C -------------------------------------------------------


@pytest.fixture
def terminal(sig_init: Sig) -> object:
    if shutil.which("script") is None:
        pytest.skip("`script` (util-linux) is not installed")
    _login_token(sig_init, "s3cret-TTY-TOKEN-4242")
    opened: list[Terminal] = []

    def start(inner: str) -> Terminal:
        term = Terminal(sig_init, inner, env=dict(sig_init.env, SHELL="/bin/sh", TERM="dumb"))
        opened.append(term)
        return term

    yield start
    for term in opened:
        term.close()


def _sig_line(sig: Sig, *args: str) -> str:
    return shlex.join([*sig.cmd, *args])


def test_dev_tty_is_the_redacted_pty(sig_init: Sig, terminal: object) -> None:
    child = 'echo "tty: $SIG_API_TOKEN" > /dev/tty; echo "out: $SIG_API_TOKEN"; echo DONE'
    term = terminal(_sig_line(sig_init, "run", "api", "--", "sh", "-c", child) + "; echo rc=$?")  # type: ignore[operator]
    term.expect(rb"rc=0")
    shown = term.close()
    assert b"s3cret-TTY" not in shown and b"TOKEN-4242" not in shown
    assert b"tty: ****" in shown and b"out: ****" in shown


def test_prompt_on_dev_tty_gets_the_keyboard_and_modes_are_restored(sig_init: Sig, terminal: object) -> None:
    child = 'printf "Password: " > /dev/tty; read answer < /dev/tty; echo "got [$answer]"'
    line = _sig_line(sig_init, "run", "api", "--", "sh", "-c", child) + "; echo rc=$?; stty -a"
    term = terminal(line)  # type: ignore[operator]
    term.expect(rb"Password: ")
    term.type(b"typed words\r")
    term.expect(rb"got \[typed words\]")
    term.expect(rb"rc=0")
    term.expect(rb"-?icanon")
    shown = term.close()
    settings = shown[shown.index(b"rc=0") :]
    assert re.search(rb"(?<![-\w])icanon", settings) and re.search(rb"(?<![-\w])echo(?![\w])", settings), settings


def test_ctrl_c_reaches_the_child(sig_init: Sig, terminal: object) -> None:
    child = 'trap "echo INTERRUPTED; exit 3" INT; echo READY; while :; do sleep 0.05; done'
    term = terminal(_sig_line(sig_init, "run", "api", "--", "sh", "-c", child) + "; echo rc=$?")  # type: ignore[operator]
    term.expect(rb"READY")
    term.type(b"\x03")
    term.expect(rb"INTERRUPTED")
    term.expect(rb"rc=3")


# -- output held back while the child is idle ------------------------------------------------------------


def test_idle_prompt_is_shown_and_a_paused_secret_never_whole(sig_init: Sig) -> None:
    token = "s3cret-IDLE-TOKEN-77"  # begins with "s": "Loading items" ends in a possible secret
    _login_token(sig_init, token)
    child = ("import os, sys, time\n"
             "s = os.environ['SIG_API_TOKEN']\n"
             "sys.stdout.write('Loading items'); sys.stdout.flush()\n"
             "sys.stdin.readline()\n"  # wait until the test saw the prompt
             "sys.stdout.write(' ok ' + s[:8]); sys.stdout.flush(); time.sleep(0.6)\n"
             "sys.stdout.write(s[8:] + ' end\\n')\n")
    proc = sig_init.popen("run", "api", "--", PY, "-c", child, text=False, encoding=None, errors=None)
    assert proc.stdout is not None and proc.stdin is not None
    seen, start = b"", time.monotonic()
    while not seen.endswith(b"Loading items"):
        assert time.monotonic() - start < 5, f"the prompt is still held back: {seen!r}"
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk
            seen += chunk
    proc.stdin.write(b"\n")
    proc.stdin.flush()
    rest, _ = proc.communicate(timeout=30)
    out = (seen + rest).decode()
    assert token not in out
    # The part written before the pause is masked (8 bytes: more than the 3 an idle flush may show), and
    # the rest is masked when it arrives.
    assert out == "Loading items ok **** end\n"
