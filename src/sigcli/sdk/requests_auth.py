"""requests adapter: `SigRequestsAuth` applies a provider's rules and guards redirects itself.

    requests.get("https://api.example.com/me", auth=SigRequestsAuth("my-api"))

requests does not call the auth again on a redirect and its `rebuild_auth` strips only `Authorization`.
The adapter registers a response hook on the request it signs; when a response redirects to another
origin (scheme, host, port) the hook removes the headers sig injected from that request, before requests
copies it for the next hop.
"""

from __future__ import annotations

from ._common import Injected, no_body_rules, same_origin, with_query

try:
    from requests.auth import AuthBase as _Base
except ImportError:  # the adapter fails when used, not when imported
    _Base = object  # type: ignore[assignment,misc]
    _HAVE_REQUESTS = False
else:
    _HAVE_REQUESTS = True

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from requests import PreparedRequest, Response

    from .client import SigClient


class SigRequestsAuth(_Base):
    """`requests.auth.AuthBase` that injects `provider`'s credential (headers and query parameters).

    Before injecting it checks the provider's domains and the https rule, and raises `SigError` when
    the request goes elsewhere. Credentials come from `client` (a `SigClient`, default: a new one).
    """

    def __init__(self, provider: str, client: SigClient | None = None) -> None:
        if not _HAVE_REQUESTS:
            raise ImportError("sigcli.sdk.SigRequestsAuth needs requests, which is not installed: "
                              "pip install requests")
        from .client import SigClient

        self.provider = provider
        self.client = client if client is not None else SigClient()
        self._injected = Injected()

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        """requests' hook: add the provider's headers and query parameters (refused off its domains)."""
        url = str(r.url)
        applied = self.client.apply(self.provider, url)  # raises SigError when refused
        if applied.body:
            raise no_body_rules(self.provider)
        for name, value in applied.headers.items():
            r.headers[name] = value
        if applied.query:
            r.url = with_query(url, applied.query)
        self._injected.note(applied.headers, applied.query)
        if self._response_hook not in r.hooks.setdefault("response", []):
            r.register_hook("response", self._response_hook)
        return r

    def _response_hook(self, response: Response, *args: Any, **kwargs: Any) -> None:
        if not response.is_redirect:
            return
        request = response.request
        current = str(request.url or "")
        location = response.headers.get("location") or ""
        try:
            location = location.encode("latin1").decode("utf-8")  # as requests reads it
        except UnicodeError:
            pass
        from urllib.parse import urljoin, urlsplit

        try:
            if location.startswith("//"):
                location = f"{urlsplit(current).scheme}:{location}"
            target = urljoin(current, location)
        except ValueError:
            target = ""
        if not same_origin(target, current):
            # (headers_to_strip wants str values: those sig set are; others are never matched)
            for name in self._injected.headers_to_strip(request.headers):  # type: ignore[arg-type]
                del request.headers[name]

    def __repr__(self) -> str:
        return f"SigRequestsAuth(provider={self.provider!r})"
