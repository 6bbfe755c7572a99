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
from ..core.timeutil import iso_from_ms, ms_from_iso, now_ms
from . import trust
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
    """Read the remote's config and credential files in one SSH round trip."""
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


# A remote's clock may run a little ahead; a timestamp further in the future than this is not believed
# (it would make a forged or broken file win every later comparison).
FUTURE_SKEW_MS = 5 * 60_000


def _open_remote_file(data: bytes, key: bytes | None, name: str) -> tuple[Credential, bool]:
    """A credential file from the remote, if it is one sig may take: sealed, and for the provider its file
    is named after (a file may not plant a credential for another provider). Also says whether the file
    gave its updatedAt (when it did not, the Credential's is "now", which must not count as newer)."""
    from ..core.hosts import valid_provider_id
    from ..core.text import printable
    from ..store.envelope import is_envelope, unseal

    label = f"remote credentials/{name}"
    try:
        payload = loads(data)
    except ValueError:
        raise SigError(ErrorCode.SYNC_ERROR, f"{label} is not valid JSON", "remove that file on the remote") from None
    if not is_envelope(payload):
        raise SigError(ErrorCode.SYNC_ERROR, f"{label} is not sealed: plaintext credential files from a remote are "
                       "refused", "log in again on the remote (sig seals what it writes), or remove that file there")
    if key is None:
        raise SigError(ErrorCode.SYNC_ERROR, f"{label} is sealed but the remote has no encryption key",
                       "restore the remote's encryption.key, or remove that file there")
    try:
        payload = loads(unseal(payload, key, label, "sync it again with --force, or remove it on the remote"))
    except ValueError:
        raise SigError(ErrorCode.SYNC_ERROR, f"{label} holds damaged content", "remove that file on the remote") \
            from None
    if not isinstance(payload, dict) or not payload.get("providerId"):
        raise SigError(ErrorCode.SYNC_ERROR, f"{label} is not a sig credential", "remove that file on the remote")
    pid = payload["providerId"]
    if not isinstance(pid, str) or not valid_provider_id(pid) or f"{pid}.json" != name:
        shown = printable(str(pid)[:80], one_line=True)
        raise SigError(ErrorCode.SYNC_ERROR, f'{label} holds a credential for provider "{shown}", not for the '
                       "provider its name says; refused", "remove that file on the remote")
    try:
        credential = Credential.from_payload(payload)
    except ValueError as exc:
        raise SigError(ErrorCode.SYNC_ERROR, f"{label} is damaged ({exc})", "remove that file on the remote") from None
    return credential, ms_from_iso(payload.get("updatedAt")) is not None


def _seal_for(credential: Credential, key: bytes) -> bytes:
    from ..store.envelope import seal

    plaintext = dumps(credential.to_payload(), indent=2).encode("utf-8")
    return dumps(seal(plaintext, key), indent=2).encode("ascii")


def _believed(ts: str | None, now: int) -> int | None:
    """An updatedAt as milliseconds, or None when unreadable or too far in the future to believe."""
    ms = ms_from_iso(ts or "")
    return ms if ms is not None and ms <= now + FUTURE_SKEW_MS else None


def _same_content(a: Credential, b: Credential) -> bool:
    """Equal but perhaps for updatedAt (a copy taken earlier, re-dated when its date was not believed)."""
    pa, pb = a.to_payload(), b.to_payload()
    pa.pop("updatedAt", None)
    pb.pop("updatedAt", None)
    return pa == pb


def _newer(a: str | None, b: str | None) -> bool:
    """Is a strictly newer than b (an unknown or unbelievable time is never newer)."""
    now = now_ms()
    ta, tb = _believed(a, now), _believed(b, now)
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
    from ..config.edit import ensure_map, round_trip_yaml
    from ..config.load import parse_yaml

    doc = parse_yaml(text if text is not None else REMOTE_CONFIG, "remote config.yaml")
    if not isinstance(doc, dict):
        doc = parse_yaml(REMOTE_CONFIG, "remote config.yaml")
    providers = ensure_map(doc, "providers")
    for pid, node in nodes.items():
        providers[pid] = node  # local wins on push
    buf = io.StringIO()
    round_trip_yaml().dump(doc, buf)
    return buf.getvalue().encode("utf-8")


