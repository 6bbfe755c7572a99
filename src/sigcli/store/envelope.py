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


def is_envelope(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and data.get("encrypted") is True
        and data.get("version") == 1
        and data.get("algorithm") == "aes-256-gcm"
        and all(isinstance(data.get(k), str) for k in ("iv", "authTag", "ciphertext"))
    )


def seal(plaintext: bytes, key: bytes) -> dict[str, Any]:
    import base64
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    iv = os.urandom(12)
    sealed = AESGCM(key).encrypt(iv, plaintext, None)
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
    from . import aead

    try:
        plaintext = aead.decrypt(key, iv, ciphertext, tag)  # libcrypto via ctypes: keeps start-up fast
        if plaintext is not None:
            return plaintext
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            return AESGCM(key).decrypt(iv, ciphertext + tag, None)
        except InvalidTag:
            raise aead.AuthenticationFailed() from None
    except aead.AuthenticationFailed:
        raise SigError(
            ErrorCode.STORAGE_ERROR,
            f"{what} cannot be decrypted: it was sealed with a different encryption key, or it was altered",
            hint,
        ) from None
