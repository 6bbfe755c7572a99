"""A provider's OAuth2 settings. `${VAR}` is read from the environment in clientId and clientSecret only
(the fields meant for it); anywhere else in the oauth2 section it is a CONFIG_ERROR, so a config edit cannot
make sig send an environment variable to a server in a URL, a scope or an audience."""

from __future__ import annotations

import os

from ...core.errors import ErrorCode, SigError
from ...core.secret import Secret

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...core.model import Credential, Provider
    from ...net.network_proxy import NetworkProxy

GRANTS = ("client_credentials", "authorization_code", "device_code")
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
EXPANDED_FIELDS = ("clientId", "clientSecret")
URL_FIELDS = {"token_url": "tokenUrl", "auth_url": "authUrl", "device_url": "deviceUrl"}


def literal(value: str, field: str, provider_id: str) -> str:
    """A field that is not expanded: a `${` in it is refused rather than sent on as it is."""
    if "${" in value:
        kind = "a URL" if field.endswith("Url") else "this field"
        raise SigError(ErrorCode.CONFIG_ERROR,
                       f'provider "{provider_id}": oauth2.{field} contains "${{…}}", but sig reads environment '
                       f"variables only in {' and '.join('oauth2.' + f for f in EXPANDED_FIELDS)}",
                       f"write {kind} itself in the config (a variable in it could send its value to "
                       "whatever server the config names)")
    return value


def expand(value: str, field: str, provider_id: str) -> str:
    """Replace ${VAR} with the environment variable; a missing one is a CONFIG_ERROR that names it."""
    out = []
    i = 0
    while True:
        start = value.find("${", i)
        if start == -1:
            out.append(value[i:])
            return "".join(out)
        end = value.find("}", start + 2)
        if end == -1:
            out.append(value[i:])
            return "".join(out)
        name = value[start + 2 : end]
        if name not in os.environ:
            raise SigError(ErrorCode.CONFIG_ERROR,
                           f'provider "{provider_id}": oauth2.{field} uses ${{{name}}}, which is not set',
                           f"export {name}=… before running sig, or write the value in the config")
        out.append(value[i:start])
        out.append(os.environ[name])
        i = end + 1


class OAuth2Settings:
    """Everything a grant needs. The client secret is a Secret and is never written to the config."""

    def __init__(self, provider: Provider, cli: dict[str, str] | None = None,
                 stored: Credential | None = None, secret: Secret | None = None) -> None:
        conf = dict(provider.get("oauth2") or {})
        given = {k: str(v) for k, v in (cli or {}).items() if v is not None}  # from the command line: literal
        conf.update(given)
        pid = provider.id

        def text(key: str, default: str = "") -> str:
            value = conf.get(key)
            if value in (None, ""):
                return default
            if key in given:
                return given[key]
            return expand(str(value), key, pid) if key in EXPANDED_FIELDS else literal(str(value), key, pid)

        self.provider = provider
        self.provider_id = pid
        self.token_url = text("tokenUrl")
        self.auth_url = text("authUrl")
        self.device_url = text("deviceUrl")
        self.audience = text("audience")
        self.client_auth = text("clientAuth", "client_secret_basic")
        stored_oauth = (stored.oauth2 or {}) if stored is not None else {}
        client_id = text("clientId")
        if not client_id and "clientId" in stored_oauth:
            client_id = stored_oauth["clientId"].reveal()
        self.client_id = client_id
        if secret is None and conf.get("clientSecret"):
            secret = Secret(text("clientSecret"))
        if secret is None and "clientSecret" in stored_oauth:
            secret = stored_oauth["clientSecret"]
        self.client_secret = secret
        scopes = conf.get("scopes")
        if isinstance(scopes, list):
            self.scope = " ".join(literal(str(s), "scopes", pid) for s in scopes)
        else:
            self.scope = text("scope") or (literal(str(scopes), "scopes", pid) if scopes else "")
        grant = text("grant") or (stored.extra.get("oauth2Grant", "") if stored is not None else "")
        self.grant = grant or ("client_credentials" if self.client_secret is not None else "")
        try:
            self.timeout = float(conf.get("timeout") or 30)
        except (TypeError, ValueError):
            self.timeout = 30.0
        try:
            self.callback_timeout = float(conf.get("callbackTimeout") or 300)
        except (TypeError, ValueError):
            self.callback_timeout = 300.0
        try:
            self.redirect_port = int(conf.get("redirectPort") or 0)
        except (TypeError, ValueError):
            self.redirect_port = 0

    def require(self, *fields: str) -> None:
        """USAGE_ERROR naming the settings (and their flags) a grant needs and does not have."""
        names = {"token_url": "tokenUrl (--token-url)", "client_id": "clientId (--client-id)",
                 "auth_url": "authUrl (--auth-url)", "device_url": "deviceUrl (--device-url)"}
        missing = [names[f] for f in fields if not getattr(self, f)]
        if missing:
            raise SigError(ErrorCode.CONFIG_ERROR,
                           f'provider "{self.provider_id}" needs OAuth2 {", ".join(missing)}',
                           "give it on the command line or in the provider's oauth2 section of the config")
        for attr in fields:
            if attr in URL_FIELDS:
                self.check_endpoint(getattr(self, attr), URL_FIELDS[attr])
        if self.grant not in GRANTS:
            raise SigError(ErrorCode.CONFIG_ERROR,
                           f'provider "{self.provider_id}": unknown OAuth2 grant "{self.grant or "(none)"}"',
                           f"use --grant {' | '.join(GRANTS)} (client_credentials needs a client secret)")

    def check_endpoint(self, url: str, field: str) -> None:
        """CONFIG_ERROR unless sig may talk to `url` (setting oauth2.`field`): https, a loopback host, or
        the provider's allowHttp: true — the rule credential injection follows."""
        from ...core.policy import endpoint_refusal

        refusal = endpoint_refusal(self.provider, url, f"oauth2.{field}")
        if refusal is not None:
            raise SigError(ErrorCode.CONFIG_ERROR, refusal,
                           f"use an https:// URL for oauth2.{field}, or set allowHttp: true on "
                           f'provider "{self.provider_id}" if cleartext is really intended')

    @property
    def network_proxy(self) -> NetworkProxy | None:
        """The provider's networkProxy for token calls, or None."""
        from ...net.network_proxy import for_provider

        return for_provider(self.provider)
