"""Turn what a browser holds (cookie jar, localStorage, Authorization headers it sent) into a provider's values.

Pure functions on plain data; the cascade feeds them from whichever adapter is running. Each rule reports
why it produced nothing, so a login that never completes can say what was missing (never the values).
"""

from __future__ import annotations

from ..core.hosts import cookie_domain_matches, domain_matches, split_url
from ..core.timeutil import now_ms

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..core.model import Provider
    from .protocol import BrowserPage

# A cookie that ends this soon is a tracker's heartbeat, not a session (the original sigcli's rule, kept).
TRACKING_WINDOW_MS = 60_000


class Extraction:
    """The outcome of one extraction round."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.missing: list[str] = []  # human-readable reasons, no values
        self.cookie_expiries: list[float] = []  # `expires` (s) of every matched cookie, -1 = session
        self.storage_expiries: list[int] = []  # ms, from expiresJsonPath

    @property
    def complete(self) -> bool:
        """Whether every rule found its value."""
        return not self.missing and bool(self.values)


# ---- cookies ---------------------------------------------------------------------------------------


def _path_allowed(path: str, allowed: list[str] | None) -> bool:
    """A cookie scoped to `path` is kept when it is a root cookie, when the browser would send it to one of
    the allowed paths (its path is a prefix of one), or when it lives under one of them."""
    if allowed is None:
        return True
    path = "/" + path.strip("/") if path.strip("/") else "/"
    if path == "/":
        return True
    for base in allowed:
        base = "/" + base.strip("/") if base.strip("/") else "/"
        if base == path or base.startswith(path + "/") or (path.startswith(base.rstrip("/") + "/") and base != "/"):
            return True
    return False


def allowed_cookie_paths(provider: Provider) -> list[str] | None:
    """None = every path. With `cookiePaths`, keep cookies of "/", of the entry/validate URL paths and of
    the listed paths, and drop other path-scoped cookies (static assets, other apps on the host)."""
    listed = provider.get("cookiePaths")
    if not listed:
        return None
    paths = [str(p) for p in listed]
    for url in (provider.entry_url, provider.get("validateUrl") or ""):
        if url:
            from urllib.parse import urlsplit

            paths.append(urlsplit(url).path or "/")
    return paths


def provider_cookies(cookies: list[dict[str, Any]], provider: Provider) -> list[dict[str, Any]]:
    """The jar filtered to the cookies this provider's hosts would receive."""
    domains = provider.domains
    paths = allowed_cookie_paths(provider)
    return [c for c in cookies
            if cookie_domain_matches(str(c.get("domain") or ""), domains)
            and _path_allowed(str(c.get("path") or "/"), paths)]


def _strip_quotes(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def cookie_value(cookies: list[dict[str, Any]], match: str) -> tuple[str | None, list[dict[str, Any]]]:
    """`*` → "a=1; b=2"; a name → its raw value (one match) or "n=v1; n=v2" (same name, several scopes)."""
    if match == "*":
        chosen = cookies
        if not chosen:
            return None, []
        return "; ".join(f"{c['name']}={c.get('value', '')}" for c in chosen), chosen
    chosen = [c for c in cookies if c.get("name") == match]
    if not chosen:
        return None, []
    if len(chosen) == 1:
        return _strip_quotes(str(chosen[0].get("value", ""))), chosen
    return "; ".join(f"{c['name']}={c.get('value', '')}" for c in chosen), chosen


def missing_required(cookies: list[dict[str, Any]], required: list[str]) -> list[str]:
    """The requiredCookies names the jar does not hold."""
    names = {c.get("name") for c in cookies}
    return [r for r in required if r not in names]


# ---- localStorage ----------------------------------------------------------------------------------


def storage_script(match: str) -> str:
    """A JS expression reading one key, or (with `*`) every [key, value] pair, in localStorage order."""
    from ..core import jsonio

    if "*" not in match:
        key = jsonio.dumps(match)
        return f"(() => {{ try {{ return localStorage.getItem({key}); }} catch (e) {{ return null; }} }})()"
    return ("(() => { try { const out = []; for (let i = 0; i < localStorage.length; i++) {"
            " const k = localStorage.key(i); out.push([k, localStorage.getItem(k)]); } return out; }"
            " catch (e) { return null; } })()")


def glob_values(pairs: Any, pattern: str) -> list[str]:
    """Values whose key matches `pattern`, where `*` is any run of characters and the rest is literal."""
    if not isinstance(pairs, list):
        return []
    parts = pattern.split("*")
    out = []
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)) or pair[1] is None:
            continue
        key = pair[0]
        if not (key.startswith(parts[0]) and key.endswith(parts[-1])
                and len(key) >= len(parts[0]) + len(parts[-1])):
            continue
        pos, ok = len(parts[0]), True
        for middle in parts[1:-1]:
            found = key.find(middle, pos, len(key) - len(parts[-1]))
            if found < 0:
                ok = False
                break
            pos = found + len(middle)
        if ok:
            out.append(str(pair[1]))
    return out


def json_path(data: Any, path: str) -> Any:
    """`a.b.c`, `a.0.b` or `a[0].b` into parsed JSON. None when any step is missing."""
    if not path:
        return data
    steps = path.replace("[", ".").replace("]", "").split(".")
    node = data
    for step in steps:
        if step == "":
            continue
        if isinstance(node, dict):
            if step not in node:
                return None
            node = node[step]
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            return None
    return node


