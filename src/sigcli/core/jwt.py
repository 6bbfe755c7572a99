"""Reading a JWT's claims without verifying it: good for "who does this token say it is", never for trust."""

from __future__ import annotations

import binascii

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_B64URL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def claims(token: str) -> dict[str, Any] | None:
    """The payload of a compact JWS (`header.payload.signature`) as a dict, or None when `token` is not one.
    The signature is NOT checked: anyone can mint a token that claims anything."""
    parts = token.strip().split(".")
    if len(parts) != 3 or not parts[0].startswith("eyJ") or not parts[1]:
        return None
    raw = parts[1].encode("ascii", "replace")
    if not set(raw) <= _B64URL:
        return None
    from .jsonio import loads

    try:
        padded = raw.replace(b"-", b"+").replace(b"_", b"/") + b"=" * (-len(raw) % 4)
        payload = loads(binascii.a2b_base64(padded))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None
