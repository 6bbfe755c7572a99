"""The optional Playwright adapter (``pip install 'sigcli[playwright]'``), behind the same protocol as CDP.

It drives the user's installed Chrome / Chromium / Edge (``LaunchOptions.executable``) through Playwright's sync
API and a persistent context on the sig profile. No Playwright browser download is needed or used.

Things to know about Playwright's sync API, which shape this module:

* One Playwright driver (a Node process) per thread. A second ``sync_playwright().start()`` in a thread whose
  driver is still running fails, so concurrent sessions of one thread share a driver (reference counted): the
  last ``close()`` stops it.
* Its objects belong to the thread that launched the session; use a session from that thread only. A
  ``close()`` from another thread cannot talk to Playwright: it kills the session's browser processes instead.
* While a session is open, asyncio considers a loop to be running in that thread (``asyncio.run()`` refuses to
  start there), and ``launch()`` in a thread that runs an asyncio loop fails with BROWSER_LAUNCH_ERROR.
* Events (requests, a closed page or browser) are processed only during Playwright calls: ``wait()`` pumps them.
* ``LaunchOptions.shared`` (one visible browser per profile for concurrent logins) cannot be honoured: a
  Playwright persistent context owns its browser process. The option is ignored and the browser is launched
  normally; a second launch on a profile in use fails with BROWSER_LAUNCH_ERROR (profile in use).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time

from sigcli.browser.protocol import BrowserError, LaunchOptions
from sigcli.core.errors import ErrorCode, SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_WAIT_UNTIL = {
    "load": "load",
    "domcontentloaded": "domcontentloaded",
    "networkidle": "networkidle",
    "networkidle0": "networkidle",  # Puppeteer spellings
    "networkidle2": "networkidle",
    "commit": "commit",
}
_MAX_AUTH_HEADERS = 500  # newest kept: a long-lived SPA polls its API
_CLOSE_GRACE_S = 5.0  # context.close() longer than this: kill the browser's processes
_STOP_GRACE_S = 5.0  # the driver's stop longer than this: kill the driver
_LINGER_S = 2.0  # helper processes still on the profile after close: kill them after this

_INSTALL_HINT = (
    "pip install 'sigcli[playwright]' (no browser download is needed: sig uses your installed "
    "Chrome/Chromium), or set browser.adapter: cdp"
)

_threads = threading.local()


class PlaywrightAdapter:
    """Launch the configured Chromium-family browser through Playwright on the sig profile."""

    name = "playwright"

    def launch(self, options: LaunchOptions) -> PlaywrightSession:
        """Start the browser, open ``options.url`` and return the session.

        A navigation that does not reach ``wait_until`` in time, or fails at the network level, is not an
        error: the browser is up and the caller polls the page (``session.navigation_error`` says what
        happened). ``options.shared`` is ignored (see the module docstring).
        """
        try:
            from playwright.sync_api import Error as PlaywrightError
            from playwright.sync_api import sync_playwright
        except ImportError:
            raise SigError(
                ErrorCode.BROWSER_LAUNCH_ERROR,
                "the Playwright adapter needs the playwright package",
                _INSTALL_HINT,
            ) from None

        if not options.user_data_dir:  # abspath("") would make the current directory the profile
            raise SigError(
                ErrorCode.BROWSER_LAUNCH_ERROR,
                "no browser profile directory was given",
                "set browser.browserDataDir in config.yaml",
            )
        profile = os.path.abspath(os.path.expanduser(options.user_data_dir))
        try:
            os.makedirs(profile, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise SigError(
                ErrorCode.BROWSER_LAUNCH_ERROR,
                f"cannot create the browser profile directory {profile}: {exc.strerror or exc}",
                "set browser.browserDataDir in config.yaml to a writable directory",
            ) from None

        try:
            driver = _acquire_driver(sync_playwright)
        except Exception as exc:
            raise _launch_error(exc, options) from None

        context = None
        session: PlaywrightSession | None = None
        try:
            kwargs: dict[str, Any] = {
                "user_data_dir": profile,
                "executable_path": options.executable,
                "headless": options.headless,
                "args": _launch_args(options),
                "ignore_default_args": ["--enable-automation"],
                "timeout": _ms(options.timeout_s),
                # A visible window gets the window's size, not Playwright's fixed 1280x720 viewport.
                "no_viewport": not options.headless,
            }
            if options.proxy is not None:
                proxy = options.proxy
                kwargs["proxy"] = {"server": proxy.server, "bypass": "<-loopback>"}
                if proxy.has_auth:  # Playwright answers the proxy's 407 itself (never in argv)
                    kwargs["proxy"].update(username=proxy.username or "",
                                           password=proxy.password.reveal() if proxy.password else "")
            context = driver.playwright.chromium.launch_persistent_context(**kwargs)
            session = PlaywrightSession(driver, context, profile, PlaywrightError)
            session._restore_cookies(options)
            session._navigate(options)
            return session
        except BaseException as exc:
            if session is not None:
                session.close()  # closes the context and releases the driver
            else:
                if context is not None:
                    _close_context(context, None, profile)
                _release_driver(driver)
            if isinstance(exc, PlaywrightError):
                raise _launch_error(exc, options) from None
            raise


class PlaywrightPage:
    """The page sig opened (or, once it is closed, the newest page still open in the browser)."""

    def __init__(self, session: PlaywrightSession) -> None:
        self._session = session

    def url(self) -> str:
        """The page's current URL ("" when it cannot be read now)."""
        page = self._session._live_page()
        if page is None:
            return ""
        try:
            return str(page.url)
        except Exception:
            return ""

    def ready_state(self) -> str:
        """document.readyState ("" when it cannot be read now)."""
        try:
            value = self.evaluate("document.readyState")
        except BrowserError:
            return ""
        return value if isinstance(value, str) else ""

    def evaluate(self, expression: str) -> Any:
        """Evaluate a JS expression (a string; a function source is called by Playwright) in the page."""
        page = self._session._live_page()
        if page is None:
            raise BrowserError("the page is closed")
        try:
            return page.evaluate(expression)
        except Exception as exc:
            raise BrowserError(_page_error_text(exc)) from None


