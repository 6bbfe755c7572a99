"""TLS client contexts: system roots plus any extra CA files (--cacert, a provider's caFile)."""

from __future__ import annotations

import os

from ..core.errors import ErrorCode, SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterable

_cache: dict[tuple[str, ...], ssl.SSLContext] = {}


def client_context(extra_cafiles: Iterable[str] = ()) -> ssl.SSLContext:
    """A verifying context (hostname + chain). Built once per set of CA files: loading roots costs ~30 ms."""
    import ssl

    key = tuple(sorted({os.path.abspath(os.path.expanduser(p)) for p in extra_cafiles if p}))
    if key in _cache:
        return _cache[key]
    ctx = ssl.create_default_context()
    for path in key:
        try:
            ctx.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as exc:
            raise SigError(
                ErrorCode.GENERAL_ERROR,
                f"cannot load the CA file {path}: {getattr(exc, 'strerror', None) or exc}",
                "pass a PEM file with the certificate authority that signed the server's certificate",
            ) from None
    _cache[key] = ctx
    return ctx
