"""Bad input: each gives a clear message, the right exit code, no traceback, and loses nothing."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from harness.sigproc import Sig

TOKEN = "tok-BADINPUT-5150"


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err
    assert TOKEN not in err


def _login(sig: Sig) -> Path:
    sig("login", "https://api.example.com", "--token-stdin", input=TOKEN, check=0)
    return sig.home / "credentials" / "api-example.json"


def test_malformed_yaml(sig_init: Sig) -> None:
    (sig_init.home / "config.yaml").write_text("providers:\n  a: [\n")
    r = sig_init("status", check=1)
    assert "not valid YAML" in r.err and "line 3" in r.err
    _no_traceback(r.err)
    assert "not valid YAML" in sig_init("doctor", check=1).out


def test_all_config_errors_reported_at_once(sig_init: Sig) -> None:
    sig_init.add_providers("""\
  nodomains:
    strategy: api-token
  badstrat:
    domains: [x.example.com]
    strategy: magic
  badttl:
    domains: [y.example.com]
    strategy: api-token
    ttl: 2 hours
  "bad id!":
    domains: [z.example.com]
    strategy: api-token
""")
    r = sig_init("providers", check=1)
    _no_traceback(r.err)
    assert 'Provider "nodomains": missing required field "domains"' in r.err
    assert 'invalid strategy "magic"' in r.err
    assert 'ttl "2 hours" is not a duration' in r.err
    assert 'Provider "bad id!": invalid id' in r.err
    assert "(line " in r.err
    assert "sig doctor" in r.err


def test_unknown_key_is_a_warning(sig_init: Sig) -> None:
    sig_init.add_providers("""\
  api:
    domains: [api.example.com]
    strategy: api-token
    colour: blue
""")
    r = sig_init("providers", check=0)
    assert 'unknown key "colour"' in r.err
    assert r.json()[0]["id"] == "api"


def test_seed_format_config_loads(sig_init: Sig) -> None:
    (sig_init.home / "config.yaml").write_text("""\
providers:
  jira:
    url: https://jira.example.com
    strategy: cookie
    ttl: 8h
    proxy:
      inject:
        - in: header
          action: set
          name: Cookie
          from: credential.cookies
""")
    sig_init("login", "jira", "--cookie-stdin", input="JSESSIONID=abcdef123456", check=0)
    assert sig_init("get", "https://jira.example.com/browse/X-1", "--format", "value", check=0).out.strip() == \
        "****"


def test_truncated_credential_file(sig_init: Sig) -> None:
    path = _login(sig_init)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    r = sig_init("get", "api-example", check=1)
    assert "damaged" in r.err and "sig login" in r.err
    _no_traceback(r.err)
    # a new login keeps the damaged file aside rather than deleting it
    sig_init("login", "api-example", "--token-stdin", input=TOKEN, check=0)
    kept = [p for p in path.parent.iterdir() if ".unreadable." in p.name]
    assert len(kept) == 1 and kept[0].read_bytes() == data[: len(data) // 2]


def test_file_sealed_with_another_key(sig_init: Sig) -> None:
    path = _login(sig_init)
    envelope = json.loads(path.read_text())
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    other = AESGCM(os.urandom(32))
    iv = os.urandom(12)
    sealed = other.encrypt(iv, b'{"version":2,"providerId":"api-example","values":{}}', None)
    envelope.update(iv=base64.b64encode(iv).decode(), authTag=base64.b64encode(sealed[-16:]).decode(),
                    ciphertext=base64.b64encode(sealed[:-16]).decode())
    path.write_text(json.dumps(envelope))
    r = sig_init("get", "api-example", check=1)
    assert "different encryption key" in r.err
    _no_traceback(r.err)


def test_key_of_31_bytes(sig_init: Sig) -> None:
    path = _login(sig_init)
    before = path.read_bytes()
    key = sig_init.home / "encryption.key"
    key.chmod(0o600)
    key.write_text(base64.b64encode(os.urandom(31)).decode() + "\n")
    r = sig_init("get", "api-example", check=1)
    assert "31 bytes, expected 32" in r.err
    _no_traceback(r.err)
    r = sig_init("login", "api-example", "--token-stdin", input=TOKEN, check=1)
    assert "31 bytes" in r.err
    assert path.read_bytes() == before
    assert "Encryption key" in sig_init("doctor", check=1).out


def test_missing_key_never_silently_regenerated(sig_init: Sig) -> None:
    path = _login(sig_init)
    (sig_init.home / "encryption.key").unlink()
    r = sig_init("get", "api-example", check=1)
    assert "missing" in r.err
    r = sig_init("login", "https://b.example.com", "--token-stdin", input=TOKEN, check=1)
    assert "unreadable" in r.err or "missing" in r.err
    assert not (sig_init.home / "encryption.key").exists()
    assert path.exists()


def test_credentials_dir_not_writable(sig_init: Sig) -> None:
    creds = sig_init.home / "credentials"
    if os.geteuid() == 0:
        # root ignores permission bits: make the credentials "directory" a plain file instead.
        creds.rmdir()
        creds.write_text("not a directory")
    else:
        creds.chmod(0o500)
    try:
        r = sig_init("login", "https://api.example.com", "--token-stdin", input=TOKEN, check=1)
        assert "credentials" in r.err
        _no_traceback(r.err)
    finally:
        if creds.is_dir():
            creds.chmod(0o700)


@pytest.mark.parametrize("argv", [["login"], ["get"], ["rename", "a"], ["remove"], ["completion", "tcsh"],
                                  ["status", "a", "b"], ["get", "x", "--format", "xml"]])
def test_usage_errors(sig_init: Sig, argv: list[str]) -> None:
    r = sig_init(*argv, check=1)
    assert r.err.startswith("Error:") and "Hint:" in r.err
    _no_traceback(r.err)


def test_no_secret_in_stderr_or_audit(sig_init: Sig, tmp_path: Path) -> None:
    secrets = ["tok-SCAN-0001-zz", "sess-SCAN-0002-zz", "pw-SCAN-0003-zz"]
    sig_init("--verbose", "login", "https://a.example.com", "--token-stdin", input=secrets[0], check=0)
    sig_init("login", "https://b.example.com", "--cookie-stdin", "--verbose", input=f"S={secrets[1]}", check=0)
    sig_init("login", "https://c.example.com", "--username", "u", "--password-stdin", "--verbose",
             input=secrets[2], check=0)
    for pid in ("a-example", "b-example", "c-example"):
        for fmt in ("json", "header", "value"):
            sig_init("get", pid, "--format", fmt, "--verbose", check=0)
        sig_init("status", pid, "--verbose", check=0)
    sig_init("get", "a-example", "--format", "xml", "--verbose", check=1)
    sig_init("rename", "a-example", "a2", "--verbose", check=0)
    sig_init("logout", "a2", "--verbose", check=0)
    sig_init("doctor", check=None)
    sig_init.assert_no_secret(*secrets)
    audit = (sig_init.home / "audit.log").read_text()
    for s in secrets:
        assert s not in audit
    for line in audit.splitlines():
        event = json.loads(line)
        assert list(event)[:3] == ["timestamp", "action", "status"]
