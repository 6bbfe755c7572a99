#!/usr/bin/env python3
"""Browser login figures: the wall time of a full headless `sig login` per adapter (cdp, playwright).

Against the loopback SPA of the test suite (page JavaScript plays the user with no delay): a login on a
fresh profile (browser start, page load, the site's login, localStorage + cookie capture, validation
probe, sealed write) and a login that finds the session already in the profile. Loopback only.
Usage: python bench/login.py [--runs 5]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PROVIDER = """\
providers:
  app-spa:
    domains: ["127.0.0.1"]
    entryUrl: {url}/
    validateUrl: {url}/api/me
    strategy: browser
    extract:
      - {{from: localStorage, as: token, match: auth, jsonPath: accessToken, expiresJsonPath: expiresAt}}
    apply:
      - {{in: header, name: Authorization, value: "Bearer ${{token}}"}}
"""


def _home(sig: str, chromium: str, adapter: str, url: str) -> tuple[str, dict[str, str]]:
    home = tempfile.mkdtemp(prefix=f"sig-bench-login-{adapter}-")
    env = dict(os.environ, SIG_HOME=home)
    subprocess.run([sig, "init", "--yes"], env=env, capture_output=True, check=True)
    cfg = os.path.join(home, "config.yaml")
    with open(cfg, encoding="utf-8") as fh:
        lines = [line for line in fh if not line.startswith("  execPath:")]
    text = "".join(lines).replace("browser:\n", f"browser:\n  execPath: {chromium}\n  adapter: {adapter}\n", 1)
    text = text.replace("providers: {}\n", PROVIDER.format(url=url))
    with open(cfg, "w", encoding="utf-8") as fh:
        fh.write(text)
    return home, env


def _login(sig: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sig, "login", "app-spa", "--mode", "headless", "--force"], env=env, capture_output=True,
                   check=True, timeout=120)
    return time.perf_counter() - start


def main() -> int:
    from _common import setup

    sig = setup(needs=("trustme",))  # the login sites of the test harness serve HTTPS too
    from harness.login_sites import LoginSites

    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
    chromium = shutil.which("chromium") or shutil.which("google-chrome") or ""
    if not chromium:
        print("no Chromium/Chrome installed (apt-get install chromium)")
        return 1
    adapters = ["cdp"]
    try:
        import playwright  # noqa: F401

        adapters.append("playwright")
    except ImportError:
        print("playwright not installed: only the cdp adapter is measured")
    with LoginSites(user_delay_ms=0) as sites:
        for adapter in adapters:
            fresh, reuse = [], []
            for _ in range(runs):
                home, env = _home(sig, chromium, adapter, sites.spa)
                try:
                    fresh.append(_login(sig, env))
                    reuse.append(_login(sig, env))
                finally:
                    shutil.rmtree(home, ignore_errors=True)
            print(f"{adapter:10s} fresh profile: median {statistics.median(fresh) * 1000:6.0f} ms "
                  f"(min {min(fresh) * 1000:.0f}, max {max(fresh) * 1000:.0f});  session already in the "
                  f"profile: median {statistics.median(reuse) * 1000:6.0f} ms  ({runs} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
