"""The apply engine: a provider's rules plus a credential's values give headers, query and body fields.

Pure and I/O-free, like an httpx `Auth` flow: callers (get, request, the proxy, the SDK adapters) decide
where the result goes.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any



def _placeholders(template: str) -> list[tuple[int, int, str]]:
    """(start, end, key) of every `${key}` (the original's regex \\$\\{([^}]+)\\}), without importing re."""
    found = []
    i = template.find("${")
    while i != -1:
        close = template.find("}", i + 2)
        if close == -1:
            break
        if close > i + 2:
            found.append((i, close + 1, template[i + 2 : close]))
            i = template.find("${", close + 1)
        else:
            i = template.find("${", i + 1)
    return found


def render(template: str, values: Mapping[str, str]) -> str:
    """Every `${key}` becomes values[key], or "" when the credential has no such key (the original's rule)."""
    parts = []
    last = 0
    for start, end, key in _placeholders(template):
        parts.append(template[last:start])
        parts.append(values.get(key, ""))
        last = end
    parts.append(template[last:])
    return "".join(parts)


def referenced_keys(rules: Iterable[Mapping[str, Any]]) -> set[str]:
    """The credential value names the rules' `${key}` placeholders use."""
    keys: set[str] = set()
    for rule in rules:
        keys.update(key for _s, _e, key in _placeholders(str(rule.get("value") or "")))
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
