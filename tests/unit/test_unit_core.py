"""core/duration.py, core/secret.py, core/errors.py, core/model.py, core/timeutil.py."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from sigcli.core.duration import format_expiry, parse_duration_ms
from sigcli.core.errors import ErrorCode, SigError, exit_code_for, usage_error
from sigcli.core.model import Credential, Provider
from sigcli.core.secret import Secret
from sigcli.core.timeutil import iso_from_ms, ms_from_iso

# -- duration ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("100ms", 100),
        ("30s", 30_000),
        ("5m", 300_000),
        ("2h", 7_200_000),
        ("24h", 86_400_000),
        ("7d", 604_800_000),
        ("0m", 0),
        ("1.5h", 5_400_000),
        (" 5M ", 300_000),
        ("10m", 600_000),
    ],
)
def test_parse_duration_ms(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize(
    "text",
    [
        "", " ", "h", "ms", "5", "2 hours", "two hours", "-5m", "+5m", "5mm", "5x", "1e3s", ".5h", "5.h",
        "5.5.5m", "m5", "²m", "５m", "1_000s", None, 5, 5.0, ["5m"],
    ],
)
def test_parse_duration_ms_invalid_is_none(text: object) -> None:
    assert parse_duration_ms(text) is None


@pytest.mark.parametrize(
    ("minutes", "text"),
    [
        (0, "~0m"),
        (1, "~1m"),
        (59, "~59m"),
        (60, "~1h"),
        (119, "~1h"),
        (1439, "~23h"),
        (1440, "~1d"),
        (43199, "~29d"),
        (43200, "~1mo"),
        (573304, "~13mo"),
    ],
)
def test_format_expiry_pinned(minutes: int, text: str) -> None:
    assert format_expiry(minutes) == text


# -- secret --------------------------------------------------------------------------------------------

VALUE = "tok-FAKE-unit-9876"


def test_secret_never_prints_its_value() -> None:
    s = Secret(VALUE)
    printf_style = "%s" % (s,)  # noqa: UP031 - the old-style formatting path must hide it too
    for text in (repr(s), str(s), f"{s}", f"{s!r}", printf_style, repr([s]), repr({"k": s}), str((s,))):
        assert VALUE not in text
        assert "****" in text


def test_secret_reveal_and_value_semantics() -> None:
    s = Secret(VALUE)
    assert s.reveal() == VALUE
    assert s == Secret(VALUE)
    assert s != Secret("other")
    assert s != VALUE  # never equal to the bare string: no accidental comparisons with plain text
    assert len(s) == len(VALUE)
    assert bool(s) and not bool(Secret(""))
    assert len({Secret("a"), Secret("a")}) == 1


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_secret_refuses_pickling(protocol: int) -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Secret(VALUE), protocol=protocol)
    with pytest.raises(TypeError):
        pickle.dumps({"nested": [Secret(VALUE)]}, protocol=protocol)


def test_secret_refuses_copy_via_reduce() -> None:
    with pytest.raises(TypeError):
        copy.copy(Secret(VALUE))


def test_secret_has_no_dict_to_leak() -> None:
    s = Secret(VALUE)
    assert not hasattr(s, "__dict__")
    with pytest.raises(TypeError):
        json.dumps({"k": s})


# -- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "exit_code"),
    [
        (ErrorCode.PROVIDER_NOT_FOUND, 2),
        (ErrorCode.CREDENTIAL_NOT_FOUND, 3),
        (ErrorCode.CREDENTIAL_EXPIRED, 3),
        (ErrorCode.REFRESH_FAILED, 3),
        (ErrorCode.REMOTE_NOT_FOUND, 4),
        (ErrorCode.GENERAL_ERROR, 1),
        (ErrorCode.USAGE_ERROR, 1),
        (ErrorCode.CONFIG_ERROR, 1),
        (ErrorCode.STORAGE_ERROR, 1),
        (ErrorCode.CREDENTIAL_TYPE_MISMATCH, 1),
        (ErrorCode.BROWSER_LAUNCH_ERROR, 1),
        (ErrorCode.BROWSER_TIMEOUT, 1),
        (ErrorCode.BROWSER_UNAVAILABLE, 1),
        (ErrorCode.MANUAL_SETUP_REQUIRED, 1),
        (ErrorCode.SYNC_CONFLICT, 1),
        (ErrorCode.SYNC_ERROR, 1),
        (ErrorCode.NOT_AVAILABLE, 1),
        ("SOMETHING_NEW", 1),
    ],
)
def test_exit_code_mapping(code: str, exit_code: int) -> None:
    assert exit_code_for(code) == exit_code
    assert SigError(code, "m").exit_code == exit_code


def test_exit_codes_stay_within_0_to_4() -> None:
    codes = [v for k, v in vars(ErrorCode).items() if k.isupper()]
    assert codes, "ErrorCode lists its codes as class attributes"
    for code in codes:
        assert code == getattr(ErrorCode, code)  # codes serialise as themselves
        assert 1 <= exit_code_for(code) <= 4


def test_sig_error_fields() -> None:
    err = SigError(ErrorCode.CONFIG_ERROR, "bad config", "run `sig doctor`")
    assert str(err) == "bad config"
    assert err.to_dict() == {"code": "CONFIG_ERROR", "message": "bad config", "hint": "run `sig doctor`"}
    assert list(err.to_dict()) == ["code", "message", "hint"]
    usage = usage_error("nope", "try --help")
    assert usage.code == ErrorCode.USAGE_ERROR and usage.hint == "try --help" and usage.exit_code == 1


# -- timeutil ------------------------------------------------------------------------------------------


def test_iso_round_trip() -> None:
    assert iso_from_ms(0) == "1970-01-01T00:00:00.000Z"
    ms = 1_795_417_591_655
    text = iso_from_ms(ms)
    assert text == "2026-11-23T07:06:31.655Z"
    assert ms_from_iso(text) == ms


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-11-23T07:06:31.655Z", 1_795_417_591_655),
        ("2026-11-23T07:06:31Z", 1_795_417_591_000),
        ("2026-11-23T08:06:31.655+01:00", 1_795_417_591_655),
        ("2026-11-23T07:06:31.6551234Z", 1_795_417_591_655),
    ],
)
def test_ms_from_iso(text: str, ms: int) -> None:
    assert ms_from_iso(text) == ms


@pytest.mark.parametrize("text", [None, "", "yesterday", "2026-13-45T99:99:99Z", "2026-11-23", 12345])
def test_ms_from_iso_unreadable(text: object) -> None:
    assert ms_from_iso(text) is None


# -- model ---------------------------------------------------------------------------------------------

UPDATED = "2026-11-23T07:06:31.655Z"
UPDATED_MS = 1_795_417_591_655
HOUR = 3_600_000


def _cred(**kw: object) -> Credential:
    args: dict[str, object] = {
        "provider_id": "p",
        "strategy": "prompt",
        "values": {"token": Secret("tok-FAKE-0001")},
        "updated_at": UPDATED,
    }
    args.update(kw)
    return Credential(**args)  # type: ignore[arg-type]


def test_to_payload_minimal_key_order() -> None:
    payload = _cred().to_payload()
    assert list(payload) == ["version", "providerId", "strategy", "updatedAt", "values"]
    assert payload == {
        "version": 2,
        "providerId": "p",
        "strategy": "prompt",
        "updatedAt": UPDATED,
        "values": {"token": "tok-FAKE-0001"},
    }


def test_to_payload_full_key_order_and_extras_last() -> None:
    cred = _cred(
        strategy="oauth2",
        values={"access_token": Secret("oauth-access-token-0000")},
        expires_at="2026-11-23T08:06:31.655Z",
        oauth2={"clientId": Secret("bench-client"), "clientSecret": Secret("bench-secret-0000")},
        extra={"credentialType": "bearer", "refreshToken": "r-FAKE", "version": 99, "values": "clobber"},
    )
    payload = cred.to_payload()
    assert list(payload) == [
        "version", "providerId", "strategy", "updatedAt", "expiresAt", "values", "oauth2",
        "credentialType", "refreshToken",
    ]
    # Extras never override the original's keys.
    assert payload["version"] == 2
    assert payload["values"] == {"access_token": "oauth-access-token-0000"}
    assert payload["oauth2"] == {"clientId": "bench-client", "clientSecret": "bench-secret-0000"}
    json.dumps(payload)  # plain JSON types only


def test_values_stay_a_flat_string_map() -> None:
    payload = _cred(values={"a": Secret("1"), "b": Secret("")}).to_payload()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in payload["values"].items())


def test_from_payload_round_trip() -> None:
    payload = {
        "version": 2,
        "providerId": "local-oauth",
        "strategy": "oauth2",
        "updatedAt": UPDATED,
        "expiresAt": "2026-11-23T08:06:31.655Z",
        "values": {"access_token": "oauth-access-token-0000"},
        "oauth2": {"clientId": "bench-client", "clientSecret": "bench-secret-0000"},
        "credentialType": "bearer",
    }
    cred = Credential.from_payload(payload)
    assert cred.provider_id == "local-oauth"
    assert isinstance(cred.values["access_token"], Secret)
    assert cred.oauth2 is not None and isinstance(cred.oauth2["clientSecret"], Secret)
    assert cred.extra == {"credentialType": "bearer"}
    assert cred.to_payload() == payload
    assert list(cred.to_payload()) == list(payload)
    assert "oauth-access-token-0000" not in repr(cred)


def test_from_payload_accepts_v1_credentials_map() -> None:
    cred = Credential.from_payload(
        {
            "version": 1,
            "providerId": "local-tls",
            "strategy": "prompt",
            "updatedAt": "2026-01-01T00:00:00.000Z",
            "credentials": {"session": "sess-FAKE-LEGACY-0005"},
        }
    )
    assert cred.revealed() == {"session": "sess-FAKE-LEGACY-0005"}
    payload = cred.to_payload()
    assert payload["version"] == 2
    assert "credentials" not in payload
    assert payload["values"] == {"session": "sess-FAKE-LEGACY-0005"}


def test_from_payload_defaults() -> None:
    cred = Credential.from_payload({"version": 2, "providerId": "x", "values": {"k": "v", "n": None, "i": 5}})
    assert cred.strategy == "unknown"
    assert cred.revealed() == {"k": "v", "i": "5"}  # None dropped, numbers become strings
    assert cred.oauth2 is None
    assert cred.expires_at is None
    assert ms_from_iso(cred.updated_at) is not None


def test_expiry_ms() -> None:
    assert _cred().expiry_ms(None) is None
    assert _cred().expiry_ms(2 * HOUR) == UPDATED_MS + 2 * HOUR
    # A stored expiresAt wins over the provider's ttl.
    stored = _cred(expires_at="2026-11-23T08:06:31.655Z")
    assert stored.expiry_ms(24 * HOUR) == UPDATED_MS + HOUR
    assert stored.expiry_ms(None) == UPDATED_MS + HOUR


def test_is_valid_with_ttl() -> None:
    cred = _cred()
    ttl = 2 * HOUR
    assert cred.is_valid(None, at_ms=UPDATED_MS + 1000 * 24 * HOUR)  # no ttl: never expires
    assert cred.is_valid(ttl, at_ms=UPDATED_MS)
    assert cred.is_valid(ttl, at_ms=UPDATED_MS + ttl - 1)
    assert not cred.is_valid(ttl, at_ms=UPDATED_MS + ttl)
    assert not cred.is_valid(ttl, at_ms=UPDATED_MS + ttl + 1)


def test_is_valid_with_expires_at() -> None:
    cred = _cred(expires_at="2026-11-23T08:06:31.655Z")
    assert cred.is_valid(None, at_ms=UPDATED_MS + HOUR - 1)
    assert not cred.is_valid(None, at_ms=UPDATED_MS + HOUR)


def test_is_valid_needs_a_non_empty_value() -> None:
    assert not _cred(values={}).is_valid(None, at_ms=UPDATED_MS)
    assert not _cred(values={"token": Secret("")}).is_valid(None, at_ms=UPDATED_MS)
    assert _cred(values={"a": Secret(""), "b": Secret("x")}).is_valid(None, at_ms=UPDATED_MS)


def test_provider_accessors() -> None:
    p = Provider({"id": "p", "domains": ["a.example.com"], "ttl": "2h"})
    assert p.name == "p"
    assert p.strategy == "browser"
    assert p.ttl_ms == 2 * HOUR
    assert p.login_target() == "p"
    assert Provider({"id": "q", "ttl": "0m"}).ttl_ms is None
    assert Provider({"id": "q", "ttl": "2 hours"}).ttl_ms is None
    assert Provider({"id": "q", "entryUrl": "https://q.example/"}).login_target() == "https://q.example/"
