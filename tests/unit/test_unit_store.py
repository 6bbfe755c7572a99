"""store/: the key file, AES-GCM envelopes byte-compatible with the original, atomic files, locks, the store."""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import runpy
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sigcli.core.errors import ErrorCode, SigError
from sigcli.core.model import Credential
from sigcli.core.secret import Secret
from sigcli.store.credentials import CredentialStore
from sigcli.store.envelope import is_envelope, seal, unseal
from sigcli.store.files import atomic_write, ensure_dir, file_lock, read_file
from sigcli.store.keyfile import create_key, load_key

ENVELOPE_KEYS = ["version", "encrypted", "algorithm", "iv", "authTag", "ciphertext"]
UPSTREAM_IDS = ["local-basic", "local-http", "local-oauth", "local-tls"]
WORKER = Path(__file__).resolve().parent / "_store_worker.py"


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def upstream_home(tmp_path: Path, fixtures_dir: Path) -> Path:
    """A writable copy of the original's ~/.sig (key 0400, credential files 0600)."""
    home = tmp_path / "upstream" / ".sig"
    shutil.copytree(fixtures_dir / "sig-home" / ".sig", home)
    for dirpath, _dirnames, filenames in os.walk(home):
        os.chmod(dirpath, 0o700)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o600)
    os.chmod(home / "encryption.key", 0o400)
    return home


def _store(home: Path, log: list[str] | None = None) -> CredentialStore:
    return CredentialStore(str(home / "credentials"), str(home / "encryption.key"), log.append if log is not None else None)


@pytest.fixture
def fresh_home(tmp_path: Path) -> Path:
    """A SIG_HOME path that does not exist yet."""
    return tmp_path / "fresh" / ".sig"


def _cred(pid: str = "jira-example", **values: str) -> Credential:
    return Credential(
        pid, "cookie", {k: Secret(v) for k, v in (values or {"cookie": "sid=FAKE-unit-0001"}).items()},
        updated_at="2026-11-23T07:06:31.655Z",
    )


@pytest.fixture
def restore_umask() -> Iterator[None]:
    old = os.umask(0o022)
    os.umask(old)
    try:
        yield
    finally:
        os.umask(old)


# -- reading what the original wrote ---------------------------------------------------------------------


@pytest.mark.parametrize("pid", UPSTREAM_IDS)
def test_reads_upstream_envelopes(upstream_home: Path, fixtures_dir: Path, pid: str) -> None:
    plain = (fixtures_dir / "decrypted" / f"{pid}.plain.json").read_bytes()
    cred = _store(upstream_home).read(pid)
    assert cred is not None
    expected = json.loads(plain)
    payload = cred.to_payload()
    assert payload == expected
    assert list(payload) == list(expected)
    # Re-serialised like the original (JSON.stringify(obj, null, 2)), the payload is byte-identical.
    assert json.dumps(payload, indent=2, ensure_ascii=False).encode() == plain
    # And the raw plaintext inside the envelope is exactly the fixture.
    key = load_key(str(upstream_home / "encryption.key"))
    assert key is not None and len(key) == 32
    envelope = json.loads((upstream_home / "credentials" / f"{pid}.json").read_bytes())
    assert list(envelope) == ENVELOPE_KEYS
    assert unseal(envelope, key, "x", "y") == plain


def test_list_upstream_credentials(upstream_home: Path) -> None:
    listing = _store(upstream_home).list()
    assert [name for name, _, _ in listing] == UPSTREAM_IDS  # lock files are not credentials
    assert all(cred is not None and err is None for _, cred, err in listing)
    assert all(_store(upstream_home).is_sealed(pid) for pid in UPSTREAM_IDS)


def test_reads_python_written_envelope(upstream_home: Path, fixtures_dir: Path) -> None:
    written = fixtures_dir / "python-written"
    shutil.copyfile(written / "local-http.json", upstream_home / "credentials" / "local-http.json")
    cred = _store(upstream_home).read("local-http")
    assert cred is not None
    assert cred.to_payload() == json.loads((written / "local-http.plain.json").read_bytes())
    assert cred.revealed() == {"token": "tok-FAKE-PYTHON-0004"}


