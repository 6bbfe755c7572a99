"""The CLI surface: help, version, parsing, exit codes, not-yet-available commands."""

from __future__ import annotations

import pytest

from harness.sigproc import Sig

SECTIONS = ["Authentication:", "Credentials (most", "Provider management:", "Remote & sync:", "Watch:",
            "Setup:", "Global options:"]
ALL_COMMANDS = ["login", "logout", "proxy", "request", "run", "get", "status", "providers", "rename", "remove",
                "remote", "sync", "watch", "init", "doctor", "config", "completion"]


def test_help_sections_in_order(sig: Sig) -> None:
    r = sig("--help", check=0)
    positions = [r.out.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    for flag in ("--as <id>", "--force", "--network-proxy", "--method <METHOD>", "--body <json>", "--keep-config",
                 "--provider <id>", "--auto-sync <remote>", "remote add <name> <host>", "--token-stdin",
                 "--verbose", "--remote"):
        assert flag in r.out
    assert sig(check=0).out == r.out
    assert sig("help", check=0).out == r.out


@pytest.mark.parametrize("command", ALL_COMMANDS)
def test_every_command_has_help(sig: Sig, command: str) -> None:
    r = sig(command, "--help", check=0)
    assert "Usage: sig" in r.out
    assert sig("help", command, check=0).out == r.out


def test_version(sig: Sig) -> None:
    r = sig("--version", check=0)
    assert r.out.startswith("sig ")


def test_unknown_command_and_option(sig: Sig) -> None:
    r = sig("frobnicate", check=1)
    assert 'unknown command "frobnicate"' in r.err
    r = sig("status", "--bogus", check=1)
    assert "unknown option --bogus" in r.err
    assert "Traceback" not in r.err


def test_commands_without_config_say_run_init(sig: Sig) -> None:
    for argv in (["status"], ["get", "x"], ["providers"], ["login", "https://a.example.com", "--token", "t1234"]):
        r = sig(*argv, check=1)
        assert "sig init" in r.err
        assert "Traceback" not in r.err


def test_json_errors_on_stderr(sig_init: Sig) -> None:
    r = sig_init("status", "nosuch", "--format", "json", check=2)
    err = r.json_err() if hasattr(r, "json_err") else __import__("json").loads(r.err)
    assert err["error"]["code"] == "PROVIDER_NOT_FOUND"
    assert err["error"]["hint"]
    assert r.out == ""


def test_flag_forms(sig_init: Sig) -> None:
    sig_init("login", "https://api.example.com", "--as=my-api", "--token-stdin", input="tok-AAAA1111", check=0)
    # flags before the positional, --x=y, and the value form all work
    assert sig_init("get", "--format=header", "my-api", check=0).out.strip() == "Authorization: Bearer ****"
    assert sig_init("get", "--format", "value", "my-api", check=0).out.strip() == "Bearer ****"
    assert sig_init("--verbose", "status", "my-api", "--format", "json", check=0).json()["valid"] is True


def test_verbose_shows_error_code(sig_init: Sig) -> None:
    r = sig_init("get", "nosuch", "--verbose", check=2)
    assert "[PROVIDER_NOT_FOUND]" in r.err
