"""`sig completion bash|zsh|fish`: every command's flags, the same as its `--help` lists and its parser
accepts, completed by the real shells; provider ids read from the config without running sig."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.sigproc import Sig

GLOBALS = {"--help", "--verbose", "--version"}
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Sig, list[str], dict[str, set[str]]]:
    """A sig home with two providers; the command list and each command's flags as `--help` shows them."""
    root = tmp_path_factory.mktemp("completion")
    sig = Sig(home=root / "home" / ".sig", user_home=root / "home")
    sig("init", "--yes", check=0)
    for pid in ("alpha-api", "beta.svc"):
        sig("login", f"https://{pid}.example.com", "--token-stdin", "--as", pid, input="tok-COMPL-123", check=0)
    from sigcli.cli.main import COMMANDS

    helps = {c: set(FLAG.findall(sig(c, "--help", check=0).out)) for c in COMMANDS}
    return sig, list(COMMANDS), helps


def _script(sig: Sig, shell: str, tmp_path: Path) -> Path:
    path = tmp_path / f"sig.{shell}"
    path.write_text(sig("completion", shell, check=0).out)
    return path


def _shell(sig: Sig, argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    proc = subprocess.run(argv, env=sig.env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _by_command(output: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for line in output.splitlines():
        command, _sep, words = line.partition(":")
        out.setdefault(command, set()).update(words.split())
    return out


def _expected(command: str, helps: dict[str, set[str]], short: bool = False) -> set[str]:
    """What `sig <command> --<TAB>` offers: its help's flags, the global ones, and --json where --format is."""
    import importlib

    module = importlib.import_module(f"sigcli.cli.commands.{command}")
    extra = set(getattr(module, "SHORT", {})) if short else set()
    return helps[command] | GLOBALS | ({"--json"} if "format" in module.FLAGS else set()) | extra


def test_help_lists_every_flag_the_parser_accepts(setup: tuple[Sig, list[str], dict[str, set[str]]]) -> None:
    import importlib

    _sig, commands, helps = setup
    for command in commands:
        flags = {f"--{f}" for f in importlib.import_module(f"sigcli.cli.commands.{command}").FLAGS}
        assert flags == helps[command] - GLOBALS - {"--json"}, command  # --json: --format json's alias


def test_bash_flags_per_command_match_help(setup: tuple[Sig, list[str], dict[str, set[str]]],
                                           tmp_path: Path) -> None:
    sig, commands, helps = setup
    script = _script(sig, "bash", tmp_path)
    loop = " ".join(commands)
    code = (f"source {script}; for c in {loop}; do COMP_WORDS=(sig $c --); COMP_CWORD=2; _sig_completions; "
            'echo "$c: ${COMPREPLY[*]}"; done')
    got = _by_command(_shell(sig, ["bash", "-c", code]))
    for command in commands:
        assert got[command] == _expected(command, helps), command
    assert {"--mount", "--expand-cookies", "--command", "--proxy", "--env"} <= got["run"]


def test_zsh_flags_per_command_match_help(setup: tuple[Sig, list[str], dict[str, set[str]]],
                                          tmp_path: Path) -> None:
    sig, commands, helps = setup
    script = _script(sig, "zsh", tmp_path)
    # compadd is stubbed to print what it is given; _sig runs as zsh's completion system would call it.
    code = (f"source {script}; compadd() {{ shift; print -r -- \"$*\"; }}; "
            f"for c in {' '.join(commands)}; do words=(sig $c --); CURRENT=3; print -n \"$c: \"; _sig; done")
    got = _by_command(_shell(sig, ["zsh", "-f", "-c", code]))
    for command in commands:
        # zsh's own compadd matches the typed prefix; the stub sees the short forms (-X, -H…) as well
        assert got[command] == _expected(command, helps, short=True), command


def test_fish_flags_per_command_match_help(setup: tuple[Sig, list[str], dict[str, set[str]]],
                                           tmp_path: Path) -> None:
    sig, commands, helps = setup
    script = _script(sig, "fish", tmp_path)
    code = f"source {script}; for c in {' '.join(commands)}; echo $c: (complete -C \"sig $c --\"); end"
    got = _by_command(_shell(sig, ["fish", "--no-config", "-c", code]))
    for command in commands:
        assert got[command] == _expected(command, helps), command


def test_values_providers_and_subcommands(setup: tuple[Sig, list[str], dict[str, set[str]]],
                                          tmp_path: Path) -> None:
    sig, _commands, _helps = setup
    bash = _script(sig, "bash", tmp_path)

    def bash_complete(*words: str) -> list[str]:
        quoted = " ".join(f"'{w}'" for w in words)
        out = _shell(sig, ["bash", "-c", f"source {bash}; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; "
                                         '_sig_completions; echo "${COMPREPLY[*]}"'])
        return out.split()

    assert bash_complete("sig", "get", "") == ["alpha-api", "beta.svc"]
    assert bash_complete("sig", "whoami", "al") == ["alpha-api"]
    assert bash_complete("sig", "get", "--format", "") == ["json", "header", "value"]
    assert bash_complete("sig", "run", "--mount-format", "d") == ["dotenv"]
    assert bash_complete("sig", "request", "--provider", "b") == ["beta.svc"]
    assert bash_complete("sig", "proxy", "st") == ["start", "stop", "status"]
    assert bash_complete("sig", "run", "alpha-api", "--", "--") == []  # the child's own arguments
    fish = _script(sig, "fish", tmp_path)
    got = _shell(sig, ["fish", "--no-config", "-c", f"source {fish}; complete -C 'sig status '"]).split()
    assert got == ["alpha-api", "beta.svc"]
    got = _shell(sig, ["fish", "--no-config", "-c", f"source {fish}; complete -C 'sig run --mount-format '"]).split()
    assert set(got) == {"env", "dotenv", "json", "yaml"}


def test_scripts_never_start_sig(setup: tuple[Sig, list[str], dict[str, set[str]]]) -> None:
    """A TAB must not cost a Python start-up: the scripts read config.yaml with awk, never run sig."""
    sig, _commands, _helps = setup
    for shell in ("bash", "zsh", "fish"):
        text = "\n".join(line for line in sig("completion", shell, check=0).out.splitlines()
                         if not line.lstrip().startswith("#"))
        assert not re.search(r"(\$\(|\(|`|;|\|)\s*sig\s", text), shell
        assert "config.yaml" in text
