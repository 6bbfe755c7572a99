"""httpx adapter: `SigAuth` applies a provider's rules; `response_hook` keeps them off other origins.

    with sig_httpx_client("my-api", follow_redirects=True) as http:
        http.get("https://api.example.com/me")

httpx follows redirects without calling the auth flow again and strips only `Authorization` when the
origin changes, so any other header sig injected (X-API-Key, Cookie, ...) would travel along. The
response hook removes them, and the query parameters sig added, from a request whose redirect leads to
another origin (scheme, host, port), before httpx copies it for the next hop. `sig_httpx_client()` wires
both; with a client of your own add `event_hooks={"response": [auth.response_hook]}`.
"""

from __future__ import annotations

from ._common import Injected, no_body_rules, same_origin, with_query, without_query

try:
    import httpx
except ImportError:  # the adapter fails when used, not when imported
    httpx = None  # type: ignore[assignment]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Generator
    from typing import Any

    from .client import SigClient

_Base: type = httpx.Auth if httpx is not None else object

_MISSING = "sigcli.sdk.SigAuth needs httpx, which is not installed: pip install httpx"


def _require_httpx() -> None:
    if httpx is None:
        raise ImportError(_MISSING)


class SigAuth(_Base):  # type: ignore[misc]
    """`httpx.Auth` that injects `provider`'s credential (headers and query parameters).

    Before injecting it checks the provider's domains and the https rule, and raises `SigError` when
    the request goes elsewhere. Credentials come from `client` (a `SigClient`, default: a new one).
    """

    requires_request_body = False
    requires_response_body = False

    def __init__(self, provider: str, client: SigClient | None = None) -> None:
        _require_httpx()
        from .client import SigClient

        self.provider = provider
        self.client = client if client is not None else SigClient()
        self._injected = Injected()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """httpx's hook: add the provider's headers and query parameters (refused off its domains)."""
        url = str(request.url)
        applied = self.client.apply(self.provider, url)  # raises SigError when refused
        if applied.body:
            raise no_body_rules(self.provider)
        for name, value in applied.headers.items():
            request.headers[name] = value
        if applied.query:
            request.url = httpx.URL(with_query(url, applied.query))
        self._injected.note(applied.headers, applied.query)
        yield request

    def response_hook(self, response: httpx.Response) -> None:
        """Response event hook: on a redirect to another origin, strip what sig injected from the request."""
        if not response.has_redirect_location:
            return
        request = response.request
        try:
            target = str(request.url.join(response.headers.get("location", "")))
        except Exception:  # httpx raises its own error about a bad Location; stay on the safe side
            target = ""
        if not same_origin(target, str(request.url)):
            self.strip(request)

    async def async_response_hook(self, response: httpx.Response) -> None:
        """`response_hook` for an `httpx.AsyncClient`."""
        self.response_hook(response)

    def strip(self, request: httpx.Request) -> None:
        """Remove every header value and query parameter this adapter injected from `request`."""
        for name in self._injected.headers_to_strip(request.headers):
            del request.headers[name]
        if self._injected.query:
            request.url = httpx.URL(without_query(str(request.url), self._injected.query))

    def __repr__(self) -> str:
        return f"SigAuth(provider={self.provider!r})"


def _hooks(kwargs: dict[str, Any], hook: Any) -> dict[str, list[Any]]:
    if "auth" in kwargs:
        raise TypeError("sig_httpx_client() sets auth itself")
    hooks = {name: list(fns) for name, fns in (kwargs.pop("event_hooks", None) or {}).items()}
    hooks["response"] = [hook, *hooks.get("response", [])]
    return hooks


def sig_httpx_client(provider: str, *, sig_client: SigClient | None = None, **kwargs: Any) -> httpx.Client:
    """An `httpx.Client` (keyword arguments passed on) with `SigAuth(provider)` and its redirect guard."""
    _require_httpx()
    auth = SigAuth(provider, sig_client)
    hooks = _hooks(kwargs, auth.response_hook)
    return httpx.Client(auth=auth, event_hooks=hooks, **kwargs)


def sig_httpx_async_client(provider: str, *, sig_client: SigClient | None = None,
                           **kwargs: Any) -> httpx.AsyncClient:
    """`sig_httpx_client` for asyncio. Reading (or refreshing) the credential blocks the loop briefly."""
    _require_httpx()
    auth = SigAuth(provider, sig_client)
    hooks = _hooks(kwargs, auth.async_response_hook)
    return httpx.AsyncClient(auth=auth, event_hooks=hooks, **kwargs)
