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


def capture_as(provider: Provider, ctx: LoginContext, strategy: str, credential_type: str,
               default_extract: list[dict[str, str]], keep_extract: bool) -> Credential:
    """A browser login on behalf of another strategy (seed 000's cookie / oauth2 without a token
    endpoint): `default_extract` replaces the provider's extract rules unless `keep_extract`."""
    data = dict(provider.data)
    if not keep_extract:
        data["extract"] = default_extract
    captured = BrowserStrategy().authenticate(Provider(data), ctx)
    captured.strategy = strategy
    captured.extra["credentialType"] = credential_type
    return captured


class BrowserStrategy(StaticStrategy):
    name = "browser"

    def authenticate(self, provider: Provider, ctx: LoginContext) -> Credential:
        from ...browser.cascade import Cascade
        from ...browser.session_cookies import PAYLOAD_KEY, SessionCookies

        kept = SessionCookies.from_credential(ctx.previous, provider)
        capture = Cascade(provider, dict(ctx.browser), mode=ctx.mode, network_proxy=ctx.network_proxy,
                          notify=ctx.notify, log=ctx.log, session_cookies=kept).run()
        values = {k: Secret(v) for k, v in capture.values.items()}
        expires = iso_from_ms(capture.expires_at_ms) if capture.expires_at_ms else None
        extra: dict[str, object] = {"credentialType": credential_type(provider)}
        if capture.session_cookies:
            # Sealed with the credential, outside `values` (SPEC §2): for the next login's browser only.
            extra[PAYLOAD_KEY] = capture.session_cookies.to_payload()
        return Credential(provider.id, provider.strategy, values, expires_at=expires, extra=extra)
