"""Sync engine: credentials re-sealed with the destination's key, conflicts by updatedAt, config merged.

Push: read the remote (one tar stream: key, config, credential files), decide per provider, then write one
tar stream that the remote unpacks into a temp folder and renames into place. Pull: read, decide, and
store locally through the normal sealed store (atomic, locked). Nothing is lost: the whole payload moves
(values, expiry, OAuth2 client secret and refresh token, extra keys), and nothing older overwrites newer
without --force.
"""

from __future__ import annotations

import base64
import io
import os

from ..core.errors import ErrorCode, SigError
from ..core.hosts import sanitize_filename
from ..core.jsonio import dumps, loads
from ..core.model import Credential
from ..core.timeutil import ms_from_iso
from .remotes import Remote, get_remote
from .ssh import EMPTY_TAR, READ_SCRIPT, WRITE_SCRIPT, Connection, base_expr

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..config.load import Config
    from ..store.credentials import CredentialStore


class Snapshot:
    """What the remote holds: its key (if any), config text (if any) and credential files."""

    def __init__(self) -> None:
        self.key: bytes | None = None
        self.config_text: str | None = None
        self.files: dict[str, bytes] = {}


def fetch(conn: Connection) -> Snapshot:
    import tarfile

    from ..store.keyfile import decode_key

    raw = conn.run(READ_SCRIPT.format(base=base_expr(conn.remote.base), empty=EMPTY_TAR))
    snap = Snapshot()
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for member in tar:
                if not member.isfile() or member.size > 4 << 20:
                    continue
                data = tar.extractfile(member)
                content = data.read() if data is not None else b""
                name = member.name
                if name == "encryption.key":
                    snap.key = decode_key(content, f"{conn.remote.describe()}:{conn.remote.base}/encryption.key")
                elif name == "config.yaml":
                    snap.config_text = content.decode("utf-8", "replace")
                elif name.startswith("credentials/") and name.endswith(".json") and "/" not in name[12:]:
                    snap.files[name[12:]] = content
    except tarfile.TarError:
        raise SigError(ErrorCode.SYNC_ERROR, f"unreadable answer from {conn.remote.describe()}",
                       "check that `tar` works on the remote") from None
    return snap


def _open_remote_file(data: bytes, key: bytes | None, label: str) -> Credential:
    from ..store.envelope import is_envelope, unseal

    payload = loads(data)
    if is_envelope(payload):
        if key is None:
            raise SigError(ErrorCode.SYNC_ERROR, f"{label} is sealed but the remote has no encryption key",
                           "restore the remote's encryption.key, or remove that file there")
        payload = loads(unseal(payload, key, label, "sync it again with --force, or remove it on the remote"))
    if not isinstance(payload, dict) or not payload.get("providerId"):
        raise SigError(ErrorCode.SYNC_ERROR, f"{label} is not a sig credential", "")
    return Credential.from_payload(payload)


def _seal_for(credential: Credential, key: bytes) -> bytes:
    from ..store.envelope import seal

    plaintext = dumps(credential.to_payload(), indent=2).encode("utf-8")
    return dumps(seal(plaintext, key), indent=2).encode("ascii")


def _newer(a: str | None, b: str | None) -> bool:
    """Is a strictly newer than b (ISO instants; an unknown time is never newer)."""
    ta, tb = ms_from_iso(a or ""), ms_from_iso(b or "")
    return ta is not None and (tb is None or ta > tb)


def _tar(files: dict[str, bytes]) -> bytes:
    import tarfile
    import time

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:", format=tarfile.PAX_FORMAT) as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o600
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _local_provider_nodes(config: Config, ids: list[str]) -> dict[str, Any]:
    """The local config's provider entries as round-trip YAML nodes (comments inside them travel along)."""
    from ..config.load import parse_yaml

    with open(config.path, encoding="utf-8") as fh:
        doc = parse_yaml(fh.read(), config.path)
    providers = doc.get("providers") if isinstance(doc, dict) else None
    return {pid: providers[pid] for pid in ids if isinstance(providers, dict) and pid in providers}