def push(config: Config, store: CredentialStore, remote: Remote, ids: list[str] | None, force: bool,
         log: Callable[[str], None]) -> dict[str, Any]:
    """Copy providers' credentials (and their config entries) to the remote; a summary of what moved."""
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
                    theirs, dated = _open_remote_file(snap.files[name], snap.key, name)
                except (SigError, ValueError):
                    theirs, dated = None, False  # unreadable or refused there: ours replaces it
            if theirs is not None and not force:
                if dated and _newer(theirs.updated_at, cred.updated_at):
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
    # The remote now holds (or was offered) these: a later pull may update them, and only them.
    trust.remember(remote, [*result["pushed"], *result["unchanged"], *(s["provider"] for s in result["skipped"]),
                            *result["configSynced"]["providers"]])
    log(f"push to {remote.name}: {len(result['pushed'])} pushed, {len(result['skipped'])} skipped")
    return result


class Changes:
    """Destination changes a pull would make, waiting for the user's yes: provider -> [(field, ours, theirs)]."""

    def __init__(self, remote: Remote, providers: dict[str, list[tuple[str, Any, Any]]]) -> None:
        self.remote = remote
        self.providers = providers


def _remote_entries(snap: Snapshot, remote: Remote) -> tuple[dict[str, Any], str | None]:
    """The remote config's provider nodes (round-trip, comments kept), or the reason there are none."""
    if snap.config_text is None:
        return {}, "the remote has no config.yaml"
    from ..config.load import parse_yaml

    try:
        doc = parse_yaml(snap.config_text, f"{remote.describe()}:{remote.base}/config.yaml")
    except SigError as err:
        return {}, err.message
    providers = doc.get("providers") if isinstance(doc, dict) else None
    return ({str(k): v for k, v in providers.items()} if isinstance(providers, dict) else {}), None


def _normalised_entry(pid: str, node: Any) -> tuple[dict[str, Any] | None, str | None]:
    """One remote provider entry in the normalised model, or why it cannot be used."""
    from ..config.schema import normalise

    data, errors, _warnings = normalise({"providers": {pid: node}})
    entry = data.get("providers", {}).get(pid)
    if errors or entry is None:
        return None, "its config entry on the remote is invalid: " + "; ".join(errors[:3])
    return entry, None


