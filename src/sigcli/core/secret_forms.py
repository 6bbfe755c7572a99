"""Which strings count as secrets, and the forms they take on the wire (`get`, `run`, `request`, the proxy).

A value is always a secret as a whole, whatever characters it holds. Each one also yields the forms an
encoder may turn it into, so that a program printing the secret URL-encoded, JSON-escaped, base64 or hex
is masked too. The hex digits of `%XX` and `\\uXXXX` escapes and of hex forms are matched in either case
by the redactor (redactor.py), so one form per encoder covers upper, lower and mixed case.
"""

from __future__ import annotations

import binascii

from .model import IDENTIFIER_KEYS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

MASK = "****"
MIN_SECRET_LEN = 4
# base64 and hex forms only for values of at least this many bytes: the part of a base64 encoding that
# does not depend on the neighbouring bytes is then ≥ 10 characters, so a short value cannot mask
# unrelated base64 text by chance.
MIN_ENCODED_LEN = 8

_ALNUM = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_RFC3986 = _ALNUM | frozenset(b"-._~")
# (characters left as they are, space as "+") for each family of URL encoders.
_PERCENT_ENCODERS: tuple[tuple[frozenset[int], bool], ...] = (
    (_RFC3986, False),  # Python quote(safe=""), PHP rawurlencode, curl, Go url.PathEscape for most values
    (_RFC3986 | frozenset(b"/"), False),  # Python quote() (safe="/")
    (_RFC3986, True),  # Python quote_plus, Go url.QueryEscape
    (_RFC3986 | frozenset(b"!*'()"), False),  # JavaScript encodeURIComponent
    (_ALNUM | frozenset(b"-._"), True),  # PHP urlencode (also encodes ~ and *)
    (_ALNUM | frozenset(b"-._*"), True),  # Java URLEncoder
    (frozenset(), False),  # every byte as %XX
)


def _percent(data: bytes, keep: frozenset[int], plus: bool) -> str:
    out = []
    for byte in data:
        if byte in keep:
            out.append(chr(byte))
        elif plus and byte == 0x20:
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _u_escape(char: str) -> str:
    code = ord(char)
    if code > 0xFFFF:  # outside the BMP: a UTF-16 surrogate pair, as JSON requires
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _json(text: str, *, ascii_only: bool = False, slash: bool = False, html: bool = False, every: bool = False) -> str:
    """`text` as inside a JSON string, the way one family of encoders writes it."""
    out = []
    for char in text:
        if every:
            out.append(_u_escape(char))
        elif char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif char < " " or (html and char in "<>&\u2028\u2029") or (ascii_only and char >= "\x7f"):
            out.append(_u_escape(char))
        elif slash and char == "/":
            out.append("\\/")
        else:
            out.append(char)
    return "".join(out)


_JSON_ENCODERS: tuple[dict[str, bool], ...] = (
    {},  # Python ensure_ascii=False, JavaScript JSON.stringify, Rust serde_json, Go SetEscapeHTML(false)
    {"ascii_only": True},  # Python json.dumps default, Jackson ESCAPE_NON_ASCII
    {"slash": True},  # Java encoders escaping "/"
    {"ascii_only": True, "slash": True},  # PHP json_encode default
    {"html": True},  # Go encoding/json default: <, >, &, U+2028, U+2029 as \u003c …
    {"every": True},  # every character as \uXXXX
)


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _base64_forms(data: bytes) -> set[str]:
    """base64 and base64url of `data`: encoded on its own (with and without padding) and, for `data` inside
    a longer encoded stream, at each of the three byte alignments the characters that depend on `data`
    alone (the partly-covered characters at both ends are left out: they depend on the neighbours)."""
    whole = _b64(data)
    std = {whole, whole.rstrip("=")}
    n = len(data)
    for k in range(3):  # data starts k bytes into a 3-byte group
        encoded = _b64(b"\0" * k + data + b"\0\0")
        first = (8 * k + 5) // 6  # first character whose 6 bits all come from data
        end = 8 * (k + n) // 6  # one past the last such character
        std.add(encoded[first:end])
    return std | {form.replace("+", "-").replace("/", "_") for form in std}


