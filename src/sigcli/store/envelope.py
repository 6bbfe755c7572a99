"""AES-256-GCM envelope, byte-compatible with the original: 12-byte IV, tag stored apart, no AAD.

No associated data, on purpose: the original sigcli and its SDKs (`sigcli-sdk` on PyPI, `@sigcli/sdk`)
decrypt with none (`AESGCM(key).decrypt(iv, ciphertext + tag, None)`), so a file sealed with the
provider id as AAD fails their tag check (InvalidTag). A file is bound to its provider instead by the
`providerId` inside the authenticated plaintext, which the store checks against the id it asked for
(`credentials.py`): changing it needs the key, as forging AAD-bound data would."""

from __future__ import annotations

from ..core.errors import ErrorCode, SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def is_envelope(data: Any) -> bool:
    """Whether parsed JSON is a sealed envelope."""
    return (
        isinstance(data, dict)
        and data.get("encrypted") is True
        and data.get("version") == 1
        and data.get("algorithm") == "aes-256-gcm"
        and all(isinstance(data.get(k), str) for k in ("iv", "authTag", "ciphertext"))
    )


def aesgcm() -> type[AESGCM]:
    """`cryptography`'s AESGCM class, imported from the compiled binding that defines it.

    The public module (`cryptography.hazmat.primitives.ciphers.aead`) only re-exports this class, but
    importing it runs the `ciphers` package's Python wrappers (enum, typing, re, the other algorithms):
    about 17 ms of start-up against 4 ms for the binding alone, on `sig get`'s path. Same class, same code;
    `tests/unit/test_unit_envelope.py` checks that they are one object, so an upgrade that moves it shows up
    there, and the public import stays as the fallback."""
    try:
        from cryptography.hazmat.bindings._rust import openssl

        return openssl.aead.AESGCM
    except (ImportError, AttributeError):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM


def seal(plaintext: bytes, key: bytes) -> dict[str, Any]:
    """`plaintext` encrypted with AES-256-GCM under `key`, as an envelope dict."""
    import base64
    import os

    iv = os.urandom(12)
    sealed = aesgcm()(key).encrypt(iv, plaintext, None)
    return {
        "version": 1,
        "encrypted": True,
        "algorithm": "aes-256-gcm",
        "iv": base64.b64encode(iv).decode("ascii"),
        "authTag": base64.b64encode(sealed[-16:]).decode("ascii"),
        "ciphertext": base64.b64encode(sealed[:-16]).decode("ascii"),
    }


def unseal(envelope: dict[str, Any], key: bytes, what: str, hint: str) -> bytes:
    """Decrypt an envelope; `what` names the file in errors (never its content)."""
    import binascii

    try:
        iv = binascii.a2b_base64(envelope["iv"])
        tag = binascii.a2b_base64(envelope["authTag"])
        ciphertext = binascii.a2b_base64(envelope["ciphertext"])
    except (binascii.Error, ValueError):
        raise SigError(ErrorCode.STORAGE_ERROR, f"{what} is damaged (bad base64 in its envelope)", hint) from None
    if len(iv) != 12 or len(tag) != 16:
        raise SigError(ErrorCode.STORAGE_ERROR, f"{what} is damaged (bad IV or tag length)", hint)
    try:
        return aesgcm()(key).decrypt(iv, ciphertext + tag, None)
    except Exception as exc:
        # Imported here, not above: `cryptography.exceptions` costs start-up, and only a failure needs it.
        from cryptography.exceptions import InvalidTag

        if not isinstance(exc, InvalidTag):
            raise
    raise SigError(
        ErrorCode.STORAGE_ERROR,
        f"{what} cannot be decrypted: it was sealed with a different encryption key, or it was altered",
        hint,
    )
