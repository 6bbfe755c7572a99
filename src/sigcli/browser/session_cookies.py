"""Session cookies kept across browser runs.

Chromium writes only persistent cookies (with Expires / Max-Age) to the profile; session cookies die with the
browser. A site that logs in with session cookies alone would then need a person at every later login, even
while its server still honours the session. So a successful browser login also keeps the session cookies of
the provider's domains (the same domain rule as the extract rules: a provider domain, a parent of one, or a
host a ``*`` pattern covers; every path), sealed with the provider's credential as the extra payload key
``browserSessionCookies`` (README "Browser login": ``values`` stays the original's flat map), and the next login puts them
back into the fresh browser before it opens the entry page — for the provider's domains only, and never
over a cookie the browser already holds under the same name, domain and path.

They are secrets: values are wrapped in ``Secret`` in memory, ``repr`` shows names only, and only the count
is ever logged. They leave with the credential (``sig logout`` / ``remove`` drop them).
"""

from __future__ import annotations

from ..core.secret import Secret

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..core.model import Credential, Provider

PAYLOAD_KEY = "browserSessionCookies"
MAX_COOKIES = 200  # a login's own session cookies are a handful; bound what one credential carries
MAX_COOKIE_BYTES = 4096  # name + value, as browsers limit one cookie
_SAME_SITE = ("Strict", "Lax", "None")


class _Cookie:
    __slots__ = ("domain", "http_only", "name", "path", "same_site", "secure", "value")

    def __init__(self, name: str, value: Secret, domain: str, path: str, secure: bool, http_only: bool,
                 same_site: str | None) -> None:
        self.name, self.value, self.domain, self.path = name, value, domain, path
        self.secure, self.http_only, self.same_site = secure, http_only, same_site

    @property
    def key(self) -> tuple[str, str, str]:
        return self.name, self.domain.lower(), self.path

    def plain(self) -> dict[str, Any]:
        """The cookie as a browser takes it (CDP CookieParam / Playwright's add_cookies): no `expires`, so
        it stays a session cookie; `domain` as captured (a leading dot = a domain cookie, else host-only)."""
        out: dict[str, Any] = {"name": self.name, "value": self.value.reveal(), "domain": self.domain,
                               "path": self.path, "secure": self.secure, "httpOnly": self.http_only}
        if self.same_site:
            out["sameSite"] = self.same_site
        return out


def _parse(raw: Any) -> _Cookie | None:
    """One cookie from a jar entry or a stored one; None for anything malformed or not worth keeping."""
    if not isinstance(raw, dict):
        return None
    name, value, domain, path = (raw.get(k) for k in ("name", "value", "domain", "path"))
    if not (isinstance(name, str) and name and isinstance(value, str) and isinstance(domain, str) and domain):
        return None
    if not isinstance(path, str) or not path.startswith("/"):
        path = "/"
    if len(name.encode()) + len(value.encode()) > MAX_COOKIE_BYTES:
        return None
    same_site = raw.get("sameSite")
    return _Cookie(name, Secret(value), domain, path, raw.get("secure") is True, raw.get("httpOnly") is True,
                   same_site if same_site in _SAME_SITE else None)


def _for_provider(cookies: list[_Cookie], provider: Provider) -> list[_Cookie]:
    from ..core.hosts import cookie_domain_matches

    return [c for c in cookies if cookie_domain_matches(c.domain, provider.domains)][:MAX_COOKIES]


class SessionCookies:
    """The session cookies of one provider's domains, values sealed in memory."""

    __slots__ = ("_cookies",)

    def __init__(self, cookies: list[_Cookie]) -> None:
        self._cookies = cookies

    @classmethod
    def from_jar(cls, jar: list[dict[str, Any]], provider: Provider) -> SessionCookies:
        """The session cookies (no expiry) of `jar` (the protocol's cookie dicts) that belong to the
        provider's domains. Partitioned cookies (CHIPS) are left out: they belong to a top-level site."""
        session = [c for c in jar if isinstance(c, dict) and c.get("expires", -1) in (-1, None)
                   and not c.get("partitioned")]
        return cls(_for_provider([c for c in map(_parse, session) if c is not None], provider))

    @classmethod
    def from_credential(cls, credential: Credential | None, provider: Provider) -> SessionCookies:
        """What a stored credential keeps under PAYLOAD_KEY, limited to the provider's domains as they are
        configured now (the config may have changed since)."""
        raw = credential.extra.get(PAYLOAD_KEY) if credential is not None else None
        if not isinstance(raw, list):
            return cls([])
        return cls(_for_provider([c for c in map(_parse, raw) if c is not None], provider))

    def __len__(self) -> int:
        return len(self._cookies)

    def __bool__(self) -> bool:
        return bool(self._cookies)

    def __repr__(self) -> str:
        return f"SessionCookies({sorted({c.name for c in self._cookies})})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("SessionCookies cannot be pickled")

    def to_payload(self) -> list[dict[str, Any]]:
        """The plain JSON list stored (sealed) in the credential's payload."""
        return [c.plain() for c in self._cookies]

    def missing_from(self, jar: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The cookies to set in a browser whose jar is `jar`: those it does not hold under the same name,
        domain and path (what the browser holds is as new or newer: never overwrite it)."""
        held = {(str(c.get("name")), str(c.get("domain", "")).lower(), str(c.get("path") or "/"))
                for c in jar if isinstance(c, dict)}
        return [c.plain() for c in self._cookies if c.key not in held]
