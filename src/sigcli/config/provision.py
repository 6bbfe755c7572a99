"""Auto-provisioning: a provider made from a URL the user logged in to (reference §2.6)."""

from __future__ import annotations

from typing import Any

from ..core.errors import ErrorCode, SigError
from ..core.hosts import derive_short_id, split_url, unique_id
from .schema import default_apply


def provision(url: str, taken: set[str], strategy: str = "browser") -> dict[str, Any]:
    """A normalised provider dict for `url`; its id is derived from the host name and made unique."""
    scheme, host, port = split_url(url)
    if not host:
        raise SigError(
            ErrorCode.PROVIDER_NOT_FOUND,
            f'"{url}" is neither a configured provider nor a URL',
            "run `sig providers` to list providers, or pass a full URL such as https://host/",
        )
    if scheme not in ("http", "https"):
        scheme = "https"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    provider: dict[str, Any] = {
        "id": unique_id(derive_short_id(host), taken),
        "name": host,
        "domains": [host],
        "entryUrl": f"{scheme}://{netloc}/",
        "strategy": strategy,
        "autoProvisioned": True,
    }
    if strategy == "browser":
        provider["ttl"] = "2h"
        provider["extract"] = [{"from": "cookies", "as": "cookie", "match": "*"}]
    provider["apply"] = default_apply(strategy, provider)
    return provider
