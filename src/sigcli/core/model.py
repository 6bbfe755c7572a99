"""Provider (what the config says about a site) and Credential (what a login produced)."""

from __future__ import annotations

from .duration import parse_duration_ms
from .secret import Secret
from .timeutil import iso_from_ms, ms_from_iso, now_ms

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The strategy of a provider entry that names none (core/strategies.py `DEFAULT` is this one; spelled here
# so that reading a provider does not load the strategy table, which `sig status` never needs).
DEFAULT_STRATEGY = "browser"

# Keys that name a person rather than prove identity: `sig get` shows them in clear (as the original does).
IDENTIFIER_KEYS = frozenset({"username", "user", "login", "email"})


class Provider:
    """A normalised provider entry. `data` is the JSON-able dict kept in the config cache."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @property
    def id(self) -> str:
        """The provider's id (its key under providers:)."""
        pid: str = self.data["id"]
        return pid

    @property
    def name(self) -> str:
        """The display name (the id when none is set)."""
        name: str = self.data.get("name") or self.data["id"]
        return name

    @property
    def strategy(self) -> str:
        """The login strategy's name (a row of core/strategies.py)."""
        strategy: str = self.data.get("strategy", DEFAULT_STRATEGY)
        return strategy

    @property
    def domains(self) -> list[str]:
        """The hosts its credentials may go to ("*" = one label)."""
        return list(self.data.get("domains") or [])

    @property
    def entry_url(self) -> str:
        """The page a login starts at ("" when none)."""
        return self.data.get("entryUrl") or ""

    @property
    def apply(self) -> list[dict[str, Any]]:
        """The apply rules: how values become headers, query or body fields."""
        return list(self.data.get("apply") or [])

    @property
    def extract(self) -> list[dict[str, Any]]:
        """The extract rules: what a login captures."""
        return list(self.data.get("extract") or [])

    @property
    def ttl_ms(self) -> int | None:
        """The configured lifetime in ms, or None."""
        ms = parse_duration_ms(self.data.get("ttl"))
        return ms or None

    def get(self, key: str, default: Any = None) -> Any:
        """Any other field of the entry."""
        return self.data.get(key, default)

    def login_target(self) -> str:
        """What to pass to `sig login` in a hint."""
        return self.entry_url or self.id

    def __repr__(self) -> str:
        return f"Provider({self.id!r}, strategy={self.strategy!r})"


class Credential:
    """A stored credential: the flat `values` map plus when it was made and when it ends."""

    __slots__ = ("expires_at", "extra", "oauth2", "provider_id", "strategy", "updated_at", "values")

    def __init__(
        self,
        provider_id: str,
        strategy: str,
        values: dict[str, Secret],
        updated_at: str | None = None,
        expires_at: str | None = None,
        oauth2: dict[str, Secret] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.provider_id = provider_id
        self.strategy = strategy
        self.values = values
        self.updated_at = updated_at or iso_from_ms(now_ms())
        self.expires_at = expires_at
        self.oauth2 = oauth2
        self.extra = extra or {}

    def revealed(self) -> dict[str, str]:
        """The values in clear (only the apply engine, the env builder and the store call this)."""
        return {k: v.reveal() for k, v in self.values.items()}

    def expiry_ms(self, ttl_ms: int | None) -> int | None:
        """Stored expiresAt, else updatedAt + the provider's ttl, else None (never expires)."""
        if self.expires_at:
            return ms_from_iso(self.expires_at)
        if ttl_ms:
            updated = ms_from_iso(self.updated_at)
            if updated is not None:
                return updated + ttl_ms
        return None

    def is_valid(self, ttl_ms: int | None, at_ms: int | None = None) -> bool:
        """Whether it holds a value and has not expired at `at_ms` (now), by its expiry or the ttl."""
        if not self.values or not any(v.reveal() for v in self.values.values()):
            return False
        expiry = self.expiry_ms(ttl_ms)
        return expiry is None or (at_ms if at_ms is not None else now_ms()) < expiry

    def to_payload(self) -> dict[str, Any]:
        """The plaintext the original writes (key order kept), plus our extra keys after it."""
        payload: dict[str, Any] = {
            "version": 2,
            "providerId": self.provider_id,
            "strategy": self.strategy,
            "updatedAt": self.updated_at,
        }
        if self.expires_at:
            payload["expiresAt"] = self.expires_at
        payload["values"] = self.revealed()
        if self.oauth2 is not None:
            payload["oauth2"] = {k: v.reveal() for k, v in self.oauth2.items()}
        for key, value in self.extra.items():
            if key not in payload:
                payload[key] = value
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Credential:
        """A credential from its decrypted JSON payload (`values`, or a v1 file's `credentials`; other keys
        kept as extra). ValueError when `values` or `oauth2` hold something other than text (a nested list
        or map, true/false, a NUL character): `values` stays a flat string map (README, "Compatibility"),
        and such a value has no single form to send. Numbers become their text, as the original's JS would."""
        raw_values = payload.get("values")
        if raw_values is None:
            raw_values = payload.get("credentials")  # v1 plaintext
        values = _secrets(raw_values or {}, "values")
        raw_oauth2 = payload.get("oauth2")
        oauth2 = _secrets(raw_oauth2, "oauth2") if isinstance(raw_oauth2, dict) else None
        known = {"version", "providerId", "strategy", "updatedAt", "expiresAt", "values", "credentials", "oauth2"}
        extra = {k: v for k, v in payload.items() if k not in known}
        return cls(
            provider_id=str(payload["providerId"]),
            strategy=str(payload.get("strategy") or "unknown"),
            values=values,
            updated_at=payload.get("updatedAt") or None,
            expires_at=payload.get("expiresAt") or None,
            oauth2=oauth2,
            extra=extra,
        )

    def __repr__(self) -> str:
        return f"Credential({self.provider_id!r}, strategy={self.strategy!r}, keys={sorted(self.values)})"


def _secrets(raw: dict[str, Any], field: str) -> dict[str, Secret]:
    out: dict[str, Secret] = {}
    for key, value in raw.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            # Named by field only: the key could be anything, the value is a secret.
            raise ValueError(f"its {field} map holds a value that is not text")
        text = value if isinstance(value, str) else str(value)
        if "\x00" in text or "\x00" in str(key):
            # No environment variable, header or file format can carry a NUL (`sig login` refuses one).
            raise ValueError(f"its {field} map holds a NUL character")
        out[str(key)] = Secret(text)
    return out
