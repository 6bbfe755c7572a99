"""Regressions found while testing: YAML output that did not read back, domains with a port."""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML

from sigcli.cli.output import to_yaml
from sigcli.config.schema import normalise

AWKWARD = ["-", "- x", "?", "? x", "=", "<<", "a\tb", "0x10", "0o17", ".inf", ".nan", "2026-01-01", "~", "on",
           "a: b", "#x", "", " x", "x ", "null", "1e5", "+1", "1_000", "12:30", "10", "é ok", "127.0.0.1",
           "2026-11-24T07:06:31.123Z"]


@pytest.mark.parametrize("text", AWKWARD)
def test_yaml_output_reads_back_as_the_same_string(text: str) -> None:
    loaded = YAML(typ="safe").load(to_yaml({"k": text, "list": [text]}))
    assert loaded == {"k": text, "list": [text]}


def test_domain_with_port_is_rejected() -> None:
    _, errors, _ = normalise({"providers": {"a": {"domains": ["localhost:8080"], "strategy": "api-token"}}})
    assert any("has a port" in e for e in errors)
    _, errors, _ = normalise({"providers": {"a": {"domains": ["localhost", "::1"], "strategy": "api-token"}}})
    assert errors == []
