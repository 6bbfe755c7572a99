"""The validation probe run after each browser extraction: do these values log us in?

The original sigcli's `validate`/`isAuthenticatedResponse` (README "Browser login") with its flaws fixed:
- a network error or timeout is UNKNOWN (the caller retries), never "valid";
- custom `loginUrlPatterns` are matched case-insensitively, and also on a redirect's Location;
- credentials go only where `may_inject` allows (domains, ports, https rule), as for every other sender;
- a networkProxy (http, socks5, socks5h) carries the probe as it carries the browser;
- validateRule runs in a sandboxed engine that fails closed (rules/jsrule.py).

Reasons are short and never hold a value: names, status codes and URLs without their query string.
"""

from __future__ import annotations

from ..core.errors import ErrorCode, SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import http.client
    from collections.abc import Iterable, Mapping

    from ..core.model import Provider
    from ..net.http import Url

LOGIN_URL_PATTERNS = (
    "/login", "/signin", "/sign-in", "/auth", "/sso", "/oauth", "/adfs/", "/saml/",
    "login.microsoftonline.com", "accounts.google.com", "accounts.sap.com",
)

# A short HTML page that sends the browser elsewhere with script or a meta refresh is a login bounce.
JS_REDIRECT_PATTERNS = (
    r"window\.location\s*[=.]",
    r"document\.location\s*[=.]",
    r"location\.(?:href|replace|assign)\s*[=(]",
    r"[;}\s]location\s*=\s*[\"'`]",
    r"<meta\s+http-equiv\s*=\s*[\"']?refresh[\"']?",
)
JS_REDIRECT_MAX_BODY = 4096
INVALID_STATUSES = frozenset({401, 403, 406, 429})
MAX_BODY_BYTES = 1024 * 1024
ACCEPT = "application/json, text/html;q=0.9, */*;q=0.8"
# Headers the request line and framing own; an apply rule cannot set them on the probe.
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class Verdict:
    """VALID, INVALID or UNKNOWN (the server could not be asked: network error, timeout, TLS failure)."""

    __slots__ = ("name",)

    VALID: Verdict
    INVALID: Verdict
    UNKNOWN: Verdict

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def value(self) -> str:
        """The verdict in lower case ("valid", "invalid", "unknown"), as logs and JSON show it."""
        return self.name.lower()

    def __repr__(self) -> str:
        return f"Verdict.{self.name}"

    def __str__(self) -> str:
        return self.value


Verdict.VALID = Verdict("VALID")
Verdict.INVALID = Verdict("INVALID")
Verdict.UNKNOWN = Verdict("UNKNOWN")


def is_login_url(url: str, extra_patterns: Iterable[str] | None = None) -> bool:
    """The URL (lower-cased) contains a built-in login marker or one of the provider's, case-insensitively."""
    low = (url or "").lower()
    if any(p in low for p in LOGIN_URL_PATTERNS):
        return True
    return any(isinstance(p, str) and p.strip() and p.lower() in low for p in extra_patterns or ())


def _has_js_redirect(body: str) -> bool:
    if not body or len(body) >= JS_REDIRECT_MAX_BODY:
        return False
    import re

    return any(re.search(p, body, re.IGNORECASE) for p in JS_REDIRECT_PATTERNS)


def judge_response(
    status: int,
    body: str,
    headers: Mapping[str, str],
    *,
    explicit_validate_url: bool,
    rule: str | None,
    extra_patterns: Iterable[str] | None = None,
) -> tuple[bool, str]:
    """(authenticated?, short reason) for one probe response: the original's isAuthenticatedResponse, fixed."""
    lower = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    if rule:
        from ..rules.jsrule import evaluate

        ok, reason = evaluate(rule, {"status": status, "body": body, "headers": lower})
        return ok, reason
    if status in INVALID_STATUSES:
        return False, f"HTTP {status}"
    if 300 <= status < 400:
        if explicit_validate_url:
            return False, f"HTTP {status} redirect (a validateUrl must answer without redirecting)"
        if is_login_url(lower.get("location", ""), extra_patterns):
            return False, f"HTTP {status} redirect to a login page"
    if _has_js_redirect(body):
        return False, f"HTTP {status} with a script or meta-refresh redirect in the body"
    return True, f"HTTP {status}"


# -- the probe ---------------------------------------------------------------------------------------


def _where(url: Url) -> str:
    """scheme://host[:port]/path: never the query string, which may carry a token."""
    return f"{url.scheme}://{url.netloc()}{url.path}"


def _header_safe(name: str, value: str) -> str | None:
    """The value as http.client sends it (UTF-8 bytes when not Latin-1), or None when it cannot be sent."""
    if not name or any(c in name for c in " \t\r\n:\0") or not name.isascii():
        return None
    if any(c in value for c in "\r\n\0"):
        return None
    try:
        value.encode("latin-1")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8").decode("latin-1")


