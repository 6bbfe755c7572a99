"""Where a provider's credentials may go: hosts its domains match exactly, over https unless allowed."""

from __future__ import annotations

from ..core.hosts import domain_matches, split_url

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..core.model import Provider


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.") or host.endswith(".localhost")


def host_allowed(provider: Provider, host: str) -> bool:
    return any(domain_matches(d, host) for d in provider.domains)


def allowed_ports(provider: Provider, scheme: str) -> set[int]:
    """The scheme's default port, plus the port of the provider's entryUrl when it names one."""
    ports = {443 if scheme == "https" else 80}
    if provider.entry_url:
        _s, _h, entry_port = split_url(provider.entry_url)
        if entry_port is not None:
            ports.add(entry_port)
    ports.update(int(p) for p in provider.get("ports") or [] if str(p).isdigit())
    return ports


def may_inject(provider: Provider, scheme: str, host: str, port: int | None = None) -> str | None:
    """None when the credential may be sent to scheme://host[:port]; else the reason it may not."""
    if not host_allowed(provider, host):
        return f'{host} is not one of the domains of provider "{provider.id}" ({", ".join(provider.domains)})'
    if port is not None and port not in allowed_ports(provider, scheme):
        return (f'port {port} is not one provider "{provider.id}" uses (its entryUrl gives '
                f"{', '.join(str(p) for p in sorted(allowed_ports(provider, scheme)))}); "
                "add it to the provider's ports: [...] to allow it")
    if scheme == "https":
        return None
    entry_scheme, _entry_host, _ = split_url(provider.entry_url) if provider.entry_url else ("", "", None)
    if entry_scheme == "http" and provider.entry_url.startswith("http://"):
        return None  # the user configured a cleartext URL for this provider
    if is_loopback(host) or provider.get("allowHttp") is True:
        return None
    return (f'provider "{provider.id}" credentials are not sent over cleartext http to {host}; '
            "use https, or set allowHttp: true on the provider")
