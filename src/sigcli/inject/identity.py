"""Who a credential belongs to (`sig status P`, `sig whoami P`), where it can be known without a secret.

Sources, best first: the provider's userinfo endpoint (`userinfoUrl`, or `oauth2.userinfoUrl` for OIDC),
asked only when the caller allows a request; the claims of a JWT among the values (or inside a cookie),
read without checking the signature, so shown as "claimed"; a stored user name. Only names, e-mail
addresses and subject ids come out of here, never a token.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..auth.manager import AuthManager
    from ..config.load import Config
    from ..core.model import Credential, Provider

# The claims / fields that name an account, in the order the account is chosen from.
ACCOUNT_FIELDS = ("email", "preferred_username", "username", "login", "upn", "unique_name", "name", "sub")
_SHOWN = (*ACCOUNT_FIELDS, "iss")
MAX_FIELD_LEN = 200


def _pick(data: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key in _SHOWN:
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value.strip() and len(value) <= MAX_FIELD_LEN and value.isprintable():
            out[key] = value.strip()
    return out


def _identity(fields: dict[str, str], source: str, claimed: bool) -> dict[str, Any] | None:
    account = next((fields[k] for k in ACCOUNT_FIELDS if k in fields), None)
    if account is None:
        return None
    return {"account": account, "source": source, "claimed": claimed, "details": fields}


def _jwt_candidates(values: dict[str, str]) -> list[str]:
    """Values that may be JWTs (id_token first: it is about the user), and JWTs inside cookie strings."""
    ordered = sorted(values.items(), key=lambda kv: (kv[0] != "id_token", kv[0] != "access_token", kv[0]))
    out = []
    for _key, value in ordered:
        if value.count(".") == 2 and " " not in value.strip():
            out.append(value)
        elif "=" in value:  # "a=b; c=d": a JWT may be one cookie's value
            out += [v.strip().strip('"') for part in value.split(";")
                    for _n, _eq, v in [part.partition("=")] if v.count(".") == 2]
    return out


def local_identity(credential: Credential) -> dict[str, Any] | None:
    """From the credential alone (no network): a JWT's claims, else a stored user name."""
    from ..core.jwt import claims

    values = credential.revealed()
    for token in _jwt_candidates(values):
        payload = claims(token)
        if payload is not None:
            found = _identity(_pick(payload), "jwt", claimed=True)
            if found is not None:
                return found
    stored = {k: values[k] for k in ("username", "user", "login", "email") if values.get(k)}
    if stored:
        return {"account": next(iter(stored.values())), "source": "stored", "claimed": False,
                "details": stored}
    return None


def userinfo_url(provider: Provider) -> str | None:
    """The provider's userinfoUrl (or oauth2.userinfoUrl), or None."""
    url = provider.get("userinfoUrl") or (provider.get("oauth2") or {}).get("userinfoUrl")
    return url if isinstance(url, str) and url else None


def remote_identity(config: Config, auth: AuthManager, provider: Provider, user_agent: str,
                    log: Callable[[str], None]) -> dict[str, Any] | None:
    """Ask the provider's userinfo endpoint (with its own credential, only where its domains allow)."""
    url = userinfo_url(provider)
    if url is None:
        return None
    from ..core.errors import SigError
    from ..core.jsonio import loads
    from .request import authenticated_request

    try:
        result = authenticated_request(config, auth, url, provider_names=[provider.id], timeout=10,
                                       user_agent=user_agent, log=log,
                                       headers=[("Accept", "application/json")])
    except SigError as err:
        log(f"{provider.id}: userinfo not available ({err.code})")
        return None
    try:
        if not 200 <= result.status < 300:
            log(f"{provider.id}: userinfo answered {result.status}")
            return None
        data = loads(result.response.read(1 << 20))
    except (ValueError, OSError):
        log(f"{provider.id}: userinfo answer is not JSON")
        return None
    finally:
        result.close()
    return _identity(_pick(data), "userinfo", claimed=False) if isinstance(data, dict) else None
