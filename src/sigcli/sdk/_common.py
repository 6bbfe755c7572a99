"""Helpers shared by the httpx and requests adapters: origins, query merging, what sig injected."""

from __future__ import annotations

import threading

from ..core.errors import ErrorCode, SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..core.model import Provider

_DEFAULT_PORTS = {"http": 80, "https": 443}
_KEEP_DIGESTS = 8  # per header name: a rotated credential's older values stay recognisable for a while


def origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, canonical host, port) of an absolute URL; None when it cannot be parsed."""
    from ..core.hosts import split_url

    if "://" not in url:
        return None
    scheme, host, port = split_url(url)
    if not scheme or not host:
        return None
    return scheme, host, port or _DEFAULT_PORTS.get(scheme)


def same_origin(a: str, b: str) -> bool:
    """True only when both URLs parse and share scheme, host and port (anything odd counts as different)."""
    oa = origin(a)
    return oa is not None and oa == origin(b)


def with_query(url: str, extra: Mapping[str, str]) -> str:
    """`url` with `extra` set as query parameters (replacing same-named ones); the rest is kept verbatim."""
    if not extra:
        return url
    from urllib.parse import unquote_plus, urlencode

    base, hash_, fragment = url.partition("#")
    path, _, query = base.partition("?")
    kept = [p for p in query.split("&") if p and unquote_plus(p.partition("=")[0]) not in extra]
    query = "&".join([*kept, urlencode(list(extra.items()))])
    return f"{path}?{query}{hash_}{fragment}"


def without_query(url: str, names: set[str]) -> str:
    """`url` without the query parameters called `names`."""
    if not names:
        return url
    from urllib.parse import unquote_plus

    base, hash_, fragment = url.partition("#")
    path, mark, query = base.partition("?")
    if not mark:
        return url
    kept = [p for p in query.split("&") if p and unquote_plus(p.partition("=")[0]) not in names]
    return f"{path}{'?' if kept else ''}{'&'.join(kept)}{hash_}{fragment}"


def no_body_rules(provider: str) -> SigError:
    """The USAGE_ERROR for body rules, which an auth adapter cannot merge."""
    return SigError(
        ErrorCode.USAGE_ERROR,
        f'provider "{provider}" adds body fields, which an auth adapter cannot merge into a request body',
        "use SigClient.request(), which merges them into a JSON or form body (or `sig request`)",
    )


def _digest(value: str) -> bytes:
    import hashlib

    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


class Injected:
    """Names of what an adapter injected, and digests (never values) of its header values.

    A redirect guard strips a header only when its value is one sig put there, so headers the caller
    set itself are left alone.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._headers: dict[str, list[bytes]] = {}
        self.query: set[str] = set()

    def note(self, headers: Mapping[str, str], query: Mapping[str, str] | None) -> None:
        """Remember the header values (as digests) and query names just injected."""
        with self._lock:
            for name, value in headers.items():
                digests = self._headers.setdefault(name.lower(), [])
                d = _digest(value)
                if d in digests:
                    digests.remove(d)
                digests.append(d)
                del digests[:-_KEEP_DIGESTS]
            self.query.update(query or ())

    def headers_to_strip(self, present: Mapping[str, str]) -> list[str]:
        """Names in `present` (a case-insensitive mapping) whose value sig injected."""
        import hmac

        with self._lock:
            known = {name: list(digests) for name, digests in self._headers.items()}
        out = []
        for name, digests in known.items():
            value = present.get(name)
            if value is None:
                continue
            d = _digest(value)
            if any(hmac.compare_digest(d, known_d) for known_d in digests):
                out.append(name)
        return out


def refuse_if_needed(provider: Provider, url: str) -> None:
    """Raise the SigError of `may_inject` when `provider`'s credential must not go to `url`."""
    from ..core.policy import may_inject

    o = origin(url)
    if o is None or o[0] not in _DEFAULT_PORTS:
        raise SigError(ErrorCode.USAGE_ERROR, "the request URL is not an absolute http(s) URL",
                       "use a full URL such as https://api.example.com/path")
    refusal = may_inject(provider, o[0], o[1], o[2])
    if refusal is not None:
        raise SigError(ErrorCode.GENERAL_ERROR, f"refusing to send credentials: {refusal}",
                       "check the URL, or the provider's domains in the config")