def test_reads_legacy_plaintext_without_a_key_and_seals_it_on_write(fresh_home: Path, fixtures_dir: Path) -> None:
    # Before anything was ever sealed (no key yet), a plain file is read with a warning, as the original does.
    target = fresh_home / "credentials" / "local-tls.json"
    target.parent.mkdir(parents=True)
    shutil.copyfile(fixtures_dir / "python-written" / "local-tls.legacy-unencrypted.json", target)
    target.chmod(0o600)  # as the original writes it (sig refuses credential files others can read)
    log: list[str] = []
    store = _store(fresh_home, log)
    assert not store.is_sealed("local-tls")
    cred = store.read("local-tls")
    assert cred is not None
    assert cred.revealed() == {"session": "sess-FAKE-LEGACY-0005"}
    assert cred.updated_at == "2026-01-01T00:00:00.000Z"
    assert any("legacy" in message for message in log)

    store.write(cred)

    assert store.is_sealed("local-tls")
    raw = target.read_bytes()
    assert b"sess-FAKE-LEGACY-0005" not in raw
    envelope = json.loads(raw)
    assert list(envelope) == ENVELOPE_KEYS
    again = _store(fresh_home).read("local-tls")
    assert again is not None
    payload = again.to_payload()
    assert payload["version"] == 2
    assert payload["values"] == {"session": "sess-FAKE-LEGACY-0005"}
    assert "credentials" not in payload
    assert _mode(target) == 0o600


def test_refuses_plaintext_once_a_key_exists_until_adopted(upstream_home: Path, fixtures_dir: Path) -> None:
    target = upstream_home / "credentials" / "local-tls.json"
    shutil.copyfile(fixtures_dir / "python-written" / "local-tls.legacy-unencrypted.json", target)
    store = _store(upstream_home)
    with pytest.raises(SigError) as info:
        store.read("local-tls")
    assert info.value.code == ErrorCode.STORAGE_ERROR
    assert str(target) in info.value.message and "not sealed" in info.value.message
    assert "--adopt-unsealed" in info.value.hint and f"rm {target}" in info.value.hint
    assert "sess-FAKE-LEGACY-0005" not in info.value.message + info.value.hint
    listed = {stem: err for stem, _cred, err in store.list()}
    assert listed["local-tls"] is not None

    adopted = store.adopt_unsealed("local-tls")

    assert adopted is not None and adopted.revealed() == {"session": "sess-FAKE-LEGACY-0005"}
    assert store.is_sealed("local-tls") and b"sess-FAKE-LEGACY-0005" not in target.read_bytes()
    again = _store(upstream_home).read("local-tls")
    assert again is not None and again.revealed() == {"session": "sess-FAKE-LEGACY-0005"}
    assert [p.name for p in target.parent.iterdir() if "unreadable" in p.name] == []


# -- what we write ---------------------------------------------------------------------------------------


def test_seal_output_format_and_plain_aesgcm_decrypts(fresh_home: Path) -> None:
    store = _store(fresh_home)
    cred = _cred(cookie="sid=FAKE-unit-0001")
    store.write(cred)
    path = fresh_home / "credentials" / "jira-example.json"
    raw = path.read_bytes()
    envelope = json.loads(raw)
    assert list(envelope) == ENVELOPE_KEYS
    assert envelope["version"] == 1
    assert envelope["encrypted"] is True
    assert envelope["algorithm"] == "aes-256-gcm"
    iv = base64.b64decode(envelope["iv"], validate=True)
    tag = base64.b64decode(envelope["authTag"], validate=True)
    ciphertext = base64.b64decode(envelope["ciphertext"], validate=True)
    assert len(iv) == 12
    assert len(tag) == 16
    # Laid out like the original's JSON.stringify(envelope, null, 2): 2-space indent, no trailing newline.
    assert raw == json.dumps(envelope, indent=2).encode()
    assert b"FAKE-unit" not in raw
    # A plain AES-GCM (no AAD) with the key file's bytes opens it.
    key = base64.b64decode((fresh_home / "encryption.key").read_bytes().strip())
    plaintext = AESGCM(key).decrypt(iv, ciphertext + tag, None)
    assert len(ciphertext) == len(plaintext)
    payload = json.loads(plaintext)
    assert list(payload) == ["version", "providerId", "strategy", "updatedAt", "values"]
    assert payload["values"] == {"cookie": "sid=FAKE-unit-0001"}
    assert plaintext == json.dumps(payload, indent=2, ensure_ascii=False).encode()