REMOTE_CONFIG = """# SigCLI configuration (written by "sig sync push")

version: 2

mode: browserless                          # No browser on this machine — use sig sync pull

browser:
  browserDataDir: ~/.sig/browser-data
  execPath: ''
  headlessTimeout: 20000
  visibleTimeout: 120000

storage:
  credentialsDir: ~/.sig/credentials

providers: {}
"""


def _merged_remote_config(text: str | None, nodes: dict[str, Any]) -> bytes:
    from ..config.edit import round_trip_yaml
    from ..config.load import parse_yaml

    doc = parse_yaml(text if text is not None else REMOTE_CONFIG, "remote config.yaml")
    if not isinstance(doc, dict):
        doc = parse_yaml(REMOTE_CONFIG, "remote config.yaml")
    from ruamel.yaml.comments import CommentedMap

    providers = doc.get("providers")
    if not isinstance(providers, dict):
        providers = CommentedMap()
        doc["providers"] = providers
    if isinstance(providers, CommentedMap):
        providers.fa.set_block_style()
    for pid, node in nodes.items():
        providers[pid] = node  # local wins on push
    buf = io.StringIO()
    round_trip_yaml().dump(doc, buf)
    return buf.getvalue().encode("utf-8")


def push(config: Config, store: CredentialStore, remote: Remote, ids: list[str] | None, force: bool,
         log: Callable[[str], None]) -> dict[str, Any]:
    result: dict[str, Any] = {"remote": remote.name, "host": remote.describe(), "pushed": [], "unchanged": [],
                              "skipped": [], "errors": [], "configSynced": {"providers": []}}
    local = [(stem, cred, err) for stem, cred, err in store.list()]
    chosen = []
    for stem, cred, err in local:
        pid = cred.provider_id if cred is not None else stem
        if ids and pid not in ids:
            continue
        if err is not None or cred is None:
            result["errors"].append({"provider": pid, "error": err.message if err else "unreadable"})
            continue
        chosen.append(cred)
    if ids:
        missing = [i for i in ids if i not in {c.provider_id for c in chosen} and i not in
                   {e["provider"] for e in result["errors"]}]
        for pid in missing:
            result["errors"].append({"provider": pid, "error": "no credential stored locally"})
    conn = Connection(remote)
    try:
        snap = fetch(conn)
        key = snap.key
        new_key = key is None
        if key is None:
            key = os.urandom(32)
        outgoing: dict[str, bytes] = {}
        for cred in chosen:
            name = sanitize_filename(cred.provider_id)
            theirs = None
            if name in snap.files:
                try:
                    theirs = _open_remote_file(snap.files[name], snap.key, f"remote {name}")
                except (SigError, ValueError):
                    theirs = None  # unreadable there: ours replaces it
            if theirs is not None and not force:
                if _newer(theirs.updated_at, cred.updated_at):
                    result["skipped"].append({"provider": cred.provider_id, "local": cred.updated_at,
                                              "remote": theirs.updated_at})
                    continue
                if theirs.updated_at == cred.updated_at and theirs.to_payload() == cred.to_payload():
                    result["unchanged"].append(cred.provider_id)
                    continue
            outgoing[f"credentials/{name}"] = _seal_for(cred, key)
            result["pushed"].append(cred.provider_id)
        provider_ids = [i for i in ids if i in config.providers] if ids else list(config.providers)
        nodes = _local_provider_nodes(config, provider_ids) if provider_ids else {}
        if nodes:
            outgoing["config.yaml"] = _merged_remote_config(snap.config_text, nodes)
            result["configSynced"] = {"providers": list(nodes)}
        if new_key and any(n.startswith("credentials/") for n in outgoing):
            outgoing["encryption.key"] = base64.b64encode(key) + b"\n"
        if outgoing:
            out = conn.run(WRITE_SCRIPT.format(base=base_expr(remote.base)), _tar(outgoing))
            if b"SIG-SYNC-OK" not in out:
                raise SigError(ErrorCode.SYNC_ERROR, f"the write on {remote.describe()} did not complete",
                               "run the sync again; nothing was half-written")
    finally:
        conn.close()
    log(f"push to {remote.name}: {len(result['pushed'])} pushed, {len(result['skipped'])} skipped")
    return result


