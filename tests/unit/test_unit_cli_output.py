"""cli/output.py: json, yaml, env, plain and table renderings."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from sigcli.cli.output import choose_format, render, to_env, to_json, to_plain, to_table, to_yaml
from sigcli.core.errors import ErrorCode, SigError

STATUS_KEYS = ["id", "name", "configured", "valid", "strategy", "expiresAt", "expiresInMinutes"]


def _status_rows(fixtures_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows as upstream's JSON has them, rows with every key present as its yaml/env/plain show them)."""
    rows = json.loads((fixtures_dir / "outputs" / "status-json.out").read_text(encoding="utf-8"))
    full = [{k: row.get(k) for k in STATUS_KEYS} for row in rows]
    return rows, full


def _out(fixtures_dir: Path, name: str) -> str:
    return (fixtures_dir / "outputs" / name).read_text(encoding="utf-8")


# -- json ----------------------------------------------------------------------------------------------


def test_json_matches_upstream(fixtures_dir: Path) -> None:
    rows, _ = _status_rows(fixtures_dir)
    assert render(rows, "json") + "\n" == _out(fixtures_dir, "status-json.out")


def test_json_keeps_unicode_and_order() -> None:
    text = to_json({"b": "é✓", "a": 1})
    assert text == '{\n  "b": "é✓",\n  "a": 1\n}'


# -- yaml ----------------------------------------------------------------------------------------------


def test_yaml_matches_upstream(fixtures_dir: Path) -> None:
    _, full = _status_rows(fixtures_dir)
    assert render(full, "yaml") + "\n" == _out(fixtures_dir, "status-yaml.out")


YAML_ROUND_TRIP = [
    "plain",
    "Bearer abc",
    "x: y",
    "key:value",
    "#comment",
    "a #b",
    "",
    " lead",
    "trail ",
    "true",
    "False",
    "null",
    "~",
    "yes",
    "no",
    "123",
    "1.5",
    "0755",
    "1e3",
    "quote'd",
    'dq"x',
    "multi\nline",
    "[list]",
    "{map}",
    "a, b",
    "&anchor",
    "*alias",
    "!tag",
    "|pipe",
    ">fold",
    "%pct",
    "@at",
    "`tick`",
    "é✓",
    "2026-11-23T07:06:31.655Z",
    "~1h",
    "https://x.example.com/a?b=c",
    "$HOME",
]


@pytest.mark.parametrize("text", YAML_ROUND_TRIP)
def test_yaml_strings_round_trip(text: str) -> None:
    data = {"k": text, "list": [text], "nested": {"x": [{"y": text}]}}
    assert YAML(typ="safe").load(to_yaml(data)) == data


def test_yaml_scalars_and_empty_containers() -> None:
    data = {"n": None, "t": True, "f": False, "i": 3, "x": 1.5, "e": {}, "l": [], "s": [1, "a"]}
    text = to_yaml(data)
    assert text.splitlines() == [
        "n: null", "t: true", "f: false", "i: 3", "x: 1.5", "e: {}", "l: []", "s:", "  - 1", "  - a",
    ]
    assert YAML(typ="safe").load(text) == data


def test_yaml_list_of_maps() -> None:
    text = to_yaml([{"a": 1, "b": {"c": [2]}}, {"a": 2}])
    assert YAML(typ="safe").load(text) == [{"a": 1, "b": {"c": [2]}}, {"a": 2}]
    assert text.startswith("- a: 1\n")


# -- env -----------------------------------------------------------------------------------------------


def test_env_matches_upstream_once_unquoted(fixtures_dir: Path) -> None:
    """Our quoting is safer than the original's, but a shell reads the same assignments."""
    _, full = _status_rows(fixtures_dir)
    ours = render(full, "env").splitlines()
    theirs = _out(fixtures_dir, "status-env.out").splitlines()
    assert [shlex.split(line) for line in ours] == [shlex.split(line) for line in theirs]


