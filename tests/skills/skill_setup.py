"""Shared set-up for the skill tests: providers made from skills/sigcli-auth/references/config-template.yaml
and pointed at a stand-in, credentials stored through the real `sig login`, helpers run as a person's
agent would run them (a subprocess whose only way to a credential is the `sig` command).
"""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ruamel.yaml import YAML

from harness.sigproc import Sig

ROOT = Path(__file__).resolve().parents[2]
SKILLS = ROOT / "skills"
TEMPLATE = SKILLS / "sigcli-auth" / "references" / "config-template.yaml"


def template() -> dict[str, Any]:
    return YAML(typ="safe", pure=True).load(io.StringIO(TEMPLATE.read_text(encoding="utf-8")))


def moved(url: str, base: str) -> str:
    """`url` with its scheme and host replaced by the stand-in's `base` (path and query kept)."""
    parts = urlsplit(url)
    return base + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def local_provider(pid: str, base: str, ca_path: str | None, *, prompt: bool = True) -> dict[str, Any]:
    """The template's provider `pid`, its hosts moved to the stand-in. With `prompt`, its extract rules
    become `from: prompt` questions (same `as` names, so the template's apply rules are used unchanged)."""
    entry = copy.deepcopy(template()["providers"][pid])
    entry["domains"] = ["127.0.0.1"]
    entry["entryUrl"] = moved(entry["entryUrl"], base)
    if entry.get("validateUrl"):
        entry["validateUrl"] = moved(entry["validateUrl"], base)
    if ca_path:
        entry["caFile"] = ca_path
    if prompt:
        entry["strategy"] = "prompt"
        entry["extract"] = [{"from": "prompt", "as": rule["as"], "match": f"{pid} {rule['as']}"}
                            for rule in entry["extract"]]
    return entry


def write_config(sig: Sig, providers: dict[str, Any], browser: dict[str, Any] | None = None) -> None:
    """A config.yaml (JSON is YAML) holding just these providers."""
    config: dict[str, Any] = {"version": 2, "mode": "browser", "providers": providers}
    if browser:
        config["browser"] = browser
    sig.home.mkdir(parents=True, exist_ok=True)
    (sig.home / "config.yaml").write_text(json.dumps(config, indent=2), encoding="utf-8")


def login_prompt(sig: Sig, pid: str, *answers: str) -> None:
    """`sig login PID` for a prompt-strategy provider, answering its questions on stdin."""
    sig("login", pid, input="".join(a + "\n" for a in answers), check=0)


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def data(self) -> Any:
        try:
            return json.loads(self.out)
        except ValueError as exc:
            raise AssertionError(f"not JSON (exit {self.code}):\n{self.out}\n--- stderr ---\n{self.err}") from exc


def sig_bin(sig: Sig) -> str:
    assert len(sig.cmd) == 1, "the skill tests need the installed `sig` command"
    return sig.cmd[0]


def run_helper(sig: Sig, script: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None,
               cwd: Path | None = None) -> Outcome:
    """Run a skill's helper the way an agent does. PATH holds no `sig`: SIG_BIN names it (as the docs say)."""
    child = {**sig.env, "SIG_BIN": sig_bin(sig), "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1",
             **(env or {})}
    proc = subprocess.run([sys.executable, str(script), *args], env=child, capture_output=True, text=True,
                          input=stdin, timeout=120, cwd=cwd or sig.user_home,
                          stdin=None if stdin is not None else subprocess.DEVNULL)
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def assert_secret_free(outcome: Outcome, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in outcome.out and secret not in outcome.err, "a secret reached the helper's output"
