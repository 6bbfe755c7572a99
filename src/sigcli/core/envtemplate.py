"""App-named environment variables (`env:` in a provider, `sig run --env NAME=P.key`): names and templates.

Pure and light (no `re`: this is on the `sig run` path). A template is text with placeholders `{key}` or
`${key}` naming a credential value, e.g. `postgres://app:{password}@db.internal/app` or `Bearer ${token}`.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

# sig's own variables (SIG_<PROVIDER>_*, SIG_HOME, SIG_AGENT) live under this prefix; an app name may not.
RESERVED_PREFIX = "SIG_"
_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_REST = _NAME_START | frozenset("0123456789")
_KEY_CHARS = _NAME_REST | frozenset(".-")


def env_name_problem(name: str) -> str | None:
    """Why `name` cannot be an app variable name, or None when it can (POSIX: [A-Za-z_][A-Za-z0-9_]*)."""
    if not name or name[0] not in _NAME_START or not set(name) <= _NAME_REST:
        return f'"{name}" is not a valid variable name (letters, digits and _, not starting with a digit)'
    if name.upper().startswith(RESERVED_PREFIX):
        return f'"{name}" starts with {RESERVED_PREFIX}, which sig keeps for its own variables'
    return None


def _placeholders(template: str) -> list[tuple[int, int, str]]:
    """(start, end, key) of each `{key}` / `${key}` in `template`; other braces are left as text."""
    found: list[tuple[int, int, str]] = []
    i = 0
    while True:
        open_at = template.find("{", i)
        if open_at < 0:
            return found
        close_at = template.find("}", open_at + 1)
        if close_at < 0:
            return found
        key = template[open_at + 1 : close_at]
        if key and set(key) <= _KEY_CHARS:
            start = open_at - 1 if open_at > 0 and template[open_at - 1] == "$" else open_at
            found.append((start, close_at + 1, key))
            i = close_at + 1
        else:
            i = open_at + 1


def template_keys(template: str) -> list[str]:
    """The keys a `{key}` / `${key}` template names, in order."""
    return [key for _s, _e, key in _placeholders(template)]


def render(template: str, values: Mapping[str, str]) -> tuple[str, list[str]]:
    """(text with each placeholder replaced by its value, keys that had no value: replaced by "")."""
    out = []
    missing = []
    last = 0
    for start, end, key in _placeholders(template):
        out.append(template[last:start])
        value = values.get(key)
        if value is None:
            missing.append(key)
            value = ""
        out.append(value)
        last = end
    out.append(template[last:])
    return "".join(out), missing
