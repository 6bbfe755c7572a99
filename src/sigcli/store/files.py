"""Atomic, permission-restricted writes and cross-process locks (fcntl.flock) for everything under ~/.sig."""

from __future__ import annotations

import errno
import os
import stat

from ..core.errors import ErrorCode, SigError

DIR_MODE = 0o700
FILE_MODE = 0o600


def ensure_dir(path: str) -> None:
    """Create a folder (and parents) 0700. Folders that already exist keep their mode."""
    # os.makedirs applies `mode` to the last folder only; missing parents would get 0777 & ~umask.
    missing: list[str] = []
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    try:
        for folder in reversed(missing):
            try:
                os.mkdir(folder, DIR_MODE)
            except FileExistsError:
                if not os.path.isdir(folder):
                    raise
    except OSError as exc:
        raise SigError(
            ErrorCode.STORAGE_ERROR,
            f"cannot create folder {path}: {exc.strerror}",
            f"check the permissions of {os.path.dirname(path) or path}",
        ) from None


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_name(path: str) -> str:
    """`<path>.tmp.<pid>.<random>`: the writer's pid lets a later sweep tell a crashed writer's leftover
    from a live one's (the original writes `<path>.tmp.<16 hex>`, without a pid)."""
    return f"{path}.tmp.{os.getpid()}.{os.urandom(6).hex()}"


def writer_gone(temp_suffix: str) -> bool:
    """True when the pid in a temp name's suffix (`<pid>.<hex>`) names no live process."""
    pid_text, dot, _rest = temp_suffix.partition(".")
    if not dot or not pid_text.isdigit():
        return False  # not our naming: nothing is known about the writer
    pid = int(pid_text)
    return pid > 0 and not process_exists(pid)


def process_exists(pid: int) -> bool:
    """True when process `pid` exists (owned by anyone; a zombie too). A pid ≤ 0 names a process group,
    not a process, and one of 2**31 or more cannot exist: both False."""
    if not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: it exists, owned by someone else
    return True


def atomic_write(path: str, data: bytes, mode: int = FILE_MODE) -> None:
    """Write a temp file (O_EXCL, O_NOFOLLOW, `mode`), fsync, rename over `path`, fsync the folder."""
    folder = os.path.dirname(path) or "."
    tmp = temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except OSError as exc:
        raise SigError(
            ErrorCode.STORAGE_ERROR,
            f"cannot write {path}: {exc.strerror}",
            f"make sure {folder} exists and is writable by you (chmod u+rwx {folder})",
        ) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        if os.path.islink(path):
            raise SigError(
                ErrorCode.STORAGE_ERROR,
                f"refusing to replace {path}: it is a symbolic link",
                f"remove the link ({path}) and try again",
            )
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise SigError(
            ErrorCode.STORAGE_ERROR,
            f"cannot write {path}: {exc.strerror}",
            f"check free space and permissions of {folder}",
        ) from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)
    sweep_dead_writers(path)


class Guard:
    """What a file sig trusts must be: yours (or root's: root can change anything anyway) and without the
    mode bits in `forbidden`. Another user who can change the config decides where credentials are sent;
    one who can change the key or a credential file decides what is sent, or reads the key."""

    __slots__ = ("code", "forbidden", "redo", "want", "what")

    def __init__(self, what: str, forbidden: int, want: int, redo: str,
                 code: str = ErrorCode.STORAGE_ERROR) -> None:
        self.what = what  # "the credential file", "the encryption key", …
        self.forbidden = forbidden  # mode bits that must be clear
        self.want = want  # the mode to suggest
        self.redo = redo  # how to get a good file again, said in hints
        self.code = code

    def check(self, st: os.stat_result, path: str) -> None:
        """Raise (the Guard's code, with the fix) when the file is not ours or root's, or its mode has a
        forbidden bit."""
        me = os.geteuid()
        if st.st_uid not in (me, 0):
            you = _user_name(me)
            raise SigError(
                self.code,
                f"{self.what} {path} belongs to another user ({_who(st.st_uid)}), not to you ({_who(me)}); "
                "sig does not trust a file someone else can change",
                f"if it is yours, take it back: chown {you} {path} (as root); if not, move it away "
                f"(mv {path} {path}.bad), then {self.redo}",
            )
        bad = st.st_mode & self.forbidden
        if bad & 0o022:
            raise SigError(self.code, f"{self.what} {path} can be changed by other users (mode "
                           f"{st.st_mode & 0o7777:04o}), so sig does not trust it", f"chmod {self.want:o} {path}")
        if bad:
            raise SigError(self.code, f"{self.what} {path} can be read by other users (mode "
                           f"{st.st_mode & 0o7777:04o}); it must be yours alone", f"chmod {self.want:o} {path}")


