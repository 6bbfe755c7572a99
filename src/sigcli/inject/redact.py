"""Which strings count as secrets, and replacing them in text (`get`; the streaming redactor builds on it)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from urllib.parse import quote, quote_plus

from ..core.model import IDENTIFIER_KEYS

MASK = "****"
MIN_SECRET_LEN = 4


def _cookie_values(text: str) -> list[str]:
    values = []
    for part in text.split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name:
            values.append(value.strip().strip('"'))
    return values


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
        cookies = _cookie_values(value) if "=" in value else []
        if cookies and len(cookies) == value.count(";") + 1:
            plain += cookies  # a cookie string: hide each value, keep the names readable
        else:
            plain.append(value)
    user = values.get("username") or values.get("user")
    password = values.get("password")
    if user is not None and password:
        plain.append(base64.b64encode(f"{user}:{password}".encode()).decode("ascii"))
    for value in plain:
        for form in (value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]):
            if len(form) >= MIN_SECRET_LEN:
                forms.add(form)
    return sorted(forms, key=lambda s: (-len(s), s))


def redact_text(text: str, forms: Iterable[str]) -> str:
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    return text
