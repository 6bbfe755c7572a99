#!/usr/bin/env python3
"""Start-up time of sig: median wall time of `sig get P`, `sig status`, `sig --help` against a bare
`python -c pass`, measured paired (interleaved) in one run, plus the modules `sig get` imports.

Usage: python bench/startup.py [--runs N]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def sig_argv() -> list[str]:
    """The installed `sig`, run by its own Python (bench/_common.py may restart this bench under it)."""
    from _common import setup

    return [sys.executable, setup()]


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> int:
    sig = sig_argv()
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 40
    home = tempfile.mkdtemp(prefix="sig-bench-")
    env = dict(os.environ, SIG_HOME=home)
    subprocess.run([*sig, "init", "--yes"], env=env, capture_output=True, check=True)
    subprocess.run([*sig, "login", "https://api.example.com", "--token-stdin", "--as", "bench"], env=env,
                   input=b"tok-BENCH-000000", capture_output=True, check=True)
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "sig get bench": [*sig, "get", "bench"],
        "sig status": [*sig, "status", "--format", "json"],
        "sig --help": [*sig, "--help"],
        "sig run bench -- true": [*sig, "run", "bench", "--", "true"],
    }
    for argv in cases.values():  # warm the page cache and sig's config cache
        timed(argv, env)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, argv in cases.items():
            samples[name].append(timed(argv, env))
    base = statistics.median(samples["python -c pass"])
    print(f"start-up, median of {runs} paired runs ({sys.version.split()[0]}, {os.cpu_count()} cpus)")
    for name, values in samples.items():
        med = statistics.median(values)
        print(f"  {name:<22} {med * 1000:7.1f} ms   {med / base:4.2f}x python -c pass")
    proc = subprocess.run([sys.executable, "-X", "importtime", *sig[1:], "get", "bench"], env=env,
                          capture_output=True, text=True, check=False)
    modules = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            parts = line.split("|")
            name = parts[-1].rstrip()
            if parts[0].split(":")[1].strip().isdigit():
                modules.append((int(parts[1].strip()), name))
    ours = [m for _, m in modules if m.strip().startswith("sigcli")]
    # cryptography's compiled binding is expected: it decrypts the credential (store/envelope.py)
    binding = {"cryptography", "cryptography.__about__", "cryptography.hazmat", "cryptography.hazmat.bindings",
               "cryptography.hazmat.bindings._rust"}
    heavy = [m.strip() for _, m in modules if m.strip() not in binding and m.strip().split(".")[0] in
             ("ruamel", "yaml", "asyncio", "ssl", "http", "cryptography", "rich", "playwright", "websockets")]
    print(f"\nmodules imported by `sig get`: {len(modules)} in all, {len(ours)} of sig's own")
    print("  sig modules: " + ", ".join(m.strip() for m in ours))
    print("  heavy modules on the path: " + (", ".join(sorted(set(heavy))) or "none"))
    top = sorted(modules, reverse=True)[:8]
    print("  slowest (cumulative µs): " + ", ".join(f"{m.strip()} {us}" for us, m in top))
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
