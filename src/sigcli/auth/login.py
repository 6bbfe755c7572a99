"""`sig login`'s planning and saving: which provider (a configured one, a copy under a new id, or a new one
made from the URL), a strategy and apply rules that fit the material given, then the login itself and the
atomic save of the credential with the provider's config entry.

The CLI (cli/commands/login.py) parses the flags, reads secrets from stdin or the environment and prints;
everything it decides with is here, so the rules hold for any caller.
"""

from __future__ import annotations

from ..core import strategies
from ..core.errors import ErrorCode, SigError, usage_error
from ..core.model import Credential, Provider

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..config.load import Config
    from ..store.credentials import CredentialStore
    from .base import LoginContext
    from .manager import AuthManager

GRANTS = ("client_credentials", "authorization_code", "device_code")
DEVICE_GRANT_URN = "urn:ietf:params:oauth:grant-type:device_code"


class LoginPlan:
    """What a login will use and, once it succeeds, save.

    `data` is the provider entry as it may be written to the config; `provider` is what this login runs
    with (`data` plus the one-off overrides such as --mode and --network-proxy, which are never saved).
    `notes` are said once the login succeeded: a failed login changes nothing."""

    def __init__(self, data: dict[str, Any], provider: Provider, is_new: bool, changed: bool,
                 notes: list[str]) -> None:
        self.data = data
        self.provider = provider
        self.is_new = is_new
        self.changed = changed
        self.notes = notes

    @property
    def saves_config(self) -> bool:
        """Whether the config entry is written with the credential (a new provider, or refitted rules)."""
        return self.is_new or self.changed


def choose_strategy(explicit: str | None, kind: str | None, oauth_given: bool) -> str | None:
    """The strategy the flags ask for (None: keep the provider's): --strategy (a known name), else oauth2
    when OAuth2 options are given without other material. Usage errors for combinations that contradict
    each other."""
    if oauth_given and explicit is None and kind is None:
        explicit = strategies.OAUTH2
    if oauth_given and explicit not in (None, strategies.OAUTH2):
        raise usage_error("OAuth2 options (--token-url, --client-id, …) need --strategy oauth2", "")
    row = strategies.spec(explicit) if explicit is not None else None
    if row is not None and row.supplies is not None and kind not in (None, explicit):
        raise usage_error(f'--strategy {explicit} does not match the credential given ({kind})', "")
    return explicit


def normalise_grant(oauth: dict[str, str]) -> None:
    """--grant: the RFC 8628 URN means device_code; anything but the three grants sig runs is refused."""
    if oauth.get("grant") == DEVICE_GRANT_URN:
        oauth["grant"] = "device_code"
    if oauth.get("grant") not in (None, *GRANTS):
        raise usage_error(f'unknown grant "{oauth["grant"]}"', "use client_credentials, authorization_code or device_code")


def plan(config: Config, target: str, *, new_id: str | None, explicit: str | None, kind: str | None,
         header_name: str | None, header_prefix: str | None, oauth: dict[str, str],
         overrides: dict[str, str]) -> LoginPlan:
    """Decide the provider and its rules for `sig login target`. `kind`: the strategy the material given
    implies (core/strategies.py `implied_by`); `oauth`: OAuth2 settings from the command line (tokenUrl,
    clientId, scope, …); `overrides`: settings for this run only (networkProxy, loginMode)."""
    data, is_new = choose_provider(config, target, new_id, explicit or kind or strategies.DEFAULT)
    notes: list[str] = []
    changed = fit_strategy(notes, data, kind, explicit, header_name, header_prefix)
    if data.get("strategy") == strategies.OAUTH2 and (oauth or is_new):
        merged = dict(data.get("oauth2") or {})
        for key, value in oauth.items():
            if key == "scope":
                merged["scopes"] = value.split()
            else:
                merged[key] = value
        if merged != (data.get("oauth2") or {}):
            data["oauth2"] = merged
            changed = True
        if is_new:
            data.pop("extract", None)
    # --mode and --network-proxy change this run only, for new and existing providers alike: they are
    # never written to the config (a provider keeps a mode or a proxy only when its entry says
    # loginMode/networkProxy). What this run uses is a copy of the entry that `data` (what may be saved)
    # never sees.
    run_data = dict(data)
    run_data.update({key: value for key, value in overrides.items() if value})
    return LoginPlan(data, Provider(run_data), is_new, changed, notes)


