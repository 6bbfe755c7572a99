"""The watch list in config.yaml (`watch: {interval, providers: {id: {autoSync: [remotes]}}}`): the edits
`sig watch add|remove|set-interval` make, round trip (comments and layout kept), block style."""

from __future__ import annotations

from ..core.errors import ErrorCode, SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _watch_section(doc: Any) -> Any:
    """doc["watch"], created block-style as {interval: 5m, providers: {}} when absent."""
    from ruamel.yaml.comments import CommentedMap

    from .edit import ensure_map, to_block

    watch = doc.get("watch")
    if not isinstance(watch, dict):
        watch = to_block({"interval": "5m", "providers": {}})
        doc["watch"] = watch
    elif isinstance(watch, CommentedMap):
        watch.fa.set_block_style()
    ensure_map(watch, "providers")
    return watch


def add(provider_id: str, remotes: list[str]) -> bool:
    """Watch `provider_id` (auto-synced to `remotes`, if any). True when it was watched already (updated)."""
    from .edit import edit_config, to_block

    def change(doc: Any) -> bool:
        providers = _watch_section(doc)["providers"]
        existed = provider_id in providers
        providers[provider_id] = to_block({"autoSync": remotes}) if remotes else None
        return existed

    existed: bool = edit_config(change)
    return existed


def remove(target: str, candidates: list[str]) -> str:
    """Stop watching the first of `candidates` (the name given, then the provider it resolves to) that is
    in the list; the key removed. GENERAL_ERROR naming `target` when none is."""
    from .edit import edit_config

    def change(doc: Any) -> str:
        watch = doc.get("watch")
        providers = watch.get("providers") if isinstance(watch, dict) else None
        for key in candidates:
            if isinstance(providers, dict) and key in providers:
                del providers[key]
                return key
        raise SigError(ErrorCode.GENERAL_ERROR, f'"{target}" is not in the watch list', "run `sig watch list`")

    removed: str = edit_config(change)
    return removed


def set_interval(text: str) -> None:
    """How often the watch loop checks (a duration the caller has checked, e.g. "5m")."""
    from .edit import edit_config

    def change(doc: Any) -> None:
        _watch_section(doc)["interval"] = text

    edit_config(change)