@pytest.mark.parametrize(
    "value",
    ["it's", "'", "''", "a'b'c", "$(rm -rf /)", "`id`", "$HOME", 'dq"', "back\\slash", "new\nline", "sp ace", "",
     "!bang", "; ls", "é"],
)
def test_env_values_are_single_quoted_safely(value: str) -> None:
    line = to_env({"k": value})
    assert line.startswith("K='") and line.endswith("'")
    # A POSIX shell (modelled by shlex in POSIX mode) reads back exactly the value, as one word.
    assert shlex.split(line) == [f"K={value}"]


def test_env_names_and_types() -> None:
    text = to_env({"access-token": "t", "n": None, "b": True, "f": False, "i": 5, "d": {"x": 1}, "l": [1]})
    assert text.splitlines() == [
        "ACCESS_TOKEN='t'", "N=''", "B='true'", "F='false'", "I='5'", "D='{\"x\": 1}'", "L='[1]'",
    ]


def test_env_list_rows_get_index_suffix() -> None:
    assert to_env([{"id": "a"}, {"id": "b"}]).splitlines() == ["ID_0='a'", "ID_1='b'"]


# -- plain ---------------------------------------------------------------------------------------------


def test_plain_matches_upstream(fixtures_dir: Path) -> None:
    _, full = _status_rows(fixtures_dir)
    assert render(full, "plain") + "\n" == _out(fixtures_dir, "status-plain.out")


def test_plain_single_row() -> None:
    assert to_plain({"a": None, "b": True, "c": [1, "x"], "d": "v"}) == 'a: -\nb: true\nc: [1, "x"]\nd: v'


# -- table ---------------------------------------------------------------------------------------------


def test_table_header_dashes_and_alignment() -> None:
    text = to_table([{"id": "local-http", "status": "ok"}, {"id": "x", "status": None}])
    assert text.splitlines() == [
        "ID          STATUS",
        "----------  ------",
        "local-http  ok",
        "x           -",
    ]


def test_table_truncates_with_ellipsis() -> None:
    rows = [{"id": "abc", "value": "a-very-long-value-here"}, {"id": "x", "value": "short"}]
    lines = to_table(rows, {"value": 8}).splitlines()
    assert lines[0] == "ID   VALUE"
    assert lines[1] == "---  --------"
    assert lines[2] == "abc  a-very-…"
    assert len(lines[2]) == len("abc  ") + 8
    assert lines[3] == "x    short"


def test_table_max_width_does_not_pad_short_columns() -> None:
    lines = to_table([{"id": "a", "v": "bb"}], {"v": 50}).splitlines()
    assert lines[1] == "--  --"


def test_table_empty() -> None:
    assert to_table([]) == ""


def test_table_matches_upstream_status_table(fixtures_dir: Path) -> None:
    rows = [
        {"id": "local-http", "strategy": "prompt", "status": "✓", "expires": None, "watch": None, "sync": None},
        {"id": "local-tls", "strategy": "prompt", "status": "✓", "expires": None, "watch": None, "sync": None},
        {"id": "local-basic", "strategy": "prompt", "status": "✓", "expires": "~1d", "watch": None, "sync": None},
        {"id": "local-oauth", "strategy": "oauth2", "status": "✓", "expires": "~1h", "watch": None, "sync": None},
    ]
    expected = [line.rstrip() for line in _out(fixtures_dir, "status-table.out").splitlines()]
    assert [line.rstrip() for line in render(None, "table", rows).splitlines()] == expected


def test_render_table_from_data() -> None:
    assert render([{"a": 1}], "table") == to_table([{"a": 1}])
    assert render({"a": 1}, "table") == to_table([{"a": 1}])


def test_render_unknown_format() -> None:
    with pytest.raises(ValueError):
        render({}, "xml")


# -- choose_format -------------------------------------------------------------------------------------


def test_choose_format() -> None:
    assert choose_format("yaml") == "yaml"
    with pytest.raises(SigError) as info:
        choose_format("xml")
    assert info.value.code == ErrorCode.USAGE_ERROR
    with pytest.raises(SigError):
        choose_format("table", ("json", "env"))


def test_choose_format_default_is_json_when_not_a_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert choose_format(None) == "json"
