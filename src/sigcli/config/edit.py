"""Round-trip edits of config.yaml: comments, order and quoting of everything not touched are kept.

Each edit runs under a lock on `config.yaml.lock`, re-reads the file, validates the result before writing
it, and replaces the file atomically, so two `sig` processes editing at once both land.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from ..core.errors import ErrorCode, SigError
from . import paths

# Order in which the original persists an auto-provisioned provider's fields (§2.6).
PERSIST_ORDER = (
    "name", "domains", "entryUrl", "validateUrl", "validateRule", "strategy", "headerName", "headerPrefix",
    "extract", "apply", "ttl", "networkProxy", "loginMode", "oauth2", "env", "userinfoUrl",
)


def round_trip_yaml() -> Any:
    """The YAML emitter sig writes config files with (indentation as the original, long lines kept)."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    yaml.preserve_quotes = True
    return yaml


def _block(value: Any) -> Any:
    """Plain data → ruamel containers in block style."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, dict):
        m = CommentedMap()
        for k, v in value.items():
            m[k] = _block(v)
        m.fa.set_block_style()
        return m
    if isinstance(value, list | tuple):
        s = CommentedSeq(_block(v) for v in value)
        s.fa.set_block_style()
        return s
    return value


def to_block(value: Any) -> Any:
    return _block(value)


def _ensure_map(doc: Any, key: str) -> Any:
    from ruamel.yaml.comments import CommentedMap

    current = doc.get(key)
    if not isinstance(current, dict):
        current = CommentedMap()
        doc[key] = current
    if isinstance(current, CommentedMap):
        current.fa.set_block_style()
    return current


def edit_config(change: Callable[[Any], Any], path: str | None = None, *, create: bool = False) -> Any:
    """Lock, parse (round trip), apply `change(doc)`, validate, write atomically. Returns change's result."""
    from ..store.files import atomic_write, file_lock, read_file
    from .load import parse_config, parse_yaml
    from .schema import normalise

    path = path or paths.config_path()
    with file_lock(path + ".lock"):
        raw = read_file(path)
        if raw is None and not create:
            from .load import missing_config_error

            raise missing_config_error(path)
        try:
            text = raw.decode("utf-8") if raw else "{}"
        except UnicodeDecodeError:
            raise SigError(
                ErrorCode.CONFIG_ERROR, f"cannot read {path}: not UTF-8 text", "save the file as UTF-8"
            ) from None
        doc = parse_yaml(text, path)
        if doc is None:
            from ruamel.yaml.comments import CommentedMap

            doc = CommentedMap()
        result = change(doc)
        buf = io.StringIO()
        round_trip_yaml().dump(doc, buf)
        text = buf.getvalue()
        _, errors, _ = normalise(parse_yaml(text, path))
        if errors:
            # Never write a config we could not load back; say which entry is at fault.
            parse_config(text, path)
            raise SigError(ErrorCode.CONFIG_ERROR, "the edited config would not validate", "run `sig doctor`")
        atomic_write(path, text.encode("utf-8"))
    return result


def provider_entry(provider: dict[str, Any]) -> dict[str, Any]:
    """The fields of a normalised provider worth persisting, in the original's order."""
    out: dict[str, Any] = {}
    for key in PERSIST_ORDER:
        value = provider.get(key)
        if value in (None, "", [], {}):
            continue
        if key == "name" and value == provider.get("id"):
            continue
        out[key] = value
    return out


def set_provider(doc: Any, provider_id: str, entry: dict[str, Any]) -> None:
    providers = _ensure_map(doc, "providers")
    providers[provider_id] = _block(entry)


def rename_provider(doc: Any, old: str, new: str) -> bool:
    providers = doc.get("providers")
    if not isinstance(providers, dict) or old not in providers:
        return False
    position = list(providers.keys()).index(old)
    entry = providers.pop(old)
    if isinstance(entry, dict) and entry.get("name") == old:
        entry["name"] = new
    providers.insert(position, new, entry)
    watch = doc.get("watch")
    wp = watch.get("providers") if isinstance(watch, dict) else None
    if isinstance(wp, dict) and old in wp:
        wpos = list(wp.keys()).index(old)
        spec = wp.pop(old)
        wp.insert(wpos, new, spec)
    return True


def remove_provider(doc: Any, provider_id: str) -> bool:
    removed = False
    providers = doc.get("providers")
    if isinstance(providers, dict) and provider_id in providers:
        del providers[provider_id]
        removed = True
    watch = doc.get("watch")
    wp = watch.get("providers") if isinstance(watch, dict) else None
    if isinstance(wp, dict) and provider_id in wp:
        del wp[provider_id]
    return removed
