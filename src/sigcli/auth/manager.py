"""AuthManager: the credential lifecycle. Stored → still valid? → (refresh, later issues) → or ask to log in."""

from __future__ import annotations

from ..core.errors import ErrorCode, SigError
from ..core.model import Credential, Provider
from ..core.timeutil import iso_from_ms, now_ms
from ..store.credentials import CredentialStore
from .strategies import strategy_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any



def renews(provider: Provider) -> bool:
    """Whether the provider's strategy renews credentials without the user (core/strategies.py `renews`)."""
    from ..core.strategies import spec

    row = spec(provider.strategy)
    return row is not None and row.renews


def _skew_ms(provider: Provider, credential: Credential) -> int:
    """How long before expiry a renewable credential is renewed: oauth2.skew (default 60 s), but at most
    a quarter of the token's lifetime, so short-lived tokens are not renewed on every use."""
    if not renews(provider):
        return 0
    from ..core.duration import parse_duration_ms
    from ..core.timeutil import ms_from_iso

    skew = parse_duration_ms(str((provider.get("oauth2") or {}).get("skew") or "60s")) or 60_000
    expiry = credential.expiry_ms(provider.ttl_ms)
    updated = ms_from_iso(credential.updated_at)
    if expiry is not None and updated is not None and expiry > updated:
        skew = min(skew, (expiry - updated) // 4)
    return skew


class AuthManager:
    """The credential lifecycle over one store: stored → valid? → refresh (single flight) → or say what to
    run."""

    def __init__(self, store: CredentialStore, log: Callable[[str], None] | None = None) -> None:
        self.store = store
        self._log = log or (lambda _m: None)

    def stored(self, provider: Provider) -> Credential | None:
        """The stored credential of `provider` as it is (maybe expired), or None."""
        return self.store.read(provider.id)

    def credential(self, provider: Provider, ahead_ms: int = 0) -> Credential:
        """A credential that is valid now, or a SigError saying what to run. Never opens a browser or
        prompts. When it is expired (or about to be) and the strategy can renew it without the user, the
        refresh broker renews it: once, however many sig processes ask at the same moment.
        `ahead_ms` renews a renewable credential that expires within that time (the watch loop)."""
        credential = self.stored(provider)
        if credential is None:
            if not renews(provider):
                raise self._not_found(provider)
            # Nothing stored yet, but the config may hold all a client-credentials grant needs (tokenUrl,
            # clientId, clientSecret): fetch the first token through the broker, as a renewal would be, so
            # concurrent first uses make one token request. The strategy returns None when it cannot.
            return self._refresh(provider, None, 0)
        skew = max(_skew_ms(provider, credential), ahead_ms if renews(provider) else 0)
        if credential.values and credential.is_valid(provider.ttl_ms, now_ms() + skew):
            self._log(f"{provider.id}: stored credential is valid")
            return credential
        return self._refresh(provider, credential, skew)

    def _not_found(self, provider: Provider) -> SigError:
        return SigError(ErrorCode.CREDENTIAL_NOT_FOUND, f'no credential stored for "{provider.id}"',
                        f"run: sig login {provider.login_target()}")

    def _refresh(self, provider: Provider, seen: Credential | None, skew: int) -> Credential:
        """Single flight across processes: lock, re-read, refresh only if still needed, replace, unlock.
        `seen` None: nothing was stored, the strategy fetches a first credential if it can."""
        from .oauth2.token import TokenError

        strategy = strategy_for(provider.strategy)
        ttl = provider.ttl_ms

        def needs_renewal(current: Credential | None) -> bool:
            fresh = current is not None and bool(current.values) and current.is_valid(ttl, now_ms() + skew)
            if fresh:
                self._log(f"{provider.id}: renewed by another sig process meanwhile")
            return not fresh

        def change(current: Credential | None) -> Credential | None:
            base = current if current is not None else seen
            self._log(f"{provider.id}: {'renewing' if base is not None else 'fetching a first token'} via "
                      f"{provider.strategy}")
            return strategy.refresh(provider, base)

        def still_valid(credential: Credential | None) -> bool:
            return credential is not None and bool(credential.values) and credential.is_valid(ttl)

        doing = "renewing the credential of" if seen is not None else "getting a first token for"
        try:
            result = self.store.renew_once(provider.id, needs_renewal, change)
        except TokenError as err:
            if err.error == "invalid_grant":
                # Another client (e.g. sig on another machine, or the original sigcli) may have rotated the
                # refresh token and stored the new pair: use what is stored now if it is good.
                latest = self.stored(provider)
                if latest is not None and still_valid(latest):
                    return latest
            if seen is not None and still_valid(seen):
                self._log(f"{provider.id}: renewal failed ({err.error}); the current token is still valid")
                return seen
            raise SigError(ErrorCode.REFRESH_FAILED, f'{doing} "{provider.id}" failed: '
                           f"{err.message}", f"{err.hint}; or run: sig login {provider.login_target()}") from None
        except SigError as err:
            if err.code in (ErrorCode.REFRESH_FAILED, ErrorCode.GENERAL_ERROR) and seen is not None and \
                    still_valid(seen):
                self._log(f"{provider.id}: renewal failed; the current token is still valid")
                return seen
            if err.code == ErrorCode.REFRESH_FAILED:
                kept = "the stored credential is kept" if seen is not None else \
                    f"or run: sig login {provider.login_target()}"
                raise SigError(ErrorCode.REFRESH_FAILED, f'{doing} "{provider.id}" failed: '
                               f"{err.message}", f"{err.hint}; {kept}") from None
            raise
        if result is not None and result.values and result.is_valid(ttl):
            return result
        if result is None or not result.values:
            raise self._not_found(provider)
        exp = result.expiry_ms(ttl)
        raise SigError(
            ErrorCode.CREDENTIAL_EXPIRED,
            f'the credential for "{provider.id}" expired' + (f" at {iso_from_ms(exp)}" if exp else ""),
            f"run: sig login {provider.login_target()}",
        )

    def renew(self, provider: Provider, rejected: Credential) -> Credential | None:
        """After a server refused `rejected` (401): a renewed credential if the strategy can make one
        without the user, else None. The stored credential is replaced only by a new one, never deleted."""
        strategy = strategy_for(provider.strategy)

        def change(current: Credential | None) -> Credential | None:
            if current is not None and current.values and current.revealed() != rejected.revealed():
                return current  # another process already replaced the refused credential
            return strategy.refresh(provider, current or rejected)

        try:
            renewed = self.store.update(provider.id, change)
        except SigError as err:
            self._log(f"{provider.id}: renewal after 401 failed ({err.code})")
            return None
        if renewed is None or renewed.revealed() == rejected.revealed():
            return None
        self._log(f"{provider.id}: renewed after the server refused the credential")
        return renewed

    def renew_in_browser(self, provider: Provider, browser_cfg: dict[str, Any] | None,
                         ahead_ms: int = 0) -> Credential:
        """Renew a credential that came from a browser login with a headless login (never a window, never a
        prompt), restoring the session cookies kept in it. For the watch loop only: `credential()` never
        starts a browser. `browser_cfg` is the config's browser section, None under `mode: browserless`.
        Single flight across sig processes, as `_refresh`: the one that takes the provider's lock logs in,
        the others wait and use its result. Any failure leaves the stored credential as it was and raises:
        BROWSER_TIMEOUT when the site wants a person (within browser.headlessTimeout once the browser runs),
        BROWSER_UNAVAILABLE when a headless login cannot renew this credential on this machine."""
        from .strategies.browser import headless_login, headless_timeout_s, renews_in_browser

        ttl = provider.ttl_ms
        how = f"run: sig login {provider.login_target()}"
        if browser_cfg is None:
            raise SigError(ErrorCode.BROWSER_UNAVAILABLE,
                           f'"{provider.id}" needs a browser login and this machine is set up without a browser '
                           "(mode: browserless)", f"{how} on a machine with a browser, then sig sync push")
        cfg = browser_cfg

        def needs_renewal(current: Credential | None) -> bool:
            if current is None or not current.values:
                return False  # logged out meanwhile: there is nothing to renew, and no login to restore
            if current.is_valid(ttl, now_ms() + ahead_ms):
                self._log(f"{provider.id}: renewed by another sig process meanwhile")
                return False
            if not renews_in_browser(provider, current, cfg):
                raise SigError(ErrorCode.BROWSER_UNAVAILABLE,
                               f'the credential of "{provider.id}" cannot be renewed by a headless browser login',
                               how)
            return True

        def change(current: Credential | None) -> Credential | None:
            self._log(f"{provider.id}: renewing with a headless browser login")
            return headless_login(provider, current, cfg, self._log)

        # Waiters wait for the whole of another process's attempt: its browser start and headlessTimeout.
        from .browser_login import LAUNCH_BUDGET_S

        wait_s = headless_timeout_s(cfg) + LAUNCH_BUDGET_S + 30.0
        result = self.store.renew_once(provider.id, needs_renewal, change, timeout_s=wait_s)
        if result is None or not result.values:
            raise self._not_found(provider)
        if not result.is_valid(ttl):
            raise SigError(ErrorCode.CREDENTIAL_EXPIRED, f'the credential for "{provider.id}" expired', how)
        return result

    def status(self, provider: Provider) -> dict[str, Any]:
        """The original's ProviderStatus: {id, name, configured, valid, strategy, expiresAt?, expiresInMinutes?}."""
        out: dict[str, Any] = {"id": provider.id, "name": provider.name, "configured": False, "valid": False,
                               "strategy": provider.strategy}
        try:
            credential = self.stored(provider)
        except SigError as err:
            out["error"] = err.message
            return out
        if credential is None:
            return out
        out["configured"] = True
        out["valid"] = credential.is_valid(provider.ttl_ms)
        if credential.oauth2 and ("refreshToken" in credential.oauth2 or "clientSecret" in credential.oauth2):
            out["renewable"] = True  # sig get/request/run renew it silently when it expires
        expiry = credential.expiry_ms(provider.ttl_ms)
        if expiry is not None:
            out["expiresAt"] = iso_from_ms(expiry)
            out["expiresInMinutes"] = max(0, round((expiry - now_ms()) / 60000))
        return out