def test_each_seal_uses_a_fresh_iv() -> None:
    key = os.urandom(32)
    a, b = seal(b"same", key), seal(b"same", key)
    assert a["iv"] != b["iv"]
    assert a["ciphertext"] != b["ciphertext"]
    assert unseal(a, key, "x", "y") == unseal(b, key, "x", "y") == b"same"
    assert is_envelope(a)
    assert not is_envelope({**a, "encrypted": "true"})
    assert not is_envelope({k: v for k, v in a.items() if k != "authTag"})


def test_write_read_round_trip_with_extras(fresh_home: Path) -> None:
    store = _store(fresh_home)
    cred = Credential(
        "local-oauth", "oauth2", {"access_token": Secret("oauth-access-token-0000")},
        updated_at="2026-11-23T07:06:31.655Z", expires_at="2026-11-23T08:06:31.655Z",
        oauth2={"clientId": Secret("bench-client"), "clientSecret": Secret("bench-secret-0000")},
        extra={"credentialType": "bearer", "refreshToken": "r-FAKE"},
    )
    store.write(cred)
    back = store.read("local-oauth")
    assert back is not None
    assert back.to_payload() == cred.to_payload()
    assert list(back.to_payload()) == list(cred.to_payload())
    assert store.read("nosuch") is None


def test_file_names_are_sanitised(fresh_home: Path) -> None:
    store = _store(fresh_home)
    store.write(_cred("../evil id"))
    names = sorted(p.name for p in (fresh_home / "credentials").iterdir())
    assert names == [".._evil_id.json", ".._evil_id.json.lock"]
    assert not (fresh_home / "evil id.json").exists()
    back = store.read("../evil id")
    assert back is not None and back.provider_id == "../evil id"


def test_modes_on_a_fresh_home(fresh_home: Path, restore_umask: None) -> None:
    os.umask(0)  # modes must not depend on a permissive umask
    _store(fresh_home).write(_cred())
    assert _mode(fresh_home) == 0o700
    assert _mode(fresh_home / "credentials") == 0o700
    assert _mode(fresh_home / "credentials" / "jira-example.json") == 0o600
    assert _mode(fresh_home / "credentials" / "jira-example.json.lock") == 0o600
    key_file = fresh_home / "encryption.key"
    assert _mode(key_file) == 0o400
    raw = key_file.read_bytes()
    assert len(raw) == 45
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    assert len(base64.b64decode(raw[:-1], validate=True)) == 32
    assert [p.name for p in fresh_home.iterdir() if ".tmp." in p.name] == []


def test_existing_key_is_reused_not_replaced(upstream_home: Path) -> None:
    key_file = upstream_home / "encryption.key"
    before = key_file.read_bytes()
    store = _store(upstream_home)
    store.write(_cred())
    assert key_file.read_bytes() == before
    assert _store(upstream_home).read("local-http") is not None


def test_create_key_returns_existing_key(tmp_path: Path) -> None:
    path = str(tmp_path / "k" / "encryption.key")
    first = create_key(path)
    assert create_key(path) == first  # a second creator gets the key that won
    assert load_key(path) == first
    assert [p.name for p in (tmp_path / "k").iterdir()] == ["encryption.key"]


def test_create_key_failure_is_a_storage_error(tmp_path: Path) -> None:
    # A name that leaves no room for the temp suffix makes the first open fail, even as root.
    path = tmp_path / ("k" * 240)
    with pytest.raises(SigError) as info:
        create_key(str(path))
    _assert_clean_storage_error(info.value, str(path))
    assert list(tmp_path.iterdir()) == []


def test_a_folder_named_like_a_credential(upstream_home: Path) -> None:
    (upstream_home / "credentials" / "odd.json").mkdir()
    store = _store(upstream_home)
    with pytest.raises(SigError) as info:
        store.read("odd")
    _assert_clean_storage_error(info.value, "odd.json")
    listing = {name: err for name, _, err in store.list()}
    assert listing["odd"] is not None
    assert all(listing[pid] is None for pid in UPSTREAM_IDS)
    fds = Path("/proc/self/fd")
    if fds.is_dir():  # the failed reads do not leak descriptors
        before = len(list(fds.iterdir()))
        for _ in range(20):
            with pytest.raises(SigError):
                read_file(str(upstream_home / "credentials" / "odd.json"))
        assert len(list(fds.iterdir())) == before


