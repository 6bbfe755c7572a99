"""An authenticated request: apply providers' rules, send, follow redirects without leaking what sig added.

Used by `sig request` and the SDK. Credentials come from the AuthManager (store + refresh), never from here.
"""

from __future__ import annotations

from ..core.errors import ErrorCode, SigError
from .http import Url, send

TYPE_CHECKING = False
if TYPE_CHECKING:
    import http.client
    from collections.abc import Callable

    from ..auth.manager import AuthManager
    from ..config.load import Config
    from ..core.model import Credential, Provider
    from .proxy import NetworkProxy

REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 10


class Prepared:
    """What the providers' rules add to a request, and the secret values involved (for redaction)."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.query: dict[str, str] = {}
        self.body: dict[str, str] = {}
        self.values: list[dict[str, str]] = []
        self.providers: list[Provider] = []
        self.credentials: list[Credential] = []


class Result:
    def __init__(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse, url: Url,
                 prepared: Prepared, redirects: int) -> None:
        self.conn = conn
        self.response = response
        self.url = url
        self.prepared = prepared
        self.redirects = redirects

    @property
    def status(self) -> int:
        return self.response.status

    def close(self) -> None:
        self.response.close()
        self.conn.close()


def choose_providers(config: Config, url: Url, names: list[str]) -> list[Provider]:
    from ..config.load import provider_not_found

    if names:
        out = []
        for name in names:
            provider = config.resolve(name)
            if provider is None:
                raise provider_not_found(name)
            out.append(provider)
        return out
    provider = config.resolve_host(url.host)
    if provider is None:
        raise SigError(ErrorCode.PROVIDER_NOT_FOUND, f"no provider is configured for {url.host}",
                       f"log in first: sig login {url.scheme}://{url.netloc()}/  (or pass --provider ID)")
    return [provider]


def prepare(auth: AuthManager, providers: list[Provider], url: Url) -> Prepared:
    from ..core.apply import apply_rules
    from ..core.policy import may_inject

    prepared = Prepared()
    for provider in providers:
        refusal = may_inject(provider, url.scheme, url.host, url.port)
        if refusal is not None:
            raise SigError(ErrorCode.GENERAL_ERROR, f"refusing to send credentials: {refusal}",
                           "check the URL, or the provider's domains in the config")
        credential = auth.credential(provider)
        values = credential.revealed()
        applied = apply_rules(provider.apply, values)
        prepared.headers.update(applied.headers)
        prepared.query.update(applied.query or {})
        prepared.body.update(applied.body or {})
        prepared.values.append(values)
        prepared.providers.append(provider)
        prepared.credentials.append(credential)
    return prepared


def _with_query(url: Url, extra: dict[str, str]) -> Url:
    if not extra:
        return url
    from urllib.parse import parse_qsl, urlencode

    pairs = [(k, v) for k, v in parse_qsl(url.query, keep_blank_values=True) if k not in extra]
    pairs += list(extra.items())
    return Url(url.scheme, url.host, url.port, url.path, urlencode(pairs))


def _with_body(body: bytes | None, content_type: str, extra: dict[str, str]) -> bytes | None:
    if not extra:
        return body
    kind = content_type.split(";")[0].strip().lower()
    text = (body or b"").decode("utf-8", "replace")
    if kind == "application/x-www-form-urlencoded":
        from urllib.parse import parse_qsl, urlencode

        pairs = [(k, v) for k, v in parse_qsl(text, keep_blank_values=True) if k not in extra]
        return urlencode([*pairs, *extra.items()]).encode("utf-8")
    import json

    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise SigError(ErrorCode.USAGE_ERROR, "the provider adds body fields, but the body is not a JSON object",
                       "send a JSON object (or a form body with Content-Type: application/x-www-form-urlencoded)")
    data.update(extra)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    low = name.lower()
    for n, v in headers:
        if n.lower() == low:
            return v
    return None


def authenticated_request(
    config: Config,
    auth: AuthManager,
    url_text: str,
    *,
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
    provider_names: list[str] | None = None,
    cafiles: list[str] | None = None,
    timeout: float = 30.0,
    user_agent: str = "sig",
    log: Callable[[str], None] | None = None,
) -> Result:
    """Send `method url` with the providers' credentials; the caller reads and closes the Result.

    On a 401 the providers' strategies may renew their credential (e.g. an OAuth2 refresh) once; the
    request is then sent again. Nothing is deleted when renewal is impossible.
    """
    log = log or (lambda _m: None)
    method = method.upper()
    url = Url.parse(url_text)
    providers = choose_providers(config, url, provider_names or [])
    prepared = prepare(auth, providers, url)
    result = _send(url, prepared, providers, method, headers, body, cafiles, timeout, user_agent, log)
    if result.status == 401:
        renewed = [auth.renew(p, c) for p, c in zip(prepared.providers, prepared.credentials, strict=True)]
        if any(r is not None for r in renewed):
            result.close()
            prepared = prepare(auth, providers, url)
            result = _send(url, prepared, providers, method, headers, body, cafiles, timeout, user_agent, log)
    return result


def network_proxy(providers: list[Provider]) -> NetworkProxy | None:
    """The providers' networkProxy (the request and its redirects all go through it); providers that
    name different proxies cannot share one request."""
    from .proxy import for_provider

    chosen = {str(p.get("networkProxy") or "").strip() for p in providers} - {""}
    if len(chosen) > 1:
        raise SigError(ErrorCode.USAGE_ERROR, "the providers of this request use different networkProxy settings",
                       "send the request with one --provider at a time")
    with_proxy = [p for p in providers if p.get("networkProxy")]
    return for_provider(with_proxy[0]) if with_proxy else None


def _send(url: Url, prepared: Prepared, providers: list[Provider], method: str,
          headers: list[tuple[str, str]] | None, body: bytes | None, cafiles: list[str] | None,
          timeout: float, user_agent: str, log: Callable[[str], None]) -> Result:
    from .tls import client_context

    ca = list(cafiles or []) + [str(p.get("caFile")) for p in providers if p.get("caFile")]
    proxy = network_proxy(providers)
    user_headers = list(headers or [])
    if body is not None and _header(user_headers, "Content-Type") is None:
        user_headers.append(("Content-Type", "application/json"))
    origin = url.origin
    current, current_method, current_body = url, method, body
    for hop in range(MAX_REDIRECTS + 1):
        inject = current.origin == origin
        sent_headers = [("User-Agent", user_agent), ("Accept", "*/*")]
        names = {n.lower() for n, _ in user_headers}
        if inject:
            sent_headers += [(n, v) for n, v in prepared.headers.items() if n.lower() not in names]
            target = _with_query(current, prepared.query)
            payload = _with_body(current_body, _header(user_headers, "Content-Type") or "", prepared.body) \
                if current_body is not None or prepared.body else current_body
        else:
            target, payload = current, current_body
        sent_headers = [(n, v) for n, v in sent_headers if n.lower() not in names] + user_headers
        if current_method in ("GET", "HEAD") and payload is not None and not inject:
            payload = None
        context = client_context(ca) if target.scheme == "https" else None
        log(f"{current_method} {target.scheme}://{target.netloc()}{target.path}"
            + ("" if inject else " (no credentials: another origin)")
            + (f" via {proxy.label}" if proxy is not None else ""))
        conn, response = send(current_method, target, sent_headers, payload, context=context, timeout=timeout,
                              proxy=proxy)
        location = response.getheader("Location")
        if response.status not in REDIRECTS or not location or hop == MAX_REDIRECTS:
            return Result(conn, response, current, prepared, hop)
        response.read(1 << 20)
        response.close()
        conn.close()
        nxt = current.join(location)
        if response.status == 303 or (response.status in (301, 302) and current_method == "POST"):
            current_method, current_body = ("GET" if current_method != "HEAD" else "HEAD"), None
            user_headers = [(n, v) for n, v in user_headers if n.lower() not in ("content-type",)]
        if current.scheme == "https" and nxt.scheme == "http":
            log("redirect downgrades https to http: nothing sig added is sent")
        current = nxt
    raise AssertionError("unreachable")
