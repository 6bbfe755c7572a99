"""The strategy table: every login method sig knows, one row each, and what the rest of sig needs to know
about it without importing it (the config check, `sig login`'s planning, `sig run`'s variables, the watch
loop, completion).

Adding a login method is one file in auth/strategies/ (a class that satisfies `auth.base.Strategy`) and
one row here. The row names the class as data ("module:Class" under sigcli.auth.strategies); only
auth/strategies/__init__.py turns it into an import, so this table stays vocabulary with no upward arrow.
Plain classes and small functions only: this module is on `sig get`'s start-up path (core/model.py).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping
    from typing import Any

    Rules = list[dict[str, str]]

# The names a specific strategy's own code refers to (its flags, its config section): one spelling each.
BROWSER, PROMPT, OAUTH2, API_TOKEN, COOKIE, BASIC = "browser", "prompt", "oauth2", "api-token", "cookie", "basic"
# The strategy of a provider entry that names none (and of a new provider made from a URL); core/model.py
# spells the same name as DEFAULT_STRATEGY (test_strategy_table checks they agree).
DEFAULT = BROWSER

_COOKIE_JAR: Rules = [{"from": "cookies", "as": "cookie", "match": "*"}]


def _api_token_apply(entry: Mapping[str, Any]) -> Rules:
    header = entry.get("headerName") or "Authorization"
    prefix = entry.get("headerPrefix")
    if prefix is None:
        prefix = "Bearer" if header.lower() == "authorization" else ""
    value = f"{prefix} ${{token}}" if prefix else "${token}"
    return [{"in": "header", "name": header, "value": value}]


def _rules(*rules: dict[str, str]) -> Callable[[Mapping[str, Any]], Rules]:
    return lambda _entry: [dict(rule) for rule in rules]


_NO_RULES = _rules()


def _api_token_type(provider_data: Mapping[str, Any], _value_keys: Collection[str]) -> str:
    return "api-key" if provider_data.get("headerName") not in (None, "", "Authorization") else "bearer"


def _prompt_type(_provider_data: Mapping[str, Any], value_keys: Collection[str]) -> str:
    return "cookie" if "cookie" in value_keys else "bearer"


class StrategySpec:
    """One row of the table. The fields say how the rest of sig treats providers of this strategy."""

    __slots__ = ("browser_capture", "credential_type", "default_apply", "default_extract", "header_options",
                 "implementation", "name", "needs_browser", "renews", "rules_from_config", "supplies",
                 "value_keys")

    def __init__(
        self,
        name: str,
        implementation: str,
        *,
        credential_type: str | Callable[[Mapping[str, Any], Collection[str]], str],
        default_apply: Callable[[Mapping[str, Any]], Rules] = _NO_RULES,
        default_extract: Rules | None = None,
        supplies: str | None = None,
        value_keys: frozenset[str] | None = None,
        header_options: bool = False,
        rules_from_config: bool = False,
        needs_browser: bool = False,
        browser_capture: bool = False,
        renews: bool = False,
    ) -> None:
        self.name = name
        # "module:Class" under sigcli.auth.strategies (imported by auth/strategies/__init__.py, when used).
        self.implementation = implementation
        # SIG_<ID>_CREDENTIAL_TYPE for a credential that does not record one: a constant, or a function of
        # the provider's config entry and the credential's value names.
        self.credential_type = credential_type
        # Apply rules of an entry that has none (and of a provider `sig login` made or refitted).
        self.default_apply = default_apply
        # Extract rules of an entry that has none.
        self.default_extract = default_extract
        # The login material that implies this strategy: "token" (--token*), "cookie" (--cookie*),
        # "basic" (--username/--password). A strategy that is handed its value keeps no extract rules.
        self.supplies = supplies
        # The value names its credentials hold: apply rules naming others are refitted at login.
        self.value_keys = value_keys
        # `sig login --header-name/--header-prefix` shape its apply rule.
        self.header_options = header_options
        # Its extract and apply rules come from the config (required there, with an entryUrl).
        self.rules_from_config = rules_from_config
        # A login always needs a browser (refused under `mode: browserless`; doctor looks for one).
        self.needs_browser = needs_browser
        # Without its own material it may capture the credential in a browser (cookie jar, bearer token), and
        # such a credential is renewed by a headless login (watch).
        self.browser_capture = browser_capture
        # Renewed without the user (refresh token, client credentials): renewed ahead of expiry, a first
        # token may come from the config alone, and the watch loop renews it.
        self.renews = renews

    def credential_type_for(self, provider_data: Mapping[str, Any], value_keys: Collection[str]) -> str:
        """SIG_<ID>_CREDENTIAL_TYPE of a credential of this strategy that does not record its type."""
        kind = self.credential_type
        return kind if isinstance(kind, str) else kind(provider_data, value_keys)

    def __repr__(self) -> str:
        return f"StrategySpec({self.name!r})"


# In the order messages list them (the original's three first).
TABLE: dict[str, StrategySpec] = {spec.name: spec for spec in (
    StrategySpec(BROWSER, "browser:BrowserStrategy", credential_type="cookie",
                 default_apply=_rules({"in": "header", "name": "Cookie", "value": "${cookie}"}),
                 rules_from_config=True, needs_browser=True, browser_capture=True),
    StrategySpec(PROMPT, "prompt:PromptStrategy", credential_type=_prompt_type, rules_from_config=True),
    StrategySpec(OAUTH2, "oauth2:OAuth2Strategy", credential_type="bearer",
                 default_apply=_rules({"in": "header", "name": "Authorization", "value": "Bearer ${access_token}"}),
                 value_keys=frozenset({"access_token"}), browser_capture=True, renews=True),
    StrategySpec(API_TOKEN, "api_token:ApiTokenStrategy", credential_type=_api_token_type,
                 default_apply=_api_token_apply, supplies="token", value_keys=frozenset({"token"}),
                 header_options=True),
    StrategySpec(COOKIE, "cookie:CookieStrategy", credential_type="cookie",
                 default_apply=_rules({"in": "header", "name": "Cookie", "value": "${cookie}"}),
                 default_extract=_COOKIE_JAR, supplies="cookie", value_keys=frozenset({"cookie"}),
                 browser_capture=True),
    StrategySpec(BASIC, "basic:BasicStrategy", credential_type="basic",
                 default_apply=_rules({"in": "header", "name": "Authorization", "value": "Basic ${basic_auth}"}),
                 supplies="basic", value_keys=frozenset({"username", "password", "basic_auth"})),
)}
NAMES = tuple(TABLE)


def spec(name: str) -> StrategySpec | None:
    """The row of strategy `name`, or None for a name sig does not know."""
    return TABLE.get(name)


def implied_by(material: Collection[str]) -> str | None:
    """The strategy the login material given implies: a token → api-token, a cookie → cookie, a user name
    or password → basic (material: "token", "cookie", "username", "password")."""
    kinds = {"basic" if m in ("username", "password") else m for m in material}
    for row in TABLE.values():
        if row.supplies is not None and row.supplies in kinds:
            return row.name
    return None
