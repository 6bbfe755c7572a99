"""The credential envelope uses `cryptography`'s AESGCM (no hand-written crypto), reached through its binding."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sigcli.core.errors import SigError
from sigcli.store import envelope


def test_the_class_used_is_cryptographys_public_aesgcm() -> None:
    # envelope.py imports the class from the compiled binding for start-up time; if a cryptography
    # release ever defines the public AESGCM elsewhere, this fails and the import must follow it.
    assert envelope.aesgcm() is AESGCM


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1000, 65537])
def test_seal_and_unseal_interoperate_with_the_public_api(size: int) -> None:
    key, plaintext = os.urandom(32), os.urandom(size)
    sealed = envelope.seal(plaintext, key)
    iv, tag, ct = (base64.b64decode(sealed[k]) for k in ("iv", "authTag", "ciphertext"))
    assert AESGCM(key).decrypt(iv, ct + tag, None) == plaintext
    iv2 = os.urandom(12)
    theirs = AESGCM(key).encrypt(iv2, plaintext, None)
    box = {"version": 1, "encrypted": True, "algorithm": "aes-256-gcm",
           "iv": base64.b64encode(iv2).decode(), "authTag": base64.b64encode(theirs[-16:]).decode(),
           "ciphertext": base64.b64encode(theirs[:-16]).decode()}
    assert envelope.unseal(box, key, "the file F", "fix") == plaintext


def test_wrong_key_or_altered_bytes_is_a_storage_error() -> None:
    key = os.urandom(32)
    sealed = envelope.seal(b'{"secret": "tok-ENVELOPE-1"}', key)
    with pytest.raises(SigError) as info:
        envelope.unseal(sealed, os.urandom(32), "the file F", "fix it")
    assert "the file F cannot be decrypted" in info.value.message
    for field in ("authTag", "ciphertext", "iv"):
        raw = bytearray(base64.b64decode(sealed[field]))
        raw[-1] ^= 1
        with pytest.raises(SigError):
            envelope.unseal(dict(sealed, **{field: base64.b64encode(raw).decode()}), key, "the file F", "fix")
