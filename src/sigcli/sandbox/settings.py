"""The sandbox's settings: the `sandbox:` config section merged with the flags of one `sig run --sandbox`.

    sandbox:
      hide: [~/work/.env]            # more paths to hide (added to the built-in secret stores)
      show: [~/.npmrc]               # built-in secret stores to leave visible (never sig's own data)
      allowWrite: [~/.cache/pip]     # writable besides the working directory
      denyOtherHosts: false          # true: only provider hosts (and allowHosts) are reachable
      allowHosts: [pypi.org, localhost]   # reachable even with denyOtherHosts, and even on this machine
      allowTcp: ["db.internal:5432"] # raw TCP targets a CONNECT may tunnel (not TLS-intercepted)

Flags add to lists (`--hide`, `--allow-write`, `--allow-host`, `--allow-tcp`); `--deny-other-hosts`
turns the refusal on. An allowed host is reachable whatever the mode, and even when it is this machine
(the proxy otherwise refuses a sandbox the machine's loopback and link-local addresses). Pure.
"""

from __future__ import annotations

from ..core.errors import usage_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

class Settings:
    """The sandbox's settings for one run (config section + flags)."""

    def __init__(self, hide: list[str] | None = None, show: list[str] | None = None,
                 allow_write: list[str] | None = None, allow_hosts: list[str] | None = None,
                 deny_other_hosts: bool = False, allow_tcp: list[tuple[str, int]] | None = None) -> None:
        self.hide = hide or []
        self.show = show or []
        self.allow_write = allow_write or []
        self.allow_hosts = allow_hosts or []
        self.deny_other_hosts = deny_other_hosts
        self.allow_tcp = allow_tcp or []

    @property
    def other_hosts(self) -> str:
        """What the proxy does with a host no provider covers: "mitm" (TLS terminated, logged, nothing
        added) or "refuse" (403, unless in allow_hosts)."""
        return "refuse" if self.deny_other_hosts else "mitm"


def tcp_target(text: str) -> tuple[str, int]:
    """"host:port" / "[v6]:port" -> (canonical host, port); a usage error otherwise."""
    from ..core.hosts import canonical_host

    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise usage_error(f'--allow-tcp "{text}" is not HOST:PORT', "e.g. --allow-tcp db.internal:5432")
    return canonical_host(host.strip("[]")), int(port)


def merge(section: Mapping[str, Any] | None, *, hide: list[str], allow_write: list[str],
          allow_hosts: list[str], allow_tcp: list[str], deny_other_hosts: bool) -> Settings:
    """The config section (already validated by config/schema.py) plus the flags."""
    cfg = dict(section or {})

    def strings(key: str) -> list[str]:
        value = cfg.get(key) or []
        return [str(v) for v in value] if isinstance(value, list) else []

    from ..core.hosts import canonical_host

    hosts = [h if h.startswith("*.") else canonical_host(h) for h in strings("allowHosts") + allow_hosts]
    return Settings(
        hide=strings("hide") + hide,
        show=strings("show"),
        allow_write=strings("allowWrite") + allow_write,
        allow_hosts=list(dict.fromkeys(h.lower() for h in hosts)),
        deny_other_hosts=bool(cfg.get("denyOtherHosts")) or deny_other_hosts,
        allow_tcp=list(dict.fromkeys(tcp_target(t) for t in strings("allowTcp") + allow_tcp)),
    )


def profile(name: str, settings: Settings, providers: list[str] | None,
            placeholders: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    """The run's profile as the proxy reads it (proxy/profiles.py: profile_from_json)."""
    return {
        "name": name,
        "kind": "sandbox",
        "providers": providers,
        "otherHosts": settings.other_hosts,
        "allowHosts": settings.allow_hosts,
        "tcp": [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in settings.allow_tcp],
        "placeholders": {ph: [pid, key] for ph, (pid, key) in placeholders.items()},
    }
