"""The one interface every login strategy implements (`Strategy`), and what a login is given to work with.

A strategy is a class in auth/strategies/ with one row in the strategy table (core/strategies.py). mypy
checks each class against `Strategy` (the `_check` line at the end of each strategy module) and
tests/unit/test_strategy_table.py checks every row's class at run time.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..core.model import Credential, Provider
from ..core.secret import Secret

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    # ask(prompt, secret) -> the answer, or None when nobody can answer.
    Ask = Callable[[str, bool], str | None]


class Waiting(Protocol):
    """A wait the user should see the progress of (a device code to approve, a browser sign-in to finish).
    The CLI draws it (cli/waiting.py WaitLine)."""

    def input_ended(self) -> None:
        """The prompt shown below the waiting line was answered."""

    def stop(self) -> None:
        """The wait is over (success, failure or interrupt): remove or end the line."""


class _NoWaiting:
    """The default when nobody watches: shows nothing."""

    def input_ended(self) -> None:
        pass

    def stop(self) -> None:
        pass


def _no_waiting(_what: str, _timeout_s: float, _prompt_below: bool) -> Waiting:
    return _NoWaiting()


class LoginContext:
    """Inputs of one login. Secrets arrive wrapped; nothing here prints or prompts by itself."""

    def __init__(
        self,
        *,
        token: Secret | None = None,
        cookie: Secret | None = None,
        username: str | None = None,
        password: Secret | None = None,
        ask: Ask | None = None,
        mode: str | None = None,
        network_proxy: str | None = None,
        log: Callable[[str], None] | None = None,
        notify: Callable[[str], None] | None = None,
        open_url: Callable[[str], bool] | None = None,
        oauth2: dict[str, str] | None = None,
        client_secret: Secret | None = None,
        browser: dict[str, object] | None = None,
        waiting: Callable[[str, float, bool], Waiting] | None = None,
        previous: Credential | None = None,
    ) -> None:
        self.token = token
        self.cookie = cookie
        self.username = username
        self.password = password
        self.ask = ask
        self.mode = mode
        self.network_proxy = network_proxy
        self.log = log or (lambda _m: None)
        # notify: a line the user must see (a URL to open, a device code); open_url: try a browser
        self.notify = notify or (lambda _m: None)
        self.open_url = open_url or (lambda _u: False)
        self.oauth2 = oauth2 or {}  # OAuth2 settings given on the command line (tokenUrl, clientId, …)
        self.client_secret = client_secret
        self.browser = browser or {}  # the config's `browser` section (binary, profile, timeouts, adapter)
        # waiting(what, timeout_s, prompt_below): show that sig waits, with the time elapsed; .stop() ends it
        self.waiting = waiting or _no_waiting
        # The provider's stored credential, if any: a browser login restores the session cookies kept in it.
        self.previous = previous


@runtime_checkable
class Strategy(Protocol):
    """A login method. `name` is its row in the strategy table."""

    name: str

    def authenticate(self, provider: Provider, ctx: LoginContext) -> Credential:
        """Log in (may ask, open a browser, wait for a device code): a complete credential, or a SigError."""
        ...

    def refresh(self, provider: Provider, credential: Credential | None) -> Credential | None:
        """A new credential without the user (refresh token, client credentials), or None when this
        strategy cannot make one. `credential` None: nothing is stored yet (a first token, if possible)."""
        ...


class StaticStrategy:
    """Shared behaviour of strategies whose credential is whatever the user handed over: no refresh."""

    name = "static"

    def refresh(self, provider: Provider, credential: Credential | None) -> Credential | None:
        """Nothing to renew with: the user logs in again."""
        return None
