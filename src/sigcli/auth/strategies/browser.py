"""Browser SSO login: a real Chrome/Chromium on sig's own profile, watched until the site says "logged in".

Also the headless renewal the watch loop asks for (`renews_in_browser`, `headless_login`): a credential that
came from a browser is renewed by a headless login on sig's profile with the session cookies kept in it
restored — never a window, never a prompt. `refresh` stays None: `sig get`/`run`/`request` never start a
browser (README "Commands": `get` never prompts or opens a browser).
"""

from __future__ import annotations

from ...core.model import Credential, Provider
from ...core.secret import Secret
from ...core.strategies import spec
from ...core.timeutil import iso_from_ms
from ..base import LoginContext, StaticStrategy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# Extra payload key of the credential file (README "Browser login") marking a credential captured in a browser, so the watch loop can tell a cookie
# or OAuth2 credential that a browser login made (renewable headlessly) from one the user pasted (not).
CAPTURED_KEY = "capturedBy"
DEFAULT_HEADLESS_MS = 20_000  # browser.headlessTimeout when the config has none (as the cascade assumes)


def credential_type(provider: Provider) -> str:
    """What `SIG_<ID>_CREDENTIAL_TYPE` says: bearer when the provider sends an Authorization header
    built from captured values, cookie otherwise."""
    for rule in provider.apply:
        if rule.get("in") == "header" and str(rule.get("name", "")).lower() == "authorization":
            return "bearer"
    return "cookie"


def capture_as(provider: Provider, ctx: LoginContext, strategy: str, credential_type: str,
               default_extract: list[dict[str, str]], keep_extract: bool) -> Credential:
    """A browser login on behalf of another strategy (cookie, or oauth2 without a token endpoint: README
    "Browser login"): `default_extract` replaces the provider's extract rules unless `keep_extract`."""
    data = dict(provider.data)
    if not keep_extract:
        data["extract"] = default_extract
    captured = BrowserStrategy().authenticate(Provider(data), ctx)
    captured.strategy = strategy
    captured.extra["credentialType"] = credential_type
    return captured


class BrowserStrategy(StaticStrategy):
    """Log in in a real browser and capture what the provider's extract rules name."""

    name = "browser"

    def authenticate(self, provider: Provider, ctx: LoginContext) -> Credential:
        """Run the login cascade (auth/browser_login.py), restoring the session cookies kept last time."""
        from ...browser.session_cookies import PAYLOAD_KEY, SessionCookies
        from ..browser_login import Cascade

        kept = SessionCookies.from_credential(ctx.previous, provider)
        capture = Cascade(provider, dict(ctx.browser), mode=ctx.mode, network_proxy=ctx.network_proxy,
                          notify=ctx.notify, log=ctx.log, session_cookies=kept).run()
        values = {k: Secret(v) for k, v in capture.values.items()}
        expires = iso_from_ms(capture.expires_at_ms) if capture.expires_at_ms else None
        extra: dict[str, object] = {"credentialType": credential_type(provider), CAPTURED_KEY: "browser"}
        if capture.session_cookies:
            # Sealed with the credential, outside `values` (README "Browser login"): for the next login's
            # browser only.
            extra[PAYLOAD_KEY] = capture.session_cookies.to_payload()
        return Credential(provider.id, provider.strategy, values, expires_at=expires, extra=extra)


def renews_in_browser(provider: Provider, credential: Credential, browser_cfg: dict[str, Any] | None) -> bool:
    """Whether a headless login can renew `credential`: it came from a browser login (strategy browser, or a
    cookie / token-endpoint-less OAuth2 credential marked as captured in one — or holding kept session
    cookies, which only a browser login stores), the provider has an entry page, and this machine logs in
    with a browser sig starts itself. `browser_cfg` None means `mode: browserless`; with `browser.cdpUrl` the
    login would open a tab in the user's own browser, which is not headless, so it is not renewable here."""
    from ...browser.session_cookies import PAYLOAD_KEY

    if browser_cfg is None or str(browser_cfg.get("cdpUrl") or "").strip():
        return False
    if not credential.values or not provider.entry_url:
        return False
    row = spec(provider.strategy)
    if row is None:
        return False
    if row.needs_browser:
        return True
    if row.renews and (provider.get("oauth2") or {}).get("tokenUrl"):
        return False  # renewed at its token endpoint
    if row.browser_capture:
        return credential.extra.get(CAPTURED_KEY) == "browser" or PAYLOAD_KEY in credential.extra
    return False


def headless_timeout_s(browser_cfg: dict[str, Any]) -> float:
    """browser.headlessTimeout in seconds (the default when missing or not a number)."""
    try:
        return float(browser_cfg.get("headlessTimeout") or DEFAULT_HEADLESS_MS) / 1000
    except (TypeError, ValueError):
        return DEFAULT_HEADLESS_MS / 1000


def headless_login(provider: Provider, previous: Credential | None, browser_cfg: dict[str, Any],
                   log: Callable[[str], None]) -> Credential:
    """The provider's own browser login (its strategy's authenticate, as `sig login P --mode headless`
    runs it), forced headless whatever its loginMode / forceVisible say, with nobody to ask and the session
    cookies kept in `previous` restored. Raises BROWSER_TIMEOUT within browser.headlessTimeout (after the
    browser started) when the site wants a person."""
    from . import strategy_for

    cfg = dict(browser_cfg)
    cfg.pop("cdpUrl", None)
    cfg["headlessTimeout"] = headless_timeout_s(cfg) * 1000  # also keeps `cfg` non-empty: the strategies
    # read an empty browser section as "no browser on this machine"
    data = dict(provider.data, loginMode="headless")
    data.pop("forceVisible", None)
    ctx = LoginContext(mode="headless", browser=cfg, log=log, notify=log, previous=previous)
    return strategy_for(provider.strategy).authenticate(Provider(data), ctx)

if TYPE_CHECKING:
    from ..base import Strategy

    _check: type[Strategy] = BrowserStrategy  # mypy: the class satisfies the strategy protocol
