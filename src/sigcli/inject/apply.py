"""The apply engine: a provider's rules plus a credential's values give headers, query and body fields.

Pure and I/O-free, like an httpx `Auth` flow: callers (get, request, the proxy, the SDK adapters) decide
where the result goes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_TEMPLATE = re.compile(r"\$\{([^}]+)\}")


def render(template: str, values: Mapping[str, str]) -> str:
    """Every `${key}` becomes values[key], or "" when the credential has no such key (the original's rule)."""
    return _TEMPLATE.sub(lambda m: values.get(m.group(1), ""), template)


def referenced_keys(rules: Iterable[Mapping[str, Any]]) -> set[str]:
    keys: set[str] = set()
    for rule in rules:
        keys.update(_TEMPLATE.findall(str(rule.get("value") or "")))
    return keys


class Applied:
    """What the rules produce: headers always, query and body only when a rule set them."""

    __slots__ = ("body", "headers", "query")

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.query: dict[str, str] | None = None
        self.body: dict[str, str] | None = None

    def __repr__(self) -> str:  # names only: the values are secrets
        return f"Applied(headers={sorted(self.headers)}, query={self.query and sorted(self.query)})"


def apply_rules(rules: Iterable[Mapping[str, Any]], values: Mapping[str, str]) -> Applied:
    """Process rules in order: set, append (joined with "; "), remove (of what earlier rules made)."""
    out = Applied()
    for rule in rules:
        where = rule.get("in", "header")
        name = str(rule.get("name") or "")
        action = rule.get("action") or "set"
        if where == "header":
            target = out.headers
        elif where == "query":
            if out.query is None:
                if action == "remove":
                    continue
                out.query = {}
            target = out.query
        elif where == "body":
            if out.body is None:
                if action == "remove":
                    continue
                out.body = {}
            target = out.body
        else:
            continue
        if action == "remove":
            target.pop(name, None)
            continue
        rendered = render(str(rule.get("value") or ""), values)
        if action == "append" and target.get(name):
            target[name] = f"{target[name]}; {rendered}"
        else:
            target[name] = rendered
    return out
