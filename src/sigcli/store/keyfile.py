"""The encryption key: base64 of 32 random bytes + newline, mode 0400, the same file the original uses."""

from __future__ import annotations

import os

from ..core.errors import ErrorCode, SigError
from .files import Guard, ensure_dir, read_file, sweep_dead_writers, temp_name

KEY_BYTES = 32
# The key is the secret behind every credential: yours alone, like an SSH private key.
KEY_GUARD = Guard("the encryption key", 0o077, 0o400,
                  "restore your key from a backup (without it, sealed credentials cannot be read: `sig init` "
                  "makes a new key, then log in again)")


def decode_key(raw: bytes, path: str) -> bytes:
    """The 32-byte key from the key file's text; STORAGE_ERROR when it is damaged."""
    import binascii

    text = raw.strip()
    try:
        key = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        raise SigError(
            ErrorCode.STORAGE_ERROR,
            f"the encryption key {path} is damaged (not valid base64)",
            "restore the key file from a backup; if it is lost, move it away and run `sig init` "
            "(credentials sealed with the old key cannot be read again)",
        ) from None
    if len(key) != KEY_BYTES:
        raise SigError(
            ErrorCode.STORAGE_ERROR,
            f"the encryption key {path} is damaged (it holds {len(key)} bytes, expected {KEY_BYTES})",
            "restore the key file from a backup; if it is lost, move it away and run `sig init` "
            "(credentials sealed with the old key cannot be read again)",
        )
    return key


def load_key(path: str) -> bytes | None:
    """The key, or None when the file does not exist. A damaged key is a STORAGE_ERROR, never replaced."""
    raw = read_file(path, KEY_GUARD)
    if raw is None:
        return None
    return decode_key(raw, path)


def create_key(path: str) -> bytes:
    """Create the key if no other process did first (link(2) makes it appear whole, or not at all)."""
    import base64

    ensure_dir(os.path.dirname(path))
    sweep_dead_writers(path)
    key = os.urandom(KEY_BYTES)
    tmp = temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise SigError(
            ErrorCode.STORAGE_ERROR,
            f"cannot create the encryption key {path}: {exc.strerror}",
            f"make sure {os.path.dirname(path)} is writable by you",
        ) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(base64.b64encode(key) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o400)
        try:
            os.link(tmp, path)
        except FileExistsError:
            existing = load_key(path)
            if existing is None:  # removed between link and read: try once more
                return create_key(path)
            return existing
    except OSError as exc:
        raise SigError(
            ErrorCode.STORAGE_ERROR,
            f"cannot create the encryption key {path}: {exc.strerror}",
            f"make sure {os.path.dirname(path)} is writable by you",
        ) from None
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    return key
