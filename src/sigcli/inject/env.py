"""Environment variables for `sig run`: SIG_<PROVIDER>_PROVIDER, SIG_<PROVIDER>_<KEY> and the derived ones
(CREDENTIAL_TYPE, AUTH_HEADER, TOKEN, COOKIE: README "`sig run`")."""

from __future__ import annotations

from ..core.apply import apply_rules
from ..core.hosts import env_name
from ..core.secret_forms import cookie_pairs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..core.model import Credential, Provider


def credential_type(provider: Provider, credential: Credential) -> str:
    """SIG_<ID>_CREDENTIAL_TYPE: what the credential records, else what its strategy's row says."""
    explicit = credential.extra.get("credentialType")
    if isinstance(explicit, str) and explicit:
        return explicit
    from ..core.strategies import spec  # only for credentials that do not record it (start-up of `sig run`)

    row = spec(provider.strategy)
    return row.credential_type_for(provider.data, credential.values) if row is not None else "bearer"


def _extras(provider: Provider, credential: Credential, values: dict[str, str]) -> dict[str, str]:
    """The derived variables (without prefix): CREDENTIAL_TYPE, AUTH_HEADER, TOKEN, COOKIE."""
    extras: dict[str, str] = {"CREDENTIAL_TYPE": credential_type(provider, credential)}
    headers = apply_rules(provider.apply, values).headers
    auth_header = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    cookie = next((v for k, v in headers.items() if k.lower() == "cookie"), None) or values.get("cookie")
    if auth_header:
        extras["AUTH_HEADER"] = auth_header
    elif headers:
        extras["AUTH_HEADER"] = next(iter(headers.values()))
    token = values.get("token") or values.get("access_token")
    if token:
        extras["TOKEN"] = token
    if cookie:
        extras["COOKIE"] = cookie
    return extras


def provider_env(provider: Provider, credential: Credential, expand_cookies: bool = False) -> dict[str, str]:
    """The variables one provider contributes, in a stable order. Values are raw secrets."""
    prefix = "SIG_" + env_name(provider.id)
    values = credential.revealed()
    env = {f"{prefix}_PROVIDER": provider.id}
    for key, value in values.items():
        env[f"{prefix}_{env_name(key)}"] = value
    extras = _extras(provider, credential, values)
    for key, value in extras.items():
        env.setdefault(f"{prefix}_{key}", value)
    cookie = extras.get("COOKIE")
    if expand_cookies and cookie:
        for name, value in cookie_pairs(cookie):
            env.setdefault(f"{prefix}_COOKIE_{env_name(name)}", value)
    return env


def template_values(provider: Provider, credential: Credential) -> dict[str, str]:
    """What a `{key}` in an app variable can name: the credential's values, then the derived ones
    in lower case (`{token}` also works for an OAuth2 access token, `{auth_header}`, `{cookie}`)."""
    values = credential.revealed()
    out = dict(values)
    for key, value in _extras(provider, credential, values).items():
        out.setdefault(key.lower(), value)
    return out


def app_env(provider: Provider, credential: Credential,
            templates: dict[str, str] | None = None) -> tuple[dict[str, str], list[str], list[tuple[str, str]]]:
    """The app-named variables of one provider: its config `env:` map, or `templates` when given.

    Returns (variables, names whose value holds a secret, (NAME, key) for each placeholder with no value in
    this credential, which becomes ""). Values are raw secrets.
    """
    from ..core.envtemplate import render, template_keys
    from ..core.model import IDENTIFIER_KEYS

    spec = (provider.get("env") or {}) if templates is None else templates
    if not spec:
        return {}, [], []
    lookup = template_values(provider, credential)
    env: dict[str, str] = {}
    secret_names: list[str] = []
    missing: list[tuple[str, str]] = []
    for name, template in spec.items():
        env[name], lacking = render(str(template), lookup)
        missing += [(name, key) for key in lacking]
        if any(k not in IDENTIFIER_KEYS and lookup.get(k) for k in template_keys(str(template))):
            secret_names.append(name)
    return env, secret_names, missing
