"""The browser login cascade: existing session → headless → visible, and the poll loop each phase runs.

This is login orchestration, so it lives in auth/: it drives the browser package (adapters, extraction,
site checks) and asks auth/validation.py whether what the page holds is a login; browser/ never imports auth.

Modes (`--mode` / provider `loginMode`):
  auto      one headless browser on the profile: a session it already holds is captured at once, an SSO
            that completes by itself (redirect hops, page scripts) is followed; when it stays on one login
            page (or off the site) for SETTLE_S, a visible browser opens for the user.
  headless  the same without the visible fallback: it waits on login pages for all of
            browser.headlessTimeout (a page script, or a slow IdP, may still finish the login).
  visible   a window at once (also `forceVisible: true`).
  cdp       a window of the real browser driven by the native CDP adapter whatever `browser.adapter`
            says: no automation markers (sites that block automated browsers).
With browser.cdpUrl (or --cdp-url) no browser is started: sig opens a tab in the browser the user runs
(browser/attach.py) and waits there as the visible phase does (headless mode: for headlessTimeout).

Budgets: starting the browser and opening the entry page get LAUNCH_BUDGET_S whatever the login's own
timeouts say (a cold first start on a busy machine is slow); headlessTimeout / visibleTimeout count from
the moment the entry page first shows in the tab.

The poll loop never types anything: sig has no site-specific automation. It only watches the page,
reads the jar and asks the provider's validation whether what it holds is a login.

Session cookies (browser/session_cookies.py): a login that succeeds also returns the session cookies of the
provider's domains, to be kept sealed with the credential; the next login puts them back into every
browser sig starts for it (headless and window), so a site that uses only session cookies is logged in
again without a person for as long as its server honours the session.
"""

from __future__ import annotations

import os
import time

from ..browser.extract import Extraction, expiry_ms, extract
from ..browser.protocol import BrowserError, LaunchOptions
from ..browser.site import on_site
from ..core.errors import ErrorCode, SigError
from ..core.hosts import split_url

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..browser.protocol import BrowserAdapter, BrowserSession
    from ..browser.proxy_url import BrowserProxy
    from ..browser.session_cookies import SessionCookies
    from ..core.model import Provider

POLL_S = 1.0  # between looks at the page (the original: 3 s; a look is cheap and local)
POLL_FAST_S = 0.25  # the first seconds of a phase: a session already in the profile is seen at once
FAST_PHASE_S = 5.0
REPROBE_S = 3.0  # the same captured values are probed again only after this long
# auto mode: this long on one login page (or off the site) means a person is needed: open a window.
SETTLE_S = 5.0
# Browser start + opening the entry page, on top of headlessTimeout / visibleTimeout (which count from
# the first page load): generous, because a cold first start on a loaded machine takes many seconds.
LAUNCH_BUDGET_S = 60.0
# Visible windows need a display; CI and containers can run the visible phase headless instead.
VISIBLE_HEADLESS_ENV = "SIG_BROWSER_VISIBLE_HEADLESS"


class Capture:
    """What a successful browser login captured: values, when they expire, and the session cookies to keep."""

    def __init__(self, values: dict[str, str], expires_at_ms: int | None,
                 session_cookies: SessionCookies | None = None) -> None:
        self.values = values
        self.expires_at_ms = expires_at_ms
        self.session_cookies = session_cookies  # to keep for the next login (may be empty)