class PlaywrightSession:
    """A persistent Playwright context on the sig profile, with the page sig opened."""

    adapter = "playwright"

    def __init__(self, driver: _Driver, context: Any, profile: str, error_cls: type[Exception]) -> None:
        self._driver = driver
        self._context = context
        self._profile = profile
        self._error_cls = error_cls
        self._thread = threading.get_ident()
        self._closed = False
        self._context_closed = False
        self._auth: list[tuple[str, str]] = []
        self._browser_pid = _find_browser_pid(driver.pid, profile)
        self._page_view = PlaywrightPage(self)
        # None once the first navigation reached wait_until; else why not ("timeout" or the net:: error).
        self.navigation_error: str | None = None
        self.restored_cookies = 0
        context.on("request", self._on_request)
        context.on("close", self._on_close)
        pages = [p for p in context.pages if not p.is_closed()]
        self._page: Any = pages[0] if pages else context.new_page()

    def _restore_cookies(self, options: LaunchOptions) -> None:
        """The provider's kept session cookies into the jar before the entry page opens, except over cookies
        the browser holds already (see session_cookies.py). Best effort, as in the CDP adapter."""
        kept = options.session_cookies
        if not kept:
            return
        try:
            wanted = kept.missing_from(list(self._context.cookies()))
            if wanted:
                self._context.add_cookies(wanted)
            self.restored_cookies = len(wanted)
        except self._error_cls:
            pass

    # -- protocol -------------------------------------------------------------------------------------

    @property
    def page(self) -> PlaywrightPage:
        """The page sig opened."""
        return self._page_view

    def cookies(self) -> list[dict[str, Any]]:
        """The context's cookie jar, in the CDP shape."""
        if self._closed or self._context_closed:
            raise BrowserError("the browser is closed")
        try:
            raw = self._context.cookies()
        except Exception as exc:
            raise BrowserError(_page_error_text(exc)) from None
        return [_cdp_cookie(c) for c in raw]

    def authorization_headers(self) -> list[tuple[str, str]]:
        """(request URL, Authorization header value) of requests the page sent since launch."""
        return list(self._auth)

    def wait(self, seconds: float) -> None:
        """Wait `seconds`, letting Playwright handle the browser's events meanwhile."""
        seconds = max(0.0, float(seconds))
        deadline = time.monotonic() + seconds
        page = self._live_page()
        if page is not None:
            try:
                page.wait_for_timeout(seconds * 1000)  # runs Playwright's event loop meanwhile
                return
            except Exception:
                pass  # the page closed (or wrong thread): sleep out the rest
        remaining = deadline - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)

    def alive(self) -> bool:
        """Whether the browser and the page are still there."""
        if self._closed or self._context_closed:
            return False
        if self._browser_pid is not None and not _pid_running(self._browser_pid):
            return False  # gone, even if no Playwright call has processed the "close" event yet
        return self._live_page() is not None

    def close(self) -> None:
        """Close the browser (flushing cookies to the profile), then stop the driver if unused. Never raises."""
        if self._closed:
            return
        self._closed = True
        if threading.get_ident() != self._thread:
            # Playwright's objects cannot be used from this thread: end the browser the hard way.
            _kill_tree(self._browser_pid, self._profile)
            return
        try:
            family = _family(self._browser_pid, self._profile)
            if not self._context_closed:
                _close_context(self._context, self._browser_pid, self._profile)
            _wait_gone(family, self._profile)
        finally:
            _release_driver(self._driver)

    def __enter__(self) -> PlaywrightSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------------

    def _navigate(self, options: LaunchOptions) -> None:
        wait_until = _WAIT_UNTIL.get((options.wait_until or "load").lower(), "load")
        try:
            self._page.goto(options.url, wait_until=wait_until, timeout=_ms(options.timeout_s))
        except self._error_cls as exc:
            text = str(exc)
            if type(exc).__name__ == "TimeoutError":
                self.navigation_error = "timeout"
            elif "net::ERR_" in text:
                # The browser shows its error page (or an SSO redirect aborted the first load): the user can
                # still act, and the caller polls.
                match = re.search(r"net::ERR_[A-Z_]+", text)
                self.navigation_error = match.group(0) if match else "net::ERR"
            else:
                raise

    def _live_page(self) -> Any:
        if self._closed:
            return None
        page = self._page
        try:
            if page is not None and not page.is_closed():
                return page
            if self._context_closed:
                return None
            pages = [p for p in self._context.pages if not p.is_closed()]
        except Exception:
            return None
        # The user (or the site) closed sig's tab: follow the newest page still open, e.g. an SSO popup.
        self._page = pages[-1] if pages else None
        return self._page

    def _on_request(self, request: Any) -> None:
        # Runs inside Playwright's dispatcher: must never raise. `headers` is local (lower-case names);
        # all_headers() would cost a round trip per request.
        try:
            value = request.headers.get("authorization")
            if value:
                self._auth.append((str(request.url), str(value)))
                if len(self._auth) > _MAX_AUTH_HEADERS:
                    del self._auth[: len(self._auth) - _MAX_AUTH_HEADERS]
        except Exception:
            pass

    def _on_close(self, *_args: object) -> None:
        self._context_closed = True