def pull(config: Config, store: CredentialStore, remote: Remote, ids: list[str] | None, force: bool,
         log: Callable[[str], None]) -> dict[str, Any]:
    result: dict[str, Any] = {"remote": remote.name, "host": remote.describe(), "pulled": [], "unchanged": [],
                              "skipped": [], "errors": [], "configSynced": {"providers": []}}
    conn = Connection(remote)
    try:
        snap = fetch(conn)
    finally:
        conn.close()
    seen: set[str] = set()
    for name, data in sorted(snap.files.items()):
        try:
            theirs = _open_remote_file(data, snap.key, f"remote {name}")
        except (SigError, ValueError) as err:
            if not ids or name[:-5] in ids:
                result["errors"].append({"provider": name[:-5], "error": getattr(err, "message", str(err))})
            continue
        pid = theirs.provider_id
        if ids and pid not in ids:
            continue
        seen.add(pid)
        try:
            ours = store.read(pid)
        except SigError:
            ours = None
        if ours is not None and not force:
            if _newer(ours.updated_at, theirs.updated_at):
                result["skipped"].append({"provider": pid, "local": ours.updated_at, "remote": theirs.updated_at})
                continue
            if ours.to_payload() == theirs.to_payload():
                result["unchanged"].append(pid)
                continue
        store.write(theirs)
        result["pulled"].append(pid)
    for pid in ids or []:
        if pid not in seen and pid not in {e["provider"] for e in result["errors"]}:
            result["errors"].append({"provider": pid, "error": "not found on the remote"})
    if snap.config_text is not None:
        from ..config.load import parse_yaml

        try:
            doc = parse_yaml(snap.config_text, f"{remote.describe()}:config.yaml")
        except SigError as err:
            result["configSynced"] = {"providers": [], "error": err.message}
        else:
            providers = doc.get("providers") if isinstance(doc, dict) else None
            chosen = {k: v for k, v in (providers or {}).items() if not ids or k in ids}
            if chosen:
                from ..config.edit import edit_config

                def merge(local_doc: Any) -> None:
                    from ruamel.yaml.comments import CommentedMap

                    lp = local_doc.get("providers")
                    if not isinstance(lp, dict):
                        lp = CommentedMap()
                        local_doc["providers"] = lp
                    if isinstance(lp, CommentedMap):
                        lp.fa.set_block_style()
                    for pid, node in chosen.items():
                        lp[pid] = node  # remote wins on pull

                edit_config(merge)
                result["configSynced"] = {"providers": list(chosen)}
    else:
        result["configSynced"] = {"providers": [], "error": "the remote has no config.yaml"}
    log(f"pull from {remote.name}: {len(result['pulled'])} pulled, {len(result['skipped'])} skipped")
    return result


def push_for_watch(config: Config, remote_name: str, provider_ids: list[str],
                   log: Callable[[str], None]) -> None:
    """Auto-sync after a refresh (the watch loop). Raises SigError when the push fails."""
    from ..config import paths
    from ..store.credentials import CredentialStore

    remote = get_remote(config.remotes, remote_name)
    store = CredentialStore(config.credentials_dir, paths.key_path(), log)
    result = push(config, store, remote, provider_ids, False, log)
    if result["errors"]:
        raise SigError(ErrorCode.SYNC_ERROR, f"auto-sync to {remote_name}: " +
                       "; ".join(f"{e['provider']}: {e['error']}" for e in result["errors"]), "")
