"""The agent guard: under an AI agent's markers no command prints a raw secret without a person's yes on
the terminal (`sig get|run|request --no-redaction`), and a person at a real terminal can give that yes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.servers import ServerHandle
from harness.sigproc import SCRUBBED_ENV, Result, Sig
from harness.terminal import at_terminal

TOKEN = "tok-GUARD-5ec2e7-31337"
MARKERS = ("SIG_AGENT", "CLAUDECODE")
PROMPT = b"Allow it?"


@pytest.fixture
def guarded(sig_init: Sig, https_echo: ServerHandle) -> Sig:
    """A provider "echo" for the HTTPS echo server, logged in with an API token."""
    sig_init("login", https_echo.url, "--token-stdin", "--as", "echo", input=TOKEN, check=0)
    cfg = sig_init.home / "config.yaml"
    cfg.write_text(cfg.read_text().replace("    strategy: api-token\n",
                                           f"    strategy: api-token\n    caFile: {https_echo.ca_path}\n", 1))
    return sig_init


def _no_tty(sig: Sig, *args: str, env: dict[str, str], input: str | None = None) -> Result:
    """Run sig in a new session: no controlling terminal, as an agent's tool runs commands."""
    proc = sig.popen(*args, env=env, start_new_session=True)
    return sig.finish(proc, input=input or "")


def _audit(sig: Sig, action: str) -> list[dict]:
    path = sig.home / "audit.log"
    events = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [e for e in events if e["action"] == action]


def _commands(url: str, marker_file: Path) -> dict[str, list[str]]:
    return {
        "get": ["get", "echo", "--no-redaction", "--format", "value"],
        "run": ["run", "echo", "--no-redaction", "--", "sh", "-c", f'touch {marker_file}; echo "$SIG_ECHO_TOKEN"'],
        "request": ["request", f"{url}/whoami", "--no-redaction", "--format", "body"],
    }


@pytest.mark.parametrize("marker", MARKERS)
@pytest.mark.parametrize("command", ["get", "run", "request"])
def test_agent_without_terminal_is_refused(guarded: Sig, https_echo: ServerHandle, tmp_path: Path,
                                           command: str, marker: str) -> None:
    ran = tmp_path / "child-ran"
    argv = _commands(https_echo.url, ran)[command]
    r = _no_tty(guarded, *argv, env={marker: "1"})
    assert r.code == 1, r.err
    assert TOKEN not in r.out and TOKEN not in r.err
    assert "a person's yes at the terminal" in r.err and "Hint:" in r.err
    # Refused before anything happened: no child, no request sent.
    assert not ran.exists()
    assert https_echo.requests == []
    refusals = _audit(guarded, "raw_access")
    assert refusals and refusals[-1]["status"] == "failure"
    assert refusals[-1]["metadata"]["agentMarkers"] == [marker]
    assert refusals[-1]["metadata"]["refused"] == "no-terminal"
    assert TOKEN not in (guarded.home / "audit.log").read_text()


def test_refusal_as_json_error(guarded: Sig) -> None:
    r = _no_tty(guarded, "get", "echo", "--no-redaction", "--format", "json", env={"CLAUDECODE": "1"})
    assert r.code == 1
    error = json.loads(r.err)["error"]
    assert error["code"] == "GENERAL_ERROR" and "sig run" in error["hint"]
    assert TOKEN not in r.out + r.err


def test_agent_cannot_answer_through_stdin(guarded: Sig) -> None:
    r = _no_tty(guarded, "get", "echo", "--no-redaction", env={"SIG_AGENT": "1"}, input="y\nyes\n")
    assert r.code == 1 and TOKEN not in r.out + r.err


def test_redacted_output_needs_no_confirmation(guarded: Sig, https_echo: ServerHandle) -> None:
    env = {"CLAUDECODE": "1"}
    r = _no_tty(guarded, "run", "echo", "--", "sh", "-c", 'echo "$SIG_ECHO_TOKEN"', env=env)
    assert r.code == 0 and r.out.strip() == "****"
    r = _no_tty(guarded, "get", "echo", "--format", "value", env=env)
    assert r.code == 0 and TOKEN not in r.out
    r = _no_tty(guarded, "request", f"{https_echo.url}/x", env=env)
    assert r.code == 0 and TOKEN not in r.out
    assert _audit(guarded, "raw_access") == []


def test_marker_set_to_zero_is_not_an_agent(guarded: Sig) -> None:
    r = _no_tty(guarded, "get", "echo", "--no-redaction", "--format", "value", env={"SIG_AGENT": "0"})
    assert r.code == 0 and TOKEN in r.out


def test_harness_scrubs_every_marker() -> None:
    from sigcli.cli.guard import AGENT_MARKERS

    assert set(AGENT_MARKERS) <= set(SCRUBBED_ENV)


# -- a person at a real terminal -------------------------------------------------------------------------


def _at_terminal(sig: Sig, argv: list[str], answer: bytes, timeout: float = 30) -> tuple[int, str]:
    """sig under `script` with an agent marker; the question answered like a person (harness/terminal.py)."""
    return at_terminal(sig, argv, PROMPT, answer, env=sig._env({"CLAUDECODE": "1"}), timeout=timeout)


@pytest.mark.parametrize("command", ["get", "run", "request"])
def test_person_at_terminal_approves(guarded: Sig, https_echo: ServerHandle, tmp_path: Path,
                                     command: str) -> None:
    argv = _commands(https_echo.url, tmp_path / "child-ran")[command]
    code, shown = _at_terminal(guarded, argv, b"y")
    assert code == 0, shown
    assert TOKEN in shown  # the raw value, as the person allowed
    assert "CLAUDECODE" in shown and '"echo"' in shown  # the question says who asks and for what
    approvals = _audit(guarded, "raw_access")
    assert approvals[-1]["status"] == "success" and approvals[-1]["metadata"]["approvedBy"] == "terminal"


def test_person_at_terminal_declines(guarded: Sig, tmp_path: Path, https_echo: ServerHandle) -> None:
    ran = tmp_path / "child-ran"
    code, shown = _at_terminal(guarded, _commands(https_echo.url, ran)["run"], b"n")
    assert code == 1
    assert TOKEN not in shown and not ran.exists()
    assert "said no" in shown
    assert _audit(guarded, "raw_access")[-1]["metadata"]["refused"] == "no"
