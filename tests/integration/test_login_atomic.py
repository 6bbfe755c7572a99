"""A failed login leaves config.yaml and the credentials folder exactly as they were (byte for byte)."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
from pathlib import Path

import pytest

from harness.sigproc import Sig

OLD_COOKIE = "sid=cookie-OLD-5150"


def _snapshot(sig: Sig) -> dict[str, str]:
    """sha256 of config.yaml and of every entry in the credentials folder (lock files included)."""
    out = {"config.yaml": hashlib.sha256((sig.home / "config.yaml").read_bytes()).hexdigest()}
    for entry in sorted((sig.home / "credentials").iterdir()):
        out[f"credentials/{entry.name}"] = hashlib.sha256(entry.read_bytes()).hexdigest()
    return out


@pytest.fixture
def with_cookie_provider(sig_init: Sig) -> Sig:
    """Provider `site` (cookie strategy) with a stored cookie."""
    sig_init("login", "https://site.example.com", "--as", "site", "--cookie-stdin", input=OLD_COOKIE, check=0)
    return sig_init


def _key_gone(sig: Sig) -> None:
    # A sealed file exists and the key is missing: sig refuses to make a new key, so storing fails
    # after the login itself succeeded.
    (sig.home / "encryption.key").unlink()


def test_new_provider_whose_credential_cannot_be_stored_is_not_added(with_cookie_provider: Sig) -> None:
    sig = with_cookie_provider
    _key_gone(sig)
    before = _snapshot(sig)
    r = sig("login", "https://new.example.com", "--token-stdin", "--verbose", input="tok-NEW-0001", check=1)
    assert "STORAGE_ERROR" in r.err and "encryption key" in r.err
    assert _snapshot(sig) == before
    assert "new-example" not in (sig.home / "config.yaml").read_text()


def test_existing_provider_keeps_its_strategy_and_rules_when_storing_fails(with_cookie_provider: Sig) -> None:
    sig = with_cookie_provider
    _key_gone(sig)
    before = _snapshot(sig)
    r = sig("login", "site", "--token-stdin", input="tok-NEW-0002", check=1)
    assert "now uses strategy" not in r.err  # nothing changed, so nothing is announced
    assert _snapshot(sig) == before


def test_credential_is_put_back_when_the_config_cannot_be_saved(with_cookie_provider: Sig) -> None:
    sig = with_cookie_provider
    # The config's lock cannot be opened (a symlink, refused with O_NOFOLLOW): the credential is sealed
    # first, then saving the changed provider fails; the old credential file must come back unchanged.
    lock = sig.home / "config.yaml.lock"
    if lock.exists():
        lock.unlink()
    lock.symlink_to(sig.home / "no-such-target")
    before = _snapshot(sig)
    r = sig("login", "site", "--token-stdin", input="tok-NEW-0003", check=1)
    assert "config.yaml.lock" in r.err
    assert _snapshot(sig) == before
    lock.unlink()
    # and the provider still works with its old cookie
    assert sig("get", "site", "--format", "value", "--no-redaction", check=0).out.strip() == OLD_COOKIE


def test_new_provider_is_removed_again_when_the_config_cannot_be_saved(sig_init: Sig) -> None:
    lock = sig_init.home / "config.yaml.lock"
    if lock.exists():
        lock.unlink()
    lock.symlink_to(sig_init.home / "no-such-target")
    config = (sig_init.home / "config.yaml").read_bytes()
    sig_init("login", "https://new.example.com", "--as", "fresh", "--token-stdin", input="tok-NEW-0004", check=1)
    assert (sig_init.home / "config.yaml").read_bytes() == config
    assert not (sig_init.home / "credentials" / "fresh.json").exists()


@pytest.mark.parametrize("stdin_flag", ["--token-stdin", "--cookie-stdin"])
def test_bad_input_changes_nothing(with_cookie_provider: Sig, stdin_flag: str) -> None:
    import subprocess

    sig = with_cookie_provider
    before = _snapshot(sig)
    for target in ("https://new.example.com", "site"):
        proc = subprocess.run(sig.argv("login", target, stdin_flag), input=b"a=\xff\xfe-bad-bytes",
                              env=sig.env, capture_output=True, timeout=30)
        assert proc.returncode == 1, proc.stderr
        assert b"not valid UTF-8" in proc.stderr and b"internal error" not in proc.stderr
    assert _snapshot(sig) == before


def test_failed_browser_login_changes_nothing(with_cookie_provider: Sig) -> None:
    if not (shutil.which("chromium") or os.path.exists("/usr/bin/chromium")):
        pytest.skip("no Chromium")
    sig = with_cookie_provider
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    before = _snapshot(sig)
    sig("login", f"http://127.0.0.1:{port}/", "--mode", "headless", timeout=120, check=1)
    sig("login", "site", "--strategy", "browser", "--mode", "headless", "--force", timeout=120, check=1)
    assert _snapshot(sig) == before


def test_a_good_login_still_saves_both(with_cookie_provider: Sig) -> None:
    sig = with_cookie_provider
    r = sig("login", "site", "--token-stdin", input="tok-NEW-0005", check=0)
    assert 'now uses strategy "api-token"' in r.err
    assert "strategy: api-token" in (sig.home / "config.yaml").read_text()
    assert sig("get", "site", "--format", "value", "--no-redaction", check=0).out.strip() == "Bearer tok-NEW-0005"
    assert Path(sig.home / "credentials" / "site.json").exists()