# -- the per-thread driver --------------------------------------------------------------------------------


class _Driver:
    """A started ``sync_playwright()`` and how many sessions of its thread use it."""

    def __init__(self, manager: Any, playwright: Any) -> None:
        self.manager = manager
        self.playwright = playwright
        self.users = 0
        # Private attributes, read defensively: only used to bound a hung stop.
        client = getattr(manager, "_client", None)
        proc = getattr(getattr(client, "_transport", None), "_proc", None)
        pid = getattr(proc, "pid", None)
        self.pid: int | None = pid if isinstance(pid, int) else None

    def dead(self) -> bool:
        promise = getattr(getattr(self.manager, "_client", None), "_close_promise", None)
        try:
            return bool(promise is not None and promise.done())
        except Exception:
            return False


def _acquire_driver(sync_playwright: Callable[[], Any]) -> _Driver:
    driver: _Driver | None = getattr(_threads, "driver", None)
    if driver is not None and driver.dead():
        _threads.driver = None
        _stop_driver(driver)
        driver = None
    if driver is None:
        manager = sync_playwright()
        driver = _Driver(manager, manager.start())
        _threads.driver = driver
    driver.users += 1
    return driver


def _release_driver(driver: _Driver) -> None:
    driver.users -= 1
    if driver.users > 0:
        return
    if getattr(_threads, "driver", None) is driver:
        _threads.driver = None
    _stop_driver(driver)


