"""What README says about the upstream `sigcli-sdk` (2.0.0) and SIG_HOME, checked against the real package:
it reads sig's files under ~/.sig, ignores SIG_HOME, and loads the key from $HOME/.sig even when given
another credentials folder."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.sigproc import Sig

READ = """
import sys
from sigcli_sdk import SigClient
client = SigClient(*sys.argv[1:2])
print(client.get_credential("my-api").values["token"])
"""


def test_upstream_sdk_ignores_sig_home(sig_init: Sig, tmp_path: object) -> None:
    pytest.importorskip("sigcli_sdk")
    token = "tok-SDK-HOME-5151"
    sig_init("login", "https://api.example.com", "--token-stdin", "--as", "my-api", input=token, check=0)
    # sig_init's SIG_HOME is $HOME/.sig: the SDK finds everything
    ok = subprocess.run([sys.executable, "-c", READ], env=sig_init.env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout.strip() == token, ok.stderr
    # the same files under a SIG_HOME that is not $HOME/.sig: not found, even with credentials_dir given
    moved = sig_init.user_home / "elsewhere"
    (sig_init.user_home / ".sig").rename(moved)
    env = dict(sig_init.env, SIG_HOME=str(moved))
    assert sig_init("get", "my-api", env={"SIG_HOME": str(moved)}, check=0).json()["provider"] == "my-api"
    lost = subprocess.run([sys.executable, "-c", READ, str(moved / "credentials")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert lost.returncode != 0
    assert "FileNotFoundError" in lost.stderr and f"{sig_init.user_home}/.sig/encryption.key" in lost.stderr
