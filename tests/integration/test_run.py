"""`sig run`: variables, redaction (streamed, split, binary, PTY), mount files, signals, exit codes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.sigproc import Sig

TOKEN = "tok-RUN-5d7e9f1a"
COOKIE = "SESSION=sess-RUN-4411aa; csrf=csrf-RUN-99"
PY = sys.executable


@pytest.fixture
def runner(sig_init: Sig) -> Sig:
    sig_init("login", "https://api.example.com", "--token-stdin", "--as", "my-api", input=TOKEN, check=0)
    sig_init("login", "https://jira.example.com", "--cookie-stdin", "--as", "my-jira", input=COOKIE, check=0)
    return sig_init


def test_env_vars_are_injected_and_redacted(runner: Sig) -> None:
    r = runner("run", "my-api", "--", "env", check=0)
    lines = dict(line.split("=", 1) for line in r.out.splitlines() if line.startswith("SIG_MY_API_"))
    assert lines == {"SIG_MY_API_PROVIDER": "my-api", "SIG_MY_API_TOKEN": "****",
                     "SIG_MY_API_CREDENTIAL_TYPE": "bearer", "SIG_MY_API_AUTH_HEADER": "Bearer ****"}
    assert TOKEN not in r.out + r.err
    assert not any(k.startswith("SIG_MY_JIRA") for k in lines)


def test_child_sees_real_values(runner: Sig, tmp_path: Path) -> None:
    target = tmp_path / "seen"
    runner("run", "my-api", "--", PY, "-c",
           f"import os; open({str(target)!r}, 'w').write(os.environ['SIG_MY_API_TOKEN'])", check=0)
    assert target.read_text() == TOKEN


def test_implicit_mode_and_expand_cookies(runner: Sig) -> None:
    r = runner("run", "--expand-cookies", "--", "env", check=0)
    names = {line.split("=", 1)[0] for line in r.out.splitlines() if line.startswith("SIG_")}
    assert {"SIG_MY_API_TOKEN", "SIG_MY_JIRA_COOKIE", "SIG_MY_JIRA_COOKIE_SESSION",
            "SIG_MY_JIRA_COOKIE_CSRF", "SIG_MY_JIRA_CREDENTIAL_TYPE"} <= names
    assert "SIG_MY_JIRA_COOKIE=****\n" in r.out  # the whole cookie string is a secret
    assert "SIG_MY_JIRA_COOKIE_SESSION=****\n" in r.out
    for secret in (TOKEN, "sess-RUN-4411aa", "csrf-RUN-99"):
        assert secret not in r.out


def test_command_string_and_exit_codes(runner: Sig) -> None:
    r = runner("run", "my-jira", "--command", 'echo "cookie: $SIG_MY_JIRA_COOKIE"; exit 7', check=7)
    assert r.out.strip() == "cookie: ****"
    runner("run", "my-api", "--", "sh", "-c", "kill -TERM $$", check=128 + signal.SIGTERM)
    r = runner("run", "my-api", "--", "no-such-command-xyz", check=127)
    assert "command not found" in r.err


def test_provider_errors(runner: Sig) -> None:
    runner("run", "nosuch", "--", "true", check=2)
    runner("logout", "my-api", check=0)
    runner("run", "my-api", "--", "true", check=3)
    assert "--" in runner("run", "my-jira", check=1).err
    assert "no command" in runner("run", "my-jira", "--", check=1).err


def test_secret_written_byte_by_byte_never_leaks(runner: Sig) -> None:
    code = ("import os, sys, time\n"
            "s = os.environ['SIG_MY_API_TOKEN']\n"
            "for ch in ('prefix ' + s + ' mid ' + s[:5] + 'X suffix\\n'):\n"
            "    sys.stdout.write(ch); sys.stdout.flush(); time.sleep(0.002)\n"
            "sys.stderr.write(s + '\\n')\n")
    r = runner("run", "my-api", "--", PY, "-c", code, check=0)
    # Exactly "prefix **** mid tok-RX suffix", unless the loaded machine paused the writer for longer
    # than sig's idle flush: then up to 3 first bytes of a (possible) secret may show before its mask.
    head = "(?:" + "|".join(re.escape(TOKEN[:k]) for k in range(4)) + r")\*\*\*\*"
    assert re.fullmatch(rf"prefix {head} mid (?:{re.escape(TOKEN[:5])}|{head})X suffix\n", r.out), r.out
    assert r.err.strip().endswith("****")
    assert TOKEN not in r.err


def test_binary_output_passes_unchanged(runner: Sig) -> None:
    code = ("import sys, random\nr = random.Random(5)\n"
            "sys.stdout.buffer.write(bytes(r.randrange(256) for _ in range(300000)))")
    proc = subprocess.run([*runner.cmd, "run", "my-api", "--", PY, "-c", code], env=runner.env,
                          capture_output=True, timeout=60)
    import random

    rnd = random.Random(5)
    assert proc.returncode == 0
    assert proc.stdout == bytes(rnd.randrange(256) for _ in range(300000))


def test_no_redaction(runner: Sig) -> None:
    r = runner("run", "my-api", "--no-redaction", "--", "sh", "-c", 'echo "$SIG_MY_API_TOKEN"', check=0)
    assert r.out.strip() == TOKEN
    assert "redaction is off" in r.err


@pytest.mark.parametrize("fmt", ["env", "dotenv", "json", "yaml"])
def test_mount_formats(runner: Sig, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"creds.{fmt}"
    copy = tmp_path / "copy"
    r = runner("run", "my-api", "my-jira", "--mount", str(path), "--mount-format", fmt, "--", "sh", "-c",
               f'stat -c %a "{path}"; cp "{path}" "{copy}"', check=0)
    assert r.out.strip() == "600"
    assert not path.exists()
    text = copy.read_text()
    if fmt == "json":
        data = json.loads(text)
    elif fmt == "yaml":
        from ruamel.yaml import YAML

        data = YAML(typ="safe").load(text)
    else:
        shell = f'set -a; . "{copy}"; {PY} -c "import os, json; print(json.dumps(dict(os.environ)))"'
        data = json.loads(subprocess.run(["sh", "-c", shell], capture_output=True, text=True,
                                         env={"PATH": os.environ["PATH"]}, timeout=30).stdout)
    assert data["SIG_MY_API_TOKEN"] == TOKEN
    assert data["SIG_MY_JIRA_COOKIE"] == COOKIE


def test_mount_refuses_existing_file_and_symlinks(runner: Sig, tmp_path: Path) -> None:
    existing = tmp_path / "existing.env"
    existing.write_text("keep me")
    r = runner("run", "my-api", "--mount", str(existing), "--", "true", check=1)
    assert "--mount-force" in r.err and existing.read_text() == "keep me"
    runner("run", "my-api", "--mount", str(existing), "--mount-force", "--", "true", check=0)
    assert not existing.exists()
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    r = runner("run", "my-api", "--mount", str(link / "x.env"), "--", "true", check=1)
    assert "symbolic link" in r.err and not (real / "x.env").exists()
    target = tmp_path / "target"
    (tmp_path / "direct-link").symlink_to(target)
    r = runner("run", "my-api", "--mount", str(tmp_path / "direct-link"), "--", "true", check=1)
    assert not target.exists()


def test_mount_removed_on_sigterm_and_signal_forwarded(runner: Sig, tmp_path: Path) -> None:
    path = tmp_path / "live.env"
    marker = tmp_path / "child-got-term"
    code = ("import signal, sys, time, pathlib\n"
            f"def h(*a):\n    pathlib.Path({str(marker)!r}).write_text('term'); sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, h)\nprint('ready', flush=True)\n"
            "for _ in range(600):\n    time.sleep(0.05)\n")
    proc = runner.popen("run", "my-api", "--mount", str(path), "--", PY, "-c", code)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    assert path.exists()
    proc.send_signal(signal.SIGTERM)
    result = runner.finish(proc, timeout=30)
    assert marker.read_text() == "term"
    assert not path.exists()
    assert result.code == 0


def test_stale_mount_swept_at_next_run(runner: Sig, tmp_path: Path) -> None:
    path = tmp_path / "stale.env"
    proc = runner.popen("run", "my-api", "--mount", str(path), "--", "sleep", "30")
    for _ in range(200):
        if path.exists():
            break
        time.sleep(0.05)
    assert path.exists()
    os.kill(proc.pid, signal.SIGKILL)  # sig itself dies: no cleanup
    proc.wait(timeout=10)
    assert path.exists()
    r = runner("run", "my-api", "--", "true", check=0)
    assert "left behind" in r.err
    assert not path.exists()
    subprocess.run(["pkill", "-f", "sleep 30"], check=False)


def test_pty_when_stdout_is_a_terminal(runner: Sig) -> None:
    import pty

    code = "import os, sys; print(sys.stdout.isatty(), os.environ['SIG_MY_API_TOKEN'])"
    pid, fd = pty.fork()
    if pid == 0:  # child: become `sig run` with the pty as its terminal
        os.execvpe(runner.cmd[0], [*runner.cmd, "run", "my-api", "--", PY, "-c", code], runner.env)
    output = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        output += data
    os.waitpid(pid, 0)
    text = output.decode()
    assert "True ****" in text
    assert TOKEN not in text


def test_audit_records_run_without_values(runner: Sig) -> None:
    runner("run", "my-api", "--", "true", check=0)
    events = [json.loads(x) for x in (runner.home / "audit.log").read_text().splitlines()]
    run_events = [e for e in events if e["action"] == "run"]
    assert run_events[-1]["metadata"] == {"providers": ["my-api"], "command": "true", "providerCount": 1}
