"""Helpers the browser-login end-to-end tests share: the browser to use, a config for it, and what runs.

    configure(sig, PROVIDERS_YAML, adapter="cdp", browser_extra="  headlessTimeout: 8000\\n")
    wait_for(lambda: browser_pids(profile), "the browser to start")
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from typing import Any, TypeVar

from harness.sigproc import Sig
from harness.waiting import wait_for as _wait_for

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)
# A bound for waits on observed state: far above a cold first browser start on a loaded machine, and
# reached only when the awaited state never comes (the test then fails saying what it waited for).
STATE_WAIT_S = 90.0

T = TypeVar("T")


def configure(sig: Sig, providers: str, adapter: str = "cdp", browser_extra: str = "") -> None:
    """`sig init`, then the browser section (adapter, this machine's Chromium, extra keys) and providers."""
    sig("init", "--yes", check=0)
    cfg = sig.home / "config.yaml"
    text = drop_exec_path(cfg.read_text())
    if "headlessTimeout" in browser_extra:
        text = text.replace("  headlessTimeout: 20000\n", "")
    text = text.replace("  visibleTimeout: 120000\n",
                        f"  visibleTimeout: 30000\n  adapter: {adapter}\n  execPath: {CHROMIUM}\n{browser_extra}")
    text = text.replace("providers: {}\n", "providers:\n" + providers)
    cfg.write_text(text)


def drop_exec_path(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("  execPath:"))


def creds(sig: Sig, provider: str) -> dict[str, Any]:
    """The stored payload, as `sig get --format json` shows it."""
    result = sig("get", provider, "--no-redaction", "--format", "json", check=0)
    return json.loads(result.out)


def cmdlines() -> dict[int, str]:
    """Every readable process command line, NULs as spaces."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                out[int(entry)] = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
    return out


def browser_pids(profile: str) -> list[int]:
    """Browser processes (not their helpers) on this profile."""
    return [pid for pid, cmd in cmdlines().items()
            if f"--user-data-dir={profile}" in cmd and "--type=" not in cmd]


def wait_for(check: Callable[[], T], what: str, timeout_s: float = STATE_WAIT_S) -> T:
    """`harness.waiting.wait_for` with the browser tests' bound (a cold browser start on a busy machine)."""
    return _wait_for(check, what, timeout_s)
