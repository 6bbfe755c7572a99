"""Where a provider's credentials may go: hosts its domains match exactly, over https unless allowed."""

from __future__ import annotations

from .hosts import canonical_host, domain_matches, split_url
from .hosts import is_loopback as is_loopback  # the one loopback test; re-exported for senders

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..core.model import Provider


def host_allowed(provider: Provider, host: str) -> bool:
    """Whether one of the provider's domains matches `host` exactly (or by its one-label glob)."""
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
    entry_scheme, entry_host, _ = split_url(provider.entry_url) if provider.entry_url else ("", "", None)
    if entry_scheme == "http" and entry_host == canonical_host(host):
        return None  # the user configured a cleartext URL for this very host
    return cleartext_refusal(provider, scheme, host)


def cleartext_refusal(provider: Provider, scheme: str, host: str, what: str = "credentials") -> str | None:
    """The transport rule every sender shares: https, a loopback host (core.hosts.is_loopback: IP literal or
    the exact name localhost), or the provider's explicit allowHttp: true. None when allowed."""
    if scheme == "https" or is_loopback(host) or provider.get("allowHttp") is True:
        return None
    return (f'provider "{provider.id}" {what} are not sent over cleartext http to {host}; '
            "use https, or set allowHttp: true on the provider")


def endpoint_refusal(provider: Provider, url: str, field: str) -> str | None:
    """None when sig may talk to a provider's OAuth2 or validation endpoint `url` (the value of config
    `field`); else why not. These URLs carry client secrets, refresh tokens and codes, so they follow
    the cleartext rule, and only http(s) URLs are endpoints at all."""
    scheme, host, _port = split_url(url)
    if scheme not in ("http", "https") or not host or "://" not in url:
        return f'{field} of provider "{provider.id}" is not an http(s) URL'
    refusal = cleartext_refusal(provider, scheme, host, "secrets")
    return f"{field}: {refusal}" if refusal else None
