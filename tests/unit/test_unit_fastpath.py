"""The start-up fast path: JSON through _json, AES-GCM through libcrypto — same results as the stdlib/cryptography."""

from __future__ import annotations

import json
import os
import random
import string
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sigcli.core import jsonio
from sigcli.store import aead


def _value(rnd: random.Random, depth: int = 0) -> Any:
    kind = rnd.randrange(7 if depth < 4 else 5)
    if kind == 0:
        return rnd.choice([None, True, False])
    if kind == 1:
        return rnd.randrange(-(10**15), 10**15)
    if kind == 2:
        return rnd.uniform(-1e9, 1e9)
    if kind in (3, 4):
        alphabet = string.printable + "é€😀\u2028\x00\x1f\"\\"
        return "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(16)))
    if kind == 5:
        return [_value(rnd, depth + 1) for _ in range(rnd.randrange(5))]
    return {"".join(rnd.choice(string.ascii_letters + 'é"\\') for _ in range(rnd.randrange(8))): _value(rnd, depth + 1)
            for _ in range(rnd.randrange(5))}


def test_jsonio_matches_json_package() -> None:
    rnd = random.Random(7)
    for _ in range(2000):
        value = _value(rnd)
        for indent in (None, 2):
            text = json.dumps(value, indent=indent, ensure_ascii=False)
            assert jsonio.dumps(value, indent=indent) == text
            assert jsonio.loads(text) == json.loads(text)
            assert jsonio.loads(text.encode("utf-8")) == json.loads(text)
        assert jsonio.dumps_compact(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize("bad", ["", "{", "[1,]", "{} x", "NaN", "'a'", "[1] [2]", '{"a":1,}', '{"a": "x'])
def test_jsonio_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        jsonio.loads(bad)


def test_aead_matches_cryptography() -> None:
    if not aead.available():
        pytest.skip("no system libcrypto: sig falls back to cryptography")
    for size in (0, 1, 15, 16, 17, 1000, 65537):
        key, iv, plaintext = os.urandom(32), os.urandom(12), os.urandom(size)
        sealed = AESGCM(key).encrypt(iv, plaintext, None)
        assert aead.decrypt(key, iv, sealed[:-16], sealed[-16:]) == plaintext
        with pytest.raises(aead.AuthenticationFailed):
            aead.decrypt(os.urandom(32), iv, sealed[:-16], sealed[-16:])
        tampered = bytearray(sealed)
        tampered[-1] ^= 1
        with pytest.raises(aead.AuthenticationFailed):
            aead.decrypt(key, iv, bytes(tampered[:-16]), bytes(tampered[-16:]))
