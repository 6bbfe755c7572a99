"""cli/args.py: the small declarative argument parser."""

from __future__ import annotations

import pytest

from sigcli.cli.args import parse
from sigcli.core.errors import ErrorCode, SigError

SPEC = {"format": "value", "provider": "multi", "header": "multi", "force": "bool", "port": "value"}


def test_inline_and_separate_values() -> None:
    a = parse("get", ["--format=json", "p1"], SPEC)
    assert a.value("format") == "json"
    assert a.positionals == ["p1"]
    b = parse("get", ["--format", "json", "p1"], SPEC)
    assert b.value("format") == "json"
    assert b.positionals == ["p1"]


def test_inline_value_may_contain_equals_and_be_empty() -> None:
    a = parse("x", ["--header=X-A: b=c"], SPEC)
    assert a.values("header") == ["X-A: b=c"]
    assert parse("x", ["--format="], SPEC).value("format") == ""


def test_flags_after_positionals() -> None:
    a = parse("status", ["p1", "p2", "--force", "--format", "yaml"], SPEC)
    assert a.positionals == ["p1", "p2"]
    assert a.flag("force")
    assert a.value("format") == "yaml"
    assert a.rest is None


def test_double_dash_ends_options_and_keeps_the_rest() -> None:
    a = parse("run", ["p1", "--force", "--", "curl", "--format", "-h", "--", "x"], SPEC)
    assert a.positionals == ["p1"]
    assert a.flag("force")
    assert a.rest == ["curl", "--format", "-h", "--", "x"]
    assert not a.given("format")
    assert not a.flag("help")


def test_double_dash_with_nothing_after() -> None:
    a = parse("run", ["p1", "--"], SPEC)
    assert a.rest == []
    assert parse("run", ["p1"], SPEC).rest is None


@pytest.mark.parametrize("argv", [["--nope"], ["p", "--nope=1"], ["-x"], ["p", "-vv"]])
def test_unknown_option_is_a_usage_error(argv: list[str]) -> None:
    with pytest.raises(SigError) as info:
        parse("get", argv, SPEC)
    assert info.value.code == ErrorCode.USAGE_ERROR
    assert info.value.exit_code == 1
    assert "sig get --help" in info.value.hint


def test_unknown_option_after_double_dash_is_fine() -> None:
    assert parse("run", ["--", "--nope", "-x"], SPEC).rest == ["--nope", "-x"]


@pytest.mark.parametrize("argv", [["--format"], ["p", "--port"], ["--format", "--"]])
def test_missing_value_is_a_usage_error(argv: list[str]) -> None:
    with pytest.raises(SigError) as info:
        parse("get", argv, SPEC)
    assert info.value.code == ErrorCode.USAGE_ERROR
    assert "needs a value" in info.value.message


def test_short_help_and_global_flags() -> None:
    a = parse("get", ["-h"], SPEC)
    assert a.flag("help")
    b = parse("get", ["p", "--help", "--verbose"], SPEC)
    assert b.flag("help") and b.flag("verbose")
    assert b.positionals == ["p"]
    assert parse("get", ["--version"], {}).flag("version")


def test_multi_flags_repeat_in_order() -> None:
    a = parse("request", ["--header", "A: 1", "u", "--header=B: 2", "--provider", "x", "--provider=y"], SPEC)
    assert a.values("header") == ["A: 1", "B: 2"]
    assert a.values("provider") == ["x", "y"]
    assert a.value("provider") == "y"
    assert a.positionals == ["u"]


def test_single_value_flag_given_twice() -> None:
    assert parse("x", ["--format", "json", "--format=json"], SPEC).value("format") == "json"
    with pytest.raises(SigError) as info:
        parse("x", ["--format", "json", "--format", "yaml"], SPEC)
    assert info.value.code == ErrorCode.USAGE_ERROR


def test_bool_flag_values() -> None:
    assert parse("x", ["--force=true"], SPEC).flag("force")
    assert parse("x", ["--force=yes"], SPEC).flag("force")
    assert not parse("x", ["--force", "--force=false"], SPEC).flag("force")
    with pytest.raises(SigError) as info:
        parse("x", ["--force=maybe"], SPEC)
    assert info.value.code == ErrorCode.USAGE_ERROR


def test_bool_flag_does_not_take_the_next_token() -> None:
    a = parse("x", ["--force", "p1"], SPEC)
    assert a.flag("force")
    assert a.positionals == ["p1"]


def test_dash_and_negative_numbers_are_positionals() -> None:
    a = parse("x", ["-", "-5", "-1.5"], SPEC)
    assert a.positionals == ["-", "-5", "-1.5"]
    assert parse("x", ["--port", "-1"], SPEC).value("port") == "-1"


def test_defaults_and_accessors() -> None:
    a = parse("x", [], SPEC)
    assert a.command == "x"
    assert a.positionals == []
    assert a.value("format") is None
    assert a.value("format", "json") == "json"
    assert a.values("header") == []
    assert not a.flag("force")
    assert not a.given("format")
    assert parse("x", ["--format=json"], SPEC).given("format")
