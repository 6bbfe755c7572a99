"""One authenticated request (`sig request`, `SigClient.request`, the userinfo lookup of `sig status`).

The credentials layer of the HTTP client (see net/redirects.py for the layers below): choose the providers,
check that their credentials may go to the URL (core/policy.py), apply their rules (core/apply.py), send
with origin-safe redirects, and after a 401 send once more if a strategy renewed a credential. Credentials
come from the AuthManager (store + refresh broker), never from here.
"""

from __future__ import annotations

from ..core.errors import ErrorCode, SigError
from ..net.http import Url
from ..net.redirects import Additions, header, send_following

TYPE_CHECKING = False
if TYPE_CHECKING:
    import http.client
    from collections.abc import Callable

    from ..auth.manager import AuthManager
    from ..config.load import Config
    from ..core.model import Credential, Provider
    from ..net.network_proxy import NetworkProxy
    from ..net.redirects import Exchange


class Prepared:
    """What the providers' rules add to a request, and the credentials and secret values involved (the
    values are what the caller redacts from the response)."""

    def __init__(self) -> None:
        self.added = Additions()
        self.values: list[dict[str, str]] = []
        self.providers: list[Provider] = []
        self.credentials: list[Credential] = []


class Result:
    """The response of an authenticated request (after redirects), and what was prepared for it."""

    def __init__(self, exchange: Exchange, prepared: Prepared) -> None:
        self.exchange = exchange
        self.prepared = prepared

    @property
    def response(self) -> http.client.HTTPResponse:
        """The last response (after redirects), its body unread."""
        return self.exchange.response

    @property
    def url(self) -> Url:
        """The URL that answered (after redirects)."""
        return self.exchange.url

    @property
    def redirects(self) -> int:
        """How many redirects were followed."""
        return self.exchange.redirects

    @property
    def status(self) -> int:
        """The HTTP status of the last response."""
        return self.exchange.status

    def close(self) -> None:
        """Close the response and its connection."""
        self.exchange.close()


def choose_providers(config: Config, url: Url, names: list[str]) -> list[Provider]:
    """The providers named (id, name, URL or host), or the one whose domains cover the URL's host."""
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
    """Each provider's current credential through its apply rules; refuses a URL its domains do not allow."""
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
        prepared.added.headers.update(applied.headers)
        prepared.added.query.update(applied.query or {})
        prepared.added.body.update(applied.body or {})
        prepared.values.append(values)
        prepared.providers.append(provider)
        prepared.credentials.append(credential)
    return prepared


def network_proxy(providers: list[Provider]) -> NetworkProxy | None:
    """The providers' networkProxy (the request and its redirects all go through it); providers that
    name different proxies cannot share one request."""
    from ..net.network_proxy import for_provider

    chosen = {str(p.get("networkProxy") or "").strip() for p in providers} - {""}
    if len(chosen) > 1:
        raise SigError(ErrorCode.USAGE_ERROR, "the providers of this request use different networkProxy settings",
                       "send the request with one --provider at a time")
    with_proxy = [p for p in providers if p.get("networkProxy")]
    return for_provider(with_proxy[0]) if with_proxy else None


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
    say = log or (lambda _m: None)
    method = method.upper()
    url = Url.parse(url_text)
    providers = choose_providers(config, url, provider_names or [])
    ca = list(cafiles or []) + [str(p.get("caFile")) for p in providers if p.get("caFile")]
    user_headers = list(headers or [])
    if body is not None and header(user_headers, "Content-Type") is None:
        user_headers.append(("Content-Type", "application/json"))

    def send(prepared: Prepared) -> Result:
        exchange = send_following(method, url, user_headers, body, prepared.added, ca=ca,
                                  proxy=network_proxy(providers), timeout=timeout, user_agent=user_agent, log=say)
        return Result(exchange, prepared)

    prepared = prepare(auth, providers, url)
    result = send(prepared)
    if result.status == 401:
        renewed = [auth.renew(p, c) for p, c in zip(prepared.providers, prepared.credentials, strict=True)]
        if any(r is not None for r in renewed):
            result.close()
            result = send(prepare(auth, providers, url))
    return result
