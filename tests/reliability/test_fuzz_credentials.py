"""Credential files and the key file fuzzed: the sealed envelope, the payload inside it, the original's v1
plaintext files, and encryption.key.

Every input gives a clear STORAGE_ERROR (naming the file, with a hint) or a credential that works: its
values are the ones that were sealed (tampering never yields other content), and every later use of it
(status, expiry, apply rules, env variables, re-sealing) runs without an exception.
"""

from __future__ import annotations

import base64
import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from fuzz_support import (
    FORBIDDEN_STDERR,
    FUZZ,
    Bounded,
    expect_clear_error,
    mutated,
    nasty_values,
    payloads,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sigproc import Sig
from sigcli.core.errors import ErrorCode, SigError, exit_code_for
from sigcli.core.jsonio import dumps
from sigcli.core.model import Credential, Provider
from sigcli.core.timeutil import iso_from_ms
from sigcli.store.credentials import CredentialStore
from sigcli.store.envelope import seal
from sigcli.store.keyfile import create_key, decode_key, load_key

PID = "api"
# Lone surrogates: JSON can escape them ("\ud800"), no file, terminal or environment can take them.
cred_values = st.one_of(nasty_values, st.sampled_from(["\ud800", "a\udfffb", "\udbff\udfff", "ok\x00nul",
                                                       "line\r\nX-Injected: 1", "\x1b]0;title\x07"]))


class Store:
    """A credential folder and key under a temp SIG_HOME, and the files written into it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "credentials"
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.key_path = root / "encryption.key"
        if not self.key_path.exists():
            create_key(str(self.key_path))
        self.key = load_key(str(self.key_path))
        self.path = self.dir / f"{PID}.json"

    def put(self, data: bytes) -> None:
        tmp = self.dir / "incoming"
        tmp.write_bytes(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def store(self) -> CredentialStore:
        return CredentialStore(str(self.dir), str(self.key_path))


@pytest.fixture
def box(tmp_path: Path) -> Store:
    return Store(tmp_path / ".sig")


def sealed(payload: Any, key: bytes) -> dict[str, Any]:
    return seal(json.dumps(payload, allow_nan=True).encode("utf-8"), key)


def exercise(credential: Credential) -> None:
    """Use a credential that was read the way commands do; any exception here is a defect."""
    from sigcli.auth.manager import AuthManager
    from sigcli.core.apply import apply_rules
    from sigcli.core.secret_forms import secret_forms
    from sigcli.inject.env import app_env, provider_env

    assert credential.provider_id == PID
    values = credential.revealed()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())
    for text in (*values, *values.values(), credential.strategy, str(credential.updated_at)):
        text.encode("utf-8")  # printed, written to env, sealed again: must be real text
    for ttl in (None, 3_600_000):
        expiry = credential.expiry_ms(ttl)
        if expiry is not None:
            iso_from_ms(expiry)
        credential.is_valid(ttl)
    provider = Provider({"id": PID, "strategy": "api-token", "domains": ["api.example.com"], "ttl": "2h",
                         "apply": [{"in": "header", "name": "Authorization", "value": "Bearer ${token}"}],
                         "env": {"APP_TOKEN": "{token}"}})
    apply_rules(provider.apply, values)
    provider_env(provider, credential, expand_cookies=True)
    app_env(provider, credential)
    secret_forms(values)
    dumps(credential.to_payload(), indent=2).encode("utf-8")  # what a re-seal writes

    class _Store:
        def read(self, _pid: str) -> Credential:
            return credential

    dumps(AuthManager(_Store()).status(provider))  # type: ignore[arg-type]


def read(box: Store) -> Credential | None:
    """One input: a clear error or a credential that works, within the time bound."""
    with Bounded():
        try:
            credential = box.store().read(PID)
        except SigError as err:
            expect_clear_error(err, ErrorCode.STORAGE_ERROR, str(box.path))
            return None
        assert credential is not None
        exercise(credential)
    return credential


# -- the payload ----------------------------------------------------------------------------------------

@settings(FUZZ, max_examples=150)
@given(st.data())
def test_sealed_payloads_read_back_as_written(box: Store, data: st.DataObject) -> None:
    payload = data.draw(payloads(PID))
    box.put(json.dumps(sealed(payload, box.key)).encode())
    credential = read(box)
    assert credential is not None
    assert credential.revealed() == payload.get("values", payload.get("credentials"))
    assert credential.updated_at == payload["updatedAt"]
    assert credential.expires_at == payload.get("expiresAt")


@settings(FUZZ, max_examples=300)
@given(st.data())
def test_mutated_payloads_give_a_clear_error_or_work(box: Store, data: st.DataObject) -> None:
    """Wrong types at every payload field, nulls, huge numbers, deep nesting, odd text — sealed properly."""
    payload = data.draw(mutated(data.draw(payloads(PID)), cred_values))
    box.put(json.dumps(sealed(payload, box.key)).encode())
    read(box)


@settings(FUZZ, max_examples=100)
@given(st.data())
def test_payloads_that_are_not_json(box: Store, data: st.DataObject) -> None:
    """The sealed plaintext itself damaged: truncated, not UTF-8, not JSON, nested too deeply."""
    text = json.dumps(data.draw(payloads(PID))).encode()
    plaintext = data.draw(st.one_of(
        st.integers(0, len(text) - 1).map(lambda n: text[:n]),
        st.binary(max_size=64),
        st.just(b"\xff\xfe" + text),
        st.integers(100, 20_000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(100, 20_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    ))
    box.put(json.dumps(seal(plaintext, box.key)).encode())
    read(box)


# -- the envelope ----------------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _flip(text: str, at: int) -> str:
    raw = bytearray(base64.b64decode(text))
    if raw:
        raw[at % len(raw)] ^= 1 << (at % 8)
    return _b64(bytes(raw))


envelope_damage = st.one_of(
    st.tuples(st.sampled_from(["iv", "authTag", "ciphertext", "version", "encrypted", "algorithm"]), cred_values),
    st.tuples(st.sampled_from(["iv", "authTag", "ciphertext"]), st.sampled_from([
        "", "=", "====", "!!!!", "YWJj", "YWJ", "Y", "\u00e9\u00e9\u00e9\u00e9", _b64(b"x" * 8), _b64(b"x" * 11),
        _b64(b"x" * 13), _b64(b"x" * 15), _b64(b"x" * 17), _b64(b"x" * 12) + "\n", " " + _b64(b"x" * 12),
        base64.urlsafe_b64encode(b"\xfb\xff" * 6).decode(), "A" * 100_000])),
    st.tuples(st.sampled_from(["version", "encrypted", "algorithm"]),
              st.sampled_from([2, 0, "1", 1.0, True, "true", False, "aes-128-gcm", "AES-256-GCM", None])),
)


@settings(FUZZ, max_examples=300)
@given(st.data())
def test_damaged_envelopes_are_refused(box: Store, data: st.DataObject) -> None:
    """Wrong field types and lengths, bad base64, tampered tag/IV/ciphertext, wrong version/algorithm,
    fields dropped or added: a STORAGE_ERROR, or the very credential that was sealed."""
    payload = data.draw(payloads(PID))
    envelope = sealed(payload, box.key)
    for _ in range(data.draw(st.integers(1, 2))):
        op = data.draw(st.sampled_from(["set", "flip", "drop", "add", "swap"]))
        if op == "set":
            field, value = data.draw(envelope_damage)
            envelope[field] = value
        elif op == "flip":
            field = data.draw(st.sampled_from(["iv", "authTag", "ciphertext"]))
            if isinstance(envelope.get(field), str):
                try:
                    envelope[field] = _flip(envelope[field], data.draw(st.integers(0, 10_000)))
                except ValueError:
                    pass
        elif op == "drop" and envelope:
            envelope.pop(data.draw(st.sampled_from(sorted(envelope))))
        elif op == "add":
            envelope[data.draw(st.sampled_from(["extra", "aad", "providerId", "values"]))] = data.draw(cred_values)
        else:
            envelope["iv"], envelope["authTag"] = envelope.get("authTag"), envelope.get("iv")
    box.put(json.dumps(envelope, allow_nan=True).encode())
    credential = read(box)
    if credential is not None:
        assert credential.revealed() == payload.get("values", payload.get("credentials")), \
            "a damaged envelope gave other values than were sealed"


@settings(FUZZ, max_examples=150)
@given(st.data())
def test_damaged_file_bytes(box: Store, data: st.DataObject) -> None:
    """The file as bytes: truncated, a byte changed, junk appended, BOM, CRLF, another encoding."""
    payload = data.draw(payloads(PID))
    raw = json.dumps(sealed(payload, box.key), indent=data.draw(st.sampled_from([None, 2]))).encode()
    op = data.draw(st.sampled_from(["truncate", "byte", "append", "bom", "crlf", "utf16", "random", "empty"]))
    if op == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif op == "byte":
        at = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([data.draw(st.integers(0, 255))]) + raw[at + 1 :]
    elif op == "append":
        raw += data.draw(st.binary(min_size=1, max_size=16))
    elif op == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif op == "crlf":
        raw = raw.replace(b"\n", b"\r\n")
    elif op == "utf16":
        raw = raw.decode().encode("utf-16")
    elif op == "random":
        raw = data.draw(st.binary(max_size=256))
    else:
        raw = b""
    box.put(raw)
    credential = read(box)
    if credential is not None:
        assert credential.revealed() == payload.get("values", payload.get("credentials"))


# -- the original's plaintext files (no key yet) ---------------------------------------------------------

@settings(FUZZ, max_examples=200)
@given(st.data())
def test_plaintext_files_without_a_key(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    """Before any key exists sig reads the original's plain JSON files (v1 `credentials`, v2 `values`)."""
    root = tmp_path_factory.mktemp("plain") / ".sig"
    (root / "credentials").mkdir(parents=True, mode=0o700)
    payload = data.draw(payloads(PID))
    if data.draw(st.booleans()):
        payload = data.draw(mutated(payload, cred_values))
    path = root / "credentials" / f"{PID}.json"
    path.write_text(json.dumps(payload, allow_nan=True), encoding="utf-8")
    os.chmod(path, 0o600)
    store = CredentialStore(str(root / "credentials"), str(root / "encryption.key"))
    with Bounded():
        try:
            credential = store.read(PID)
        except SigError as err:
            expect_clear_error(err, ErrorCode.STORAGE_ERROR, str(path))
            return
        assert credential is not None
        exercise(credential)


# -- the key file ----------------------------------------------------------------------------------------

KEY = bytes(range(32))


@settings(FUZZ, max_examples=300)
@given(st.data())
def test_key_file_text(data: st.DataObject) -> None:
    """encryption.key as the original writes it (base64 + newline) and damaged: a 32-byte key or a clear
    STORAGE_ERROR naming the file."""
    good = base64.b64encode(KEY)
    raw = data.draw(st.one_of(
        st.sampled_from([good, good + b"\n", good + b"\r\n", b"  " + good + b" \n", good + b"\n\n"]),
        st.binary(max_size=80),
        st.integers(0, len(good) - 1).map(lambda n: good[:n]),
        st.tuples(st.integers(0, len(good) - 1), st.binary(min_size=1, max_size=3)).map(
            lambda t: good[: t[0]] + t[1] + good[t[0] + 1 :]),
        st.sampled_from([base64.b64encode(KEY * 2), base64.b64encode(KEY[:16]), base64.urlsafe_b64encode(b"\xfb" * 32),
                         good.rstrip(b"="), good + b"==", good[:20] + b"\n" + good[20:], b"\xef\xbb\xbf" + good,
                         good.decode().encode("utf-16"), b"\x00" * 45, b"A" * 1_000_000]),
    ))
    path = "/home/user/.sig/encryption.key"
    with Bounded():
        try:
            key = decode_key(raw, path)
        except SigError as err:
            expect_clear_error(err, ErrorCode.STORAGE_ERROR, path)
            return
    assert len(key) == 32
    if raw.strip() == good:
        assert key == KEY


# -- through the real `sig` --------------------------------------------------------------------------------

TOKEN = "tok-FUZZCRED-77aa31"


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Sig:
    home = tmp_path_factory.mktemp("fuzzcred") / "home"
    sig = Sig(home=home / ".sig", user_home=home)
    sig("init", "--yes", check=0)
    sig("login", "https://api.fuzz.test", "--token-stdin", "--as", PID, input=TOKEN, check=0)
    sig("login", "https://other.fuzz.test", "--token-stdin", "--as", "other", input=TOKEN + "-2", check=0)
    return sig


def _outcome(sig: Sig, args: list[str]) -> tuple[int, dict[str, Any] | None, str]:
    r = sig(*args, timeout=60)
    for bad in FORBIDDEN_STDERR:
        assert bad not in r.err, f"sig {args}: {r.err}"
    if r.code == 0:
        return 0, None, r.out
    error = json.loads(r.err.strip().splitlines()[-1])["error"]
    assert r.code == exit_code_for(error["code"]), f"exit {r.code} for {error}"
    assert error["message"] and error["hint"]
    return r.code, error, r.out


@settings(FUZZ, max_examples=40)
@given(st.data())
def test_cli_maps_credential_errors_to_spec_exit_codes(cli: Sig, data: st.DataObject) -> None:
    key = decode_key((cli.home / "encryption.key").read_bytes(), "key")
    path = cli.home / "credentials" / f"{PID}.json"
    payload = {"version": 2, "providerId": PID, "strategy": "api-token", "updatedAt": "2026-01-01T00:00:00.000Z",
               "values": {"token": "tok-FUZZ-" + data.draw(st.from_regex(r"[A-Za-z0-9]{8}", fullmatch=True))}}
    kind = data.draw(st.sampled_from(["payload", "envelope", "bytes"]))
    if kind == "payload":
        raw = json.dumps(sealed(data.draw(mutated(payload, cred_values)), key)).encode()
    elif kind == "envelope":
        envelope = sealed(payload, key)
        field, value = data.draw(envelope_damage)
        envelope[field] = value
        raw = json.dumps(envelope, allow_nan=True).encode()
    else:
        good = json.dumps(sealed(payload, key)).encode()
        raw = good[: data.draw(st.integers(0, len(good)))] + data.draw(st.binary(max_size=4))
    tmp = path.with_name("incoming")
    tmp.write_bytes(raw)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    code, error, out = _outcome(cli, ["get", PID, "--format", "json"])
    if error is not None:
        assert error["code"] in (ErrorCode.STORAGE_ERROR, ErrorCode.CREDENTIAL_NOT_FOUND,
                                 ErrorCode.CREDENTIAL_EXPIRED, ErrorCode.REFRESH_FAILED), error
        if error["code"] == ErrorCode.STORAGE_ERROR:
            assert str(path) in error["message"]
    code, error, out = _outcome(cli, ["status", "--format", "json"])
    assert code == 0
    rows = {row["id"]: row for row in json.loads(out)}
    assert rows["other"]["valid"] is True, "one damaged file broke another provider"
    _outcome(cli, ["status", PID, "--format", "json"])
    code, error, out = _outcome(cli, ["get", "other", "--format", "json"])
    assert code == 0


def test_regression_payload_examples(box: Store) -> None:
    """Payloads that broke a later use of the credential before the store checked them."""
    cases: list[Any] = [
        {"values": {"token": "\ud800"}},  # a lone surrogate: not text (printing it raised UnicodeEncodeError)
        {"values": {"token": {"nested": ["x"]}}},  # a nested value: the flat string map SPEC §2 requires
        {"values": {"token": "ab\x00cd"}},  # a NUL: `sig run` ended in "unexpected internal error" (execve)
        {"updatedAt": 10**30},
        {"expiresAt": "9999-12-31T23:59:59.999+00:01"},
    ]
    base = {"version": 2, "providerId": PID, "strategy": "api-token", "updatedAt": "2026-01-01T00:00:00.000Z",
            "values": {"token": "t0k3n-value"}}
    for change in cases:
        payload = copy.deepcopy(base)
        payload.update(change)
        box.put(json.dumps(sealed(payload, box.key)).encode())
        read(box)


@pytest.mark.parametrize("value", ["tokA\r\nX-Evil-7: 1", "tok\u20acC", "tokD\nzq8"])
def test_cli_request_with_values_headers_cannot_carry(sig_init: Sig, http_echo: Any, value: str) -> None:
    """Regression: a stored value with a line break, NUL or a character outside Latin-1 made `sig request`
    end in "unexpected internal error (ValueError)", and --verbose printed the value in the traceback."""
    sig_init("login", http_echo.url, "--token-stdin", "--as", "echo", input="tok-GOOD-1234", check=0)
    key = decode_key((sig_init.home / "encryption.key").read_bytes(), "key")
    payload = {"version": 2, "providerId": "echo", "strategy": "api-token", "updatedAt": "2026-01-01T00:00:00.000Z",
               "values": {"token": value}}
    (sig_init.home / "credentials" / "echo.json").write_text(json.dumps(sealed(payload, key)))
    r = sig_init("request", http_echo.url, "--format", "json", "--verbose", timeout=60)
    for bad in FORBIDDEN_STDERR:
        assert bad not in r.err, r.err
    assert r.code == 1 and "Authorization" in r.err
    assert not [part for part in ("X-Evil-7", "\u20ac", "zq8") if part in value and part in r.err]
    assert sig_init("status", "echo", "--format", "json").code == 0


def test_cli_run_with_a_nul_in_a_stored_value(sig_init: Sig) -> None:
    """Regression: a NUL in a stored value (`sig login` refuses one; a tampered or foreign file) made
    `sig run` end in "unexpected internal error (ValueError)" from execve, leaving its --mount file behind."""
    sig_init("login", "https://nul.example.com", "--token-stdin", "--as", "nul", input="tok-NUL-1234", check=0)
    key = decode_key((sig_init.home / "encryption.key").read_bytes(), "key")
    payload = {"version": 2, "providerId": "nul", "strategy": "api-token", "updatedAt": "2026-01-01T00:00:00.000Z",
               "values": {"token": "tokC\x00zq7"}}
    path = sig_init.home / "credentials" / "nul.json"
    path.write_text(json.dumps(sealed(payload, key)))
    mount = sig_init.user_home / "creds.env"
    r = sig_init("run", "nul", "--mount", str(mount), "--", "true", timeout=60)
    for bad in FORBIDDEN_STDERR:
        assert bad not in r.err, r.err
    assert r.code == 1 and str(path) in r.err and "zq7" not in r.err
    assert not mount.exists()
