"""sig: log in once, keep credentials sealed, sign requests for any program."""


def __getattr__(name: str) -> object:
    """`from sigcli import SigClient` (README "Python SDK") without importing the SDK when `sig` starts."""
    if name in ("SigClient", "SigResponse", "SigAuth", "SigRequestsAuth"):
        from . import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'sigcli' has no attribute {name!r}")