def _stop_driver(driver: _Driver) -> None:
    # stop() closes the driver's stdin and waits for it to exit (it first closes the browsers it started).
    timer = _watchdog(_STOP_GRACE_S, lambda: _kill_tree(driver.pid, None))
    try:
        driver.playwright.stop()
    except Exception:
        pass
    finally:
        timer.cancel()


def _close_context(context: Any, browser_pid: int | None, profile: str) -> None:
    pid = browser_pid if browser_pid is not None else _find_browser_pid(None, profile)
    timer = _watchdog(_CLOSE_GRACE_S, lambda: _kill_tree(pid, profile))
    try:
        context.close()
    except Exception:
        pass
    finally:
        timer.cancel()


# -- processes (Linux /proc; elsewhere Playwright's own clean-up is all there is) ---------------------------


def _watchdog(seconds: float, action: Callable[[], None]) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.daemon = True
    timer.start()
    return timer


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, state) for every process we can read."""
    table: dict[int, tuple[int, str]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read().decode("utf-8", "replace")
            fields = stat.rsplit(")", 1)[1].split()
            table[int(name)] = (int(fields[1]), fields[0])
        except (OSError, IndexError, ValueError):
            continue
    return table


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _uses_profile(pid: int, profile: str) -> bool:
    return f"--user-data-dir={profile}" in _cmdline(pid)


def _find_browser_pid(driver_pid: int | None, profile: str) -> int | None:
    """The browser's main process: the topmost process on this profile (a child of the driver if known)."""
    table = _proc_table()
    candidates = [
        pid
        for pid, (ppid, _state) in table.items()
        if (driver_pid is None or ppid == driver_pid) and _uses_profile(pid, profile)
    ]
    if driver_pid is None:  # no parent to go by: the ones whose parent is not on the profile too
        candidates = [pid for pid in candidates if table[pid][0] not in candidates]
    return min(candidates) if candidates else None


def _pid_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().decode("utf-8", "replace").rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        pass
    from ..store.files import process_exists

    return process_exists(pid)


def _family(pid: int | None, profile: str | None) -> list[int]:
    """pid and its descendants (parents first); with a profile, nothing unless pid still runs on it."""
    if pid is None or (profile is not None and os.path.isdir("/proc") and not _uses_profile(pid, profile)):
        return []
    table = _proc_table()
    family = [pid]
    for parent in family:  # grows while iterating: breadth-first over the descendants
        family.extend(
            child for child, (ppid, _state) in table.items() if ppid == parent and child not in family
        )
    return family


def _kill(pids: list[int]) -> None:
    kill = getattr(signal, "SIGKILL", signal.SIGTERM)
    for pid in reversed(pids):
        with contextlib.suppress(OSError):
            os.kill(pid, kill)


def _kill_tree(pid: int | None, profile: str | None) -> None:
    """SIGKILL pid and its descendants; with a profile, only if pid still runs on it (no pid reuse)."""
    _kill(_family(pid, profile))


def _wait_gone(family: list[int], profile: str) -> None:
    """After a close: give the browser's helper processes a moment to exit, then kill those still running."""
    deadline = time.monotonic() + _LINGER_S
    while True:
        left = [pid for pid in family if _pid_running(pid) and _uses_profile(pid, profile)]
        if not left or time.monotonic() >= deadline:
            _kill(left)
            return
        time.sleep(0.05)


