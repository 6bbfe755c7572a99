"""AES-256-GCM decryption through the system's libcrypto, for start-up time.

`sig get`/`sig run` decrypt one small file and exit. Importing `cryptography` for that costs 15–35 ms
(its Rust module plus `typing`), more than the rest of the command. libcrypto (OpenSSL 3, present on
every Debian/Ubuntu/macOS-with-Homebrew machine) through ctypes costs about 4 ms. When it cannot be
loaded, callers fall back to `cryptography`, so behaviour never depends on this module being usable.
"""

from __future__ import annotations

_NAMES = ("libcrypto.so.3", "libcrypto.so", "libcrypto.3.dylib", "libcrypto.dylib")
_EVP_CTRL_GCM_SET_IVLEN = 0x9
_EVP_CTRL_GCM_SET_TAG = 0x11

_lib = None
_tried = False


class AuthenticationFailed(Exception):
    """The tag did not verify: wrong key or altered data."""


def _load():  # type: ignore[no-untyped-def]
    global _lib, _tried
    if _tried:
        return _lib
    _tried = True
    try:
        import ctypes
    except ImportError:
        return None
    for name in _NAMES:
        try:
            lib = ctypes.CDLL(name)
            lib.EVP_CIPHER_CTX_new.restype = ctypes.c_void_p
            lib.EVP_CIPHER_CTX_free.argtypes = [ctypes.c_void_p]
            lib.EVP_aes_256_gcm.restype = ctypes.c_void_p
            lib.EVP_DecryptInit_ex.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                               ctypes.c_char_p, ctypes.c_char_p]
            lib.EVP_CIPHER_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
            lib.EVP_DecryptUpdate.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int),
                                              ctypes.c_char_p, ctypes.c_int]
            lib.EVP_DecryptFinal_ex.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
        except (OSError, AttributeError):
            continue
        _lib = lib
        return lib
    return None


def available() -> bool:
    return _load() is not None


def decrypt(key: bytes, iv: bytes, ciphertext: bytes, tag: bytes) -> bytes | None:
    """Plaintext; None when libcrypto is unusable (the caller falls back). Raises AuthenticationFailed."""
    lib = _load()
    if lib is None or len(key) != 32 or len(tag) != 16 or not iv:
        return None
    import ctypes

    ctx = lib.EVP_CIPHER_CTX_new()
    if not ctx:
        return None
    try:
        if lib.EVP_DecryptInit_ex(ctx, lib.EVP_aes_256_gcm(), None, None, None) != 1:
            return None
        if lib.EVP_CIPHER_CTX_ctrl(ctx, _EVP_CTRL_GCM_SET_IVLEN, len(iv), None) != 1:
            return None
        if lib.EVP_DecryptInit_ex(ctx, None, None, key, iv) != 1:
            return None
        out = ctypes.create_string_buffer(len(ciphertext) + 16)
        n = ctypes.c_int(0)
        if ciphertext and lib.EVP_DecryptUpdate(ctx, out, ctypes.byref(n), ciphertext, len(ciphertext)) != 1:
            return None
        tag_buf = ctypes.create_string_buffer(tag, 16)
        if lib.EVP_CIPHER_CTX_ctrl(ctx, _EVP_CTRL_GCM_SET_TAG, 16, tag_buf) != 1:
            return None
        m = ctypes.c_int(0)
        final = ctypes.cast(ctypes.byref(out, n.value), ctypes.c_void_p)
        if lib.EVP_DecryptFinal_ex(ctx, final, ctypes.byref(m)) != 1:
            raise AuthenticationFailed()
        return out.raw[: n.value + m.value]
    finally:
        lib.EVP_CIPHER_CTX_free(ctx)
