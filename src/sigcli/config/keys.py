"""Dotted setting names (`browser.adapter`, `providers.api.allowHttp`) for `sig config get|set|unset`.

A name is checked against the schema's own key tables (config/schema.py), so `set` can only write keys
sig reads, and a value is typed by what its key holds (true/false, a number, a list, else the text as
given), never guessed from how the text looks: `headerPrefix 123` is the string "123", `env.URL {token}`
is a template, not a YAML mapping. Provider ids may contain dots: the longest id in the config wins.
"""

from __future__ import annotations

from ..core.errors import ErrorCode, SigError, usage_error
from .schema import BROWSER_KEYS, OAUTH2_KEYS, PROVIDER_KEYS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

BOOL_FIELDS = frozenset({"allowHttp", "forceVisible"})
NUMBER_FIELDS = frozenset({"browser.headlessTimeout", "browser.visibleTimeout", "oauth2.redirectPort",
                           "oauth2.timeout", "oauth2.callbackTimeout"})
LIST_FIELDS = frozenset({"domains", "loginUrlPatterns", "requiredCookies", "cookiePaths", "scopes", "oauth2.scopes"})
INT_LIST_FIELDS = frozenset({"ports"})
# Whole structures: readable with `get`, edited in the file (a rule list does not fit on a command line).
STRUCTURED = frozenset({"extract", "apply", "proxy", "oauth2", "env"})
TOP_SETTABLE = ("mode", "storage.credentialsDir", "watch.interval", *(f"browser.{k}" for k in sorted(BROWSER_KEYS)))
TOP_READABLE = ("version", "browser", "storage", "watch", "remotes", "providers", "watch.providers")


class Key:
    """A resolved setting name: its path in the YAML document and what may be done with it."""

    def __init__(self, name: str, path: tuple[str, ...], provider: str | None = None, field: str = "",
                 settable: bool = True, why_not: str = "") -> None:
        self.name = name
        self.path = path
        self.provider = provider  # the provider id for providers.<id>.…
        self.field = field  # within the provider ("allowHttp", "oauth2.tokenUrl"), or the top-level name
        self.settable = settable
        self.why_not = why_not

    @property
    def kind(self) -> str:
        """bool | number | list | ints | text: how `set` reads its value."""
        if self.field in BOOL_FIELDS:
            return "bool"
        if self.field in NUMBER_FIELDS:
            return "number"
        if self.field in LIST_FIELDS:
            return "list"
        if self.field in INT_LIST_FIELDS:
            return "ints"
        return "text"


def known_names(provider_ids: Iterable[str]) -> list[str]:
    """Every settable name, for "did you mean" (provider fields under each configured id)."""
    names = [*TOP_SETTABLE, *TOP_READABLE]
    fields = [f for f in sorted(PROVIDER_KEYS) if f not in STRUCTURED] + [f"oauth2.{k}" for k in sorted(OAUTH2_KEYS)]
    for pid in provider_ids:
        names.extend(f"providers.{pid}.{f}" for f in fields)
    return names


def _unknown(name: str, provider_ids: Iterable[str]) -> SigError:
    from ..core.suggest import suggest

    close = suggest(name, known_names(provider_ids))
    hint = f"did you mean {close}?" if close else "see `sig config --help` for the settings and their names"
    return usage_error(f'"{name}" is not a setting sig knows', hint)


def resolve(name: str, provider_ids: Iterable[str]) -> Key:
    """The Key for `name`, or a SigError (unknown name: usage error with a suggestion; unknown provider: 2)."""
    ids = list(provider_ids)
    if not name or name.startswith(".") or name.endswith(".") or ".." in name:
        raise usage_error(f'"{name}" is not a setting name', "write it dotted, e.g. browser.adapter or "
                          "providers.<id>.allowHttp")
    if name == "providers":
        return Key(name, ("providers",), settable=False, why_not="providers are added with `sig login`")
    if name.startswith("providers."):
        return _provider_key(name, name[len("providers."):], ids)
    parts = tuple(name.split("."))
    if name in TOP_SETTABLE:
        return Key(name, parts, field=name)
    if name in TOP_READABLE or (parts[0] == "remotes" and len(parts) <= 3):
        why = {"remotes": "remotes are managed with `sig remote add|remove`",
               "watch": "the watch list is managed with `sig watch add|remove|set-interval`"}.get(
            parts[0], "set its fields one by one (e.g. browser.adapter)")
        return Key(name, parts, field=name, settable=False, why_not=why)
    raise _unknown(name, ids)


def _provider_key(name: str, rest: str, ids: list[str]) -> Key:
    matches = [pid for pid in ids if rest == pid or rest.startswith(pid + ".")]
    if not matches:
        guess = rest.split(".")[0]
        from ..core.suggest import suggest

        close = suggest(guess, ids)
        raise SigError(ErrorCode.PROVIDER_NOT_FOUND, f'no provider "{guess}" in the config',
                       f'did you mean "{close}"?' if close else
                       "run `sig providers` to list them; a new provider is added with `sig login <url>`")
    pid = max(matches, key=len)
    field = rest[len(pid) + 1:]
    if not field:
        return Key(name, ("providers", pid), pid, "", settable=False,
                   why_not="set its fields one by one (e.g. providers.<id>.allowHttp)")
    parts = tuple(field.split("."))
    path = ("providers", pid, *parts)
    head = parts[0]
    if head not in PROVIDER_KEYS:
        raise _unknown(name, ids)
    if len(parts) == 1:
        if head in STRUCTURED:
            return Key(name, path, pid, field, settable=False,
                       why_not=f"{head} is a structure: set its entries (e.g. providers.{pid}.oauth2.tokenUrl"
                               f" or providers.{pid}.env.NAME), or edit it in the file (sig config path)")
        return Key(name, path, pid, field)
    if head == "oauth2" and len(parts) == 2 and parts[1] in OAUTH2_KEYS:
        return Key(name, path, pid, field)
    if head == "env" and len(parts) == 2:
        return Key(name, path, pid, field)
    if head in ("extract", "apply", "proxy"):
        return Key(name, path, pid, field, settable=False, why_not="edit rules in the file (sig config path)")
    raise _unknown(name, ids)


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def parse_value(key: Key, text: str) -> Any:
    """The value `text` stands for at `key` (see the module docstring); a usage error if it cannot."""
    kind = key.kind
    if kind == "bool":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise usage_error(f"{key.name} is true or false, not {text!r}", f"e.g. sig config set {key.name} true")
    if kind == "number":
        number = _number(text)
        if number is None:
            raise usage_error(f"{key.name} takes a number, not {text!r}",
                              "timeouts are in milliseconds (browser.*) or seconds (oauth2.*)")
        return number
    if kind in ("list", "ints"):
        items = _list(text, spaces=key.field.endswith("scopes"))
        if kind == "ints":
            ports = [_number(i) for i in items]
            if not all(isinstance(p, int) for p in ports):
                raise usage_error(f"{key.name} takes port numbers, not {text!r}", f"e.g. sig config set {key.name} 443,8443")
            return ports
        return items
    return text


def _number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def _list(text: str, spaces: bool) -> list[str]:
    """`a,b`, `a, b`, `[a, b]` (and for scopes also `a b`) -> ["a", "b"]."""
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    separators = body.replace(",", " ").split() if spaces else body.split(",")
    return [item.strip().strip("'\"") for item in separators if item.strip().strip("'\"")]
