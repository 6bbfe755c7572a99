"""Seed 001's spellings, accepted next to today's forms: `sig run a,b -- cmd`, `sig proxy --port N`."""

from __future__ import annotations

import time

from harness.sigproc import Sig

TOKENS = {"alpha": "tok-ALPHA-0a0a0a", "beta": "tok-BETA-0b0b0b"}


def _two_providers(sig: Sig) -> None:
    for pid, token in TOKENS.items():
        sig("login", f"https://{pid}.example.com", "--token-stdin", "--as", pid, input=token, check=0)


def test_run_comma_separated_providers(sig_init: Sig) -> None:
    _two_providers(sig_init)
    check = 'test "$SIG_ALPHA_TOKEN" = {a} && test "$SIG_BETA_TOKEN" = {b} && echo both'.format(
        a=TOKENS["alpha"], b=TOKENS["beta"])
    for spelling in (["alpha,beta"], ["alpha", "beta"], ["alpha,", "beta"], ["beta,alpha,beta"]):
        r = sig_init("run", *spelling, "--", "sh", "-c", check, check=0)
        assert r.out.strip() == "both", spelling
    audit = (sig_init.home / "audit.log").read_text()
    assert '"providers":["alpha","beta"]' in audit


def test_run_comma_list_names_the_missing_provider(sig_init: Sig) -> None:
    _two_providers(sig_init)
    r = sig_init("run", "alpha,nosuch", "--", "true", check=2)
    assert 'no provider matches "nosuch"' in r.err


def test_run_comma_separated_only_names_those(sig_init: Sig) -> None:
    _two_providers(sig_init)
    sig_init("login", "https://gamma.example.com", "--token-stdin", "--as", "gamma", input="tok-G-999", check=0)
    r = sig_init("run", "alpha,beta", "--", "sh", "-c", 'echo "${SIG_GAMMA_TOKEN:-none}"', check=0)
    assert r.out.strip() == "none"


def test_proxy_port_without_start_starts_it(sig_init: Sig) -> None:
    try:
        r = sig_init("proxy", "--port", "0", "--format", "json", check=0)
        state = r.json()
        assert state["running"] is True and state["port"] > 0
        assert sig_init("proxy", "status", "--format", "json", check=0).json()["pid"] == state["pid"]
    finally:
        sig_init("proxy", "stop", check=None)
    sig_init("proxy", "status", "--format", "json", check=1)


def test_proxy_without_subcommand_or_start_flags_is_a_usage_error(sig_init: Sig) -> None:
    r = sig_init("proxy", check=1)
    assert "say start, stop, status, trust or env" in r.err
    r = sig_init("proxy", "--format", "json", check=1)
    assert "USAGE_ERROR" in r.err


def test_proxy_foreground_serves_until_terminated(sig_init: Sig) -> None:
    proc = sig_init.popen("proxy", "--port", "0", "--foreground")
    try:
        deadline = time.monotonic() + 20
        state = None
        while time.monotonic() < deadline:
            r = sig_init("proxy", "status", "--format", "json", check=None)
            if r.code == 0:
                state = r.json()
                break
            assert proc.poll() is None, "the foreground proxy ended early"
            time.sleep(0.1)
        assert state is not None and state["pid"] == proc.pid
        again = sig_init("proxy", "start", "--foreground", "--port", "0", check=1)
        assert "already running" in again.err
        proc.terminate()
        result = sig_init.finish(proc)
        assert result.code == 0
        assert "proxy listening on 127.0.0.1:" in result.err
    finally:
        if proc.poll() is None:
            proc.kill()
    sig_init("proxy", "status", "--format", "json", check=1)