def _request_headers(provider: Provider, values: Mapping[str, str]) -> tuple[list[tuple[str, str]], str, str]:
    """(headers, extra query string, problem): the apply rules' headers and query, plus our UA and Accept."""
    from urllib.parse import urlencode

    from .._version import __version__
    from ..core.apply import apply_rules

    applied = apply_rules(provider.apply, values)
    out: list[tuple[str, str]] = []
    for name, value in applied.headers.items():
        if name.lower() in _RESERVED_HEADERS:
            continue
        safe = _header_safe(name, value)
        if safe is None:
            return [], "", f'apply rule header "{name[:64]}" has a name or value that cannot be sent'
        out.append((name, safe))
    present = {name.lower() for name, _v in out}
    if "user-agent" not in present:
        out.append(("User-Agent", f"sig/{__version__} (python)"))
    if "accept" not in present:
        out.append(("Accept", ACCEPT))
    query = urlencode(applied.query) if applied.query else ""
    return out, query, ""


def _missing_value(provider: Provider, values: Mapping[str, str]) -> str | None:
    if not values:
        return "no values extracted"
    for rule in provider.extract:
        key = str(rule.get("as") or "")
        if key and not values.get(key):
            return f"missing {key}"
    return None


def _network_reason(exc: BaseException, url: Url, timeout: float, via_proxy: bool) -> str:
    import ssl

    if isinstance(exc, SigError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return f"{url.host} did not answer within {timeout:g}s" + (" (through networkProxy)" if via_proxy else "")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS verification of {url.host} failed: {exc.verify_message or exc.reason}"
    text = str(exc).strip()
    reason = getattr(exc, "strerror", None) or (text.splitlines()[0][:200] if text else type(exc).__name__)
    return f"request to {url.host}:{url.port} failed{' through networkProxy' if via_proxy else ''}: {reason}"


def _read_body(response: http.client.HTTPResponse, deadline: float) -> str:
    """At most MAX_BODY_BYTES, within the probe's deadline, decoded as UTF-8 (bad bytes replaced)."""
    import time

    chunks: list[bytes] = []
    total = 0
    while total < MAX_BODY_BYTES:
        if time.monotonic() > deadline:
            raise TimeoutError("the body did not arrive in time")
        chunk = response.read1(min(64 * 1024, MAX_BODY_BYTES - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def probe(provider: Provider, values: Mapping[str, str], *, timeout: float = 10.0) -> tuple[Verdict, str]:
    """Ask the provider's validateUrl (else entryUrl) whether `values` are a working login.

    Raises SigError(CONFIG_ERROR) only for configuration that can never work (a bad URL or networkProxy,
    an unreadable caFile); everything else is a verdict with a short reason.
    """
    import http.client
    import time

    from ..core.policy import may_inject
    from ..net.http import Url, send
    from ..net.network_proxy import for_provider

    missing = _missing_value(provider, values)
    if missing:
        return Verdict.INVALID, missing
    validate_url = str(provider.get("validateUrl") or "")
    which = "validateUrl" if validate_url else "entryUrl"
    raw_url = validate_url or provider.entry_url
    if not raw_url:
        return Verdict.VALID, "no validateUrl or entryUrl to probe"
    try:
        url = Url.parse(raw_url)
    except SigError:
        raise SigError(ErrorCode.CONFIG_ERROR, f'{which} of provider "{provider.id}" is not an http(s) URL',
                       f'set {which} to a full URL such as https://app.example.com/api/me') from None
    # The probe carries the freshly captured session: the same host, port and https rule as every sender.
    refusal = may_inject(provider, url.scheme, url.host, url.port)
    if refusal is not None:
        raise SigError(ErrorCode.CONFIG_ERROR, f"the captured credentials are not sent to the {which} "
                       f"{_where(url)}: {refusal}",
                       f"point {which} at a URL on the provider's own domains, port and scheme")

    headers, extra_query, problem = _request_headers(provider, values)
    if problem:
        return Verdict.INVALID, problem
    if extra_query:
        url = Url(url.scheme, url.host, url.port, url.path, f"{url.query}&{extra_query}" if url.query
                  else extra_query)
    proxy = for_provider(provider)
    context = None
    if url.scheme == "https":
        from ..net.tls import client_context

        context = client_context([str(provider.get("caFile"))] if provider.get("caFile") else [])

    deadline = time.monotonic() + timeout
    conn = None
    try:
        conn, response = send("GET", url, headers, None, context=context, timeout=timeout, proxy=proxy)
        status = response.status
        response_headers: dict[str, str] = {}
        for name, value in response.getheaders():
            key = name.lower()
            response_headers[key] = f"{response_headers[key]}, {value}" if key in response_headers else value
        body = _read_body(response, deadline)
    except ValueError:  # http.client refusing a header; its message would quote the value
        return Verdict.INVALID, "the request could not be built from the apply rules"
    except (SigError, OSError, http.client.HTTPException) as exc:
        return Verdict.UNKNOWN, _network_reason(exc, url, timeout, proxy is not None)
    finally:
        if conn is not None:
            conn.close()
    ok, reason = judge_response(status, body, response_headers, explicit_validate_url=bool(validate_url),
                                rule=provider.get("validateRule") or None,
                                extra_patterns=provider.get("loginUrlPatterns") or [])
    return (Verdict.VALID if ok else Verdict.INVALID), f"{reason} from {_where(url)}"