def choose_provider(config: Config, target: str, new_id: str | None,
                    strategy: str) -> tuple[dict[str, Any], bool]:
    """(provider data, whether it is new and must be written to the config)."""
    from ..config.load import provider_not_found
    from ..config.provision import provision
    from ..core.hosts import looks_like_url

    if new_id is not None and new_id in config.providers:
        return dict(config.providers[new_id].data), False
    found = config.resolve(target)
    if found is not None:
        if new_id is None or new_id == found.id:
            return dict(found.data), False
        if looks_like_url(target) and _origin(target) != _origin(found.entry_url or target):
            # Same host, another scheme or port: a provider of its own for the URL given. A copy would
            # keep the other one's entryUrl, and its credential could never be sent to this URL.
            data = provision(target, set(config.providers), strategy)
            data["id"] = new_id
            return data, True
        data = dict(found.data)  # a copy of an existing provider under a new id
        data["id"] = new_id
        if data.get("name") == found.id:
            data["name"] = new_id
        return data, True
    if not looks_like_url(target):
        raise provider_not_found(target)
    data = provision(target, set(config.providers), strategy)
    if new_id is not None:
        data["id"] = new_id
    return data, True


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with the scheme's default port filled in, as injection compares them."""
    from ..core.hosts import split_url

    scheme, host, port = split_url(url)
    scheme = scheme or "https"
    return scheme, host, port if port is not None else (443 if scheme == "https" else 80)


def fit_strategy(notes: list[str], data: dict[str, Any], kind: str | None, explicit: str | None,
                 header_name: str | None, header_prefix: str | None) -> bool:
    """Make the provider's strategy and apply rules fit what the user supplied. True when changed."""
    from ..config.schema import default_apply
    from ..core.apply import referenced_keys

    changed = False
    wanted = explicit or data.get("strategy", strategies.DEFAULT)
    if kind is not None and explicit is None and wanted != strategies.PROMPT and wanted != kind:
        wanted = kind
    if wanted != data.get("strategy"):
        if not data.get("autoProvisioned"):
            notes.append(f'Note: provider "{data["id"]}" now uses strategy "{wanted}" (was "{data.get("strategy")}").')
        data["strategy"] = wanted
        changed = True
    row = strategies.TABLE[wanted]
    if row.header_options:
        for key, value in (("headerName", header_name), ("headerPrefix", header_prefix)):
            if value is not None and data.get(key) != value:
                data[key] = value
                changed = True
    keys = row.value_keys
    rules_fit = keys is None or (data.get("apply") and referenced_keys(data["apply"]) <= keys)
    if changed or not rules_fit:
        fresh = default_apply(wanted, data)
        if data.get("apply") != fresh and (not rules_fit or header_name is not None or header_prefix is not None):
            data["apply"] = fresh
            changed = True
        if row.supplies is not None and data.get("extract") and not rules_fit:
            data.pop("extract", None)
    return changed


def already_logged_in(auth: AuthManager, login: LoginPlan) -> bool:
    """Whether an existing provider holds a credential that is valid now (`sig login` then does nothing)."""
    if login.is_new:
        return False
    try:
        stored = auth.stored(login.provider)
    except SigError:
        return False
    return stored is not None and stored.is_valid(login.provider.ttl_ms)


def stored_quietly(auth: AuthManager, login: LoginPlan) -> Credential | None:
    """The provider's stored credential (a browser login restores its kept session cookies), or None when
    the provider is new, has none or it cannot be read (the login then starts afresh)."""
    if login.is_new:
        return None
    try:
        return auth.stored(login.provider)
    except SigError:
        return None


def check_browser(login: LoginPlan, browserless: bool) -> None:
    """BROWSER_UNAVAILABLE when the provider's strategy needs a browser and this machine has none."""
    provider = login.provider
    row = strategies.spec(provider.strategy)
    if row is not None and row.needs_browser and browserless:
        raise SigError(
            ErrorCode.BROWSER_UNAVAILABLE,
            f'provider "{provider.id}" logs in with a browser, and this machine is set up without one',
            f"use `sig sync pull` from a machine with a browser, or log in without one: sig login "
            f"{provider.login_target()} --token-stdin | --cookie-stdin | --username U --password-stdin",
        )


def log_in(store: CredentialStore, login: LoginPlan, ctx: LoginContext) -> Credential:
    """Run the strategy's login, then save the credential and (when the plan says so) the provider's
    config entry together or not at all: the config is written while the credential's lock is held, and a
    failure puts the previous file back. (Config first would leave a provider whose login failed, or rules
    that do not fit the stored credential.)"""
    from .strategies import strategy_for

    provider = login.provider
    credential = strategy_for(provider.strategy).authenticate(provider, ctx)
    store.write(credential, then=(lambda: save_provider(login.data)) if login.saves_config else None)
    return credential


def save_provider(data: dict[str, Any]) -> None:
    """Write the provider entry `data` into config.yaml (added or replaced, comments kept)."""
    from ..config.edit import edit_config, provider_entry, set_provider

    entry = provider_entry(data)
    edit_config(lambda doc: set_provider(doc, data["id"], entry))
