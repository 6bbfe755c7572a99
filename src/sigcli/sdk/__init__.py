"""sig's Python SDK: sig's own config, sealed store and refresh, used in-process.

    from sigcli.sdk import SigClient, SigAuth, SigRequestsAuth

    sig = SigClient()                                  # $SIG_HOME (or ~/.sig); SigClient("/path") for another
    sig.get_headers("my-api")                          # {"Authorization": "Bearer ..."}
    sig.request("https://api.example.com/me").json()   # provider chosen by host, redirects origin-safe
    httpx.get(url, auth=SigAuth("my-api"))             # httpx; sig_httpx_client() also guards redirects
    requests.get(url, auth=SigRequestsAuth("my-api"))  # requests; redirect guard built in

Every failure is a `sigcli.core.errors.SigError` with `.code` (PROVIDER_NOT_FOUND, CREDENTIAL_NOT_FOUND,
CREDENTIAL_EXPIRED, REFRESH_FAILED, CONFIG_ERROR, STORAGE_ERROR, USAGE_ERROR, GENERAL_ERROR, ...),
`.message` and `.hint`; none of them holds a secret. Nothing here prints or exits.

httpx and requests are optional: the adapters import them when first named, and raise ImportError only
when used without them.
"""

from __future__ import annotations

from ..core.errors import ErrorCode, SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .client import SigClient, SigResponse
    from .httpx_auth import SigAuth, sig_httpx_async_client, sig_httpx_client
    from .requests_auth import SigRequestsAuth

__all__ = [
    "ErrorCode",
    "SigAuth",
    "SigClient",
    "SigError",
    "SigRequestsAuth",
    "SigResponse",
    "sig_httpx_async_client",
    "sig_httpx_client",
]

_LAZY = {
    "SigClient": "client",
    "SigResponse": "client",
    "SigAuth": "httpx_auth",
    "sig_httpx_client": "httpx_auth",
    "sig_httpx_async_client": "httpx_auth",
    "SigRequestsAuth": "requests_auth",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
