"""`sig get`/`sig status` import only what they use (ARCHITECTURE: heavy imports live in the functions)."""

from __future__ import annotations

import subprocess
import sys

from harness.sigproc import Sig

HEAVY = ("ruamel", "yaml", "asyncio", "ssl", "http", "urllib", "cryptography", "rich", "playwright",
         "websockets", "quickjs", "json", "re", "typing", "argparse", "importlib.metadata", "email", "socket",
         "subprocess", "selectors", "signal", "enum", "httpx", "requests")
# Decrypting a credential needs cryptography's AESGCM: only its compiled binding (store/envelope.py), not
# the Python wrappers around it.
ALLOWED = {"cryptography", "cryptography.__about__", "cryptography.hazmat", "cryptography.hazmat.bindings",
           "cryptography.hazmat.bindings._rust"}


def _imported(sig: Sig, *args: str) -> set[str]:
    code = ("import sys, runpy; sys.argv = ['sig', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('sigcli', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, *args], env=sig.env, capture_output=True, text=True,
                          timeout=60)
    return set(proc.stderr.split())


def test_get_status_and_run_stay_light(sig_init: Sig) -> None:
    sig_init("login", "https://api.example.com", "--token-stdin", input="tok-IMPORTS-0001", check=0)
    sig_init("status", check=0)  # builds the config cache
    for argv in (["get", "api-example"], ["status", "--format", "json"], ["status", "api-example"],
                 ["run", "api-example", "--", "true"]):
        loaded = _imported(sig_init, *argv)
        assert "sigcli.cli.main" in loaded
        if argv[0] != "status":
            assert "cryptography.hazmat.bindings._rust" in loaded  # it did decrypt the credential
        heavy = sorted(m for m in loaded if (m.split(".")[0] in HEAVY or m in HEAVY) and m not in ALLOWED)
        assert heavy == [], f"sig {' '.join(argv)} imported {heavy}"
