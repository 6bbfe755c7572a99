"""The outlook, msteams and slack skills' documents match their helpers and the config template, and the
helpers have no way to a credential except `sig request`."""

from __future__ import annotations

import argparse
import importlib.util
import io
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from ruamel.yaml import YAML
from skill_setup import SKILLS, template

HELPERS = {
    "outlook": SKILLS / "outlook" / "scripts" / "outlook.py",
    "msteams": SKILLS / "msteams" / "scripts" / "teams.py",
    "slack": SKILLS / "slack" / "scripts" / "slack.py",
}
PROVIDERS = {"outlook": ["ms-graph"], "msteams": ["ms-teams", "ms-graph"], "slack": ["app-slack"]}
SHARED = {"sigreq.py": ["outlook", "msteams", "slack", "jira-issues"], "graphapi.py": ["outlook", "msteams"]}


def load(path: Path) -> ModuleType:
    """Import a skill script as running it would: its own folder first on sys.path (for its sibling modules,
    such as sigreq.py), whichever test of this worker ran before."""
    spec = importlib.util.spec_from_file_location(f"doc_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def section(skill: str, title: str) -> str:
    text = (SKILLS / skill / "SKILL.md").read_text(encoding="utf-8")
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("skill", sorted(HELPERS))
def test_commands_section_matches_the_helper(skill: str) -> None:
    parser = load(HELPERS[skill]).build_parser()
    commands = subparsers(parser)
    accepted = {opt for p in commands.values() for a in p._actions for opt in a.option_strings}
    text = section(skill, "Commands")
    script = HELPERS[skill].name
    documented_commands = set(re.findall(rf"scripts/{re.escape(script)} ([a-z-]+)", text))
    assert documented_commands == set(commands), "every command documented, and only real ones"
    documented_options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", text))
    assert documented_options and documented_options <= accepted, sorted(documented_options - accepted)
    # Every option a command takes is documented (help flags aside).
    assert accepted - {"-h", "--help"} <= documented_options, sorted(accepted - documented_options - {"-h", "--help"})


@pytest.mark.parametrize("name", sorted(SHARED))
def test_shared_modules_have_one_source(name: str) -> None:
    """Each skill's copy of a shared module is a link to skills/_shared (one source, no drift)."""
    for skill in SHARED[name]:
        path = SKILLS / skill / "scripts" / name
        assert path.is_symlink() and path.resolve() == (SKILLS / "_shared" / name).resolve(), path


@pytest.mark.parametrize("skill", sorted(PROVIDERS))
def test_provider_blocks_in_skill_md_are_the_templates(skill: str) -> None:
    text = (SKILLS / skill / "SKILL.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    found: dict[str, object] = {}
    for block in blocks:
        found.update(YAML(typ="safe", pure=True).load(io.StringIO(block)) or {})
    expected = template()["providers"]
    assert sorted(found) == sorted(PROVIDERS[skill])
    for pid in PROVIDERS[skill]:
        assert found[pid] == expected[pid], f"{skill}/SKILL.md's {pid} block differs from the config template"
        assert f"sig status {pid} --format json" in text and f"sig login {pid}" in text


@pytest.mark.parametrize("skill", sorted(HELPERS))
def test_helpers_reach_credentials_only_through_sig_request(skill: str) -> None:
    sources = {p.name: p.read_text(encoding="utf-8") for p in (SKILLS / skill / "scripts").glob("*.py")}
    everything = "\n".join(sources.values())
    assert "--no-redaction" not in everything
    read_env = set(re.findall(r"environ(?:\.get)?\(\s*[\"']([A-Z_]+)", everything))
    assert not {v for v in read_env if v.startswith("SIG_") and v != "SIG_BIN"}, read_env
    for store in ("~/.sig", "SIG_HOME", "encryption.key", "credentials/"):  # never near sig's files
        assert store not in everything
    # The only sig command the helpers run is `request`.
    assert re.findall(r"\[self\.sig_bin, \"([a-z]+)\"", sources["sigreq.py"]) == ["request"]
    assert "subprocess" not in "\n".join(v for k, v in sources.items() if k != "sigreq.py")


@pytest.mark.parametrize("skill", sorted(HELPERS))
def test_errors_table_names_sigs_exit_codes(skill: str) -> None:
    table = section(skill, "Errors")
    for row in ("| 3 | `AUTH_REQUIRED`", "| 2 | `PROVIDER_NOT_FOUND`", "| 1 | `USAGE_ERROR`"):
        assert row in table
    setup = section(skill, "Setup (every time, before the first command)")
    assert "the person" in setup and "--mode headless --force" in setup and "BROWSER_UNAVAILABLE" in setup


def test_real_hosts_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GRAPH_BASE_URL", "TEAMS_CHAT_BASE_URL", "SLACK_API_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    graph = load(SKILLS / "outlook" / "scripts" / "graphapi.py")
    teams = load(HELPERS["msteams"])
    slack = load(HELPERS["slack"])
    assert graph.graph_base(None) == "https://graph.microsoft.com/v1.0"
    assert teams.chat_base(None, "emea") == "https://teams.cloud.microsoft/api/chatsvc/emea/v1"
    assert slack.api_base(None) == "https://slack.com/api"
    monkeypatch.setenv("SLACK_API_BASE_URL", "https://127.0.0.1:9/api/")
    assert slack.api_base(None) == "https://127.0.0.1:9/api"
