"""The agent skills under skills/: front matter, docs that match sig, each skill's own tests, install.sh."""

from __future__ import annotations

import importlib.util
import io
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
SKILLS = ROOT / "skills"
INSTALL = SKILLS / "install.sh"
SKILL_DIRS = sorted(p.parent for p in SKILLS.glob("*/SKILL.md"))
AGENT_DIRS = {
    "claude": ".claude/skills",
    "cursor": ".cursor/skills",
    "windsurf": ".codeium/windsurf/skills",
    "cline": ".cline/skills",
}
EXCLUDED = {"tests", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", "node_modules"}


def front_matter(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n"), f"{path}: no front matter"
    end = text.find("\n---\n", 4)
    assert end > 0, f"{path}: front matter not closed"
    data = YAML(typ="safe", pure=True).load(io.StringIO(text[4:end]))
    assert isinstance(data, dict), f"{path}: front matter is not a mapping"
    return data


def _sig_bin() -> str | None:
    beside = Path(sys.executable).parent / "sig"
    return str(beside) if beside.exists() else shutil.which("sig")


# -- layout and front matter --------------------------------------------------------------------------
def test_expected_skills_present():
    names = {p.name for p in SKILL_DIRS}
    assert {"sigcli-auth", "jira-issues", "outlook", "msteams", "slack"} <= names
    assert (SKILLS / "sigcli-auth" / "references" / "config-template.yaml").is_file()


@pytest.mark.parametrize("skill", SKILL_DIRS, ids=lambda p: p.name)
def test_front_matter(skill: Path):
    data = front_matter(skill / "SKILL.md")
    name, description = data.get("name"), data.get("description")
    assert name == skill.name
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) and len(name) <= 64
    assert isinstance(description, str) and 20 <= len(description.strip()) <= 1024
    assert "<" not in description and ">" not in description and "\n" not in description.strip()
    body = (skill / "SKILL.md").read_text(encoding="utf-8").split("\n---\n", 1)[1]
    assert re.search(r"^# \S", body, re.M), "SKILL.md needs a title"


def _code_spans(text: str) -> str:
    fenced = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return "\n".join(fenced + inline)


@pytest.mark.parametrize("skill", SKILL_DIRS, ids=lambda p: p.name)
def test_sig_commands_in_skills_exist(skill: Path):
    from sigcli.cli.main import COMMANDS

    code = _code_spans((skill / "SKILL.md").read_text(encoding="utf-8"))
    used = set(re.findall(r"(?:^|[\s|;(&])sig ([a-z][a-z-]*)", code, re.M))
    assert used, "no sig command quoted"
    assert used <= set(COMMANDS), f"unknown sig commands: {sorted(used - set(COMMANDS))}"


def test_auth_skill_covers_browser_login():
    text = (SKILLS / "sigcli-auth" / "SKILL.md").read_text(encoding="utf-8")
    assert "not available yet" not in text  # browser login works now; the skill must not say otherwise
    blocks = re.split(r"\n\s*\n|\n(?=\|)|\n(?=\d\. )", text)
    hits = [b for b in blocks if "Browser (SSO) login" in b]
    assert hits and all("person" in b and "BROWSER_UNAVAILABLE" in b for b in hits)
    for code in ("BROWSER_LAUNCH_ERROR", "BROWSER_TIMEOUT"):
        assert code in text
    for code in ("PROVIDER_NOT_FOUND", "CREDENTIAL_NOT_FOUND", "CREDENTIAL_EXPIRED", "BROWSER_TIMEOUT"):
        assert code in text
    for exit_row in ("| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 4 |"):
        assert exit_row in text
    assert '{"error": {"code": "...", "message": "...", "hint": "..."}}' in text
    assert "Never use `sig get --no-redaction`" in " ".join(text.split())


def test_jira_skill_documents_real_options():
    spec = importlib.util.spec_from_file_location("jira_issues_doc", SKILLS / "jira-issues/scripts/jira_issues.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    parser = module.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    accepted = {opt for p in sub.values() for a in p._actions for opt in a.option_strings}
    text = (SKILLS / "jira-issues" / "SKILL.md").read_text(encoding="utf-8")
    section = text.split("## Scripts", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", section))
    assert documented and documented <= accepted, sorted(documented - accepted)


# -- each skill's own tests -----------------------------------------------------------------------------
@pytest.mark.parametrize("tests_dir", sorted(SKILLS.glob("*/tests")), ids=lambda p: p.parent.name)
def test_skill_tests_pass(tests_dir: Path):
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    sig = _sig_bin()
    if sig:
        env["SIG_BIN"] = sig
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:randomly",
         str(tests_dir.relative_to(ROOT))],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in summary
    if sig:
        assert "skipped" not in summary, proc.stdout[-2000:]


# -- install.sh -----------------------------------------------------------------------------------------
SHELLS = [s for s in ("sh", "dash", "bash") if shutil.which(s)]


def run_install(*args: str, home: Path, script: Path = INSTALL, shell: str = "sh") -> subprocess.CompletedProcess:
    argv = [shell, "--posix", str(script), *args] if shell == "bash" else [shell, str(script), *args]
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def expected_tree(skill: Path) -> dict[str, bytes]:
    out = {}
    for path, data in tree(skill).items():
        parts = Path(path).parts
        if any(part in EXCLUDED for part in parts) or path.endswith((".pyc", ".pyo")):
            continue
        out[path] = data
    return out


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home dir"  # a space in $HOME must not break the script
    path.mkdir()
    return path


@pytest.fixture
def dirty_source(tmp_path: Path) -> Path:
    """A copy of skills/ with caches and nested tests folders the installer must leave out."""
    src = tmp_path / "src skills"
    shutil.copytree(SKILLS, src, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    jira = src / "jira-issues"
    (jira / "scripts" / "__pycache__").mkdir()
    (jira / "scripts" / "__pycache__" / "jira_issues.cpython-311.pyc").write_bytes(b"\0pyc")
    (jira / "scripts" / "stray.pyc").write_bytes(b"\0pyc")
    (jira / "scripts" / "tests").mkdir()
    (jira / "scripts" / "tests" / "test_x.py").write_text("x = 1\n")
    (jira / ".pytest_cache").mkdir()
    (jira / ".pytest_cache" / "README.md").write_text("cache\n")
    (jira / "references").mkdir()
    (jira / "references" / "notes.md").write_text("kept\n")
    (src / "not-a-skill").mkdir()
    (src / "not-a-skill" / "README.md").write_text("no SKILL.md here\n")
    return src


@pytest.mark.parametrize("shell", SHELLS)
def test_install_help_and_list(home: Path, shell: str):
    proc = run_install("--help", home=home, shell=shell)
    assert proc.returncode == 0 and "Usage: install.sh" in proc.stdout
    for agent, folder in AGENT_DIRS.items():
        assert agent in proc.stdout and f"~/{folder}/<skill>" in proc.stdout
    proc = run_install("--list", home=home, shell=shell)
    assert proc.returncode == 0, proc.stderr
    for skill in SKILL_DIRS:
        description = front_matter(skill / "SKILL.md")["description"]
        assert re.search(rf"^  {re.escape(skill.name)} +{re.escape(description)}$", proc.stdout, re.M), proc.stdout
    for name in ("outlook", "msteams", "slack"):  # seed 000's skills
        assert re.search(rf"^  {name} +\S", proc.stdout, re.M), proc.stdout
    assert list(home.iterdir()) == []  # --list installs nothing


@pytest.mark.parametrize("agent", sorted(AGENT_DIRS))
def test_install_for_each_agent(home: Path, dirty_source: Path, agent: str):
    proc = run_install("--agent", agent, home=home, script=dirty_source / "install.sh")
    assert proc.returncode == 0, proc.stderr
    dest = home / AGENT_DIRS[agent]
    names = sorted(p.name for p in dest.iterdir())
    assert names == sorted(p.name for p in SKILL_DIRS)  # no staging leftovers, no not-a-skill
    for name in names:
        assert f"  + {name}" in proc.stdout
        assert tree(dest / name) == expected_tree(dirty_source / name)
        assert not any(part in EXCLUDED for p in (dest / name).rglob("*") for part in p.parts)
    assert (dest / "jira-issues" / "references" / "notes.md").read_text() == "kept\n"
    for script in ("jira-issues/scripts/jira_issues.py", "outlook/scripts/outlook.py", "msteams/scripts/teams.py",
                   "slack/scripts/slack.py"):
        assert (dest / script).stat().st_mode & stat.S_IXUSR, script
    assert (dest / "sigcli-auth" / "references" / "config-template.yaml").is_file()
    for other, folder in AGENT_DIRS.items():
        if other != agent and not folder.startswith(AGENT_DIRS[agent]):
            assert not (home / folder).exists()


@pytest.mark.parametrize("shell", SHELLS)
def test_install_is_idempotent_and_replaces(home: Path, shell: str):
    assert run_install("--agent", "claude", home=home, shell=shell).returncode == 0
    dest = home / ".claude" / "skills"
    first = {p.name: tree(p) for p in dest.iterdir()}
    (dest / "jira-issues" / "stale.txt").write_text("from an older version\n")
    (dest / "jira-issues" / "SKILL.md").write_text("edited\n")
    (dest / "someone-elses-skill").mkdir()
    proc = run_install("--agent", "claude", home=home, shell=shell)
    assert proc.returncode == 0, proc.stderr
    assert {p.name: tree(p) for p in dest.iterdir() if p.name != "someone-elses-skill"} == first
    assert (dest / "someone-elses-skill").is_dir()  # only the skills it installs are replaced


def test_install_one_skill_and_dest(home: Path, tmp_path: Path):
    proc = run_install("--agent", "cursor", "--skill", "sigcli-auth", home=home)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (home / ".cursor" / "skills").iterdir()] == ["sigcli-auth"]
    dest = tmp_path / "custom dest"
    proc = run_install("--dest", str(dest), "--skill=jira-issues", "--agent", "cline", home=home)
    assert proc.returncode == 0, proc.stderr
    # sigcli-auth (the guide and config template the others refer to) always comes along
    assert sorted(p.name for p in dest.iterdir()) == ["jira-issues", "sigcli-auth"]
    assert not (home / ".cline").exists()  # --dest wins over --agent
    assert tree(dest / "jira-issues") == expected_tree(SKILLS / "jira-issues")
    assert (dest / "sigcli-auth" / "references" / "config-template.yaml").is_file()


@pytest.mark.parametrize(("script", "command", "option"), [
    ("jira-issues/scripts/jira_issues.py", "search", "--jql"),
    ("outlook/scripts/outlook.py", "list", "--unread"),
    ("msteams/scripts/teams.py", "messages", "--region"),
    ("slack/scripts/slack.py", "history", "--since"),
])
def test_installed_helper_runs(home: Path, script: str, command: str, option: str):
    assert run_install("--agent", "windsurf", home=home).returncode == 0
    installed = home / ".codeium/windsurf/skills" / script
    # the modules skills share arrive as files: an installed skill stands alone, without skills/_shared
    assert not any(p.is_symlink() for p in installed.parent.iterdir())
    proc = subprocess.run([sys.executable, str(installed), command, "--help"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, cwd=home)
    assert proc.returncode == 0 and option in proc.stdout, proc.stderr


def test_install_auto_detects_agent(home: Path):
    (home / ".codeium" / "windsurf").mkdir(parents=True)
    proc = run_install(home=home)
    assert proc.returncode == 0 and "Auto-detected: windsurf" in proc.stdout
    assert (home / ".codeium/windsurf/skills/sigcli-auth/SKILL.md").is_file()
    assert not (home / ".claude").exists()


def test_install_defaults_to_claude(home: Path):
    proc = run_install(home=home)
    assert proc.returncode == 0, proc.stderr
    assert (home / ".claude/skills/sigcli-auth/SKILL.md").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["--agent", "vscode"], "unknown agent: vscode"),
    (["--agent"], "--agent needs a value"),
    (["--bogus"], "unknown option: --bogus"),
    (["--agent", "claude", "--skill", "nope"], "no skill named nope"),
    (["--agent", "claude", "--skill", "../jira-issues"], "not a skill name"),
])
def test_install_usage_errors(home: Path, args: list[str], message: str):
    proc = run_install(*args, home=home)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert list(home.iterdir()) == []  # nothing created


def test_install_refuses_dest_inside_source(home: Path, dirty_source: Path):
    proc = run_install("--dest", str(dirty_source / "out"), home=home, script=dirty_source / "install.sh")
    assert proc.returncode == 2 and "inside the skills source folder" in proc.stderr
    assert not (dirty_source / "out").exists()
