"""YAML anchors and aliases are refused in config files (issue 25, item 7): a 1 KB "billion laughs" file
must give a clear CONFIG_ERROR at once, not seconds of work and gigabytes of memory on every command."""

from __future__ import annotations

import resource
import subprocess

from harness.sigproc import Sig

MEMORY_CAP = 1 << 30  # 1 GiB of address space: far more than sig needs, far less than the expansion


def _bomb() -> str:
    """≈1 KB; expanded, 9^9 (387 million) strings. Placed where config loading walks every value."""
    levels = ["  lol0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"]
    levels += [f"  lol{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 9)}]\n" for i in range(1, 9)]
    return "remotes:\n  box:\n    host: box.example.com\n" + "".join("  " + line for line in levels)


def _capped(sig: Sig, *args: str) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    return subprocess.run(sig.argv(*args), env=sig.env, cwd=sig.user_home, capture_output=True, text=True,
                          timeout=60, preexec_fn=limit, stdin=subprocess.DEVNULL)


def test_billion_laughs_config_is_refused_quickly_and_small(sig_init: Sig) -> None:
    cfg = sig_init.home / "config.yaml"
    bomb = _bomb()
    assert len(bomb) < 1300
    cfg.write_text(cfg.read_text() + bomb)
    line = cfg.read_text().splitlines().index("  box:") + 3  # the first anchor (lol0)
    for args in (["status"], ["status", "--format", "json"], ["watch", "set-interval", "10m"]):
        proc = _capped(sig_init, *args)
        assert proc.returncode == 1, proc.stderr
        assert "anchor" in proc.stderr and f"line {line}" in proc.stderr and str(cfg) in proc.stderr, proc.stderr
        assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    r = sig_init("status", "--format", "json", check=1)
    assert '"code": "CONFIG_ERROR"' in r.err


def test_merge_keys_are_aliases_too(sig_init: Sig) -> None:
    cfg = sig_init.home / "config.yaml"
    text = cfg.read_text().replace("providers: {}\n", "providers:\n  a:\n    <<: *base\n    domains: [a.example.com]\n")
    cfg.write_text("x-base: &base {strategy: api-token}\n" + text)
    r = sig_init("providers", check=1)
    assert "anchor" in r.err and "line 1," in r.err
    assert "write the repeated values out" in r.err
