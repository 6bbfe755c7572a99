"""OAuth2: client credentials, authorization code + PKCE, device code; refresh with rotation."""

from __future__ import annotations

from ...core.errors import ErrorCode, SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...core.model import Credential, Provider
    from ..base import LoginContext


class OAuth2Strategy:
    """OAuth2: client credentials, authorization code + PKCE, device code; renews by refresh token."""

    name = "oauth2"

    def authenticate(self, provider: Provider, ctx: LoginContext) -> Credential:
        """Run the grant the settings name (or a browser capture without a token endpoint)."""
        from ..oauth2 import flows
        from ..oauth2.credential import to_credential
        from ..oauth2.settings import OAuth2Settings
        from ..oauth2.token import post_form

        settings = OAuth2Settings(provider, ctx.oauth2, secret=ctx.client_secret)
        if not settings.token_url and provider.entry_url and ctx.browser and not ctx.oauth2:
            return self._from_browser(provider, ctx)
        if settings.grant == "client_credentials":
            settings.require("token_url", "client_id")
            if settings.client_secret is None:
                raise SigError(ErrorCode.USAGE_ERROR, "the client_credentials grant needs a client secret",
                               "pass it with --client-secret-stdin (or choose --grant authorization_code)")
            fields = {"grant_type": "client_credentials"}
            if settings.scope:
                fields["scope"] = settings.scope
            if settings.audience:
                fields["audience"] = settings.audience
            response = post_form(settings.token_url, fields, settings)
        elif settings.grant == "authorization_code":
            response = flows.authorization_code(settings, ctx)
        elif settings.grant == "device_code":
            response = flows.device_code(settings, ctx)
        else:
            settings.require("token_url")
            raise AssertionError("unreachable")
        return to_credential(provider, response, settings, log=ctx.log)

    def _from_browser(self, provider: Provider, ctx: LoginContext) -> Credential:
        """OAuth2 without a token endpoint (README "Browser login"): log in in the browser and keep the bearer token
        the site's own pages send (expiry from the token's JWT `exp` when it has one)."""
        from ...core.timeutil import iso_from_ms
        from ..oauth2.credential import jwt_exp_ms
        from .browser import capture_as

        captured = capture_as(provider, ctx, self.name, "bearer",
                              [{"from": "header", "as": "access_token", "match": "Authorization"}],
                              keep_extract=any(r.get("from") == "header" for r in provider.extract))
        token = captured.values.get("access_token")
        exp = jwt_exp_ms(token.reveal()) if token is not None else None
        if exp is not None:
            captured.expires_at = iso_from_ms(exp)
        return captured

    def refresh(self, provider: Provider, credential: Credential | None) -> Credential | None:
        """A new credential without the user: refresh token, else the client credentials again (from the
        stored credential or the config: `credential` None fetches a first token for a provider set up in
        the config only). None when neither is possible. Raises REFRESH_FAILED (a TokenError) when the
        server refuses."""
        from ..oauth2.credential import to_credential
        from ..oauth2.settings import OAuth2Settings
        from ..oauth2.token import post_form

        settings = OAuth2Settings(provider, stored=credential)
        oauth2 = (credential.oauth2 if credential is not None else None) or {}
        if not settings.token_url:
            return None
        if "refreshToken" in oauth2:
            fields = {"grant_type": "refresh_token", "refresh_token": oauth2["refreshToken"].reveal()}
            if settings.scope:
                fields["scope"] = settings.scope
        elif settings.client_secret is not None and settings.grant in ("client_credentials", ""):
            fields = {"grant_type": "client_credentials"}
            if settings.scope:
                fields["scope"] = settings.scope
            if settings.audience:
                fields["audience"] = settings.audience
        else:
            return None
        response = post_form(settings.token_url, fields, settings, error_code=ErrorCode.REFRESH_FAILED)
        return to_credential(provider, response, settings, previous=credential)

if TYPE_CHECKING:
    from ..base import Strategy

    _check: type[Strategy] = OAuth2Strategy  # mypy: the class satisfies the strategy protocol
