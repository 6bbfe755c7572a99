#!/usr/bin/env python3
"""Overhead of `sig run`: median wall time of `sig run P -- true` and `sig run -- true` (implicit mode:
every provider) against a bare `true` and `python -c pass`, measured paired (interleaved) in one run.

Everything runs against a temporary SIG_HOME with one provider, no network.

Usage: python bench/run_overhead.py [--runs 40]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TOKEN = "tok-BENCH-RUN-0123456789abcdef"


def sig_path() -> str | None:
    """The installed `sig` (bench/_common.py may restart this bench under sig's own Python)."""
    from _common import setup

    return setup()


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False, timeout=120)
    return time.perf_counter() - start, proc.returncode


def probe(argv: list[str], env: dict[str, str]) -> str | None:
    """None when the command works, else why not (for the report)."""
    proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=120)
    if proc.returncode == 0:
        return None
    lines = proc.stderr.decode(errors="replace").strip().splitlines()
    first = lines[0] if lines else "(no message)"
    if b"not available" in proc.stderr:
        return f"not available yet (exit {proc.returncode}: {first})"
    return f"failed (exit {proc.returncode}: {first})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="paired rounds, median reported (default 40)")
    opts = parser.parse_args()
    sig = sig_path()
    true = shutil.which("true") or "/bin/true"
    home = tempfile.mkdtemp(prefix="sig-bench-run-")
    env = dict(os.environ, SIG_HOME=home)
    try:
        cases: dict[str, list[str]] = {"true": [true], "python -c pass": [sys.executable, "-c", "pass"]}
        skipped: dict[str, str] = {}
        if sig is None:
            skipped["sig run"] = "`sig` not found next to the interpreter or on PATH"
        else:
            subprocess.run([sig, "init", "--yes"], env=env, capture_output=True, check=True, timeout=120)
            subprocess.run([sig, "login", "https://api.example.com", "--token-stdin", "--as", "bench"], env=env,
                           input=TOKEN.encode(), capture_output=True, check=True, timeout=120)
            for name, argv in {"sig run bench -- true": [sig, "run", "bench", "--", true],
                               "sig run -- true": [sig, "run", "--", true]}.items():
                problem = probe(argv, env)
                if problem is None:
                    cases[name] = argv
                else:
                    skipped[name] = problem
        for argv in cases.values():  # warm the page cache and sig's config cache
            timed(argv, env)
        samples: dict[str, list[float]] = {name: [] for name in cases}
        failures: dict[str, int] = {}
        for _ in range(opts.runs):
            for name, argv in cases.items():
                elapsed, code = timed(argv, env)
                samples[name].append(elapsed)
                if code != 0:
                    failures[name] = code
        true_med = statistics.median(samples["true"])
        py_med = statistics.median(samples["python -c pass"])
        print(f"sig run overhead, median of {opts.runs} paired rounds "
              f"({sys.version.split()[0]}, {os.cpu_count()} cpus)")
        for name, values in samples.items():
            med = statistics.median(values)
            print(f"  {name:<24} {med * 1000:7.1f} ms   +{(med - true_med) * 1000:6.1f} ms over true   "
                  f"{med / py_med:5.2f}x python -c pass")
        for name, code in failures.items():
            print(f"  WARNING: {name} exited {code} in some rounds")
        for name, why in skipped.items():
            print(f"  {name:<24} {why}; not measured")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
