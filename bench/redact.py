#!/usr/bin/env python3
"""Redaction throughput: piping text through `sig run p1 … p20 -- cat` (20 providers, so 20 secrets and
their forms to mask) against plain `cat`, measured paired (alternating runs, median of N), plus the
in-process StreamRedactor alone fed 64 KiB chunks of the same text, with each of its matchers (ahocorasick-rs,
then the `bytes.find` fallback used when ahocorasick-rs is not installed).

The input is --mb MB of log-like text containing every secret a few times, so redaction does real work;
the child's output goes to /dev/null. Everything runs against a temporary SIG_HOME, no network.

Usage: python bench/redact.py [--mb 100] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROVIDERS = 20
CHUNK = 65536
OCCURRENCES = 3  # of each secret in the input


def sig_path() -> str | None:
    """The installed `sig` (bench/_common.py may restart this bench under sig's own Python)."""
    from _common import setup

    return setup()


def make_secrets(rng: random.Random) -> list[str]:
    """24-char tokens of mixed shapes (a shared prefix would flatter a matcher's prefilter)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    prefixes = ["ghp_", "xoxb-", "sk-", "glpat-", "AKIA", "", "", ""]
    secrets = []
    for n in range(PROVIDERS):
        head = prefixes[n % len(prefixes)]
        body = "0123456789abcdef" if n % 3 == 2 else alphabet
        secrets.append(head + "".join(rng.choices(body, k=24 - len(head))))
    return secrets


def make_input(size: int, secrets: list[str], rng: random.Random) -> bytes:
    """`size` bytes of log lines (a 1 MiB block repeated) with each secret written in a few times."""
    words = ["GET", "POST", "/api/v1/items", "/login", "200", "404", "OK", "latency=12ms", "user=alice",
             "Authorization:", "Bearer", "tok-", "SESSION=", "cache", "miss", "hit", "retry", "pässwörd"]
    lines: list[str] = []
    length = 0
    while length < 1 << 20:
        line = " ".join(rng.choices(words, k=rng.randint(4, 14))) + "\n"
        lines.append(line)
        length += len(line.encode())
    block = "".join(lines).encode()[: 1 << 20]
    data = bytearray(block * (size // len(block) + 1))[:size]
    for secret in secrets:
        raw = f" Bearer {secret}\n".encode()
        for _ in range(OCCURRENCES):
            at = rng.randrange(0, max(1, size - len(raw)))
            data[at : at + len(raw)] = raw
    return bytes(data)


def run_once(argv: list[str], stdin_path: Path, env: dict[str, str]) -> tuple[float, int, bytes]:
    with open(stdin_path, "rb") as stdin:
        start = time.perf_counter()
        proc = subprocess.run(argv, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                              check=False, timeout=1800)
        return time.perf_counter() - start, proc.returncode, proc.stderr


def setup_home(sig: str, home: str, secrets: list[str]) -> dict[str, str]:
    env = dict(os.environ, SIG_HOME=home)
    subprocess.run([sig, "init", "--yes"], env=env, capture_output=True, check=True, timeout=120)
    for n, secret in enumerate(secrets, 1):
        subprocess.run([sig, "login", f"https://p{n}.example.com", "--token-stdin", "--as", f"p{n}"], env=env,
                       input=secret.encode(), capture_output=True, check=True, timeout=120)
    return env


def probe_run(sig: str, env: dict[str, str], providers: list[str], secrets: list[str]) -> str | None:
    """None when `sig run … -- cat` works and masks the secrets, else why not (for the report)."""
    sample = "".join(f"line {n}: Bearer {s}\n" for n, s in enumerate(secrets)).encode()
    try:
        proc = subprocess.run([sig, "run", *providers, "--", "cat"], input=sample, env=env, capture_output=True,
                              check=False, timeout=120)
    except subprocess.TimeoutExpired:
        return "`sig run … -- cat` did not finish within 120 s on a few lines of input"
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        first = message[0] if message else "(no message)"
        if b"not available" in proc.stderr:
            return f"not available yet (exit {proc.returncode}: {first})"
        return f"failed (exit {proc.returncode}: {first})"
    leaked = [s for s in secrets if s.encode() in proc.stdout]
    if leaked:
        print(f"  WARNING: `sig run` left {len(leaked)} of {len(secrets)} secrets visible in its output")
    return None


def bench_pipe(sig: str, env: dict[str, str], providers: list[str], input_path: Path, size: int,
               runs: int) -> None:
    cases = {"cat": ["cat"], f"sig run p1..p{PROVIDERS} -- cat": [sig, "run", *providers, "--", "cat"]}
    names = list(cases)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for argv in cases.values():  # warm the page cache
        run_once(argv, input_path, env)
    for i in range(runs):
        for name in names if i % 2 == 0 else reversed(names):  # alternate which goes first
            elapsed, code, err = run_once(cases[name], input_path, env)
            if code != 0:
                print(f"  {name}: exit {code}: {err.decode(errors='replace').strip()[:200]}")
                return
            samples[name].append(elapsed)
    base = statistics.median(samples["cat"])
    for name in names:
        med = statistics.median(samples[name])
        print(f"  {name:<28} {size / med / 1e6:8.1f} MB/s   {med:7.3f} s   {med / base:5.2f}x cat")


def bench_in_process(data: bytes, secrets: list[str], runs: int) -> None:
    """The redactor alone, with each matcher: ahocorasick-rs (when installed) and the bytes.find fallback;
    then with ahocorasick-rs on the same text holding URL and JSON escapes (`%2F`, `\\/`), where the
    redactor also looks for the escaped forms in any hex case."""
    try:
        import sigcli  # noqa: F401
    except ImportError:  # not installed in this interpreter: use the checkout's sources
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from sigcli.core import redactor as redactor_module
    from sigcli.core.redactor import StreamRedactor
    from sigcli.core.secret_forms import secret_forms

    forms = [form for secret in secrets for form in secret_forms({"token": secret})]
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    load = getattr(redactor_module, "_load_ahocorasick", None)
    fallback_only = [False] if load is None else [False, True]  # (a redactor from before the two matchers)
    for fallback in fallback_only:
        if fallback:
            redactor_module._load_ahocorasick = lambda: None  # as if ahocorasick-rs were not installed
        times: list[float] = []
        masks = out_len = 0
        engine = "find"
        for _ in range(runs):
            redactor = StreamRedactor(forms)
            start = time.perf_counter()
            out_len = sum(len(redactor.feed(chunk)) for chunk in chunks) + len(redactor.flush())
            times.append(time.perf_counter() - start)
            masks = redactor.redacted
            engine = getattr(redactor, "engine", "find")
        if load is not None:
            redactor_module._load_ahocorasick = load
        med = statistics.median(times)
        label = f"StreamRedactor ({engine})"
        print(f"  {label:<28} {len(data) / med / 1e6:8.1f} MB/s   {med:7.3f} s   "
              f"({CHUNK // 1024} KiB feeds, {len(set(forms))} forms, {masks} masks, "
              f"{len(data) - out_len} bytes fewer out)")
    if load is None:
        return
    escaped = data.replace(b"latency=12ms", b"q=a%2Fb\\/1ms")  # same length: the text holds escapes
    escaped_chunks = [escaped[i : i + CHUNK] for i in range(0, len(escaped), CHUNK)]
    times = []
    for _ in range(runs):
        redactor = StreamRedactor(forms)
        start = time.perf_counter()
        for chunk in escaped_chunks:
            redactor.feed(chunk)
        redactor.flush()
        times.append(time.perf_counter() - start)
    med = statistics.median(times)
    print(f"  {'StreamRedactor (escapes)':<28} {len(escaped) / med / 1e6:8.1f} MB/s   {med:7.3f} s   "
          f"(the same text with %XX and \\/ escapes in it)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="input size in MB (default 100)")
    parser.add_argument("--runs", type=int, default=5, help="paired runs, median reported (default 5)")
    opts = parser.parse_args()
    sig = sig_path()  # first: it may restart this bench under sig's own Python
    size = opts.mb * 1_000_000
    rng = random.Random(2024)
    secrets = make_secrets(rng)
    providers = [f"p{n}" for n in range(1, PROVIDERS + 1)]
    data = make_input(size, secrets, rng)
    tmp = tempfile.mkdtemp(prefix="sig-bench-redact-")
    try:
        input_path = Path(tmp, "input.txt")
        input_path.write_bytes(data)
        print(f"redaction throughput, {opts.mb} MB, {PROVIDERS} secrets × {OCCURRENCES} occurrences, "
              f"median of {opts.runs} ({sys.version.split()[0]}, {os.cpu_count()} cpus)")
        if sig is None:
            print("  sig run: `sig` not found next to the interpreter or on PATH; skipped")
        else:
            env = setup_home(sig, os.path.join(tmp, "sig-home"), secrets)
            problem = probe_run(sig, env, providers, secrets)
            if problem is None:
                bench_pipe(sig, env, providers, input_path, size, opts.runs)
            else:
                print(f"  sig run: {problem}; pipe benchmark skipped")
        bench_in_process(data, secrets, opts.runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
