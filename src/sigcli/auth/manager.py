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

    from .base import LoginContext


class AuthManager:
    def __init__(self, store: CredentialStore, log: Callable[[str], None] | None = None) -> None:
        self.store = store
        self._log = log or (lambda _m: None)

    def stored(self, provider: Provider) -> Credential | None:
        return self.store.read(provider.id)

    def credential(self, provider: Provider) -> Credential:
        """A credential that is valid now, or a SigError saying what to run. Never opens a browser or prompts."""
        credential = self.stored(provider)
        if credential is None or not credential.values:
            raise SigError(
                ErrorCode.CREDENTIAL_NOT_FOUND,
                f'no credential stored for "{provider.id}"',
                f"run: sig login {provider.login_target()}",
            )
        if credential.is_valid(provider.ttl_ms):
            self._log(f"{provider.id}: stored credential is valid")
            return credential
        refreshed = strategy_for(provider.strategy).refresh(provider, credential)
        if refreshed is not None:
            return refreshed
        raise SigError(
            ErrorCode.CREDENTIAL_EXPIRED,
            f'the credential for "{provider.id}" expired'
            + (f" at {iso_from_ms(exp)}" if (exp := credential.expiry_ms(provider.ttl_ms)) else ""),
            f"run: sig login {provider.login_target()}",
        )

    def renew(self, provider: Provider, rejected: Credential) -> Credential | None:
        """After a server refused `rejected` (401): a renewed credential if the strategy can make one
        without the user, else None. The stored credential is replaced only by a new one, never deleted."""
        renewed = strategy_for(provider.strategy).refresh(provider, rejected)
        if renewed is not None:
            self._log(f"{provider.id}: renewed after the server refused the credential")
        return renewed

    def login(self, provider: Provider, ctx: LoginContext) -> Credential:
        """Authenticate and store. The old credential stays untouched unless the new one is complete."""
        strategy = strategy_for(provider.strategy)
        self._log(f"{provider.id}: authenticating via {provider.strategy}")
        credential = strategy.authenticate(provider, ctx)
        self.store.write(credential)
        return credential

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
        expiry = credential.expiry_ms(provider.ttl_ms)
        if expiry is not None:
            out["expiresAt"] = iso_from_ms(expiry)
            out["expiresInMinutes"] = max(0, round((expiry - now_ms()) / 60000))
        return out
