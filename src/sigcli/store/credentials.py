"""Sealed credential store: one AES-GCM envelope per provider, atomic writes, a lock per file.

A file is bound to its provider by the `providerId` inside the sealed (authenticated) payload: it must
match the id asked for (and the file name), so a file copied over another provider's is refused, and
nobody without the key can forge one. AES-GCM associated data would bind it too, but the original
sigcli and its SDKs decrypt with no associated data, so they could no longer read what sig writes
(see `envelope.py`). Unsealed (plain JSON) files are refused once a key exists: anyone able to drop a
file into the folder could otherwise plant a credential."""

from __future__ import annotations

import os

from ..core.errors import ErrorCode, SigError
from ..core.hosts import sanitize_filename
from ..core.jsonio import dumps, loads
from ..core.model import Credential
from ..core.timeutil import iso_from_ms
from .envelope import is_envelope, seal, unseal
from .files import (
    Guard,
    atomic_write,
    ensure_dir,
    file_lock,
    open_lock,
    read_file,
    try_flock,
    wait_flock,
    writer_gone,
)
from .keyfile import create_key, load_key

# A temp file (`<id>.json.tmp.*`) left by a writer that died (kill -9, power loss) is removed by the next
# write in the folder when its own lock is free and its writer is gone, or it is older than this.
# The age rule covers temp names without a pid (the original sigcli's), whose writer takes another
# kind of lock (proper-lockfile) than ours; its writes take milliseconds and it calls a lock stale
# after 10 s.
STALE_TEMP_S = 60.0

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any