def timestamp_ms(value: Any) -> int | None:
    """Epoch seconds or milliseconds (a number or a string of digits; > 1e12 means ms), or an ISO date."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            value = int(text)
        else:
            from ..core.timeutil import ms_from_iso

            return ms_from_iso(text)
    if isinstance(value, int | float):
        return int(value) if value > 1e12 else int(value * 1000)
    return None


def _stringify(value: Any) -> str:
    if isinstance(value, str):
        return value
    from ..core import jsonio

    return jsonio.dumps(value)


def storage_value(raw: Any, rule: dict[str, Any], now: int) -> tuple[str | None, int | None, str]:
    """(value, expiry ms, reason when no value) for one localStorage rule, from what the page returned."""
    from ..core import jsonio

    key = str(rule.get("match"))
    candidates = glob_values(raw, key) if "*" in key else ([] if raw is None else [raw])
    if not candidates:
        return None, None, f'localStorage has no key "{key}" yet'
    path = rule.get("jsonPath")
    expires_path = rule.get("expiresJsonPath")
    reason = ""
    for text in candidates:
        if not path and not expires_path:
            return str(text), None, ""
        try:
            parsed = jsonio.loads(text)
        except ValueError:
            reason = f'localStorage "{key}" is not JSON, so jsonPath cannot apply'
            continue
        expiry = None
        if expires_path:
            expiry = timestamp_ms(json_path(parsed, str(expires_path)))
            if expiry is not None and expiry <= now:
                reason = f'localStorage "{key}" holds an expired token ({expires_path} is in the past)'
                continue
        value = json_path(parsed, str(path)) if path else parsed
        if value is None or value == "":
            reason = f'jsonPath "{path}" does not resolve in localStorage "{key}"'
            continue
        return _stringify(value), expiry, ""
    return None, None, reason


# ---- Authorization headers -------------------------------------------------------------------------


def header_value(seen: list[tuple[str, str]], provider: Provider, match: str) -> str | None:
    """The last Authorization value the page sent to one of the provider's hosts, without its scheme
    word when the rule's `match` names the header (`Authorization`) — `${access_token}` then fits
    `Bearer ${access_token}` apply rules."""
    for url, value in reversed(seen):
        _, host, _ = split_url(url)
        if not host or not any(domain_matches(d, host) for d in provider.domains):
            continue
        value = value.strip()
        if not value:
            continue
        scheme, _, rest = value.partition(" ")
        if match.lower() in ("authorization", "bearer") and scheme.lower() == "bearer" and rest.strip():
            return rest.strip()
        return value
    return None


# ---- one round -------------------------------------------------------------------------------------


def extract(provider: Provider, cookies: list[dict[str, Any]], page: BrowserPage | None,
            headers: list[tuple[str, str]]) -> Extraction:
    """Run every extract rule once. Page errors count as "not yet"."""
    from .protocol import BrowserError

    out = Extraction()
    now = now_ms()
    jar = provider_cookies(cookies, provider)
    missing = missing_required(jar, list(provider.get("requiredCookies") or []))
    if missing:
        out.missing.append("waiting for cookie(s) " + ", ".join(missing))
    for rule in provider.extract:
        source = rule.get("from")
        name = str(rule.get("as"))
        match = str(rule.get("match") or "*")
        if source == "cookies":
            value, chosen = cookie_value(jar, match)
            if value is None:
                out.missing.append("no cookie for " + ", ".join(provider.domains) if match == "*"
                                   else f'no cookie named "{match}"')
                continue
            out.values[name] = value
            out.cookie_expiries.extend(float(c.get("expires", -1) or -1) for c in chosen)
        elif source == "localStorage":
            if page is None:
                out.missing.append("no page to read localStorage from")
                continue
            try:
                raw = page.evaluate(storage_script(match))
            except BrowserError:
                out.missing.append("localStorage not readable yet")
                continue
            value, expiry, reason = storage_value(raw, rule, now)
            if value is None:
                out.missing.append(reason)
                continue
            out.values[name] = value
            if expiry is not None:
                out.storage_expiries.append(expiry)
        elif source == "header":
            value = header_value(headers, provider, match)
            if value is None:
                out.missing.append(f"no {match} header sent to " + ", ".join(provider.domains) + " yet")
                continue
            out.values[name] = value
        else:
            out.missing.append(f'extract rule "{name}" (from: {source}) cannot run in a browser login')
    return out


def expiry_ms(extraction: Extraction, ttl_ms: int | None, now: int | None = None) -> int | None:
    """The original sigcli's expiry rule: the earliest of localStorage expiries in the future, persistent
    cookies ending more than a minute from now, and now + ttl for session cookies."""
    now = now_ms() if now is None else now
    candidates = [e for e in extraction.storage_expiries if e > now]
    ttl_expiry = now + ttl_ms if ttl_ms else None
    for expires in extraction.cookie_expiries:
        if expires <= 0:
            if ttl_expiry is not None:
                candidates.append(ttl_expiry)
            continue
        ms = int(expires * 1000)
        if ms - now <= TRACKING_WINDOW_MS:
            continue
        candidates.append(ms)
    return min(candidates) if candidates else None
