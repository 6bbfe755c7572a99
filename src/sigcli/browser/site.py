"""Which site a page is on, for the login cascade's "is the browser still on the provider's site?".

Sites are registrable domains as browsers compute them: one label below a public suffix of the Public Suffix
List (``publicsuffixlist``, whose bundled snapshot is used as shipped: nothing is fetched at run time). So
``home.example.com`` is the site of ``jira.example.com``, but ``alice.github.io`` is not the site of
``bob.github.io``, nor ``a.herokuapp.com`` of ``b.herokuapp.com``: on such hosting every name is a site of
its own, and a hop from one to another is a hop to someone else.
"""

from __future__ import annotations

from ..core.hosts import canonical_host, domain_matches, split_url

TYPE_CHECKING = False
if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList

    from ..core.model import Provider

_PSL: PublicSuffixList | None = None


def _suffix_list() -> PublicSuffixList:
    global _PSL
    if _PSL is None:  # ~80 ms to build, once per process, and only when a browser login needs it
        from publicsuffixlist import PublicSuffixList

        _PSL = PublicSuffixList()  # ICANN and private sections (github.io, herokuapp.com, …)
    return _PSL


def registrable(host: str) -> str:
    """The site `host` belongs to: example.co.uk for www.example.co.uk, alice.github.io for itself. An IP
    address, a single label (localhost) or a host that is itself a public suffix is a site of its own."""
    host = canonical_host(host)
    if not host or ":" in host or host.replace(".", "").isdigit() or "." not in host:
        return host
    return _suffix_list().privatesuffix(host) or host


def on_site(url: str, provider: Provider) -> bool:
    """Is the page on the provider's own site (its domains, or the entry URL's registrable domain)?"""
    scheme, host, _ = split_url(url)
    if scheme not in ("http", "https") or not host:
        return False
    if any(domain_matches(d, host) for d in provider.domains):
        return True
    _, entry_host, _ = split_url(provider.entry_url)
    return bool(entry_host) and registrable(host) == registrable(entry_host)
