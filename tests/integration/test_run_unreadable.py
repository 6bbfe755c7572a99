"""`sig run` with no provider named uses every provider with a usable credential. One whose credential file
cannot be read (damaged, or planted unsealed) is skipped with one warning line on stderr naming the provider
and the error code (never a value), and the run goes on; a provider that is merely not logged in is skipped
quietly, as before."""

from __future__ import annotations

import json
import sys

from harness.sigproc import Sig

TOKEN = "tok-RUNWARN-8c1d2e"
PLANTED = "planted-RUNWARN-77aa"
PY = sys.executable
SHOW = [PY, "-c", "import os; print(sorted(k for k in os.environ if k.startswith('SIG_') and "
                  "k.endswith('_PROVIDER')))"]


def test_unreadable_credentials_are_named_on_stderr_and_skipped(sig_init: Sig) -> None:
    sig_init("login", "https://api.example.com", "--token-stdin", "--as", "good", input=TOKEN, check=0)
    sig_init("login", "https://b.example.com", "--token-stdin", "--as", "broken", input="tok-b-secret", check=0)
    sig_init("login", "https://c.example.com", "--token-stdin", "--as", "planted", input="tok-c-secret", check=0)
    sig_init("login", "https://d.example.com", "--token-stdin", "--as", "gone", input="tok-d-secret", check=0)
    creds = sig_init.home / "credentials"
    (creds / "broken.json").write_bytes(b'{"version": 1, "encrypted": tru')  # damaged
    planted = {"version": 2, "providerId": "planted", "strategy": "api-token",
               "updatedAt": "2030-01-01T00:00:00.000Z", "values": {"token": PLANTED}}
    (creds / "planted.json").write_text(json.dumps(planted))  # unsealed: refused once a key exists
    sig_init("logout", "gone", check=0)  # not logged in: normal, no warning

    r = sig_init("run", "--", *SHOW, check=0)
    assert r.out.strip() == "['SIG_GOOD_PROVIDER']", r.out
    warnings = [line for line in r.err.splitlines() if line.startswith("Warning:")]
    assert warnings == [
        'Warning: skipped "broken": its credential cannot be used (STORAGE_ERROR); see why with: sig get broken',
        'Warning: skipped "planted": its credential cannot be used (STORAGE_ERROR); see why with: sig get planted',
    ], r.err
    assert "gone" not in r.err
    assert PLANTED not in r.out + r.err

    # The child's exit status is still the run's; the warnings come once per run.
    r = sig_init("run", "--command", "exit 5", check=5)
    assert sum(line.startswith("Warning: skipped") for line in r.err.splitlines()) == 2

    # Named explicitly, an unreadable credential is still an error (not a warning).
    r = sig_init("run", "broken", "--", "true", check=1)
    assert "damaged" in r.err
    sig_init.assert_no_secret(TOKEN)
    sig_init.assert_no_secret(PLANTED)
