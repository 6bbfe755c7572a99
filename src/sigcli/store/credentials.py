"""Sealed credential store: one AES-GCM envelope per provider, atomic writes, a lock per file."""

from __future__ import annotations

import os

from ..core.errors import ErrorCode, SigError
from ..core.hosts import sanitize_filename
from ..core.jsonio import dumps, loads
from ..core.model import Credential
from ..core.timeutil import iso_from_ms
from .envelope import is_envelope, seal, unseal
from .files import atomic_write, ensure_dir, file_lock, open_lock, read_file, try_flock, wait_flock
from .keyfile import create_key, load_key

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any


class CredentialStore:
    def __init__(self, credentials_dir: str, key_path: str, log: Callable[[str], None] | None = None) -> None:
        self.dir = credentials_dir
        self.key_path = key_path
        self._key: bytes | None = None
        self._log = log or (lambda _msg: None)

    # -- the key ---------------------------------------------------------------------------------------
    def _read_key(self) -> bytes:
        if self._key is None:
            key = load_key(self.key_path)
            if key is None:
                raise SigError(
                    ErrorCode.STORAGE_ERROR,
                    f"the encryption key {self.key_path} is missing, so sealed credentials cannot be read",
                    "restore encryption.key from a backup; or remove the credential files and run `sig init` "
                    "to start over",
                )
            self._key = key
        return self._key

    def _key_for_writing(self) -> bytes:
        if self._key is not None:
            return self._key
        key = load_key(self.key_path)
        if key is None:
            sealed = [i for i in self._sealed_files()]
            if sealed:
                raise SigError(
                    ErrorCode.STORAGE_ERROR,
                    f"the encryption key {self.key_path} is missing but {len(sealed)} sealed credential file(s) "
                    f"exist in {self.dir}; a new key would make them unreadable",
                    "restore encryption.key from a backup; or move those files away and run `sig init`",
                )
            key = create_key(self.key_path)
        self._key = key
        return key

    def _sealed_files(self) -> Iterator[str]:
        for name in self._json_files():
            raw = read_file(os.path.join(self.dir, name))
            if raw is None:
                continue
            try:
                if is_envelope(loads(raw)):
                    yield name
            except ValueError:
                pass

    # -- paths -----------------------------------------------------------------------------------------
    def path_for(self, provider_id: str) -> str:
        return os.path.join(self.dir, sanitize_filename(provider_id))

    def _json_files(self) -> list[str]:
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SigError(
                ErrorCode.STORAGE_ERROR,
                f"cannot list {self.dir}: {exc.strerror}",
                f"check the permissions of {self.dir}",
            ) from None
        return sorted(n for n in names if n.endswith(".json"))

    # -- reading ---------------------------------------------------------------------------------------
    def read(self, provider_id: str) -> Credential | None:
        return self._read_path(self.path_for(provider_id), provider_id)

    def _read_path(self, path: str, label: str) -> Credential | None:
        raw = read_file(path)
        if raw is None:
            return None
        fix = f"run `sig login {label}` to replace it (the damaged file is kept aside when you do)"
        try:
            data = loads(raw)
        except ValueError:
            raise SigError(
                ErrorCode.STORAGE_ERROR, f"the credential file {path} is damaged (not valid JSON)", fix
            ) from None
        if is_envelope(data):
            plaintext = unseal(data, self._read_key(), f"the credential file {path}", fix)
            try:
                data = loads(plaintext)
            except ValueError:
                raise SigError(
                    ErrorCode.STORAGE_ERROR, f"the credential file {path} holds damaged content", fix
                ) from None
        else:
            self._log(f"storage: {label} is unencrypted (legacy); it will be sealed on the next write")
        if not isinstance(data, dict) or not data.get("version") or not data.get("providerId"):
            raise SigError(
                ErrorCode.STORAGE_ERROR, f"the credential file {path} is not a sig credential", fix
            )
        if not isinstance(data.get("values", data.get("credentials")), dict):
            raise SigError(
                ErrorCode.STORAGE_ERROR, f"the credential file {path} has no values map", fix
            )
        if not data.get("updatedAt"):
            # The original assumes "now", which makes an old file look fresh; the file's age is closer.
            try:
                data["updatedAt"] = iso_from_ms(int(os.stat(path).st_mtime * 1000))
            except OSError:
                pass
        return Credential.from_payload(data)

    def is_sealed(self, provider_id: str) -> bool:
        raw = read_file(self.path_for(provider_id))
        if raw is None:
            return False
        try:
            return is_envelope(loads(raw))
        except ValueError:
            return False

    def list(self) -> list[tuple[str, Credential | None, SigError | None]]:
        """Every credential file: (file stem, credential or None, the error that made it unreadable)."""
        out: list[tuple[str, Credential | None, SigError | None]] = []
        for name in self._json_files():
            try:
                out.append((name[:-5], self._read_path(os.path.join(self.dir, name), name[:-5]), None))
            except SigError as err:
                out.append((name[:-5], None, err))
        return out

    # -- writing ---------------------------------------------------------------------------------------
    def _lock(self, provider_id: str) -> file_lock:
        ensure_dir(self.dir)
        return file_lock(self.path_for(provider_id) + ".lock")

    def _seal_to_disk(self, credential: Credential) -> None:
        path = self.path_for(credential.provider_id)
        key = self._key_for_writing()
        if os.path.exists(path):
            try:
                self._read_path(path, credential.provider_id)
            except SigError:
                # Unreadable now (damaged, or sealed with another key) but perhaps recoverable later: keep it.
                aside = f"{path}.unreadable.{os.urandom(4).hex()}"
                try:
                    os.replace(path, aside)
                    self._log(f"storage: kept the unreadable {os.path.basename(path)} as {aside}")
                except OSError:
                    pass
        plaintext = dumps(credential.to_payload(), indent=2).encode("utf-8")
        envelope = dumps(seal(plaintext, key), indent=2).encode("ascii")
        atomic_write(path, envelope)

    def write(self, credential: Credential) -> None:
        with self._lock(credential.provider_id):
            self._seal_to_disk(credential)

    def update(
        self, provider_id: str, change: Callable[[Credential | None], Credential | None]
    ) -> Credential | None:
        """Lock, re-read, let `change` decide, write its result (if any), unlock. Returns what is stored."""
        with self._lock(provider_id):
            try:
                current = self.read(provider_id)
            except SigError:
                current = None
            new = change(current)
            if new is not None and new is not current:
                self._seal_to_disk(new)
                return new
            return current

    def renew_once(
        self,
        provider_id: str,
        needs_renewal: Callable[[Credential | None], bool],
        renew: Callable[[Credential | None], Credential | None],
        timeout_s: float = 60.0,
    ) -> Credential | None:
        """Single flight across processes. The first process takes the exclusive lock, re-reads, renews
        only if still needed and replaces the file. The others wait as readers (a shared lock, which they
        all get together once the writer is done), re-read, and are done if the credential is fresh now;
        only if it is not do they queue for the exclusive lock themselves."""
        import time

        ensure_dir(self.dir)
        lock_path = self.path_for(provider_id) + ".lock"
        deadline = time.monotonic() + timeout_s
        while True:
            fd = open_lock(lock_path)
            try:
                if not try_flock(fd, exclusive=True):
                    wait_flock(fd, False, deadline,
                               f"timed out waiting for another sig process to renew {provider_id}",
                               "try again; if it persists, run `sig doctor`")
                    current = self._read_quiet(provider_id)
                    if not needs_renewal(current):
                        return current
                    continue  # still stale (the writer failed): queue for the exclusive lock
                current = self._read_quiet(provider_id)
                if not needs_renewal(current):
                    return current
                new = renew(current)
                if new is not None and new is not current:
                    self._seal_to_disk(new)
                    return new
                return current
            finally:
                os.close(fd)

    def _read_quiet(self, provider_id: str) -> Credential | None:
        try:
            return self.read(provider_id)
        except SigError:
            return None

    def delete(self, provider_id: str) -> bool:
        path = self.path_for(provider_id)
        if not os.path.lexists(path):
            return False
        with self._lock(provider_id):
            try:
                os.unlink(path)
            except FileNotFoundError:
                return False
            except OSError as exc:
                raise SigError(
                    ErrorCode.STORAGE_ERROR,
                    f"cannot delete {path}: {exc.strerror}",
                    f"check the permissions of {self.dir}",
                ) from None
        return True

    def clear_values(self, provider_id: str) -> bool:
        """Empty `values` and drop `expiresAt`, keeping anything that lets sig renew silently (oauth2 secrets)."""

        def clear(current: Credential | None) -> Credential | None:
            if current is None:
                return None
            return Credential(
                provider_id=current.provider_id,
                strategy=current.strategy,
                values={},
                # the client's own credentials stay (sig can exchange them again); the session does not
                oauth2={k: v for k, v in current.oauth2.items() if k != "refreshToken"} if current.oauth2 else None,
                extra=_renewal_extra(current.extra),
            )

        return self.update(provider_id, clear) is not None


def _renewal_extra(extra: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in extra.items() if k in ("credentialType",)}
