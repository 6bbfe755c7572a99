"""What each remote is trusted with: the provider ids this machine exchanged with it.

A remote is trusted only with the providers it was given (`sig sync push`) or that were asked of it by name
(`sig sync pull --provider id`). A later plain `sig sync pull` touches those and nothing else, so a remote
given `ci` cannot rewrite `corp`. The record lives here, on the local side (a remote cannot edit it):

    $SIG_HOME/sync/exchanged.json
    {"version": 1, "remotes": {"<name>": {"target": "user@host:port:/path", "providers": ["ci", ...]}}}

Keyed by the remote's name and its target: a name pointed at another machine starts with nothing.
Written under a lock, atomically (temp + fsync + rename), 0600 in a 0700 folder.
"""

from __future__ import annotations

import os

from ..config import paths
from ..core.jsonio import dumps, loads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from .remotes import Remote

VERSION = 1


def record_path() -> str:
    """The record of destinations exchanged with remotes (SIG_HOME/sync/exchanged.json)."""
    return os.path.join(paths.sig_home(), "sync", "exchanged.json")


def _target(remote: Remote) -> str:
    return f"{remote.describe()}:{remote.base}"


def _read() -> dict[str, Any]:
    from ..store.files import read_file

    try:
        raw = read_file(record_path())
        data = loads(raw) if raw else None
    except ValueError:
        data = None  # a damaged record trusts nothing: the next pull asks for names again
    if not isinstance(data, dict) or not isinstance(data.get("remotes"), dict):
        return {"version": VERSION, "remotes": {}}
    return data


def exchanged(remote: Remote) -> set[str]:
    """The provider ids this machine exchanged with `remote` (empty for a remote never synced)."""
    entry = _read()["remotes"].get(remote.name)
    if not isinstance(entry, dict) or entry.get("target") != _target(remote):
        return set()
    ids = entry.get("providers")
    return {i for i in ids if isinstance(i, str)} if isinstance(ids, list) else set()


def _update(change: Callable[[dict[str, Any]], None]) -> None:
    from ..store.files import atomic_write, ensure_dir, file_lock

    path = record_path()
    ensure_dir(os.path.dirname(path))
    with file_lock(path + ".lock"):
        data = _read()
        change(data["remotes"])
        atomic_write(path, (dumps(data, indent=2) + "\n").encode("utf-8"))


def remember(remote: Remote, provider_ids: Iterable[str]) -> None:
    """Add `provider_ids` to what `remote` is trusted with."""
    ids = set(provider_ids)
    if not ids:
        return

    def change(remotes: dict[str, Any]) -> None:
        entry = remotes.get(remote.name)
        known = set()
        if isinstance(entry, dict) and entry.get("target") == _target(remote):
            known = {i for i in entry.get("providers") or [] if isinstance(i, str)}
        remotes[remote.name] = {"target": _target(remote), "providers": sorted(known | ids)}

    _update(change)


def forget(remote_name: str) -> None:
    """Drop everything recorded for a remote (it was removed)."""
    if not os.path.exists(record_path()):
        return

    def change(remotes: dict[str, Any]) -> None:
        remotes.pop(remote_name, None)

    _update(change)
