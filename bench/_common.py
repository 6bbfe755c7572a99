"""What every bench script needs before it measures: the `sig` to measure, its Python, and for the benches
that start test servers, the test harness's packages.

The benches run right after README's install command, with any Python 3.11+ (`python3 bench/startup.py`):
- the `sig` measured is $SIG_BENCH_SIG if set, else the one next to the running interpreter (a venv's
  python), else the one on PATH;
- the bench runs itself again under that sig's own Python (its #! line), so what it does in-process
  (the redactor alone, `-X importtime`) uses the interpreter and packages of the sig it measures;
- packages the harness needs (trustme, authlib, flask, joserfc) that this Python lacks are installed
  once into bench/.deps with its pip (never into sig's own environment) and imported from there.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPS = ROOT / "bench" / ".deps"
# import name -> what pip installs (the versions the test extra in pyproject.toml asks for)
PACKAGES = {"trustme": "trustme>=1.1", "authlib": "authlib>=1.8", "flask": "flask>=3", "joserfc": "joserfc>=1.6"}
INSTALL = "python3 -m venv ~/.local/sig && ~/.local/sig/bin/pip install -q --upgrade pip ."


def find_sig() -> str | None:
    chosen = os.environ.get("SIG_BENCH_SIG")
    if chosen:
        return chosen
    beside = Path(sys.executable).with_name("sig")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("sig")


def sig_python(sig: str) -> str:
    """The interpreter a `sig` script starts with (its #! line), else this one. A venv's python is a symlink: compared as written, not resolved."""
    try:
        with open(sig, "rb") as fh:
            first = fh.readline(512).decode("utf-8", "replace").strip()
    except OSError:
        return sys.executable
    if first.startswith("#!"):
        parts = first[2:].split()
        if parts and os.path.basename(parts[0]).startswith("python") and os.access(parts[0], os.X_OK):
            return parts[0]
    return sys.executable


def setup(needs: tuple[str, ...] = ()) -> str:
    """Return the path of the `sig` to measure, with this process running on its Python and the
    modules in `needs` importable (installed into bench/.deps when missing). Exits with the command to
    run when no sig is installed."""
    sig = find_sig()
    if sig is None:
        print(f"no `sig` found next to {sys.executable} or on PATH; install it first (from the checkout):\n"
              f"  {INSTALL}\nthen run this bench with ~/.local/sig/bin/python, or set SIG_BENCH_SIG=/path/to/sig")
        raise SystemExit(1)
    python = sig_python(sig)
    if os.path.abspath(python) != os.path.abspath(sys.executable) and not os.environ.get("SIG_BENCH_REEXEC"):
        os.environ["SIG_BENCH_REEXEC"] = "1"
        os.environ["SIG_BENCH_SIG"] = sig
        os.execv(python, [python, *sys.argv])
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)  # the loopback servers of the test harness
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        if str(DEPS) not in sys.path:
            sys.path.append(str(DEPS))  # after sig's own packages: only fills what they lack
        importlib.invalidate_caches()
        missing = [m for m in missing if importlib.util.find_spec(m) is None]
    if missing:
        wanted = [PACKAGES.get(m, m) for m in missing]
        print(f"bench: installing {', '.join(wanted)} into {DEPS} (once)", flush=True)
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--upgrade",
                               "--target", str(DEPS), *wanted], check=False)
        if proc.returncode != 0:
            print(f"bench: could not install {', '.join(wanted)}; install them into {sys.executable}'s "
                  "environment yourself (pip install ...) and run again")
            raise SystemExit(1)
        importlib.invalidate_caches()
    return sig
