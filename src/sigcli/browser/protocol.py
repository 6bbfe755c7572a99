"""The one protocol every browser adapter implements: launch -> session -> page.

An adapter starts (or reuses) a real Chromium-family browser on a profile directory, opens one page on a
URL and answers a few questions about it. Everything else (when to look, what to extract, whether the
login is done) lives above, in the login cascade (auth/browser_login.py), and is the same for every adapter.

Cookies come back as plain dicts in the CDP shape, whatever the adapter:
    {"name", "value", "domain", "path", "expires" (seconds since epoch, -1 for a session cookie),
     "httpOnly", "secure"} and, when the browser says, "sameSite" and "partitioned" (a CHIPS cookie)
"""

from __future__ import annotations

from dataclasses import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    from .proxy_url import BrowserProxy
    from .session_cookies import SessionCookies


@dataclass
class LaunchOptions:
    """How to start (or reach) a browser and which page to open."""

    executable: str  # absolute path of chrome / chromium / msedge
    user_data_dir: str  # the profile; created 0700 if missing
    url: str  # the page to open
    headless: bool = True
    # networkProxy: scheme://host:port goes on the command line; a user name and password are answered
    # over CDP when the proxy asks (never in argv).
    proxy: BrowserProxy | None = None
    timeout_s: float = 20.0  # budget for the browser to start and open the page (not the login's own)
    # Share one visible browser per profile between concurrent logins (new tab in a running one).
    shared: bool = False
    wait_until: str = "load"  # load | domcontentloaded | networkidle | commit
    extra_args: list[str] = field(default_factory=list)
    # Drive an already running browser through this DevTools endpoint instead of starting one
    # (browser.cdpUrl / --cdp-url): sig opens and closes only its own tab there.
    cdp_url: str | None = None
    cdp_allow_remote: bool = False  # browser.cdpAllowRemote: a cdp_url that is not loopback
    # The provider's session cookies kept from its last login, put into the jar before the page opens
    # (a browser sig started only; never an attached one). Its repr shows cookie names only.
    session_cookies: SessionCookies | None = None


if TYPE_CHECKING:

    class BrowserPage(Protocol):
        """The one tab sig opened and watches."""

        def url(self) -> str:
            """location.href of the page sig opened; "" when it cannot be read right now."""

        def ready_state(self) -> str:
            """document.readyState ("loading" / "interactive" / "complete"); "" when unreadable."""

        def evaluate(self, expression: str) -> Any:
            """Evaluate a JS expression in the page, return its JSON value. Raises BrowserError."""

    class BrowserSession(Protocol):
        """A running (or joined, or attached) browser with sig's tab open in it."""

        adapter: str  # "cdp" | "playwright"

        @property
        def page(self) -> BrowserPage:
            """The tab sig opened."""

        def cookies(self) -> list[dict[str, Any]]:
            """Every cookie of the profile (all domains and paths, HttpOnly included)."""

        def authorization_headers(self) -> list[tuple[str, str]]:
            """(request URL, Authorization header value) of requests the page sent since launch."""

        def wait(self, seconds: float) -> None:
            """Sleep while letting the adapter process browser events (do not use time.sleep)."""

        def alive(self) -> bool:
            """False once the browser process has gone (crashed or closed by the user)."""

        def close(self) -> None:
            """Close gracefully (the profile gets its persistent cookies), then kill what is left. Idempotent."""

        # How many of LaunchOptions.session_cookies launch() put into the jar (0: none, or all were there).
        restored_cookies: int

    class BrowserAdapter(Protocol):
        """A way to drive a browser (native CDP, Playwright): launch → session → page."""

        name: str

        def launch(self, options: LaunchOptions) -> BrowserSession:
            """Start the browser and open options.url. Raises SigError(BROWSER_LAUNCH_ERROR) with the fix."""


# What a transport's send/recv raise (as BrowserError) once the browser end of the connection is gone.
CONNECTION_CLOSED = "the browser connection closed (the browser exited or crashed)"


class BrowserError(Exception):
    """A page-level failure (evaluate threw, target went away). The login cascade treats it as "not yet"."""
