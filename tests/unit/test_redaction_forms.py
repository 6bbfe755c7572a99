"""The forms a secret takes on the wire (core/secret_forms.py `secret_forms`) as real encoders write them, each
masked by the streaming redactor: URL-encoding families and hex case, JSON escaping families, base64 at
every alignment inside a longer stream, hex, and the minimum length of the encoded forms."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote, quote_plus

import pytest

from sigcli.core.redactor import StreamRedactor
from sigcli.core.secret_forms import MIN_ENCODED_LEN, secret_forms

MASK = b"****"
SECRETS = ["tok/LIVE+9f8e7d6c5b4a/39281706f5e4", "hunter2=abc", 'sk"quo\\ted <a&b> ~*!\'()', "pässwörd-ünï 🔑",
           "a b+c/d?e&f=g#h%i", "0123456789abcdef0123"]


def mask(text: str | bytes, secret: str) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    redactor = StreamRedactor(secret_forms({"token": secret}))
    return redactor.feed(data) + redactor.flush()


def lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}|\\u[0-9A-F]{4}", lambda m: m.group(0).lower(), text)


def upper_hex(text: str) -> str:
    return re.sub(r"%[0-9a-f]{2}|\\u[0-9a-f]{4}", lambda m: m.group(0)[:2] + m.group(0)[2:].upper()
                  if m.group(0).startswith("\\u") else m.group(0).upper(), text)


def url_encoders(secret: str) -> dict[str, str]:
    rfc = quote(secret, safe="")
    return {
        "python quote(safe='')": rfc, "python quote()": quote(secret), "python quote_plus": quote_plus(secret),
        "javascript encodeURIComponent": quote(secret, safe="!*'()~"),
        "php urlencode": quote_plus(secret, safe="").replace("~", "%7E").replace("*", "%2A"),
        "java URLEncoder": quote_plus(secret, safe="*").replace("~", "%7E"),
        "every byte": "".join(f"%{b:02X}" for b in secret.encode()),
        "lower-case hex": lower_hex(rfc),
        "mixed-case hex": re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0)[:2] + m.group(0)[2].lower(), rfc),
    }


def json_encoders(secret: str) -> dict[str, str]:
    ascii_ = json.dumps(secret)[1:-1]
    utf8 = json.dumps(secret, ensure_ascii=False)[1:-1]
    go = utf8.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    units = secret.encode("utf-16-be")
    return {
        "python ensure_ascii": ascii_, "python/javascript/rust utf-8": utf8,
        "php json_encode (\\/)": ascii_.replace("/", "\\/"), "java (\\/)": utf8.replace("/", "\\/"),
        "go encoding/json": go, "upper-case \\u hex": upper_hex(ascii_),
        "every character": "".join(f"\\u{int.from_bytes(units[i : i + 2], 'big'):04x}"
                                   for i in range(0, len(units), 2)),
    }


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("family", ["url", "json"])
def test_every_encoder_family_is_masked(secret: str, family: str) -> None:
    encoders = url_encoders(secret) if family == "url" else json_encoders(secret)
    for name, encoded in encoders.items():
        assert mask(f"[{encoded}]", secret) == b"[****]", name


def test_issue_examples() -> None:
    assert mask("Authorization: Bearer hunter2=abc", "hunter2=abc") == b"Authorization: Bearer ****"
    assert mask('{"t": "tok\\/LIVE"}', "tok/LIVE") == b'{"t": "****"}'
    assert mask("q=a%2bb%2fc", "a+b/c") == b"q=****"
    assert mask("q=a%2Bb%2fc", "a+b/c") == b"q=****"
    forms = secret_forms({"username": "alice", "password": "correcthorse=xyz"})
    redactor = StreamRedactor(forms)
    basic = base64.b64encode(b"alice:correcthorse=xyz").decode()
    out = redactor.feed(f"pw=correcthorse=xyz Basic {basic}\n".encode()) + redactor.flush()
    assert out == b"pw=**** Basic ****\n"


def stable_core(data: bytes, k: int) -> str:
    """The characters of base64(prefix of k bytes + data + more) that depend on `data` alone."""
    encoded = base64.b64encode(b"\0" * k + data + b"\0\0").decode()
    return encoded[-(-8 * k // 6) : 8 * (k + len(data)) // 6]


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("k", [0, 1, 2])
def test_base64_inside_a_longer_stream_at_each_alignment(secret: str, k: int) -> None:
    data = secret.encode()
    for before, after in ((b"x-access-token:" + b"Q" * k, b""), (b"\x01" * (3 + k), b"!?"), (b"\xff" * k, b"tail")):
        stream = before + data + after
        core = stable_core(data, len(before) % 3)
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(stream).decode()
            out = mask(text, secret)
            url_core = core.translate(str.maketrans("+/", "-_"))
            assert core.encode() not in out and url_core.encode() not in out
            assert MASK in out
            # only the characters that also encode the neighbours stay: at most 2 + 2 around the mask
            head, _, tail = out.partition(MASK)
            assert len(head) <= len(encode(before).rstrip(b"=")) + 1
            assert len(tail) <= len(text) - len(encode(before + data).rstrip(b"=")) + 2


@pytest.mark.parametrize("secret", SECRETS)
def test_base64_and_hex_alone(secret: str) -> None:
    data = secret.encode()
    for encoded in (base64.b64encode(data), base64.urlsafe_b64encode(data), data.hex().encode(),
                    data.hex().upper().encode()):
        for text in (encoded, encoded.rstrip(b"=")):
            assert mask(b"<" + text + b">", secret) == b"<****>"
    mixed = "".join(c.upper() if i % 3 else c for i, c in enumerate(data.hex()))
    assert mask(f"<{mixed}>", secret) == b"<****>"


def test_short_values_have_no_base64_or_hex_form() -> None:
    short = "k" * (MIN_ENCODED_LEN - 1)
    forms = secret_forms({"token": short})
    assert short in forms
    assert base64.b64encode(short.encode()).decode() not in forms and short.encode().hex() not in forms
    longer = "k" * MIN_ENCODED_LEN
    assert longer.encode().hex() in secret_forms({"token": longer})


def test_case_insensitive_only_where_hex() -> None:
    """Hex digits of escapes and hex forms match in any case; the secret's own letters do not."""
    assert mask("TOK/LIVE", "tok/LIVE") == b"TOK/LIVE"
    assert mask("dead-BEEF-cafe", "DEAD-beef-CAFE") == b"dead-BEEF-cafe"
    assert mask("a%2fbc a%2Fbc", "a/bc") == b"**** ****"
    assert mask("A%2fbc", "a/bc") == b"A%2fbc"
