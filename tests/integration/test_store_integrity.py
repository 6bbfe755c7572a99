"""The sealed store, from outside: a file is bound to its provider, unsealed files are refused once a key
exists, what sig writes stays readable by the original's SDK, and a writer killed mid-write leaves
nothing behind for long."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.servers import ServerHandle
from harness.sigproc import Sig

PAYROLL_TOKEN = "tok-PAYROLL-SECRET-7731"
WIKI_TOKEN = "tok-WIKI-1234abcd"
BLOCKING_WRITER = Path(__file__).resolve().parents[1] / "unit" / "_store_blocking_writer.py"


def _two_providers(sig: Sig, echo: ServerHandle) -> Path:
    sig("login", echo.url_for("/"), "--as", "wiki", "--token-stdin", input=WIKI_TOKEN, check=0)
    sig("login", "https://payroll.example.com", "--as", "payroll", "--token-stdin", input=PAYROLL_TOKEN, check=0)
    return sig.home / "credentials"


def test_a_file_copied_over_another_providers_is_refused(sig_init: Sig, http_echo: ServerHandle) -> None:
    creds = _two_providers(sig_init, http_echo)
    shutil.copyfile(creds / "payroll.json", creds / "wiki.json")

    r = sig_init("request", http_echo.url_for("/api"), "--format", "json", check=1)
    error = json.loads(r.err)["error"]
    assert error["code"] == "STORAGE_ERROR" and str(creds / "wiki.json") in error["message"]
    assert 'provider "payroll", not "wiki"' in error["message"]
    assert all(PAYROLL_TOKEN not in json.dumps(req) for req in http_echo.requests)
    r = sig_init("get", "wiki", "--no-redaction", check=1)
    assert PAYROLL_TOKEN not in r.out + r.err and "rm " in r.err
    r = sig_init("run", "wiki", "--", "sh", "-c", "echo ${SIG_WIKI_TOKEN:-none}", check=1)
    assert PAYROLL_TOKEN not in r.out + r.err
    status = {s["id"]: s for s in sig_init("status", "--format", "json", check=0).json()}
    assert status["wiki"]["configured"] is False and "payroll" in status["wiki"]["error"]
    assert status["payroll"]["valid"] is True

    # a new login replaces it; the foreign file is kept aside, not destroyed
    sig_init("login", "wiki", "--token-stdin", input=WIKI_TOKEN, check=0)
    assert sig_init("get", "wiki", "--format", "value", "--no-redaction", check=0).out.strip() == f"Bearer {WIKI_TOKEN}"
    assert [p.name for p in creds.iterdir() if p.name.startswith("wiki.json.unreadable.")]


def test_an_unsealed_file_is_refused_once_a_key_exists(sig_init: Sig, http_echo: ServerHandle) -> None:
    creds = _two_providers(sig_init, http_echo)
    planted = {"version": 2, "providerId": "wiki", "strategy": "api-token",
               "updatedAt": "2030-01-01T00:00:00.000Z", "values": {"token": "tok-PLANTED-0042"}}
    (creds / "wiki.json").write_text(json.dumps(planted))

    r = sig_init("request", http_echo.url_for("/api"), "--verbose", check=1)
    assert "STORAGE_ERROR" in r.err and "not sealed" in r.err and str(creds / "wiki.json") in r.err
    assert "--adopt-unsealed" in r.err
    assert all("tok-PLANTED-0042" not in json.dumps(req) for req in http_echo.requests)

    # the person who put it there vouches for it: sealed in place, then used
    r = sig_init("login", "wiki", "--adopt-unsealed", "--token", "x", check=1)
    assert "takes no other options" in r.err
    sig_init("login", "wiki", "--adopt-unsealed", check=0)
    envelope = json.loads((creds / "wiki.json").read_text())
    assert envelope["encrypted"] is True and "tok-PLANTED-0042" not in json.dumps(envelope)
    sig_init("request", http_echo.url_for("/api"), check=0)
    assert http_echo.last_request is not None
    assert http_echo.last_request["headers"]["authorization"] == "Bearer tok-PLANTED-0042"


def test_plain_files_from_before_any_key_are_sealed_with_the_first_key(sig: Sig, fixtures_dir: Path) -> None:
    # A setup that never sealed anything (no key): its plain files are read, and sealed when the key is made.
    sig("init", "--yes", check=0)
    (sig.home / "encryption.key").unlink()
    creds = sig.home / "credentials"
    legacy = json.loads((fixtures_dir / "python-written" / "local-tls.legacy-unencrypted.json").read_text())
    legacy["providerId"] = "old"
    (creds / "old.json").write_text(json.dumps(legacy))
    (creds / "old.json").chmod(0o600)  # as the original writes it
    sig("login", "https://api.example.com", "--as", "new", "--token-stdin", input=WIKI_TOKEN, check=0)
    assert (sig.home / "encryption.key").exists()
    assert json.loads((creds / "old.json").read_text())["encrypted"] is True
    assert json.loads((creds / "new.json").read_text())["encrypted"] is True


def test_sdk_still_reads_sealed_files_after_rewrites(sig_init: Sig) -> None:
    # Binding uses the providerId inside the sealed payload, not AES-GCM associated data: the original's
    # SDK decrypts with none, so it must still read every file sig writes.
    pytest.importorskip("sigcli_sdk")
    sig_init("login", "https://api.example.com", "--as", "api", "--token-stdin", input=WIKI_TOKEN, check=0)
    sig_init("login", "api", "--token-stdin", input="tok-SECOND-5678", check=0)
    script = ("import sys, json; from sigcli_sdk import SigClient; "
              "c = SigClient(sys.argv[1]); print(json.dumps(dict(c.get_credential('api').values)))")
    proc = subprocess.run([sys.executable, "-c", script, str(sig_init.home / "credentials")],
                          capture_output=True, text=True, env=dict(sig_init.env), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"token": "tok-SECOND-5678"}


def _start_blocked_writer(sig: Sig, provider_id: str) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, str(BLOCKING_WRITER), str(sig.home / "credentials"), str(sig.home / "encryption.key"),
         provider_id],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(sig.env))
    assert proc.stdout is not None
    line = proc.stdout.readline()  # returns once the writer is inside its write (or has died)
    if not line.startswith("blocked "):
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"the writer did not block: {line!r} {err}")
    return proc, Path(line.split(" ", 1)[1].strip())


def test_temp_files_of_a_writer_killed_mid_write_are_swept(sig_init: Sig) -> None:
    sig_init("login", "https://api.example.com", "--as", "stuck", "--token-stdin", input=WIKI_TOKEN, check=0)
    creds = sig_init.home / "credentials"
    before = (creds / "stuck.json").read_bytes()
    writer, temp = _start_blocked_writer(sig_init, "stuck")
    try:
        assert temp.parent == creds and temp.name.startswith("stuck.json.tmp.") and temp.exists()
        # A live writer's temp file is never taken: not while its pid lives, and not even when it looks
        # old, because the writer holds the file's lock.
        sig_init("login", "https://other.example.com", "--as", "other", "--token-stdin", input="tok-OTHER-1", check=0)
        assert temp.exists()
        old = time.time() - 3600
        os.utime(temp, (old, old))
        sig_init("login", "other", "--token-stdin", input="tok-OTHER-2", check=0)
        assert temp.exists()
        assert (creds / "stuck.json").read_bytes() == before  # the half-written file never replaced it

        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)  # reaped: its pid is gone
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(timeout=10)
        writer.communicate(timeout=10)
    assert temp.exists()  # nothing cleans up by itself ...
    sig_init("login", "other", "--token-stdin", input="tok-OTHER-3", check=0)
    assert not temp.exists()  # ... the next write in the folder does
    assert [p.name for p in creds.iterdir() if ".tmp." in p.name] == []
    assert (creds / "stuck.json").read_bytes() == before
    assert sig_init("get", "stuck", "--format", "value", "--no-redaction", check=0).out.strip() == \
        f"Bearer {WIKI_TOKEN}"


def test_the_originals_temp_names_are_swept_only_when_old(sig_init: Sig) -> None:
    # The original names temps `<file>.tmp.<16 hex>` (no pid) and locks another way: only age tells.
    sig_init("login", "https://api.example.com", "--as", "api", "--token-stdin", input=WIKI_TOKEN, check=0)
    creds = sig_init.home / "credentials"
    young = creds / "api.json.tmp.0123456789abcdef"
    aged = creds / "gone.json.tmp.fedcba9876543210"
    young.write_text("{}")
    aged.write_text("{}")
    old = time.time() - 3600
    os.utime(aged, (old, old))
    sig_init("login", "api", "--token-stdin", input="tok-AGAIN-0001", check=0)
    assert young.exists() and not aged.exists()