def pull(config: Config, store: CredentialStore, remote: Remote, ids: list[str] | None, force: bool,
         log: Callable[[str], None], confirm: Callable[[Changes], bool] | None = None) -> dict[str, Any]:
    """Take credentials and provider entries from the remote, for the providers it is trusted with: those
    named with --provider (`ids`), else those exchanged with it before (sync/trust.py). A change to where a
    credential may go is applied only if `confirm` says yes; nothing else the remote holds is touched."""
    result: dict[str, Any] = {"remote": remote.name, "host": remote.describe(), "pulled": [], "unchanged": [],
                              "skipped": [], "errors": [], "refused": [], "notExchanged": [],
                              "configSynced": {"providers": []}}
    conn = Connection(remote)
    try:
        snap = fetch(conn)
    finally:
        conn.close()
    explicit = list(dict.fromkeys(ids or []))
    trusted = trust.exchanged(remote)

    def wanted(pid: str) -> bool:
        if explicit:
            return pid in explicit
        # exchanged before, and still here (a provider removed here is not brought back unasked)
        return pid in trusted and (pid in config.providers or os.path.exists(store.path_for(pid)))

    nodes, config_problem = _remote_entries(snap, remote)
    offered = set(nodes) | {name[:-5] for name in snap.files}
    if not explicit:
        result["notExchanged"] = sorted(p for p in offered if not wanted(p))
    errors: dict[str, str] = {}
    # -- the config entries: valid, and which destination fields they change ---------------------
    entries: dict[str, Any] = {}
    pending: dict[str, list[tuple[str, Any, Any]]] = {}
    for pid, node in nodes.items():
        if not wanted(pid):
            continue
        entry, problem = _normalised_entry(pid, node)
        if problem is not None or entry is None:
            errors[pid] = str(problem)
            continue
        local = config.providers.get(pid)
        if local is not None and local.data == entry:
            continue  # the same provider, perhaps written differently: leave our file as it is
        entries[pid] = node
        from .destinations import changes, sharing

        if local is not None:
            diff = changes(local.data, entry)
        else:  # new here: it may not take over the hosts of a provider we already have
            shared = sharing(entry, {k: p.data for k, p in config.providers.items()})
            diff = [(f"domains, shared with {', '.join(shared)}", None, entry.get("domains"))] if shared else []
        if diff:
            pending[pid] = diff
    # -- the credentials: sealed, named right, dated believably, newer than ours ------------------
    now = now_ms()
    incoming: dict[str, Credential] = {}
    for name, data in sorted(snap.files.items()):
        pid = name[:-5]
        if not wanted(pid) or pid in errors:
            continue
        try:
            theirs, dated = _open_remote_file(data, snap.key, name)
        except SigError as err:
            errors[pid] = err.message
            continue
        try:
            ours = store.read(pid)
        except SigError:
            ours = None
        if ours is not None and _same_content(ours, theirs):
            result["unchanged"].append(pid)
            continue
        stamp = ms_from_iso(theirs.updated_at) if dated else None
        if stamp is not None and stamp > now + FUTURE_SKEW_MS:
            if not force:
                errors[pid] = (f"its updatedAt ({theirs.updated_at}) is in the future, so it is not believed; "
                               "fix the remote's clock, or pull it with --force to take it dated now")
                continue
            theirs.updated_at = iso_from_ms(now)
        if ours is not None and not force and (not dated or _newer(ours.updated_at, theirs.updated_at)):
            result["skipped"].append({"provider": pid, "local": ours.updated_at, "remote": theirs.updated_at})
            continue
        incoming[pid] = theirs
    # -- the user's yes for destination changes (nothing is written before it) -------------------
    if pending and not (confirm is not None and confirm(Changes(remote, pending))):
        for pid, diff in pending.items():
            result["refused"].append({"provider": pid, "fields": [field for field, _o, _t in diff]})
            entries.pop(pid, None)
            incoming.pop(pid, None)
            result["skipped"] = [s for s in result["skipped"] if s["provider"] != pid]
            result["unchanged"] = [u for u in result["unchanged"] if u != pid]
    # -- write ------------------------------------------------------------------------------------
    for pid, theirs in incoming.items():
        store.write(theirs)
        result["pulled"].append(pid)
    if entries:
        from ..config.edit import edit_config, ensure_map

        def merge(local_doc: Any) -> None:
            lp = ensure_map(local_doc, "providers")
            for pid, node in entries.items():
                lp[pid] = node  # the remote's version of a provider it is trusted with

        edit_config(merge)
        result["configSynced"] = {"providers": list(entries)}
    elif config_problem is not None:
        result["configSynced"] = {"providers": [], "error": config_problem}
    refused = {r["provider"] for r in result["refused"]}
    for pid in explicit:
        if pid not in offered and pid not in errors:
            errors[pid] = "not found on the remote"
    result["errors"] = [{"provider": pid, "error": message} for pid, message in errors.items()]
    # Named and taken (or already equal): the remote is trusted with it from now on.
    trust.remember(remote, [p for p in explicit if p in offered and p not in errors and p not in refused])
    log(f"pull from {remote.name}: {len(result['pulled'])} pulled, {len(result['skipped'])} skipped, "
        f"{len(result['refused'])} refused")
    return result


def push_for_watch(config: Config, remote_name: str, provider_ids: list[str],
                   log: Callable[[str], None]) -> None:
    """Auto-sync after a refresh (the watch loop). Raises SigError when the push fails."""
    from ..config.load import open_store

    remote = get_remote(config.remotes, remote_name)
    store = open_store(config, log)
    result = push(config, store, remote, provider_ids, False, log)
    if result["errors"]:
        raise SigError(ErrorCode.SYNC_ERROR, f"auto-sync to {remote_name}: " +
                       "; ".join(f"{e['provider']}: {e['error']}" for e in result["errors"]), "")
