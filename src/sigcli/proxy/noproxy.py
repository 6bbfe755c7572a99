"""NO_PROXY for programs using sig's proxy: the user's own entries kept, loopback added, and nothing that
would send a provider's host around the proxy (its requests would then go out without credentials).

Clients read NO_PROXY differently (curl: suffix match on names, CIDR since 7.86; requests/httpx: suffix
match; Node: suffix match, `*.`-prefixed names; Go: CIDR too). An entry is treated as covering every name
that equals it or ends in `.entry`, with a leading `.` or `*.` ignored and a `:port` suffix ignored (so
an entry that any client could read as covering a provider's host is left out).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ipaddress
    from collections.abc import Iterable, Mapping

LOOPBACK = ("localhost", "127.0.0.1", "::1")


def _entry_name(entry: str) -> str:
    name = entry.strip().lower()
    if name.startswith("["):  # [::1]:8080
        return name[1:].partition("]")[0]
    if name.count(":") == 1:  # host:port (an IPv6 literal has several colons)
        name = name.partition(":")[0]
    while name.startswith(("*.", ".")):
        name = name[2:] if name.startswith("*.") else name[1:]
    return name.rstrip(".")


def _network(name: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not name or not (name[0].isdigit() or ":" in name):  # a host name: no parse needed
        return None
    import ipaddress

    try:
        return ipaddress.ip_network(name, strict=False)
    except ValueError:
        return None


def _covers(entry: str, domain: str) -> bool:
    """Could a client bypass the proxy for some host of provider domain `domain` because of `entry`?"""
    name = _entry_name(entry)
    if not name:
        return False
    if name == "*":
        return True
    wildcard = domain.startswith("*.")
    base = domain[2:] if wildcard else domain
    base = base.lower().strip("[]").rstrip(".")
    net = _network(name)
    if net is not None:
        host = _network(base)
        return host is not None and host.version == net.version and host.subnet_of(net)  # type: ignore[arg-type]
    if base == name or base.endswith("." + name):
        return True
    return wildcard and name.endswith("." + base)  # a host under *.base


def _entries(value: str) -> list[str]:
    return [e.strip() for e in value.replace(" ", ",").split(",") if e.strip()]


def no_proxy(environ: Mapping[str, str], domains: Iterable[str]) -> tuple[str, list[str]]:
    """(the NO_PROXY value for clients, the user's entries left out because they cover a provider host).

    The user's NO_PROXY and no_proxy entries are kept, in order, without duplicates; loopback names are
    added (local servers need no proxy), except any that a provider is for."""
    domains = [d for d in domains if d]
    kept: list[str] = []
    dropped: list[str] = []
    seen: set[str] = set()
    for entry in _entries(environ.get("NO_PROXY", "")) + _entries(environ.get("no_proxy", "")):
        key = entry.lower()
        if key in seen:
            continue
        seen.add(key)
        if any(_covers(entry, d) for d in domains):
            dropped.append(entry)
        else:
            kept.append(entry)
    for name in LOOPBACK:
        if name not in seen and not any(_covers(name, d) for d in domains):
            kept.append(name)
            seen.add(name)
    return ",".join(kept), dropped