# -- helpers -------------------------------------------------------------------------------------------------


def _ms(seconds: float) -> float:
    return max(0.0, float(seconds)) * 1000


def _launch_args(options: LaunchOptions) -> list[str]:
    from sigcli.browser.launch import QUIET_ARGS

    args = list(QUIET_ARGS)  # Playwright adds its own flags (minus --enable-automation, see launch())
    geteuid = getattr(os, "geteuid", None)
    if geteuid is not None and geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to start as root with its sandbox
    args.extend(options.extra_args)
    return args


def _cdp_cookie(cookie: dict[str, Any]) -> dict[str, Any]:
    """Playwright's cookie dict in the protocol's CDP shape."""
    try:
        expires: float = float(cookie.get("expires", -1))
    except (TypeError, ValueError):
        expires = -1
    session = expires < 0
    out: dict[str, Any] = {
        "name": str(cookie.get("name", "")),
        "value": str(cookie.get("value", "")),
        "domain": str(cookie.get("domain", "")),
        "path": str(cookie.get("path", "/")),
        "expires": -1 if session else expires,
        "httpOnly": bool(cookie.get("httpOnly", False)),
        "secure": bool(cookie.get("secure", False)),
        "session": session,
    }
    if cookie.get("sameSite"):
        out["sameSite"] = str(cookie["sameSite"])
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    # "BrowserType.launch_persistent_context: Failed to ..." -> "Failed to ..."
    return re.sub(r"^[A-Za-z]+\.[a-z_]+: ", "", line)


def _page_error_text(exc: BaseException) -> str:
    """The error's first line, quoted strings blanked: V8 quotes the start of the text JSON.parse choked on."""
    return re.sub(r'"[^"]*"', '"…"', _first_line(exc))[:300]


def _launch_error(exc: BaseException, options: LaunchOptions) -> SigError:
    """A SigError with the fix. Built from Playwright's first line only: its call log lists every argument."""
    text = str(exc)
    first = _first_line(exc)
    code = ErrorCode.BROWSER_LAUNCH_ERROR
    if "Sync API inside the asyncio loop" in text:
        return SigError(
            code,
            "the Playwright adapter cannot start in a thread that runs an asyncio event loop",
            "call sig's browser login from a worker thread (asyncio.to_thread), or set browser.adapter: cdp",
        )
    if "executable doesn't exist" in text or "ENOENT" in text or "EACCES" in text:
        return SigError(
            code,
            f"the browser executable {options.executable} cannot be run",
            "install Chrome or Chromium, or set browser.execPath in config.yaml to its full path "
            "(sig init --channel chrome|msedge|chromium detects it)",
        )
    if "XServer" in text or "Missing X server" in text:
        return SigError(
            code,
            "a visible browser needs a display, and there is none",
            "run sig login --mode headless, run under xvfb-run, or log in on a desktop and sig sync the result",
        )
    if "ProcessSingleton" in text or "already in use" in text:
        return SigError(
            code,
            f"the browser profile {options.user_data_dir} is in use by another browser",
            "close the other browser that uses this profile, or set browser.browserDataDir to another directory",
        )
    if "has been closed" in text:
        return SigError(
            code,
            f"the browser {options.executable} exited as soon as it started",
            "check that browser.execPath starts Chrome, Chromium or Edge, and that no other browser uses "
            f"the profile {options.user_data_dir} (or set browser.browserDataDir to another directory)",
        )
    if type(exc).__name__ == "TimeoutError":
        return SigError(
            code,
            f"the browser did not start within {options.timeout_s:g}s",
            "retry; if it keeps failing, check that browser.execPath starts Chrome/Chromium, or raise the timeout",
        )
    return SigError(
        code,
        f"could not start the browser with Playwright: {first[:300]}",
        "check that browser.execPath points to Chrome, Chromium or Edge, or set browser.adapter: cdp",
    )