def test_ensure_dir_makes_missing_parents_private(tmp_path: Path, restore_umask: None) -> None:
    os.umask(0o022)
    target = tmp_path / "a" / "b" / "c"
    ensure_dir(str(target))
    for folder in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert _mode(folder) == 0o700
    os.chmod(tmp_path / "a", 0o755)
    ensure_dir(str(target))  # existing folders keep their mode
    assert _mode(tmp_path / "a") == 0o755
    (tmp_path / "file").write_text("x")
    with pytest.raises(SigError) as info:
        ensure_dir(str(tmp_path / "file"))
    assert info.value.code == ErrorCode.STORAGE_ERROR


# -- damaged files and keys --------------------------------------------------------------------------------


def _assert_clean_storage_error(err: SigError, *needles: str) -> None:
    assert err.code == ErrorCode.STORAGE_ERROR
    for needle in needles:
        assert needle in err.message
    assert err.hint
    # Raised "from None": no chained traceback of the low-level error.
    assert err.__cause__ is None
    assert err.__suppress_context__ or err.__context__ is None


@pytest.mark.parametrize("pid", ["local-http", "local-oauth"])
def test_truncated_file_is_a_storage_error(upstream_home: Path, pid: str) -> None:
    path = upstream_home / "credentials" / f"{pid}.json"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(SigError) as info:
        _store(upstream_home).read(pid)
    _assert_clean_storage_error(info.value, str(path))
    assert "sig login" in info.value.hint
    # list() reports it and goes on with the others.
    listing = {name: err for name, _, err in _store(upstream_home).list()}
    assert listing[pid] is not None and listing[pid].code == ErrorCode.STORAGE_ERROR
    assert sum(err is None for err in listing.values()) == len(UPSTREAM_IDS) - 1


def test_tampered_ciphertext_is_a_storage_error(upstream_home: Path) -> None:
    path = upstream_home / "credentials" / "local-http.json"
    envelope = json.loads(path.read_bytes())
    data = bytearray(base64.b64decode(envelope["ciphertext"]))
    data[0] ^= 1
    envelope["ciphertext"] = base64.b64encode(bytes(data)).decode()
    path.write_text(json.dumps(envelope))
    with pytest.raises(SigError) as info:
        _store(upstream_home).read("local-http")
    _assert_clean_storage_error(info.value, str(path), "cannot be decrypted")


@pytest.mark.parametrize(
    ("field", "value"), [("iv", "AAAA"), ("authTag", "AAAA"), ("iv", "!!not base64!!")]
)
def test_bad_envelope_fields(upstream_home: Path, field: str, value: str) -> None:
    path = upstream_home / "credentials" / "local-http.json"
    envelope = json.loads(path.read_bytes())
    envelope[field] = value
    path.write_text(json.dumps(envelope))
    with pytest.raises(SigError) as info:
        _store(upstream_home).read("local-http")
    _assert_clean_storage_error(info.value, str(path), "damaged")


@pytest.mark.parametrize(
    "content", [b"[]", b'{"hello": "world"}', b'{"version": 2, "providerId": "x", "values": "flat"}']
)
def test_not_a_credential(upstream_home: Path, content: bytes) -> None:
    path = upstream_home / "credentials" / "local-http.json"
    path.write_bytes(content)
    with pytest.raises(SigError) as info:
        _store(upstream_home).read("local-http")
    _assert_clean_storage_error(info.value, str(path))