def value_forms(value: str) -> set[str]:
    """The forms one secret value can take: itself, URL-encoded, JSON-escaped, base64 and hex."""
    data = value.encode("utf-8", "surrogatepass")
    forms = {value}
    forms.update(_percent(data, keep, plus) for keep, plus in _PERCENT_ENCODERS)
    forms.update(_json(value, **flags) for flags in _JSON_ENCODERS)
    if len(data) >= MIN_ENCODED_LEN:
        forms |= _base64_forms(data)
        forms.add(data.hex())  # matched in either case
    return forms


def _text_forms(value: str) -> set[str]:
    """URL-encoded and JSON-escaped forms only (for text that is itself an encoding, e.g. a Basic value)."""
    data = value.encode("utf-8", "surrogatepass")
    forms = {value}
    forms.update(_percent(data, keep, plus) for keep, plus in _PERCENT_ENCODERS)
    forms.update(_json(value, **flags) for flags in _JSON_ENCODERS)
    return forms


_COOKIE_NAME = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-$")


def _looks_like_cookies(text: str) -> bool:
    """"a=b; c=d" with token names and real values (not base64 padding such as "dGVzdA==")."""
    parts = [p.strip() for p in text.split(";") if p.strip()]
    if not parts:
        return False
    for part in parts:
        name, eq, value = part.partition("=")
        if not eq or not name or not set(name) <= _COOKIE_NAME or not value.strip("= "):
            return False
    return True


def cookie_pairs(text: str) -> list[tuple[str, str]]:
    """("name", "value") of each `name=value` in a Cookie header string (used by `sig run` too)."""
    pairs = []
    for part in text.split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name.strip():
            pairs.append((name.strip(), value.strip()))
    return pairs


def _cookie_values(text: str) -> list[str]:
    return [value.strip('"') for _name, value in cookie_pairs(text)]


def _long_enough(value: str) -> bool:
    """4 characters or more, or 4 bytes of UTF-8 (two characters outside the BMP are a secret too)."""
    return len(value) >= MIN_SECRET_LEN or len(value.encode("utf-8", "surrogatepass")) >= MIN_SECRET_LEN


def secret_forms(values: Mapping[str, str], keep_in_clear: Iterable[str] = IDENTIFIER_KEYS) -> list[str]:
    """Every form (of ≥ 4 bytes) of every secret value (of ≥ 4 characters or bytes), longest first.

    Each value is a secret as a whole, whatever it contains (`=`, `;`, spaces…); a value shaped like a
    cookie string also makes each cookie value a secret of its own (it is often used alone, e.g. in
    `--expand-cookies` variables or a Set-Cookie line). Basic credentials add base64 of `user:pass`.
    Identifier keys (username, email, …) are not secrets and stay readable.
    """
    clear = set(keep_in_clear)
    plain: list[str] = []
    for key, value in values.items():
        if key in clear or not _long_enough(value):
            continue
        plain.append(value)
        if value.strip() != value and _long_enough(value.strip()):
            plain.append(value.strip())  # header values and env files often lose surrounding blanks
        if _looks_like_cookies(value):
            plain += [v for v in _cookie_values(value) if _long_enough(v)]
    forms: set[str] = set()
    for value in plain:
        forms |= value_forms(value)
    user = values.get("username") or values.get("user")
    password = values.get("password")
    if user is not None and password:
        basic = _b64(f"{user}:{password}".encode("utf-8", "surrogatepass"))
        for text in (basic, basic.rstrip("="), basic.replace("+", "-").replace("/", "_")):
            forms |= _text_forms(text)
    return sorted((f for f in forms if len(f.encode("utf-8", "surrogatepass")) >= MIN_SECRET_LEN),
                  key=lambda s: (-len(s), s))


def redact_text(text: str, forms: Iterable[str]) -> str:
    """`text` with every occurrence of every form masked, exactly as the streaming redactor does."""
    from .redactor import StreamRedactor

    redactor = StreamRedactor(forms, automaton=False)  # a few short strings: not worth loading the automaton
    data = text.encode("utf-8", "surrogatepass")
    return (redactor.feed(data) + redactor.flush()).decode("utf-8", "surrogatepass")
