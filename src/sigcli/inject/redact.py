"""Which strings count as secrets, and replacing them in text (`get`; the streaming redactor builds on it)."""

from __future__ import annotations

import binascii

from ..core.model import IDENTIFIER_KEYS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

MASK = "****"
MIN_SECRET_LEN = 4


_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def _percent(text: str, plus: bool) -> str:
    """URL-encoded form (as urllib.parse.quote(safe="") / quote_plus), without importing urllib."""
    out = []
    for byte in text.encode("utf-8"):
        if byte in _UNRESERVED:
            out.append(chr(byte))
        elif plus and byte == 0x20:
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def _json_escaped(text: str, ascii_only: bool) -> str:
    from _json import encode_basestring, encode_basestring_ascii

    return (encode_basestring_ascii if ascii_only else encode_basestring)(text)[1:-1]


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


def secret_forms(values: Mapping[str, str], keep_in_clear: Iterable[str] = IDENTIFIER_KEYS) -> list[str]:
    """Every value of ≥ 4 chars plus the forms it may take on the wire, longest first.

    Forms: each cookie value inside a cookie string, base64 of user:pass, URL-encoded and JSON-escaped text.
    Identifier keys (username, email, …) are not secrets and stay readable.
    """
    clear = set(keep_in_clear)
    forms: set[str] = set()
    plain: list[str] = []
    for key, value in values.items():
        if key in clear or not value:
            continue
        cookies = _cookie_values(value) if _looks_like_cookies(value) else []
        if cookies:
            plain += cookies  # a cookie string: hide each value, keep the names readable
        else:
            plain.append(value)
    user = values.get("username") or values.get("user")
    password = values.get("password")
    if user is not None and password:
        plain.append(binascii.b2a_base64(f"{user}:{password}".encode(), newline=False).decode("ascii"))
    for value in plain:
        for form in (value, _percent(value, False), _percent(value, True), _json_escaped(value, True), _json_escaped(value, False)):
            if len(form) >= MIN_SECRET_LEN:
                forms.add(form)
    return sorted(forms, key=lambda s: (-len(s), s))


def redact_text(text: str, forms: Iterable[str]) -> str:
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    return text
