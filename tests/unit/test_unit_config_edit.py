"""config/edit.py: round-trip edits keep comments and order, and never write a config that would not load."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from sigcli.config import paths
from sigcli.config.edit import edit_config, provider_entry, remove_provider, rename_provider, set_provider
from sigcli.config.load import load_config, parse_config
from sigcli.core.errors import ErrorCode, SigError


def _home_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: Path) -> Path:
    """A temp SIG_HOME whose config.yaml is a writable copy of `source`; returns the config path."""
    home = tmp_path / "sig-home"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("SIG_HOME", str(home))
    config = home / "config.yaml"
    shutil.copyfile(source, config)
    os.chmod(config, 0o600)
    assert paths.config_path() == str(config)
    return config


def _comment_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("#")]


def _providers(text: str) -> list[str]:
    return list(parse_config(text, "c.yaml").providers)


JIRA: dict[str, Any] = {
    "domains": ["jira.example.com"],
    "entryUrl": "https://jira.example.com/",
    "strategy": "cookie",
}


def test_set_provider_on_init_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixtures_dir: Path) -> None:
    config = _home_with(tmp_path, monkeypatch, fixtures_dir / "config.init.yaml")
    before = config.read_text(encoding="utf-8")
    assert "providers: {}" in before

    edit_config(lambda doc: set_provider(doc, "jira-example", JIRA))

    after = config.read_text(encoding="utf-8")
    # Every comment line is kept, in order, and so is the inline comment after `mode:`.
    assert _comment_lines(after) == _comment_lines(before)
    assert "# Use \"browserless\" on remote/headless machines" in after
    # Everything before the providers section is byte-identical.
    head = before[: before.index("providers: {}")]
    assert after.startswith(head)
    # `providers: {}` became a block mapping.
    assert "providers: {" not in after
    assert after[len(head) :].startswith("providers:\n  jira-example:\n    domains:\n      - jira.example.com\n")
    loaded = parse_config(after, str(config))
    jira = loaded.get("jira-example")
    assert jira is not None
    assert jira.domains == ["jira.example.com"]
    assert jira.entry_url == "https://jira.example.com/"
    assert jira.strategy == "cookie"
    assert loaded.warnings == []
    # It loads through the normal path too (and the config cache lands in the temp home).
    assert "jira-example" in load_config()[0].providers
    assert (config.stat().st_mode & 0o777) == 0o600


def test_set_provider_twice_replaces_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixtures_dir: Path
) -> None:
    config = _home_with(tmp_path, monkeypatch, fixtures_dir / "sig-home" / ".sig" / "config.yaml")
    edit_config(lambda doc: set_provider(doc, "local-tls", {**JIRA, "ttl": "2h"}))
    text = config.read_text(encoding="utf-8")
    assert _providers(text) == ["local-http", "local-tls", "local-basic", "local-oauth"]
    tls = parse_config(text, "c.yaml").get("local-tls")
    assert tls is not None and tls.domains == ["jira.example.com"] and tls.ttl_ms == 7_200_000


def test_edit_returns_change_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixtures_dir: Path) -> None:
    _home_with(tmp_path, monkeypatch, fixtures_dir / "config.after-remote-watch.yaml")
    assert edit_config(lambda doc: rename_provider(doc, "nosuch", "x")) is False
    assert edit_config(lambda doc: remove_provider(doc, "nosuch")) is False


COMMENTED = """\
version: 2
providers:
  # first provider
  one:
    domains: [one.example.com]   # flow list
    strategy: cookie
  # second provider
  two:  # inline on the key
    domains:
      - two.example.com  # the host
    strategy: cookie
    ttl: 2h  # two hours
  three:
    domains:
      - three.example.com
    strategy: cookie
watch:
  interval: 5m
  providers:
    two: {}  # watched
    three:
"""


def test_rename_keeps_position_comments_and_watch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "source.yaml"
    source.write_text(COMMENTED, encoding="utf-8")
    config = _home_with(tmp_path, monkeypatch, source)

    assert edit_config(lambda doc: rename_provider(doc, "two", "deux")) is True

    after = config.read_text(encoding="utf-8")
    assert _providers(after) == ["one", "deux", "three"]
    loaded = parse_config(after, "c.yaml")
    assert list(loaded.watch["providers"]) == ["deux", "three"]
    assert "two:" not in after
    for comment in ("# first provider", "# flow list", "# second provider", "# inline on the key",
                    "# the host", "# two hours", "# watched"):
        assert comment in after, comment
    # Only the renamed keys changed.
    changed = [(a, b) for a, b in zip(COMMENTED.splitlines(), after.splitlines(), strict=True) if a != b]
    assert len(changed) == 2
    assert all("two" in a and "deux" in b for a, b in changed)


def test_rename_upstream_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixtures_dir: Path) -> None:
    config = _home_with(tmp_path, monkeypatch, fixtures_dir / "config.after-remote-watch.yaml")
    before = config.read_text(encoding="utf-8")

    assert edit_config(lambda doc: rename_provider(doc, "local-oauth", "oauth-x")) is True

    after = config.read_text(encoding="utf-8")
    assert _providers(after) == ["local-http", "local-tls", "local-basic", "oauth-x"]
    loaded = parse_config(after, "c.yaml")
    assert loaded.watch["providers"] == {"oauth-x": {"autoSync": ["box"]}}
    assert _comment_lines(after) == _comment_lines(before)
    assert before.replace("  local-oauth:\n", "  oauth-x:\n").replace("    local-oauth:\n", "    oauth-x:\n") == after


def test_rename_updates_name_equal_to_old_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "source.yaml"
    source.write_text("providers:\n  a:\n    name: a\n    domains: [a.example.com]\n    strategy: cookie\n")
    config = _home_with(tmp_path, monkeypatch, source)
    edit_config(lambda doc: rename_provider(doc, "a", "b"))
    b = parse_config(config.read_text(encoding="utf-8"), "c.yaml").get("b")
    assert b is not None and b.name == "b"


def test_rename_then_remove_matches_upstream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixtures_dir: Path
) -> None:
    """`sig rename local-tls local-tls2` + `sig remove local-tls2` give the original's bytes."""
    config = _home_with(tmp_path, monkeypatch, fixtures_dir / "config.after-remote-watch.yaml")
    edit_config(lambda doc: rename_provider(doc, "local-tls", "local-tls2"))
    assert _providers(config.read_text(encoding="utf-8")) == ["local-http", "local-tls2", "local-basic", "local-oauth"]
    assert edit_config(lambda doc: remove_provider(doc, "local-tls2")) is True
    expected = (fixtures_dir / "config.after-rename-remove.yaml").read_bytes()
    assert config.read_bytes() == expected


