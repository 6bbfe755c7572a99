"""Host names: canonical form, the domain-pattern match of the original, ids and file names derived from them."""

from __future__ import annotations

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def canonical_host(host: str) -> str:
    """Lower case, no trailing dot, no IPv6 brackets; non-ASCII names as browsers encode them (UTS #46
    non-transitional processing with IDNA2008 labels), so `faß.de` stays apart from `fass.de`.

    A non-ASCII name that is not a valid IDN keeps its (mapped) Unicode form: it can never equal an
    encoded host, `Url.parse` refuses it, and `domain_matches` never matches it.
    """
    h = host.strip().rstrip(".").lower()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if not h.isascii():
        h = _idna_encode(h)
    return h


def _idna_encode(host: str) -> str:
    """UTS #46 mapping (full-width letters, ideographic full stops, case…), then each non-ASCII label to
    its A-label. ASCII labels stay as they are (`_` allowed, as in every browser). The `idna` package
    costs ~13 ms to import, so it is loaded only here, for non-ASCII names."""
    import idna

    try:
        mapped = idna.uts46_remap(host, std3_rules=False, transitional=False).rstrip(".")
        return ".".join(label if label.isascii() else idna.alabel(label).decode("ascii")
                        for label in mapped.split("."))
    except (idna.IDNAError, UnicodeError, ValueError):
        try:
            return idna.uts46_remap(host, std3_rules=False, transitional=False).rstrip(".")
        except (idna.IDNAError, UnicodeError, ValueError):
            return host


def is_valid_host(host: str) -> bool:
    """A canonical host sig can connect to: ASCII (an IDN that did not encode stays Unicode)."""
    return bool(host) and host.isascii()


_IP_LITERAL_CHARS = frozenset("0123456789abcdef.:%")


def is_loopback(host: str) -> bool:
    """The one loopback test of sig: an IPv4 literal in 127.0.0.0/8, `::1`, an IPv4-mapped `::ffff:127.x`,
    or the exact name `localhost`. Decided on the parsed host, never on its spelling: `127.corp.test`,
    `127.0.0.1.nip.io`, `localhost.evil.test` and `app.localhost` are DNS names (anyone's DNS may answer
    them), and the shorthand IPv4 forms a resolver accepts (`127.1`, `0x7f.1`, `2130706433`) are not
    literals here either — they are treated as names, which only ever makes sig stricter."""
    h = canonical_host(host)
    if h == "localhost":
        return True
    if not h or not all(c in _IP_LITERAL_CHARS for c in h) or not (":" in h or h[0].isdigit()):
        return False  # a DNS name: no need to load ipaddress
    import ipaddress

    try:
        address = ipaddress.ip_address(h)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def looks_like_url(text: str) -> bool:
    """The original's rule: an http(s) URL, or anything with a dot in it."""
    return text.startswith(("http://", "https://")) or "." in text


def split_url(text: str) -> tuple[str, str, int | None]:
    """(scheme, canonical host, port) of a URL or bare host name; ('', '', None) when there is no host."""
    from urllib.parse import urlsplit

    raw = text.strip()
    if "://" not in raw:
        if raw.count(":") > 1 and not raw.startswith("["):
            raw = f"[{raw}]"  # a bare IPv6 address (e.g. a canonical host): no port can follow it
        raw = "https://" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        return "", "", None
    host = parts.hostname or ""
    return parts.scheme.lower(), canonical_host(host), port


def domain_matches(pattern: str, host: str) -> bool:
    """Exact host, or a glob where each "*" matches one or more characters within one label (never a dot)."""
    p = canonical_host(pattern)
    h = canonical_host(host)
    if not is_valid_host(h) or not p.isascii():
        return False  # a name that is not a valid IDN never matches, not even itself
    if "*" not in p:
        return p == h
    import re

    regex = "[^.]+".join(re.escape(piece) for piece in p.split("*"))
    return re.fullmatch(regex, h) is not None


def derive_short_id(hostname: str) -> str:
    """Provider id from a host name, exactly as the original sigcli: jira.example.com -> jira-example."""
    labels = hostname.split(".")
    if len(labels[0]) >= 8:
        base = labels[0]
    elif len(labels) >= 2:
        base = f"{labels[0]}-{labels[1]}"
    else:
        base = labels[0]
    cleaned = "".join(c if c in _ID_CHARS and c not in "._" else "-" for c in base.lower()).strip("-")
    return cleaned or "provider"


def unique_id(base: str, taken: set[str]) -> str:
    """`base`, or `base-2`, `base-3`, … whichever is not taken."""
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def sanitize_filename(provider_id: str) -> str:
    """File name of a provider's credential: every char outside [a-zA-Z0-9._-] becomes "_" (original)."""
    return "".join(c if c in _ID_CHARS else "_" for c in provider_id) + ".json"


def valid_provider_id(provider_id: object) -> bool:
    """Ids start with a letter or digit and use only letters, digits, ".", "_" and "-" (at most 64 chars)."""
    if not isinstance(provider_id, str) or not 1 <= len(provider_id) <= 64:
        return False
    return provider_id[0].isascii() and provider_id[0].isalnum() and all(c in _ID_CHARS for c in provider_id)


def env_name(text: str) -> str:
    """Upper case, every char outside [A-Z0-9] becomes "_" (SIG_<PROVIDER>_<KEY> names, README "`sig run`")."""
    return "".join(c if ("A" <= c <= "Z" or "0" <= c <= "9") else "_" for c in text.upper())


def cookie_domain_matches(cookie_domain: str, domains: list[str]) -> bool:
    """Would the browser send a cookie set for `cookie_domain` to one of the provider's hosts?
    Exact host, a parent domain (`.example.com` for `jira.example.com`), or a host a `*` glob covers."""
    cd = canonical_host(cookie_domain.lstrip("."))
    if not cd:
        return False
    for pattern in domains:
        p = canonical_host(pattern)
        if "*" in p:
            base = p.split("*.", 1)[-1] if p.startswith("*.") else ""
            if domain_matches(p, cd) or (base and (cd == base or base.endswith("." + cd))):
                return True
        elif cd == p or p.endswith("." + cd):
            return True
    return False
