"""Auto-provisioning: a provider made from a URL the user logged in to (`sig login <url>`, README "Commands")."""

from __future__ import annotations

from typing import Any

from ..core import strategies
from ..core.errors import ErrorCode, SigError
from ..core.hosts import derive_short_id, split_url, unique_id
from .presets import preset_for
from .schema import default_apply


def provision(url: str, taken: set[str], strategy: str = strategies.DEFAULT) -> dict[str, Any]:
    """A normalised provider dict for `url`; its id is derived from the host name and made unique.
    A public site with a validation preset (config/presets.py) gets the preset's id, name, domains and
    validateUrl/validateRule, so the login waits for a real session rather than any visitor's cookies."""
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
    preset = preset_for(host)
    provider: dict[str, Any] = {
        "id": unique_id(preset[0] if preset else derive_short_id(host), taken),
        "name": preset[1]["name"] if preset else host,
        "domains": [host, *(d for d in preset[1]["domains"] if d != host)] if preset else [host],
        "entryUrl": f"{scheme}://{netloc}/",
        "strategy": strategy,
        "autoProvisioned": True,
    }
    if preset:
        for key in ("validateUrl", "validateRule"):
            if preset[1].get(key):
                provider[key] = preset[1][key]
    captured = strategies.TABLE[strategy].needs_browser  # a browser login: its cookie jar, for 2 h by default
    if captured:
        provider["ttl"] = "2h"
        provider["extract"] = [{"from": "cookies", "as": "cookie", "match": "*"}]
        if preset:
            provider["extract"] += [dict(rule) for rule in preset[1].get("extract", [])]
    provider["apply"] = default_apply(strategy, provider)
    if preset and captured:
        provider["apply"] += [dict(rule) for rule in preset[1].get("apply", [])]
    return provider