def _entry_url(provider: Provider) -> str:
    url = provider.entry_url
    if not url:
        raise SigError(ErrorCode.CONFIG_ERROR, f'provider "{provider.id}" has no entryUrl to open in the browser',
                       f"add entryUrl: https://… to providers.{provider.id} in ~/.sig/config.yaml")
    return url


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _interrupt_on_termination() -> Callable[[], None]:
    """SIGTERM/SIGHUP (terminal closed) become KeyboardInterrupt while a browser is open, so the
    browser is closed (its persistent cookies written to the profile) instead of being left running."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def _raise(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, _raise) for sig in (signal.SIGTERM, signal.SIGHUP)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


class Cascade:
    """One browser login for one provider."""

    def __init__(self, provider: Provider, browser_cfg: dict[str, Any], *, mode: str | None = None,
                 network_proxy: str | None = None, notify: Callable[[str], None] | None = None,
                 log: Callable[[str], None] | None = None, session_cookies: SessionCookies | None = None) -> None:
        self.provider = provider
        self.session_cookies = session_cookies  # kept from the last login: restored into our browsers
        self.cfg = browser_cfg
        self.mode = mode or provider.get("loginMode") or "auto"
        self.network_proxy = network_proxy or provider.get("networkProxy") or None
        self.notify = notify or (lambda _m: None)
        self.log = log or (lambda _m: None)
        self.last_reason = ""

    # ---- choosing -----------------------------------------------------------------------------------

    def _adapter(self) -> BrowserAdapter:
        name = "cdp" if self.mode == "cdp" else str(self.cfg.get("adapter") or "cdp")
        if name == "playwright":
            from ..browser.playwright_adapter import PlaywrightAdapter

            return PlaywrightAdapter()
        if name != "cdp":
            raise SigError(ErrorCode.CONFIG_ERROR, f'unknown browser.adapter "{name}"', "use cdp or playwright")
        from ..browser.cdp import CdpAdapter

        return CdpAdapter()

    def _proxy(self) -> BrowserProxy | None:
        from ..browser.proxy_url import parse_proxy_url

        if not self.network_proxy:
            return None
        return parse_proxy_url(str(self.network_proxy), f'provider "{self.provider.id}"')

    def _options(self, headless: bool, shared: bool) -> LaunchOptions:
        from ..browser.locate import resolve_executable
        from ..config.paths import expand_path

        data_dir = expand_path(str(self.cfg.get("browserDataDir") or "~/.sig/browser-data"))
        wait_until = str(self.provider.get("waitUntil") or self.cfg.get("waitUntil") or "load")
        return LaunchOptions(executable=resolve_executable(self.cfg), user_data_dir=data_dir,
                             url=_entry_url(self.provider), headless=headless, proxy=self._proxy(),
                             timeout_s=LAUNCH_BUDGET_S, shared=shared, wait_until=wait_until,
                             session_cookies=self.session_cookies)

    def _shared_browser_running(self, data_dir: str) -> bool:
        """A visible sig browser already holds this profile (another login): join it, skip headless."""
        from ..browser.launch import pid_alive, read_state

        state = read_state(data_dir)
        return state is not None and pid_alive(state["pid"])

    # ---- running ------------------------------------------------------------------------------------

    def run(self) -> Capture:
        """Log in: attached browser, or headless then visible (by mode); the capture, or a SigError."""
        headless_s = float(self.cfg.get("headlessTimeout") or 20000) / 1000
        visible_s = float(self.cfg.get("visibleTimeout") or 120000) / 1000
        mode = self.mode
        if self.provider.get("forceVisible") and mode == "auto":
            mode = "visible"
        cdp_url = str(self.cfg.get("cdpUrl") or "").strip()
        if cdp_url:
            return self._attached(cdp_url, mode, headless_s, visible_s)
        if mode in ("auto", "headless"):
            options = self._options(True, shared=False)
            if mode == "headless" or not self._shared_browser_running(options.user_data_dir):
                capture = self._phase("headless", options, headless_s, settle=mode == "auto")
                if capture is not None:
                    return capture
                if mode == "headless":
                    raise SigError(ErrorCode.BROWSER_TIMEOUT,
                                   f'headless login to "{self.provider.id}" did not complete within '
                                   f"browser.headlessTimeout ({_seconds(headless_s)}): {self.last_reason}",
                                   f"log in with a window: sig login {self.provider.id} --mode visible "
                                   "(or raise browser.headlessTimeout)")
        return self._visible(visible_s)

    def _visible(self, budget_s: float) -> Capture:
        forced_headless = os.environ.get(VISIBLE_HEADLESS_ENV) == "1"
        if not forced_headless:
            from ..browser.locate import has_display

            if not has_display():
                why = f" ({self.last_reason})" if self.last_reason else ""
                raise SigError(
                    ErrorCode.BROWSER_UNAVAILABLE,
                    f'logging in to "{self.provider.id}" needs you in a browser window{why}, and this '
                    "session has no display",
                    f"log in on a machine with a desktop and copy it here (sig remote add …; sig sync push), "
                    f"or without a browser: sig login {self.provider.login_target()} --token-stdin | --cookie-stdin")
        options = self._options(forced_headless, shared=True)
        self.notify(f'Log in to {self.provider.name} in the browser window; sig continues by itself once '
                    f"you are in (waiting up to {int(budget_s)} s, Ctrl-C to stop).")
        return self._wait_for_person("visible", options, budget_s)

    def _wait_for_person(self, phase: str, options: LaunchOptions, budget_s: float) -> Capture:
        capture = self._phase(phase, options, budget_s, settle=False)
        if capture is None:
            raise SigError(
                ErrorCode.BROWSER_TIMEOUT,
                f'the login to "{self.provider.id}" did not complete within browser.visibleTimeout '
                f"({_seconds(budget_s)})" + (f": {self.last_reason}" if self.last_reason else ""),
                "run sig login again and finish the login in the window (raise browser.visibleTimeout "
                "for slow MFA)")
        return capture

    def _attached(self, cdp_url: str, mode: str, headless_s: float, visible_s: float) -> Capture:
        """Log in in a tab of the browser the user runs (browser.cdpUrl / --cdp-url); start none."""
        from ..browser.attach import check_cdp_url

        allow_remote = self.cfg.get("cdpAllowRemote") is True
        check_cdp_url(cdp_url, allow_remote)
        if self.network_proxy:
            raise SigError(ErrorCode.CONFIG_ERROR,
                           f'provider "{self.provider.id}" has a networkProxy, which sig cannot apply to a '
                           "browser it did not start",
                           "start that browser with --proxy-server=…, or log in without --cdp-url / "
                           "browser.cdpUrl")
        wait_until = str(self.provider.get("waitUntil") or self.cfg.get("waitUntil") or "load")
        options = LaunchOptions(executable="", user_data_dir="", url=_entry_url(self.provider),
                                headless=mode == "headless", timeout_s=LAUNCH_BUDGET_S,
                                wait_until=wait_until, cdp_url=cdp_url, cdp_allow_remote=allow_remote)
        if mode == "headless":
            capture = self._phase("attached", options, headless_s, settle=False)
            if capture is None:
                raise SigError(ErrorCode.BROWSER_TIMEOUT,
                               f'login to "{self.provider.id}" in the browser at {cdp_url} did not complete '
                               f"within browser.headlessTimeout ({_seconds(headless_s)}): {self.last_reason}",
                               "finish the login in that browser's tab, or raise browser.headlessTimeout")
            return capture
        self.notify(f"Log in to {self.provider.name} in the tab sig opened in your browser ({cdp_url}); sig "
                    f"continues by itself once you are in (waiting up to {int(visible_s)} s, Ctrl-C to stop).")
        return self._wait_for_person("attached", options, visible_s)

    def _phase(self, phase: str, options: LaunchOptions, budget_s: float, settle: bool) -> Capture | None:
        if options.cdp_url:  # an attached browser is driven by the native adapter, whatever is configured
            from ..browser.cdp import CdpAdapter

            adapter: BrowserAdapter = CdpAdapter()
        else:
            adapter = self._adapter()
        where = options.cdp_url or options.executable
        self.log(f"{self.provider.id}: {phase} phase with the {adapter.name} adapter ({where})")
        restore = _interrupt_on_termination()
        try:
            session = adapter.launch(options)
            restored = getattr(session, "restored_cookies", 0)
            if restored:  # the count only: names and values are the credential's
                self.log(f"{self.provider.id}: restored {restored} session cookie(s) kept from the last login")
            try:
                return self._poll(session, budget_s, settle)
            finally:
                session.close()
        finally:
            restore()

    def _poll(self, session: BrowserSession, budget_s: float, settle: bool) -> Capture | None:
        """Watch the page until a validated capture (returned), or None: the budget ran out (counted
        from when the entry page first showed in the tab), or with `settle` (auto mode's headless
        phase) the page stayed on one login page / off the site for SETTLE_S."""
        from .validation import Verdict, is_login_url, probe

        provider = self.provider
        patterns = [str(p) for p in provider.get("loginUrlPatterns") or []]
        started = time.monotonic()
        loaded = False  # the budget restarts once, when the entry page first shows
        away_url: str | None = None  # the login / off-site page we are waiting on, and since when
        away_since = 0.0
        last_rejected: tuple[dict[str, str], float] | None = None

        def pause() -> None:
            session.wait(POLL_FAST_S if time.monotonic() - started < FAST_PHASE_S else POLL_S)

        while time.monotonic() < started + budget_s:
            if not session.alive():
                raise SigError(ErrorCode.BROWSER_LAUNCH_ERROR,
                               f'the browser closed before the login to "{provider.id}" finished',
                               "run sig login again and leave the window open until sig says it is done")
            url = session.page.url()
            failed = getattr(session, "navigation_error", None)
            if failed and (not url or url.startswith("chrome-error:") or url == "about:blank"):
                raise SigError(ErrorCode.BROWSER_LAUNCH_ERROR,
                               f"the browser could not open {_entry_url(provider)}: {failed}",
                               "check the URL and that the site is reachable from this machine "
                               "(and networkProxy, if the site needs a proxy)")
            blank = not url or url == "about:blank"
            if not blank and not loaded:
                loaded = True
                started = time.monotonic()  # what the user's timeout is about starts now
            waiting = ""
            if blank:
                waiting = "the page has not loaded yet"
            elif not on_site(url, provider):
                waiting = f"the browser is on {split_url(url)[1] or url} (waiting to come back)"
            elif is_login_url(url, patterns):
                waiting = "the browser is on a login page"
            if waiting:
                self.last_reason = waiting
                now = time.monotonic()
                if url != away_url:
                    away_url, away_since = url, now  # a page that moves is not stuck
                if settle and not blank and now - away_since > SETTLE_S:
                    self.log(f"{provider.id}: headless stopped after {SETTLE_S:g} s: {waiting}")
                    return None
                pause()
                continue
            away_url = None
            found, jar = self._extract(session)
            if not found.complete:
                self.last_reason = "; ".join(found.missing) or "nothing captured yet"
                self.log(f"{provider.id}: {self.last_reason}")
                pause()
                continue
            if last_rejected is not None and last_rejected[0] == found.values \
                    and time.monotonic() - last_rejected[1] < REPROBE_S:
                pause()  # nothing new since the site said no: do not ask it again yet
                continue
            verdict, reason = probe(provider, found.values)
            self.log(f"{provider.id}: validation {verdict}: {reason}")
            if verdict == Verdict.VALID:
                from ..browser.session_cookies import SessionCookies

                return Capture(found.values, expiry_ms(found, provider.ttl_ms),
                               SessionCookies.from_jar(jar, provider))
            self.last_reason = f"the captured session is not accepted yet ({reason})"
            last_rejected = (found.values, time.monotonic())
            pause()
        return None

    def _extract(self, session: BrowserSession) -> tuple[Extraction, list[dict[str, Any]]]:
        """One extraction round, and the jar it read."""
        try:
            cookies = session.cookies()
        except BrowserError:
            cookies = []
        return extract(self.provider, cookies, session.page, session.authorization_headers()), cookies
