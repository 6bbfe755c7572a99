"""One strategy table (core/strategies.py): every row's class satisfies the Strategy protocol, and no code
outside the table decides by comparing a provider's strategy with a spelled-out name."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from sigcli.auth.base import Strategy
from sigcli.auth.strategies import strategy_for
from sigcli.core import strategies
from sigcli.core.errors import SigError

SRC = Path(__file__).resolve().parents[2] / "src" / "sigcli"


def _protocol_methods() -> dict[str, inspect.Signature]:
    return {name: inspect.signature(getattr(Strategy, name))
            for name in ("authenticate", "refresh")}


@pytest.mark.parametrize("name", strategies.NAMES)
def test_every_row_names_a_class_that_satisfies_the_protocol(name: str) -> None:
    row = strategies.TABLE[name]
    module_name, _, class_name = row.implementation.partition(":")
    cls = getattr(importlib.import_module(f"sigcli.auth.strategies.{module_name}"), class_name)
    instance = strategy_for(name)
    assert type(instance) is cls
    assert isinstance(instance, Strategy)  # runtime_checkable: the members exist
    assert cls.name == name
    for method, wanted in _protocol_methods().items():
        got = inspect.signature(getattr(cls, method))
        assert list(got.parameters) == list(wanted.parameters), f"{class_name}.{method}{got} != {wanted}"


def test_the_default_strategy_is_spelled_alike_in_the_model() -> None:
    from sigcli.core.model import DEFAULT_STRATEGY, Provider

    assert DEFAULT_STRATEGY == strategies.DEFAULT in strategies.TABLE
    assert Provider({"id": "x"}).strategy == strategies.DEFAULT


def test_an_unknown_name_is_a_config_error() -> None:
    with pytest.raises(SigError) as caught:
        strategy_for("kerberos")
    assert caught.value.code == "CONFIG_ERROR"
    assert ", ".join(strategies.NAMES) in caught.value.hint


def test_login_material_implies_its_strategy() -> None:
    assert strategies.implied_by(["token"]) == strategies.API_TOKEN
    assert strategies.implied_by(["cookie"]) == strategies.COOKIE
    assert strategies.implied_by(["username"]) == strategies.BASIC
    assert strategies.implied_by(["password"]) == strategies.BASIC
    assert strategies.implied_by([]) is None


def test_the_protocol_rejects_a_class_without_its_methods() -> None:
    class NotAStrategy:
        name = "x"

        def authenticate(self, provider: object, ctx: object) -> object:
            return None

    assert not isinstance(NotAStrategy(), Strategy)


def _strategy_literal_comparisons(tree: ast.AST) -> list[int]:
    """Lines comparing `<x>.strategy` (or a variable called strategy) with a string constant."""
    names = set(strategies.NAMES)
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        about_strategy = any(
            (isinstance(s, ast.Attribute) and s.attr == "strategy") or (isinstance(s, ast.Name) and s.id == "strategy")
            for s in sides)
        constants = [c.value for s in sides for c in ast.walk(s) if isinstance(c, ast.Constant)]
        if about_strategy and any(isinstance(c, str) and c in names for c in constants):
            out.append(node.lineno)
    return out


def test_no_code_compares_a_strategy_with_a_spelled_out_name() -> None:
    """Behaviour that depends on the strategy reads its row (or a named constant), so a new login method
    needs no edits outside its own file and its row."""
    found = []
    for path in SRC.rglob("*.py"):
        lines = _strategy_literal_comparisons(ast.parse(path.read_text(encoding="utf-8")))
        found += [f"{path.relative_to(SRC)}:{line}" for line in lines]
    assert found == []
    assert _strategy_literal_comparisons(ast.parse('if provider.strategy == "oauth2": pass')) == [1]
