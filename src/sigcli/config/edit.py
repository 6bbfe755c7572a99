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

# Order in which the original sigcli persists an auto-provisioned provider's fields (files stay alike).
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
    """`value` (dicts and lists, deeply) as round-trip nodes written in block style."""
    return _block(value)


def ensure_map(doc: Any, key: str) -> Any:
    """doc[key] as a mapping written in block style: made (empty) when it is absent or not a mapping."""
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
    from .load import parse_yaml
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
            # Never write a config we could not load back; say which entry is at fault, and that the file
            # itself was left as it was.
            listing = "\n".join(f"  - {e}" for e in errors)
            raise SigError(ErrorCode.CONFIG_ERROR,
                           f"not changed: {path} would then have {len(errors)} "
                           f"problem{'s' if len(errors) != 1 else ''}:\n{listing}",
                           "fix the value (or the entries above in the file), then try again")
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
    """Add or replace the provider entry `provider_id` under providers:."""
    providers = ensure_map(doc, "providers")
    providers[provider_id] = _block(entry)


def rename_provider(doc: Any, old: str, new: str) -> bool:
    """Give provider `old` the id `new` in place (same position, comments kept), in the watch list too."""
    providers: Any = doc.get("providers")
    if not isinstance(providers, dict) or old not in providers:
        return False
    position = list(providers.keys()).index(old)
    entry = providers.pop(old)
    if isinstance(entry, dict) and entry.get("name") == old:
        entry["name"] = new
    ordered: Any = providers  # a round-trip CommentedMap: it can insert at a position
    ordered.insert(position, new, entry)
    watch = doc.get("watch")
    wp: Any = watch.get("providers") if isinstance(watch, dict) else None
    if isinstance(wp, dict) and old in wp:
        wpos = list(wp.keys()).index(old)
        spec = wp.pop(old)
        watched: Any = wp
        watched.insert(wpos, new, spec)
    return True


def remove_provider(doc: Any, provider_id: str) -> bool:
    """Remove the provider entry and its watch-list entry; True when there was one."""
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


MISSING = object()  # "no such key" (None is a value a key can hold)


def get_path(doc: Any, path: tuple[str, ...]) -> Any:
    """The value at `path` in a parsed document, or MISSING."""
    node = doc
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def set_path(doc: Any, path: tuple[str, ...], value: Any) -> Any:
    """Set `path` to `value`, making the mappings on the way (block style); returns the previous value
    (MISSING if none). A list keeps the flow or block style the old one was written in; comments on the
    key stay where they were."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    node = doc
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = CommentedMap()
            child.fa.set_block_style()
            node[part] = child
        node = child
    last = path[-1]
    previous = node.get(last, MISSING)
    new = _block(value)
    if isinstance(new, CommentedSeq) and isinstance(previous, CommentedSeq) and previous.fa.flow_style():
        new.fa.set_flow_style()
    if previous is MISSING and node:
        _hand_over_trailing(node, last)
    node[last] = new
    return previous


def _hand_over_trailing(node: Any, new_key: str) -> None:
    """Before appending `new_key` to a mapping: the blank lines and comments that follow the mapping's last
    entry (ruamel hangs them on its deepest last item) move to the new key, so a key added to `browser:`
    lands above the blank line and comment that introduce the next section, not below them."""
    import copy

    holder = None
    container: Any = node
    while isinstance(container, dict | list) and container:
        key: Any = list(container.keys())[-1] if isinstance(container, dict) else len(container) - 1
        comments = getattr(container, "ca", None)
        entry = comments and comments.items.get(key)
        slot = 2 if isinstance(container, dict) else 0
        if entry and len(entry) > slot and entry[slot] is not None:
            holder = (entry, slot)
        container = container[key]
    if holder is None:
        return
    entry, slot = holder
    token = entry[slot]
    text = token.value
    cut = text.find("\n")
    if cut < 0 or cut == len(text) - 1:
        return  # only the entry's own end of line: nothing follows it
    moved = copy.copy(token)
    moved.value = "\n" + text[cut + 1 :]
    if text[: cut + 1] == "\n":
        entry[slot] = None
    else:
        token.value = text[: cut + 1]  # the last entry keeps its own end-of-line comment
    node.ca.items[new_key] = [None, None, moved, None]


def unset_path(doc: Any, path: tuple[str, ...]) -> Any:
    """Remove the key at `path`; returns what it held (MISSING if it was not there)."""
    parent = get_path(doc, path[:-1]) if len(path) > 1 else doc
    if not isinstance(parent, dict) or path[-1] not in parent:
        return MISSING
    return parent.pop(path[-1])


def plain(value: Any) -> Any:
    """ruamel containers and scalars -> plain JSON types, as the schema sees them."""
    from .schema import _plain

    return _plain(value)
