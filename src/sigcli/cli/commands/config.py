"""`sig config path|get|set|unset`: read and change settings without hand-editing config.yaml.

`set` and `unset` go through the round-trip editor (comments and order kept, validated with the config's
own schema before anything is written, atomic, under the config lock). A setting that decides where a
credential may go (a provider's domains, ports, URLs, caFile, allowHttp, networkProxy, header names, and
the browser binary that receives every browser login) is changed under an AI agent only after a person
says yes on the terminal, with the guard's own question. `get` never prints a secret: the config holds
none, `${VAR}` references are shown as written, and a password inside a URL or a client secret written
in clear is masked.
"""

from __future__ import annotations

from ...core.errors import ErrorCode, SigError, usage_error
from ...core.text import mask_url_password
from ..app import App
from ..args import Args

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ...config.keys import Key

FLAGS = {"format": "value"}
SUBCOMMANDS = ("path", "get", "set", "unset")
USAGE = "sig config path | get [KEY] [--format json] | set KEY VALUE | unset KEY"
AUDIT_ACTION = "config_set"


class ConfigOptions:
    """`sig config`'s subcommand, arguments and format, typed."""

    def __init__(self, args: Args) -> None:
        if not args.positionals:
            raise usage_error("say what to do: path, get, set or unset", f"usage: {USAGE}")
        self.sub, self.rest = args.positionals[0], args.positionals[1:]
        if args.rest is not None and self.sub == "set" and len(self.rest) == 1 and len(args.rest) == 1:
            self.rest = [self.rest[0], args.rest[0]]  # `sig config set KEY -- -value`
        self.format = args.value("format")
        if self.format not in (None, "json"):
            raise usage_error(f'unknown format "{self.format}"', "use --format json (or --json)")


def run(args: Args, app: App) -> int:
    """path, get, set or unset one setting (config/keys.py says which settings exist)."""
    opts = ConfigOptions(args)
    sub, rest, fmt = opts.sub, opts.rest, opts.format
    if sub == "path":
        from ...config import paths

        if rest:
            raise usage_error(f"unexpected argument {rest[0]!r}", f"usage: {USAGE}")
        app.out(paths.config_path())
        return 0
    if sub == "get":
        if len(rest) > 1:
            raise usage_error(f"unexpected argument {rest[1]!r}", "usage: sig config get [KEY]")
        return _get(app, rest[0] if rest else None, fmt)
    if sub == "set":
        if len(rest) != 2:
            raise usage_error("set takes a setting name and a value", "e.g. sig config set browser.adapter "
                              "playwright  (a value starting with - goes after --)")
        return _change(app, rest[0], rest[1], fmt)
    if sub == "unset":
        if len(rest) != 1:
            raise usage_error("unset takes one setting name", "e.g. sig config unset providers.api.caFile")
        return _change(app, rest[0], None, fmt)
    from ..args import unknown_word

    raise unknown_word("config command", sub, SUBCOMMANDS, f"usage: {USAGE}", "`sig config {}`")


def _read_doc() -> Any:
    from ...config import paths
    from ...config.load import missing_config_error, parse_yaml
    from ...store.files import read_file

    path = paths.config_path()
    raw = read_file(path)
    if raw is None:
        raise missing_config_error(path)
    try:
        return parse_yaml(raw.decode("utf-8"), path) or {}
    except UnicodeDecodeError:
        raise SigError(ErrorCode.CONFIG_ERROR, f"cannot read {path}: not UTF-8 text", "save the file as UTF-8") from None


def _provider_ids(doc: Any) -> list[str]:
    providers = doc.get("providers") if isinstance(doc, dict) else None
    return [str(p) for p in providers] if isinstance(providers, dict) else []


def _get(app: App, name: str | None, fmt: str | None) -> int:
    from ...config.edit import MISSING, get_path, plain
    from ...config.keys import resolve

    doc = _read_doc()
    if name is None:
        value: Any = plain(doc)
    else:
        key = resolve(name, _provider_ids(doc))
        value = get_path(doc, key.path)
        if value is MISSING:
            value = get_path(app.config.data, key.path)  # a default the schema fills in (browser.*, mode, …)
        if value is MISSING:
            raise SigError(ErrorCode.GENERAL_ERROR, f"{name} is not set",
                           f"set it: sig config set {name} VALUE" if key.settable else "")
        value = plain(value)
    value = _masked(value, name.rsplit(".", 1)[-1] if name else "")
    from ..output import to_json, to_yaml

    if fmt == "json":
        app.out(to_json(value))
    elif isinstance(value, dict | list):
        from ..streams import for_stdout

        app.out(for_stdout(to_yaml(value)))
    else:
        app.out(_scalar(value))
    return 0


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    from ...core.text import printable

    return printable(str(value))


def _masked(value: Any, key: str) -> Any:
    """`value` safe to print: a client secret written in clear becomes ****, a URL's password ****."""
    if isinstance(value, dict):
        return {k: _masked(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, key) for v in value]
    if isinstance(value, str):
        if key.lower() in ("clientsecret", "client_secret", "password", "token") and not _reference(value):
            return "****"
        return mask_url_password(value)
    return value


