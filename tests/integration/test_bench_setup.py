"""The benchmarks work after README's install alone: run by a Python that is not sig's own, a bench finds
the installed `sig`, restarts itself under that sig's Python and measures it (no `.venv-test` needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.sigproc import PROJECT_ROOT, Sig, sig_command


def test_startup_bench_runs_under_another_python(sig: Sig) -> None:
    installed = sig_command()
    base = getattr(sys, "_base_executable", "")
    if len(installed) != 1 or not base or os.path.abspath(base) == os.path.abspath(sys.executable):
        pytest.skip("needs sig installed in a venv and that venv's base interpreter")
    env = dict(sig.env, PATH=os.pathsep.join([str(Path(installed[0]).parent), os.environ.get("PATH", "")]))
    env.pop("PYTHONPATH", None)
    env.pop("SIG_BENCH_SIG", None)
    proc = subprocess.run([base, str(PROJECT_ROOT / "bench" / "startup.py"), "--runs", "1"], env=env,
                          cwd=sig.user_home, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sig get bench" in proc.stdout and "modules imported by `sig get`" in proc.stdout
    assert "heavy modules on the path: none" in proc.stdout