def test_remove_provider_and_its_watch_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixtures_dir: Path
) -> None:
    config = _home_with(tmp_path, monkeypatch, fixtures_dir / "config.after-remote-watch.yaml")
    before = config.read_text(encoding="utf-8")

    assert edit_config(lambda doc: remove_provider(doc, "local-oauth")) is True

    after = config.read_text(encoding="utf-8")
    loaded = parse_config(after, "c.yaml")
    assert list(loaded.providers) == ["local-http", "local-tls", "local-basic"]
    assert loaded.watch["providers"] == {}
    assert loaded.remotes["box"]["host"] == "127.0.0.1"
    assert "local-oauth" not in after
    assert "tokenUrl" not in after
    assert _comment_lines(after) == _comment_lines(before)


def test_remove_keeps_other_watch_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "source.yaml"
    source.write_text(COMMENTED, encoding="utf-8")
    config = _home_with(tmp_path, monkeypatch, source)
    edit_config(lambda doc: remove_provider(doc, "two"))
    loaded = parse_config(config.read_text(encoding="utf-8"), "c.yaml")
    assert list(loaded.providers) == ["one", "three"]
    assert list(loaded.watch["providers"]) == ["three"]


@pytest.mark.parametrize(
    "change",
    [
        lambda doc: set_provider(doc, "broken", {"strategy": "cookie"}),  # no domains
        lambda doc: set_provider(doc, "bad id!", JIRA),
        lambda doc: set_provider(doc, "x", {**JIRA, "ttl": "2 hours"}),
        lambda doc: doc.__setitem__("mode", "sideways"),
    ],
)
def test_invalid_edit_leaves_file_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixtures_dir: Path, change: Any
) -> None:
    config = _home_with(tmp_path, monkeypatch, fixtures_dir / "config.after-remote-watch.yaml")
    before = config.read_bytes()
    stat_before = config.stat()

    with pytest.raises(SigError) as info:
        edit_config(change)

    assert info.value.code == ErrorCode.CONFIG_ERROR
    assert config.read_bytes() == before
    assert config.stat().st_ino == stat_before.st_ino
    leftovers = [p.name for p in config.parent.iterdir() if ".tmp." in p.name]
    assert leftovers == []


def test_edit_without_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "empty-home"
    home.mkdir()
    monkeypatch.setenv("SIG_HOME", str(home))
    with pytest.raises(SigError) as info:
        edit_config(lambda doc: set_provider(doc, "jira-example", JIRA))
    assert info.value.code == ErrorCode.CONFIG_ERROR
    assert not (home / "config.yaml").exists()
    edit_config(lambda doc: set_provider(doc, "jira-example", JIRA), create=True)
    assert _providers((home / "config.yaml").read_text(encoding="utf-8")) == ["jira-example"]


def test_edit_of_a_non_utf8_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "source.yaml"
    source.write_bytes(b"version: 2\n# caf\xe9\n")
    config = _home_with(tmp_path, monkeypatch, source)
    with pytest.raises(SigError) as info:
        edit_config(lambda doc: set_provider(doc, "jira-example", JIRA))
    assert info.value.code == ErrorCode.CONFIG_ERROR
    assert "UTF-8" in info.value.message
    assert config.read_bytes() == b"version: 2\n# caf\xe9\n"


def test_provider_entry_order_and_omissions() -> None:
    provider = {
        "id": "jira-example",
        "oauth2": {},
        "apply": [{"in": "header", "name": "Cookie", "value": "${cookie}"}],
        "strategy": "browser",
        "entryUrl": "https://jira.example.com/",
        "domains": ["jira.example.com"],
        "name": "jira-example",
        "ttl": "2h",
        "extract": [{"from": "cookies", "as": "cookie", "match": "*"}],
        "autoProvisioned": True,
        "networkProxy": "",
    }
    entry = provider_entry(provider)
    assert list(entry) == ["domains", "entryUrl", "strategy", "extract", "apply", "ttl"]
    assert provider_entry({**provider, "name": "Jira"})["name"] == "Jira"
    assert next(iter(provider_entry({**provider, "name": "Jira"}))) == "name"
