"""Environment variables for `sig run`: SIG_<PROVIDER>_PROVIDER, SIG_<PROVIDER>_<KEY> and the seed extras."""

from __future__ import annotations

from ..core.hosts import env_name
from .apply import apply_rules
from .redact import cookie_pairs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..core.model import Credential, Provider

_TYPES = {"api-token": "bearer", "oauth2": "bearer", "basic": "basic", "cookie": "cookie", "browser": "cookie"}


def credential_type(provider: Provider, credential: Credential) -> str:
    explicit = credential.extra.get("credentialType")
    if isinstance(explicit, str) and explicit:
        return explicit
    if provider.strategy == "api-token" and provider.get("headerName") not in (None, "", "Authorization"):
        return "api-key"
    if "cookie" in credential.values and provider.strategy in ("prompt", "browser", "cookie"):
        return "cookie"
    return _TYPES.get(provider.strategy, "bearer")


def provider_env(provider: Provider, credential: Credential, expand_cookies: bool = False) -> dict[str, str]:
    """The variables one provider contributes, in a stable order. Values are raw secrets."""
    prefix = "SIG_" + env_name(provider.id)
    values = credential.revealed()
    env = {f"{prefix}_PROVIDER": provider.id}
    for key, value in values.items():
        env[f"{prefix}_{env_name(key)}"] = value
    kind = credential_type(provider, credential)
    extras: dict[str, str] = {"CREDENTIAL_TYPE": kind}
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
    for key, value in extras.items():
        env.setdefault(f"{prefix}_{key}", value)
    if expand_cookies and cookie:
        for name, value in cookie_pairs(cookie):
            env.setdefault(f"{prefix}_COOKIE_{env_name(name)}", value)
    return env
