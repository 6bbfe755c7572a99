"""Host names: canonical form, the domain-pattern match of the original, ids and file names derived from them."""

from __future__ import annotations

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def canonical_host(host: str) -> str:
    """Lower case, no trailing dot, IDNA (punycode) for non-ASCII names, no IPv6 brackets."""
    h = host.strip().rstrip(".").lower()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if not h.isascii():
        try:
            h = h.encode("idna").decode("ascii")
        except UnicodeError:
            pass
    return h


def looks_like_url(text: str) -> bool:
    """The original's rule: an http(s) URL, or anything with a dot in it."""
    return text.startswith(("http://", "https://")) or "." in text


def split_url(text: str) -> tuple[str, str, int | None]:
    """(scheme, canonical host, port) of a URL or bare host name; ('', '', None) when there is no host."""
    from urllib.parse import urlsplit

    raw = text.strip()
    if "://" not in raw:
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
    if "*" not in p:
        return p == h
    import re

    regex = "[^.]+".join(re.escape(piece) for piece in p.split("*"))
    return re.fullmatch(regex, h) is not None


def derive_short_id(hostname: str) -> str:
    """Provider id from a host name, exactly as the original (§2.6): jira.example.com -> jira-example."""
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
    """Upper case, every char outside [A-Z0-9] becomes "_" (SPEC §2 env names)."""
    return "".join(c if ("A" <= c <= "Z" or "0" <= c <= "9") else "_" for c in text.upper())