def _user_name(uid: int) -> str:
    """The user's name, else the number (both work with chown)."""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def _who(uid: int) -> str:
    name = _user_name(uid)
    return f"uid {uid}" if name == str(uid) else f"{name}, uid {uid}"


def sweep_dead_writers(path: str) -> None:
    """Remove temp files of `path` (`<path>.tmp.<pid>.<hex>`) whose writer died before renaming them
    (kill -9, power loss): nothing else would. A live writer's never is (its pid still exists)."""
    folder, base = os.path.split(path)
    prefix = base + ".tmp."
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return
    for name in names:
        if name.startswith(prefix) and writer_gone(name[len(prefix):]):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass


def read_file(path: str, guard: Guard | None = None) -> bytes | None:
    """Read a regular file without following a symbolic link; None when it does not exist. With `guard`,
    refuse one that another user owns or could change (checked on the open descriptor: no race)."""
    try:
        # O_NONBLOCK: a FIFO planted under the name must give an error, not hang sig waiting for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SigError(
                ErrorCode.STORAGE_ERROR,
                f"refusing to read {path}: it is a symbolic link",
                f"replace the link with the real file ({path})",
            ) from None
        if exc.errno == errno.EACCES:
            try:
                owner = os.stat(path).st_uid
            except OSError:
                owner = -1
            if owner >= 0 and owner != os.geteuid():
                raise SigError(
                    ErrorCode.STORAGE_ERROR,
                    f"cannot read {path}: it belongs to another user ({_who(owner)}), not to you "
                    f"({_who(os.geteuid())})",
                    f"if it is yours, take it back: chown {_user_name(os.geteuid())} {path} (as root); "
                    "or run sig as the user whose files these are",
                ) from None
        raise SigError(
            ErrorCode.STORAGE_ERROR,
            f"cannot read {path}: {exc.strerror}",
            f"check the permissions of {path} (it must be a file you can read: chmod 600 {path})",
        ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SigError(
                ErrorCode.STORAGE_ERROR,
                f"cannot read {path}: it is not a regular file",
                f"move it away (mv {path} {path}.bad)" + (f", then {guard.redo}" if guard is not None else ""),
            )
        if guard is not None:
            guard.check(st, path)
        fh = os.fdopen(fd, "rb")
    except OSError as exc:
        os.close(fd)
        raise _read_error(path, exc) from None
    except SigError:
        os.close(fd)
        raise
    with fh:
        try:
            return fh.read()
        except OSError as exc:
            raise _read_error(path, exc) from None


def _read_error(path: str, exc: OSError) -> SigError:
    return SigError(
        ErrorCode.STORAGE_ERROR,
        f"cannot read {path}: {exc.strerror}",
        f"check that {path} is a regular file you can read",
    )


def open_lock(path: str) -> int:
    """A descriptor on the lock anchor `path` (created 0600, never through a symlink)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    except OSError as exc:
        raise SigError(
            ErrorCode.STORAGE_ERROR,
            f"cannot open lock file {path}: {exc.strerror}",
            f"make sure {os.path.dirname(path)} is writable by you",
        ) from None


def try_flock(fd: int, exclusive: bool = True) -> bool:
    """Take the lock without waiting; False when another holds it."""
    import fcntl

    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def wait_flock(fd: int, exclusive: bool, deadline: float, message: str, hint: str) -> None:
    """Poll for the lock until `deadline` (time.monotonic()); SigError(STORAGE_ERROR, message) after it."""
    import time

    delay = 0.002
    while not try_flock(fd, exclusive):
        if time.monotonic() >= deadline:
            raise SigError(ErrorCode.STORAGE_ERROR, message, hint)
        time.sleep(delay)
        delay = min(delay * 2, 0.01)


class file_lock:
    """Exclusive cross-process lock on `path` (created 0600). Blocks up to `timeout_s` seconds.

    A small class rather than @contextmanager: contextlib costs ~8 ms of start-up on the `sig get` path.
    """

    def __init__(self, path: str, timeout_s: float = 30.0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._fd = -1

    def __enter__(self) -> None:
        import time

        fd = open_lock(self.path)
        try:
            wait_flock(fd, True, time.monotonic() + self.timeout_s,
                       f"timed out after {self.timeout_s:.0f}s waiting for the lock {self.path}",
                       "another sig process is holding it; wait for it to finish and retry")
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def __exit__(self, *exc: object) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = -1