def _reference(text: str) -> bool:
    return text.startswith("${") and text.endswith("}") and text.count("$") == 1



def guarded(key: Key) -> bool:
    """Does `key` decide where a credential may go? The fields a sync pull may not change without the
    user (sync/destinations.py), plus the browser binary, which receives every browser login's session."""
    if key.provider is None:
        return key.field == "browser.execPath"
    from ...sync.destinations import guarded_fields

    field = key.field
    if field == "url" or field.startswith("env."):
        return field == "url"  # a seed-format url is the entry URL and the domain (README "Configuration")
    entry = {"oauth2": {field[len("oauth2."):]: True}} if field.startswith("oauth2.") else {field: True}
    return bool(guarded_fields(entry))


def _show(value: Any) -> str:
    from ...config.edit import MISSING

    if value is MISSING or value is None:
        return "(not set)"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]" if value else "[]"
    if isinstance(value, dict):
        from ...core.jsonio import dumps

        return dumps(value)
    return _scalar(value)


def _change(app: App, name: str, text: str | None, fmt: str | None) -> int:
    from ...config.edit import MISSING, edit_config, get_path, plain, set_path, unset_path
    from ...config.keys import parse_value, resolve

    doc = _read_doc()
    key = resolve(name, _provider_ids(doc))
    if not key.settable:
        raise usage_error(f"{name} cannot be {'set' if text is not None else 'unset'} with sig config",
                          key.why_not)
    value = parse_value(key, text) if text is not None else MISSING
    before = get_path(doc, key.path)
    before_plain = _masked(plain(before), key.path[-1]) if before is not MISSING else MISSING
    shown_new = _masked(value, key.path[-1]) if value is not MISSING else MISSING
    if value is not MISSING and before is not MISSING and plain(before) == value:
        app.say(f"{name} is already {_show(shown_new)}.")
        return _report(app, fmt, name, shown_new, before_plain)
    destination = guarded(key)
    approved = False
    from ..guard import agent_detected

    if destination and agent_detected():
        _require_person(app, key, before_plain, shown_new, value is MISSING)
        approved = True

    def change(current: Any) -> Any:
        if key.provider is not None and not isinstance(get_path(current, ("providers", key.provider)), dict):
            raise SigError(ErrorCode.PROVIDER_NOT_FOUND, f'no provider "{key.provider}" in the config',
                           "it was removed meanwhile; run `sig providers`")
        if value is MISSING:
            return unset_path(current, key.path)
        return set_path(current, key.path, value)

    previous = edit_config(change)
    meta: dict[str, Any] = {"key": name, "change": "set" if value is not MISSING else "unset"}
    if destination:
        meta["destination"] = True
    if approved:
        meta["approvedBy"] = "terminal"
    app.audit(AUDIT_ACTION, "success", key.provider, meta)
    if value is MISSING:
        app.say(f"Removed {name} (was {_show(before_plain)})." if previous is not MISSING else f"{name} was not set.")
    else:
        app.say(f"Set {name} to {_show(shown_new)}" + (f" (was {_show(before_plain)})." if before is not MISSING
                                                      else " (was not set)."))
    return _report(app, fmt, name, shown_new, before_plain)


def _report(app: App, fmt: str | None, name: str, value: Any, previous: Any) -> int:
    from ...config.edit import MISSING

    if fmt == "json":
        from ..output import to_json

        app.out(to_json({"key": name, "value": None if value is MISSING else value,
                         "previous": None if previous is MISSING else previous}))
    return 0


def _require_person(app: App, key: Key, before: Any, after: Any, unset: bool) -> None:
    """Under an agent: the guard's question on the terminal; only a typed yes lets the change through."""
    from ...core.text import printable
    from ..guard import CONFIRM_TIMEOUT_S, agent_markers, ask_person

    markers = agent_markers()
    question = (f"\nsig: a program run by an AI agent ({markers[0]} is set) asks to change where a credential "
                f"may go:\n  {printable(key.name, one_line=True)}: {printable(_show(before), one_line=True)} -> "
                f"{printable(_show(after), one_line=True)}\nAllow it? Type y and Enter to allow [y/N, "
                f"{int(CONFIRM_TIMEOUT_S)} s]: ")
    verdict = ask_person(question)
    meta = {"key": key.name, "destination": True, "agentMarkers": markers}
    if verdict == "yes":
        app.say("sig: allowed by the person at the terminal.")
        return
    app.audit(AUDIT_ACTION, "failure", key.provider, {**meta, "refused": verdict})
    why = {"no-terminal": "no person could be asked (no terminal)", "timeout": "nobody answered in time",
           "no": "the person at the terminal said no"}[verdict]
    raise SigError(ErrorCode.GENERAL_ERROR,
                   f"{key.name} decides where a credential may go; an AI agent may change it only with a "
                   f"person's yes at the terminal: {why}",
                   "ask the user to run it in their own terminal: sig config "
                   + (f"unset {key.name}" if unset else f"set {key.name} VALUE"))
