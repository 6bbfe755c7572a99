"""Browser SSO login: a real Chrome/Chromium on sig's own profile, watched until the site says "logged in"."""

from __future__ import annotations

from ...core.model import Credential, Provider
from ...core.secret import Secret
from ...core.timeutil import iso_from_ms
from ..base import LoginContext, StaticStrategy


def credential_type(provider: Provider) -> str:
    """What `SIG_<ID>_CREDENTIAL_TYPE` says: bearer when the provider sends an Authorization header
    built from captured values, cookie otherwise."""
    for rule in provider.apply:
        if rule.get("in") == "header" and str(rule.get("name", "")).lower() == "authorization":
            return "bearer"
    return "cookie"


class BrowserStrategy(StaticStrategy):
    name = "browser"

    def authenticate(self, provider: Provider, ctx: LoginContext) -> Credential:
        from ...browser.cascade import Cascade

        capture = Cascade(provider, dict(ctx.browser), mode=ctx.mode, network_proxy=ctx.network_proxy,
                          notify=ctx.notify, log=ctx.log).run()
        values = {k: Secret(v) for k, v in capture.values.items()}
        expires = iso_from_ms(capture.expires_at_ms) if capture.expires_at_ms else None
        return Credential(provider.id, provider.strategy, values, expires_at=expires,
                          extra={"credentialType": credential_type(provider)})
