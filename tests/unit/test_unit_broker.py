"""The refresh broker's decisions, with a real sealed store and a stand-in strategy (it simulates another
client rotating the refresh token at the same moment, which no real server can be made to do on cue)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sigcli.auth import manager as manager_module
from sigcli.auth.manager import AuthManager
from sigcli.auth.oauth2.token import TokenError
from sigcli.core.errors import ErrorCode, SigError
from sigcli.core.model import Credential, Provider
from sigcli.core.secret import Secret
from sigcli.core.timeutil import iso_from_ms, now_ms
from sigcli.store.credentials import CredentialStore

PROVIDER = Provider({"id": "api", "strategy": "oauth2", "domains": ["api.example.com"],
                     "oauth2": {"tokenUrl": "https://auth.example.com/token"}})


def _cred(token: str, expires_in_ms: int) -> Credential:
    # issued an hour before it expires, as a typical access token
    return Credential("api", "oauth2", {"access_token": Secret(token)},
                      updated_at=iso_from_ms(now_ms() + expires_in_ms - 3_600_000),
                      expires_at=iso_from_ms(now_ms() + expires_in_ms),
                      oauth2={"clientId": Secret("c"), "refreshToken": Secret("R-" + token)})


class StandIn:
    """refresh(): another client stores a fresh token first, then the server refuses ours."""

    def __init__(self, store: CredentialStore, outcome: str) -> None:
        self.store = store
        self.outcome = outcome
        self.calls = 0

    def refresh(self, provider: Provider, credential: Credential) -> Credential | None:
        self.calls += 1
        if self.outcome == "sibling-rotated":
            self.store._seal_to_disk(_cred("tok-from-sibling", 3_600_000))
        if self.outcome == "ok":
            return _cred("tok-renewed", 3_600_000)
        raise TokenError(ErrorCode.REFRESH_FAILED, "refused: invalid_grant", "log in again", "invalid_grant", 400)


@pytest.fixture
def store(tmp_path: Path) -> CredentialStore:
    return CredentialStore(str(tmp_path / "credentials"), str(tmp_path / "encryption.key"))


def _manager(store: CredentialStore, outcome: str, monkeypatch: pytest.MonkeyPatch) -> tuple[AuthManager, StandIn]:
    stand_in = StandIn(store, outcome)
    monkeypatch.setattr(manager_module, "strategy_for", lambda _name: stand_in)
    return AuthManager(store), stand_in


def test_invalid_grant_rereads_what_another_client_stored(store: CredentialStore,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    store.write(_cred("tok-old", -1000))
    auth, stand_in = _manager(store, "sibling-rotated", monkeypatch)
    assert auth.credential(PROVIDER).revealed() == {"access_token": "tok-from-sibling"}
    assert stand_in.calls == 1


def test_refused_refresh_keeps_the_stored_credential(store: CredentialStore,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    store.write(_cred("tok-old", -1000))
    auth, _ = _manager(store, "refused", monkeypatch)
    with pytest.raises(SigError) as info:
        auth.credential(PROVIDER)
    assert info.value.code == ErrorCode.REFRESH_FAILED
    assert "tok-old" not in info.value.message
    kept = store.read("api")
    assert kept is not None and kept.revealed() == {"access_token": "tok-old"}


def test_still_valid_token_is_used_when_early_renewal_fails(store: CredentialStore,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    store.write(_cred("tok-soon", 20_000))  # inside the 60 s skew, but not expired
    auth, stand_in = _manager(store, "refused", monkeypatch)
    assert auth.credential(PROVIDER).revealed() == {"access_token": "tok-soon"}
    assert stand_in.calls == 1


def test_fresh_token_is_not_renewed(store: CredentialStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.write(_cred("tok-fresh", 3_600_000))
    auth, stand_in = _manager(store, "ok", monkeypatch)
    assert auth.credential(PROVIDER).revealed() == {"access_token": "tok-fresh"}
    assert stand_in.calls == 0


def test_renewed_token_is_stored(store: CredentialStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.write(_cred("tok-old", -1000))
    auth, _ = _manager(store, "ok", monkeypatch)
    assert auth.credential(PROVIDER).revealed() == {"access_token": "tok-renewed"}
    stored = store.read("api")
    assert stored is not None and stored.revealed() == {"access_token": "tok-renewed"}