def test_file_sealed_with_another_key(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    _store_a = CredentialStore(str(creds), str(tmp_path / "a.key"))
    _store_a.write(_cred())
    other = CredentialStore(str(creds), str(tmp_path / "b.key"))
    create_key(str(tmp_path / "b.key"))
    with pytest.raises(SigError) as info:
        other.read("jira-example")
    _assert_clean_storage_error(info.value, str(creds / "jira-example.json"), "different encryption key")


@pytest.mark.parametrize("size", [31, 33, 16])
def test_key_of_wrong_length(upstream_home: Path, size: int) -> None:
    key_file = upstream_home / "encryption.key"
    os.chmod(key_file, 0o600)
    bad = base64.b64encode(os.urandom(size)) + b"\n"
    key_file.write_bytes(bad)
    with pytest.raises(SigError) as info:
        _store(upstream_home).read("local-http")
    _assert_clean_storage_error(info.value, str(key_file), "32", str(size))
    # Writing refuses too, and the damaged key is never replaced.
    with pytest.raises(SigError) as info:
        _store(upstream_home).write(_cred())
    assert info.value.code == ErrorCode.STORAGE_ERROR
    assert key_file.read_bytes() == bad
    assert not (upstream_home / "credentials" / "jira-example.json").exists()


def test_key_not_base64(tmp_path: Path) -> None:
    key_file = tmp_path / "encryption.key"
    key_file.write_bytes(b"this is not base64 at all!!\n")
    with pytest.raises(SigError) as info:
        load_key(str(key_file))
    _assert_clean_storage_error(info.value, str(key_file), "base64")


def test_missing_key_with_sealed_files_refuses_to_write(upstream_home: Path) -> None:
    key_file = upstream_home / "encryption.key"
    os.chmod(key_file, 0o600)
    key_file.unlink()
    store = _store(upstream_home)
    with pytest.raises(SigError) as info:
        store.write(_cred("brand-new"))
    assert info.value.code == ErrorCode.STORAGE_ERROR
    assert str(key_file) in info.value.message
    assert not key_file.exists()
    assert not (upstream_home / "credentials" / "brand-new.json").exists()
    with pytest.raises(SigError) as info:
        store.update("local-http", lambda _current: _cred("local-http"))
    assert info.value.code == ErrorCode.STORAGE_ERROR
    assert not key_file.exists()
    with pytest.raises(SigError) as info:
        store.read("local-http")
    _assert_clean_storage_error(info.value, str(key_file), "missing")


def test_missing_key_without_sealed_files_creates_one(tmp_path: Path, fixtures_dir: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    shutil.copyfile(fixtures_dir / "python-written" / "local-tls.legacy-unencrypted.json", creds / "local-tls.json")
    (creds / "local-tls.json").chmod(0o600)
    key_file = tmp_path / "encryption.key"
    store = CredentialStore(str(creds), str(key_file))
    store.write(_cred())
    assert key_file.exists()
    assert store.read("local-tls") is not None


def test_writing_over_an_unreadable_file_keeps_it_aside(upstream_home: Path) -> None:
    creds = upstream_home / "credentials"
    path = creds / "local-http.json"
    damaged = path.read_bytes()[:100]
    path.write_bytes(damaged)
    log: list[str] = []
    store = _store(upstream_home, log)

    store.write(_cred("local-http", token="tok-FAKE-NEW-0009"))

    asides = [p for p in creds.iterdir() if p.name.startswith("local-http.json.unreadable.")]
    assert len(asides) == 1
    suffix = asides[0].name.rsplit(".", 1)[1]
    assert len(suffix) >= 4 and all(c in "0123456789abcdef" for c in suffix)
    assert asides[0].read_bytes() == damaged
    back = store.read("local-http")
    assert back is not None and back.revealed() == {"token": "tok-FAKE-NEW-0009"}
    assert any(asides[0].name in message for message in log)
    assert [name for name, _, _ in store.list()] == UPSTREAM_IDS


def test_writing_over_a_file_sealed_with_another_key_keeps_it_aside(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    CredentialStore(str(creds), str(tmp_path / "a.key")).write(_cred())
    original = (creds / "jira-example.json").read_bytes()
    create_key(str(tmp_path / "b.key"))
    CredentialStore(str(creds), str(tmp_path / "b.key")).write(_cred(cookie="sid=NEW-FAKE"))
    asides = [p for p in creds.iterdir() if ".unreadable." in p.name]
    assert [p.read_bytes() for p in asides] == [original]


def test_update_delete_and_clear(upstream_home: Path, fixtures_dir: Path) -> None:
    store = _store(upstream_home)
    assert store.update("local-http", lambda current: current) is not None  # no change, no write
    assert store.update("nosuch", lambda current: None) is None
    assert not (upstream_home / "credentials" / "nosuch.json").exists()

    assert store.clear_values("local-oauth")
    cleared = store.read("local-oauth")
    assert cleared is not None
    expected = json.loads((fixtures_dir / "decrypted" / "local-oauth.after-logout.plain.json").read_bytes())
    payload = cleared.to_payload()
    assert {k: v for k, v in payload.items() if k != "updatedAt"} == {
        k: v for k, v in expected.items() if k != "updatedAt"
    }
    assert list(payload) == list(expected)
    assert not store.clear_values("nosuch")

    assert store.delete("local-basic")
    assert not (upstream_home / "credentials" / "local-basic.json").exists()
    assert not store.delete("local-basic")
    assert store.read("local-basic") is None


# -- files ---------------------------------------------------------------------------------------------


def test_atomic_write_replaces_with_mode(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    atomic_write(str(target), b"new")
    assert target.read_bytes() == b"new"
    assert _mode(target) == 0o600
    atomic_write(str(target), b"newer", mode=0o400)
    assert _mode(target) == 0o400
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]


def test_atomic_write_refuses_a_symlink_target(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_bytes(b"keep me")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    with pytest.raises(SigError) as info:
        atomic_write(str(link), b"evil")
    assert info.value.code == ErrorCode.STORAGE_ERROR
    assert "symbolic link" in info.value.message
    assert real.read_bytes() == b"keep me"
    assert link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "real.json"]  # no temp file left


def test_atomic_write_into_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SigError) as info:
        atomic_write(str(tmp_path / "missing" / "f"), b"x")
    assert info.value.code == ErrorCode.STORAGE_ERROR


def test_read_file_refuses_symlinks(tmp_path: Path, upstream_home: Path) -> None:
    outside = tmp_path / "outside.json"
    shutil.copyfile(upstream_home / "credentials" / "local-http.json", outside)
    (upstream_home / "credentials" / "local-http.json").unlink()
    (upstream_home / "credentials" / "local-http.json").symlink_to(outside)
    assert read_file(str(tmp_path / "nope")) is None
    with pytest.raises(SigError) as info:
        read_file(str(upstream_home / "credentials" / "local-http.json"))
    assert info.value.code == ErrorCode.STORAGE_ERROR and "symbolic link" in info.value.message
    with pytest.raises(SigError) as info:
        _store(upstream_home).read("local-http")
    assert info.value.code == ErrorCode.STORAGE_ERROR


def test_file_lock_times_out_and_releases(tmp_path: Path) -> None:
    lock = str(tmp_path / "x.lock")
    with file_lock(lock):
        start = time.monotonic()
        with pytest.raises(SigError) as info, file_lock(lock, timeout_s=0.05):
            pass
        assert info.value.code == ErrorCode.STORAGE_ERROR
        assert "timed out" in info.value.message
        assert time.monotonic() - start < 5
    with file_lock(lock, timeout_s=0.05):  # released on exit
        pass
    assert _mode(tmp_path / "x.lock") == 0o600


def test_unwritable_credentials_dir(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root bypasses file permissions")
    creds = tmp_path / "creds"
    creds.mkdir()
    os.chmod(creds, 0o500)
    try:
        store = CredentialStore(str(creds), str(tmp_path / "encryption.key"))
        with pytest.raises(SigError) as info:
            store.write(_cred())
        assert info.value.code == ErrorCode.STORAGE_ERROR
        assert str(creds) in info.value.message
    finally:
        os.chmod(creds, 0o700)


# -- concurrency ---------------------------------------------------------------------------------------


def test_concurrent_updates_from_eight_processes(tmp_path: Path) -> None:
    creds = tmp_path / "home" / "credentials"
    key = tmp_path / "home" / "encryption.key"
    workers, rounds = 8, 10
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(
            target=runpy.run_path,
            args=(str(WORKER),),
            kwargs={
                "init_globals": {"SIG_WORKER_ARGS": (str(creds), str(key), f"w{i}", rounds)},
                "run_name": "__sig_worker__",
            },
        )
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + 90
    try:
        for proc in procs:
            proc.join(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        stuck = [proc for proc in procs if proc.is_alive()]
        for proc in stuck:
            proc.kill()
            proc.join(timeout=5)
    assert not stuck, "worker processes did not finish in time"
    assert [proc.exitcode for proc in procs] == [0] * workers

    store = CredentialStore(str(creds), str(key))
    cred = store.read("shared")
    assert cred is not None
    values = cred.revealed()
    assert values["count"] == str(workers * rounds)
    log = values["log"].split(",")
    assert len(log) == workers * rounds
    assert all(log.count(f"w{i}") == rounds for i in range(workers))
    assert is_envelope(json.loads((creds / "shared.json").read_bytes()))
    assert sorted(p.name for p in creds.iterdir()) == ["shared.json", "shared.json.lock"]
    assert len(key.read_bytes()) == 45
