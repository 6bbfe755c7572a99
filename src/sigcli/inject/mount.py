"""`sig run --mount PATH`: the variables written to a file that exists only while the child runs.

Created 0600 with O_EXCL|O_NOFOLLOW (never through a symlink, never over an existing file unless asked),
recorded under $SIG_HOME/run/ so a file left by a crash is removed by the next `sig run`.
"""

from __future__ import annotations

import os

from ..core.errors import ErrorCode, SigError

FORMATS = ("env", "dotenv", "json", "yaml")


def _valid_name(name: str) -> bool:
    return bool(name) and not name[0].isdigit() and all(c.isalnum() or c == "_" for c in name) and name.isascii()


def render(env: dict[str, str], fmt: str) -> str:
    """The variables as a file in `fmt` (env, dotenv, json, yaml); GENERAL_ERROR for a name no format can
    hold."""
    for name in env:
        if not _valid_name(name):
            raise SigError(ErrorCode.GENERAL_ERROR, f'"{name}" cannot be written as a variable name',
                           "rename the provider or value key to letters, digits and _")
    if fmt == "json":
        from ..core.jsonio import dumps

        return dumps(env, indent=2) + "\n"
    if fmt == "yaml":
        from _json import encode_basestring

        return "".join(f"{k}: {encode_basestring(v)}\n" for k, v in env.items())
    if fmt == "dotenv":
        def dq(v: str) -> str:
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace(
                "`", "\\`").replace("\n", "\\n") + '"'
        return "".join(f"{k}={dq(v)}\n" for k, v in env.items())
    # env: POSIX shell, safe to `source`: single quotes, with ' written as '\''
    return "".join("{}='{}'\n".format(k, v.replace("'", "'\\''")) for k, v in env.items())


def _registry(sig_home: str) -> str:
    return os.path.join(sig_home, "run")


def sweep_stale(sig_home: str) -> list[str]:
    """Remove mount files recorded by `sig run` processes that are gone (crash, kill -9)."""
    from ..store.files import process_exists

    removed: list[str] = []
    folder = _registry(sig_home)
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not name.endswith(".mount"):
            continue
        record = os.path.join(folder, name)
        try:
            pid = int(name.split(".")[0])
            with open(record, encoding="utf-8") as fh:
                path, ino = fh.read().rsplit("\n", 1)
        except (OSError, ValueError):
            continue
        if not 0 < pid < 2**31:
            continue  # not a record sig wrote (os.kill would raise OverflowError, or name a group)
        if process_exists(pid):
            continue  # still running
        try:
            st = os.lstat(path)
            # The inode identifies our file; with none recorded yet, ours is the one made after the record.
            ours = str(st.st_ino) == ino.strip() or (
                ino.strip() == "-" and st.st_mtime_ns >= os.lstat(record).st_mtime_ns and st.st_size == 0)
            if ours:
                os.unlink(path)
                removed.append(path)
        except OSError:
            pass
        try:
            os.unlink(record)
        except OSError:
            pass
    return removed


class MountFile:
    """A 0600 file of variables for a child, removed when it exits (and by the next run after a crash)."""

    def __init__(self, path: str, sig_home: str, force: bool = False) -> None:
        self.path = os.path.abspath(path)
        self.sig_home = sig_home
        self.force = force
        self.record = os.path.join(_registry(sig_home), f"{os.getpid()}.{os.urandom(4).hex()}.mount")
        self.created = False

    def write(self, text: str) -> None:
        """Write the file 0600 (refused through a symlinked folder or link, or over an existing file without
        force)."""
        parent = os.path.dirname(self.path)
        if os.path.realpath(parent) != os.path.normpath(parent):
            raise SigError(ErrorCode.GENERAL_ERROR, f"refusing to write {self.path}: its folder is reached "
                           "through a symbolic link", "pass the real path of the folder")
        if os.path.lexists(self.path):
            if os.path.islink(self.path):
                raise SigError(ErrorCode.GENERAL_ERROR, f"refusing to write {self.path}: it is a symbolic link",
                               "remove the link or choose another path")
            if not self.force:
                raise SigError(ErrorCode.GENERAL_ERROR, f"refusing to overwrite the existing file {self.path}",
                               "choose a new path, or pass --mount-force to replace it (it is removed afterwards)")
            os.unlink(self.path)
        from ..store.files import atomic_write, ensure_dir

        # Record first, so a crash at any later point still leaves a trace the next run can clean up.
        ensure_dir(_registry(self.sig_home))
        atomic_write(self.record, f"{self.path}\n-".encode())
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            self.remove()
            raise SigError(ErrorCode.GENERAL_ERROR, f"cannot create {self.path}: {exc.strerror}",
                           "check the folder exists and is writable") from None
        self.created = True
        try:
            atomic_write(self.record, f"{self.path}\n{os.fstat(fd).st_ino}".encode())
            data = text.encode("utf-8")
            while data:
                n = os.write(fd, data)
                data = data[n:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            self.remove()
            raise
        os.close(fd)

    def remove(self) -> None:
        """Remove the file if this run created it."""
        if self.created:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.created = False
        try:
            os.unlink(self.record)
        except FileNotFoundError:
            pass