class CredentialStore:
    """Sealed credential files (one per provider) in one folder, with locks and atomic writes."""

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

    def ensure_key(self) -> bool:
        """Create the encryption key unless it exists (sealing plain credential files from before it).
        True when it was created. A damaged key raises: it is never replaced."""
        if load_key(self.key_path) is not None:
            return False
        self._key_for_writing()
        return True

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
            self._seal_legacy_files()
        self._key = key
        return key

    def _seal_legacy_files(self) -> None:
        """The key was just made: seal the plain files from before it (a setup that never sealed anything),
        which would be refused from now on. A file whose lock is busy is being written, so sealed anyway."""
        for name in self._json_files():
            path = os.path.join(self.dir, name)
            fd = open_lock(path + ".lock")
            try:
                if not try_flock(fd, exclusive=True):
                    continue
                raw = read_file(path)
                try:
                    if raw is None or is_envelope(loads(raw)):
                        continue
                    credential = self._read_path(path, name[:-5], None, allow_unsealed=True)
                except (SigError, ValueError):
                    continue  # damaged or another provider's: it stays refused, as it would be anyway
                if credential is not None:
                    self._seal_to_disk(credential, keep_unreadable=False)
                    self._log(f"storage: sealed the unencrypted (legacy) {name}")
            finally:
                os.close(fd)

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
        """The credential file of a provider."""
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
        """The provider's credential, or None when there is none; STORAGE_ERROR when it cannot be read."""
        return self._read_path(self.path_for(provider_id), provider_id, provider_id)

    def _key_exists(self) -> bool:
        return self._key is not None or os.path.lexists(self.key_path)

    def _read_path(self, path: str, label: str, expected_id: str | None,
                   allow_unsealed: bool = False) -> Credential | None:
        """The credential in `path`. `expected_id`: the provider it must belong to (None: whichever
        provider the file name is for)."""
        raw = read_file(path, Guard("the credential file", 0o077, 0o600, f"run `sig login {label}`"))
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
        elif allow_unsealed or not self._key_exists():
            # No key yet: files from before the original sealed anything; sealed on the next write.
            self._log(f"storage: {label} is unencrypted (legacy); it will be sealed on the next write")
        else:
            raise SigError(
                ErrorCode.STORAGE_ERROR,
                f"the credential file {path} is not sealed (plain JSON); sig refuses unsealed credential "
                "files once it has an encryption key, since anyone able to write to that folder could "
                "plant one",
                f"if you put it there yourself (e.g. from an older sigcli), seal it: sig login {label} "
                f"--adopt-unsealed; otherwise remove it (rm {path}) and run `sig login {label}`",
            )
        if not isinstance(data, dict) or not data.get("version") or not data.get("providerId"):
            raise SigError(
                ErrorCode.STORAGE_ERROR, f"the credential file {path} is not a sig credential", fix
            )
        owner = data["providerId"]
        if not isinstance(owner, str) or (
            owner != expected_id if expected_id is not None else sanitize_filename(owner) != os.path.basename(path)
        ):
            from ..core.jsonio import dumps as quote

            shown = quote(owner) if isinstance(owner, str) else "?"
            raise SigError(
                ErrorCode.STORAGE_ERROR,
                f"the credential file {path} belongs to provider {shown}, not "
                f"{quote(expected_id or os.path.basename(path)[:-5])} (copied or renamed by hand?); sig never "
                "sends one provider's credential to another's hosts",
                f"move it back to where it belongs, or remove it (rm {path}) and run `sig login {label}`",
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
        try:
            return Credential.from_payload(data)
        except ValueError as exc:  # a value that is not text: damaged, or not written by a sigcli
            raise SigError(ErrorCode.STORAGE_ERROR, f"the credential file {path} is damaged ({exc})", fix) from None

    def is_sealed(self, provider_id: str) -> bool:
        """Whether the provider's file is an encrypted envelope."""
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
                out.append((name[:-5], self._read_path(os.path.join(self.dir, name), name[:-5], None), None))
            except SigError as err:
                out.append((name[:-5], None, err))
        return out

    # -- writing ---------------------------------------------------------------------------------------
    def _lock(self, provider_id: str) -> file_lock:
        ensure_dir(self.dir)
        return file_lock(self.path_for(provider_id) + ".lock")

    def _seal_to_disk(self, credential: Credential, keep_unreadable: bool = True) -> str | None:
        """Seal `credential` over its file (the caller holds the lock). Returns where an unreadable
        previous file was kept aside, if one was."""
        path = self.path_for(credential.provider_id)
        key = self._key_for_writing()
        try:
            plaintext = dumps(credential.to_payload(), indent=2).encode("utf-8")
        except UnicodeEncodeError:
            raise SigError(
                ErrorCode.STORAGE_ERROR,
                f'a value of the credential for "{credential.provider_id}" is not valid text (not UTF-8)',
                "pass the secret as UTF-8 text",
            ) from None
        envelope = dumps(seal(plaintext, key), indent=2).encode("ascii")
        aside = None
        if keep_unreadable and os.path.lexists(path):
            try:
                self._read_path(path, credential.provider_id, credential.provider_id)
            except SigError:
                # Unreadable now (damaged, sealed with another key, another provider's, unsealed) but
                # perhaps recoverable later: keep it.
                aside = f"{path}.unreadable.{os.urandom(4).hex()}"
                try:
                    os.replace(path, aside)
                    self._log(f"storage: kept the unreadable {os.path.basename(path)} as {aside}")
                except OSError:
                    aside = None
        try:
            atomic_write(path, envelope)
        except BaseException:
            if aside is not None:
                _put_back(aside, path)
            raise
        self._sweep_stale_temps(os.path.basename(path))
        return aside

    def write(self, credential: Credential, then: Callable[[], None] | None = None) -> None:
        """Seal and store `credential`. With `then`, run it after the write while the lock is still held;
        if it fails, the previous file is put back byte for byte (or the new one removed) before the
        error goes on: a login that cannot also save its provider leaves nothing behind."""
        self._key_for_writing()  # a missing key fails here, before anything is created
        with self._lock(credential.provider_id):
            path = self.path_for(credential.provider_id)
            before = read_file(path)
            aside = self._seal_to_disk(credential)
            if then is None:
                return
            try:
                then()
            except BaseException:
                if aside is not None:
                    _put_back(aside, path)
                elif before is None:
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
                else:
                    atomic_write(path, before)
                raise

    def adopt_unsealed(self, provider_id: str) -> Credential | None:
        """Seal a provider's unsealed (plain JSON) file that the user vouches for. None when there is no
        file; a file that is sealed already is left as it is."""
        with self._lock(provider_id):
            path = self.path_for(provider_id)
            credential = self._read_path(path, provider_id, provider_id, allow_unsealed=True)
            if credential is None:
                return None
            if not self.is_sealed(provider_id):
                self._seal_to_disk(credential, keep_unreadable=False)
            return credential

    def _sweep_stale_temps(self, held: str) -> None:
        """Remove temp files that crashed writers left (the caller holds the lock of file `held`).
        Another file's temp is removed only when its lock is free right now, so a live writer's never is."""
        import time

        try:
            names = os.listdir(self.dir)
        except OSError:
            return
        now = time.time()
        for name in names:
            target, sep, suffix = name.partition(".tmp.")
            if not sep or not target.endswith(".json"):
                continue
            tmp = os.path.join(self.dir, name)
            try:
                age = now - os.lstat(tmp).st_mtime
            except OSError:
                continue
            if not (writer_gone(suffix) or age >= STALE_TEMP_S):
                continue
            if target == held:
                _unlink_quietly(tmp)
                continue
            try:
                fd = os.open(os.path.join(self.dir, target + ".lock"), os.O_RDWR | os.O_NOFOLLOW)
            except FileNotFoundError:
                if age >= STALE_TEMP_S:  # never written by sig (no lock file): only the age tells
                    _unlink_quietly(tmp)
                continue
            except OSError:
                continue
            try:
                if try_flock(fd, exclusive=True):
                    _unlink_quietly(tmp)
            finally:
                os.close(fd)

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
        """Remove the provider's credential file; True when there was one."""
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


def _put_back(aside: str, path: str) -> None:
    try:
        os.replace(aside, path)
    except OSError:
        pass


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _renewal_extra(extra: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in extra.items() if k in ("credentialType",)}
