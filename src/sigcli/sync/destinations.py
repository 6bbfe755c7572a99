"""The fields of a provider that decide where its credentials may go, and how two versions differ in them.

A pulled config may change anything about a provider the remote is trusted with, except these without
the user's say: the hosts and ports a credential is sent to (domains, ports, allowHttp, every URL field
such as entryUrl, validateUrl and oauth2's token/auth/device URLs), the path it travels (networkProxy,
caFile), and where in a request each value is put (apply rules, headerName, headerPrefix, oauth2
clientAuth). Everything is compared on the normalised model, so writing the same thing differently is
no change. Shown values never include a secret: these fields hold none, and a password inside a URL
(a proxy's user:password@) is masked.
"""

from __future__ import annotations

from ..core.text import mask_url_password

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

GUARDED_TOP = ("domains", "ports", "allowHttp", "networkProxy", "caFile", "headerName", "headerPrefix", "apply")
GUARDED_OAUTH2 = ("clientAuth",)


def _is_url_field(key: str) -> bool:
    return key.endswith(("Url", "URL", "Uri", "URI"))


def guarded_fields(entry: dict[str, Any] | None) -> dict[str, Any]:
    """field path -> value, for the destination fields a normalised provider entry sets."""
    out: dict[str, Any] = {}
    if not entry:
        return out
    for key, value in entry.items():
        if key in GUARDED_TOP or _is_url_field(key):
            out[key] = value
    oauth2 = entry.get("oauth2")
    if isinstance(oauth2, dict):
        for key, value in oauth2.items():
            if key in GUARDED_OAUTH2 or _is_url_field(key):
                out[f"oauth2.{key}"] = value
    return out


def changes(local: dict[str, Any] | None, remote: dict[str, Any] | None) -> list[tuple[str, Any, Any]]:
    """(field, local value, remote value) for every destination field the remote version changes."""
    mine, theirs = guarded_fields(local), guarded_fields(remote)
    out = []
    for field in [*mine, *(k for k in theirs if k not in mine)]:
        if mine.get(field) != theirs.get(field):
            out.append((field, mine.get(field), theirs.get(field)))
    return out


def sharing(entry: dict[str, Any], others: dict[str, dict[str, Any]]) -> list[str]:
    """Ids of other providers whose domains overlap a new provider's: the new one could take their hosts
    (an exact domain is chosen before a glob), so its credential would go where theirs went."""
    from ..core.hosts import domain_matches

    mine = [str(d) for d in entry.get("domains") or []]
    out = []
    for pid, other in others.items():
        theirs = [str(d) for d in other.get("domains") or []]
        if any(domain_matches(a, b.replace("*", "x")) or domain_matches(b, a.replace("*", "x"))
               for a in mine for b in theirs):
            out.append(pid)
    return out



def show(value: Any) -> str:
    """One field's value as a person reads it in the confirmation (control characters not escaped here:
    the terminal printer does that)."""
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        if not value:
            return "(none)"
        if all(isinstance(v, dict) for v in value):
            return "; ".join(_rule(v) for v in value)
        return ", ".join(mask_url_password(str(v)) for v in value)
    return mask_url_password(str(value))


def _rule(rule: dict[str, Any]) -> str:
    action = rule.get("action") or "set"
    where = f"{rule.get('in', 'header')} {rule.get('name', '')}"
    return f"{action} {where}" if action == "remove" else f"{action} {where} = {rule.get('value', '')}"
