"""Is this sig running inside `sig run --sandbox`? Used only to say so plainly.

Both must hold: the marker SIG_SANDBOX=1 is set AND sig's home is not there (no key file). The marker
alone can be set by anyone, which can only make sig refuse (harmless); unsetting it grants nothing
either, because the values are not in the sandbox at all: sig then fails as it would on a machine
where nobody logged in. Nothing may ever be allowed because this returns False.
"""

from __future__ import annotations

import os

from ..core.errors import ErrorCode, SigError

MARKER = "SIG_SANDBOX"


def in_sandbox() -> bool:
    """True inside `sig run --sandbox` (marker set and sig's key absent); see the module's note."""
    if os.environ.get(MARKER) != "1":
        return False
    from ..config import paths

    return not os.path.exists(paths.key_path())


def values_unavailable(command: str) -> SigError:
    """The error `sig get`, `sig run` (without --sandbox) and the SDK give inside the sandbox."""
    return SigError(ErrorCode.NOT_AVAILABLE,
                    f"credential values are not available inside the sandbox ({command})",
                    "send the request through the proxy instead: `sig request URL`, or any HTTP client "
                    "(HTTPS_PROXY is set); the proxy adds the credential on the way out")
