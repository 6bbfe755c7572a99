"""WatchLoop: every interval, renew watched credentials that would expire before the next pass, and push
renewed ones to their `autoSync` remotes.

Built to run in the foreground (`sig watch start`) or in a thread of the proxy daemon:
- the config is re-read on every pass (the user may edit it while the loop runs; a config that does not
  load keeps the last good one in use);
- nothing a provider or a remote does can end the loop: every failure becomes a result and a log line;
- renewals go through the AuthManager, so they are single-flight across sig processes (refresh broker);
- a failed push is retried with exponential backoff per remote (30 s doubling up to 15 min), between
  passes too, until it succeeds or the remote is no longer wanted;
- states that need a person ("needs login", a failing renewal) are logged once per change, not per pass;
- a credential that came from a browser login is renewed by a headless login (AuthManager.renew_in_browser:
  never a window, never a prompt, never under `mode: browserless`). When that needs a person (the site
  shows its login page), the provider is not tried again until its credential or its config (or the
  browser section) changes; other failures of it (the site is down, the browser did not start) are
  retried with the same backoff as pushes.
Log lines hold provider ids, remote names, times and error messages, never a credential value, and never
a raw control character (a server's error text could otherwise rewrite the terminal).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from ..auth.manager import renews
from ..core.duration import parse_duration_ms
from ..core.errors import ErrorCode, SigError
from ..core.text import printable
from ..core.timeutil import iso_from_ms, now_ms

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..auth.manager import AuthManager
    from ..config.load import Config
    from ..core.model import Credential, Provider

    SyncFn = Callable[[Config, str, list[str]], None]

DEFAULT_INTERVAL_MS = 5 * 60_000
MIN_INTERVAL_MS = 1_000
MARGIN_MS = 60_000  # renew when the credential would expire before the next pass plus this
BACKOFF_BASE_S = 30.0
BACKOFF_CAP_S = 15 * 60.0
MAX_NAP_S = 30.0  # wake at least this often to notice a changed interval
# A headless browser renewal that failed with one of these waits for a change (a new login, an edited config):
# trying again unchanged would show the same login page, or miss the same browser.
PARK_UNTIL_CHANGED = (
    ErrorCode.BROWSER_TIMEOUT,
    ErrorCode.BROWSER_UNAVAILABLE,
    ErrorCode.CONFIG_ERROR,
    ErrorCode.MANUAL_SETUP_REQUIRED,
    ErrorCode.CREDENTIAL_NOT_FOUND,
)
NEEDS_HUMAN = (
    ErrorCode.CREDENTIAL_NOT_FOUND,
    ErrorCode.CREDENTIAL_EXPIRED,
    ErrorCode.MANUAL_SETUP_REQUIRED,
    ErrorCode.BROWSER_UNAVAILABLE,
    ErrorCode.BROWSER_LAUNCH_ERROR,
    ErrorCode.BROWSER_TIMEOUT,
)


def format_duration(seconds: float) -> str:
    """Seconds as "5m", "1h", "90s" or "1h30m", for the loop's messages."""
    s = max(0, round(seconds))
    if s >= 3600 and s % 3600 == 0:
        return f"{s // 3600}h"
    if s >= 60 and s % 60 == 0:
        return f"{s // 60}m"
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60}m"
    if s >= 60:
        return f"{s // 60}m{s % 60}s"
    return f"{s}s"


def interval_ms_of(config: Config | None) -> int:
    """The configured watch interval (an invalid or too short one falls back / is raised to the minimum)."""
    raw = (config.watch if config is not None else {}).get("interval") or "5m"
    ms = parse_duration_ms(str(raw))
    if ms is None:
        return DEFAULT_INTERVAL_MS
    return max(ms, MIN_INTERVAL_MS)


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, SigError):
        return exc.message
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return f"unexpected {type(exc).__name__}"  # its text could hold anything: keep it out of the log


class _BrowserAttempt:
    """The last failed headless renewal of one provider: what it was tried with, and when to try again
    (None: only once what it was tried with changes)."""

    __slots__ = ("failures", "retry_at", "signature", "state")

    def __init__(self, signature: tuple[Any, ...], failures: int, retry_at: float | None, state: str) -> None:
        self.signature = signature
        self.failures = failures
        self.retry_at = retry_at
        self.state = state  # as reported when it failed: waiting passes report it too (logged once)


def _signature(config: Config, provider_data: dict[str, Any], version: tuple[Any, Any]) -> tuple[Any, ...]:
    """What a headless renewal depends on: the credential's version, the provider's entry, the browser
    section and the mode. Any change to one of them is worth another attempt."""
    setup = json.dumps([provider_data, config.browser, config.mode], sort_keys=True, default=str)
    return version, setup


class _RemoteQueue:
    __slots__ = ("failures", "next_try", "pending")

    def __init__(self) -> None:
        self.pending: set[str] = set()
        self.failures = 0
        self.next_try = 0.0


class WatchLoop:
    """Keeps watched credentials fresh: checks each pass, renews what is due, auto-syncs what changed."""

    def __init__(
        self,
        load_config: Callable[[], Config],
        auth_factory: Callable[[Config], AuthManager],
        sync: SyncFn | None,
        log: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        *,
        interval_ms: int | None = None,
        wall_ms: Callable[[], int] = now_ms,
    ) -> None:
        """`sleep=None` waits on the stop event (so `stop.set()` wakes the loop at once); tests inject a
        `sleep` that advances their `clock`. `interval_ms` overrides the configured interval."""
        self._load_config = load_config
        self._auth_factory = auth_factory
        self._sync = sync
        # Log lines quote token endpoints and remotes (error descriptions, stderr): one line each,
        # control characters shown escaped, whatever writes the log (a terminal or the proxy's file).
        self._log: Callable[[str], None] = lambda message: log(printable(message, one_line=True))
        self._clock = clock
        self._sleep = sleep
        self._interval_override = interval_ms
        self._wall_ms = wall_ms
        self._config: Config | None = None
        self._config_error: str | None = None
        self._states: dict[str, str] = {}  # provider -> state last logged
        self._versions: dict[str, tuple[Any, Any]] = {}  # provider id -> (updatedAt, expiresAt) last seen
        self._queues: dict[str, _RemoteQueue] = {}  # remote -> providers waiting to be pushed
        self._browser_failed: dict[str, _BrowserAttempt] = {}  # provider id -> its last failed headless renewal
        self._lock = threading.Lock()  # run_once / retries never overlap, whoever calls them
        self._stop: threading.Event | None = None
        self.passes = 0

    # -- configuration ------------------------------------------------------------------------------
    def _load(self) -> Config | None:
        try:
            config = self._load_config()
        except Exception as exc:
            message = _describe_error(exc)
            if message != self._config_error:
                keep = " (keeping the last good config)" if self._config is not None else ""
                self._log(f"config: {message}{keep}")
                self._config_error = message
            return self._config
        if self._config_error is not None:
            self._log("config: loads again")
            self._config_error = None
        self._config = config
        return config

    def interval_ms(self) -> int:
        """The pass interval: --interval, else watch.interval (at least a second)."""
        if self._interval_override is not None:
            return max(self._interval_override, MIN_INTERVAL_MS)
        return interval_ms_of(self._config)

    @staticmethod
    def _wanted(config: Config) -> dict[str, set[str]]:
        """provider id -> the remotes it is auto-synced to, from the current watch list."""
        out: dict[str, set[str]] = {}
        for key, spec in (config.watch.get("providers") or {}).items():
            provider = config.get(key) or config.resolve(key)
            if provider is not None:
                out.setdefault(provider.id, set()).update((spec or {}).get("autoSync") or [])
        return out

    # -- one pass -----------------------------------------------------------------------------------
    def run_once(self) -> list[dict[str, Any]]:
        """Check every watched provider once, then push what is waiting. One result per provider:
        {"provider", "action": fresh|renewed|needs-login|error, "detail", "sync"?: {remote: outcome}}."""
        with self._lock:
            config = self._load()
            self.passes += 1
            if config is None:
                return []
            try:
                auth = self._auth_factory(config)
            except Exception as exc:
                self._log(f"cannot open the credential store: {_describe_error(exc)}")
                return []
            horizon = self.interval_ms() + MARGIN_MS
            watched = config.watch.get("providers") or {}
            results: list[dict[str, Any]] = []
            by_id: dict[str, dict[str, Any]] = {}
            for key, spec in watched.items():
                if self._stop is not None and self._stop.is_set():
                    break  # stopping: do not start on the next provider
                try:
                    result, pid, changed = self._check(config, auth, str(key), horizon)
                except Exception as exc:  # a bug or an odd store must not end the loop
                    result, pid, changed = self._report(str(key), "error", _describe_error(exc), "crash"), None, False
                results.append(result)
                if pid is not None:
                    by_id[pid] = result
                    if changed:
                        for remote in (spec or {}).get("autoSync") or []:
                            self._queues.setdefault(remote, _RemoteQueue()).pending.add(pid)
            for gone in set(self._states) - {str(k) for k in watched}:
                self._states.pop(gone, None)
            for gone in set(self._browser_failed) - set(by_id):
                self._browser_failed.pop(gone, None)
            for remote, (outcome, ids) in self._flush(config).items():
                for pid in ids:
                    if pid in by_id:
                        by_id[pid].setdefault("sync", {})[remote] = outcome
            return results

    def _report(self, key: str, action: str, detail: str, state: str | None = None,
                hint: str = "") -> dict[str, Any]:
        state = state or action
        if action == "renewed" or self._states.get(key) != state:
            self._log(f"{key}: {detail}" + (f" ({hint})" if hint else ""))
        self._states[key] = state
        return {"provider": key, "action": action, "detail": detail}

    def _check(self, config: Config, auth: AuthManager, key: str,
               horizon: int) -> tuple[dict[str, Any], str | None, bool]:
        provider = config.get(key) or config.resolve(key)
        if provider is None:
            return self._report(key, "error", f'"{key}" is not a configured provider',
                                "missing", f"remove it with: sig watch remove {key}"), None, False
        pid = provider.id
        login = f"run sig login {provider.login_target()}"
        try:
            before = auth.stored(provider)
        except SigError as err:
            return self._report(key, "error", err.message, f"error:{err.code}", err.hint), pid, False
        if before is None or (not before.values and not renews(provider)):
            # (an OAuth2 entry without a token after `sig logout` may still hold client credentials)
            self._versions.pop(pid, None)
            return self._report(key, "needs-login", f"needs login: {login}", "needs-login"), pid, False
        ttl = provider.ttl_ms
        version = (before.updated_at, before.expires_at)
        previous = self._versions.get(pid)
        self._versions[pid] = version
        now = self._wall_ms()
        expiry = before.expiry_ms(ttl)
        if before.is_valid(ttl, now + horizon):
            until = f"valid until {iso_from_ms(expiry)}" if expiry is not None else "valid (no expiry)"
            if previous is not None and previous != version:
                # renewed by another sig process (or a new login) since the last pass: remotes need it too
                return self._report(key, "fresh", f"{until} (renewed elsewhere)", "fresh"), pid, True
            return self._report(key, "fresh", until, "fresh"), pid, False
        from ..auth.strategies.browser import renews_in_browser

        browser_cfg = None if config.mode == "browserless" else config.browser
        if renews_in_browser(provider, before, browser_cfg):
            result = self._renew_in_browser(config, auth, key, provider, before, horizon, browser_cfg)
            return result, pid, result["action"] == "renewed"
        self._browser_failed.pop(pid, None)
        if not renews(provider):
            if before.is_valid(ttl, now):
                left = format_duration(((expiry or now) - now) / 1000)
                return self._report(key, "fresh", f"expires in {left} and cannot be renewed without you: {login}",
                                    "expiring"), pid, False
            return self._report(key, "needs-login", f"needs login (expired): {login}", "needs-login"), pid, False
        try:
            after = auth.credential(provider, ahead_ms=horizon)
        except SigError as err:
            if err.code in NEEDS_HUMAN:
                return self._report(key, "needs-login", f"needs login: {login}", "needs-login"), pid, False
            return self._report(key, "error", f"renewal failed: {err.message}", f"error:{err.code}",
                                err.hint), pid, False
        except Exception as exc:
            return self._report(key, "error", f"renewal failed: {_describe_error(exc)}", "error:crash"), pid, False
        new_version = (after.updated_at, after.expires_at)
        self._versions[pid] = new_version
        after_expiry = after.expiry_ms(ttl)
        if new_version != version:
            until = f" until {iso_from_ms(after_expiry)}" if after_expiry is not None else ""
            return self._report(key, "renewed", f"renewed, valid{until}", "fresh"), pid, True
        if after.is_valid(ttl, now):
            until = iso_from_ms(after_expiry) if after_expiry is not None else "?"
            return self._report(key, "error", f"could not renew ahead of expiry; the current token stays valid "
                                f"until {until}", "stale", "run with --verbose for the reason"), pid, False
        return self._report(key, "needs-login", f"needs login: {login}", "needs-login"), pid, False

    def _renew_in_browser(self, config: Config, auth: AuthManager, key: str, provider: Provider,
                          before: Credential, horizon: int, browser_cfg: dict[str, Any] | None) -> dict[str, Any]:
        """A browser credential that expires before the next pass: a headless login renews it, unless the
        last attempt with the same credential and config needed a person (or is still backing off)."""
        pid = provider.id
        ttl = provider.ttl_ms
        login = f"run sig login {provider.login_target()}"
        version = (before.updated_at, before.expires_at)
        signature = _signature(config, provider.data, version)

        def without_renewal(hint: str) -> dict[str, Any]:
            now = self._wall_ms()
            if before.is_valid(ttl, now):
                left = format_duration(((before.expiry_ms(ttl) or now) - now) / 1000)
                return self._report(key, "fresh", f"expires in {left} and a headless login could not renew it: "
                                    f"{login}", "expiring", hint)
            return self._report(key, "needs-login", f"needs login: {login}", "needs-login", hint)

        last = self._browser_failed.get(pid)
        if last is not None and last.signature == signature:
            if last.retry_at is None:
                return without_renewal("")  # logged when it failed; a new login or config edit retries it
            wait = last.retry_at - self._clock()
            if wait > 0:
                return self._report(key, "error", f"headless renewal failed; retrying in {format_duration(wait)}",
                                    last.state)
        try:
            after = auth.renew_in_browser(provider, browser_cfg, ahead_ms=horizon)
        except SigError as err:
            if err.code in PARK_UNTIL_CHANGED:
                self._browser_failed[pid] = _BrowserAttempt(signature, 1, None, "needs-login")
                return without_renewal(f"the headless login did not renew it: {err.message}")
            failures = last.failures + 1 if last is not None and last.signature == signature else 1
            delay = min(BACKOFF_BASE_S * 2 ** (failures - 1), BACKOFF_CAP_S)
            self._browser_failed[pid] = _BrowserAttempt(signature, failures, self._clock() + delay,
                                                        f"error:{err.code}")
            return self._report(key, "error", f"headless renewal failed: {err.message}; retrying in "
                                f"{format_duration(delay)}", f"error:{err.code}", err.hint)
        except Exception as exc:
            self._browser_failed[pid] = _BrowserAttempt(signature, 1, self._clock() + BACKOFF_CAP_S, "error:crash")
            return self._report(key, "error", f"headless renewal failed: {_describe_error(exc)}", "error:crash")
        self._browser_failed.pop(pid, None)
        new_version = (after.updated_at, after.expires_at)
        self._versions[pid] = new_version
        expiry = after.expiry_ms(ttl)
        if new_version == version:  # cannot happen (the store renews only a stale one); say what is true
            return self._report(key, "fresh", "valid", "fresh")
        until = f" until {iso_from_ms(expiry)}" if expiry is not None else " (no expiry)"
        return self._report(key, "renewed", f"renewed by a headless browser login, valid{until}", "fresh")

    # -- auto-sync ----------------------------------------------------------------------------------
    def _flush(self, config: Config) -> dict[str, tuple[str, list[str]]]:
        """Push every remote's waiting providers whose backoff has passed. remote -> (outcome, ids)."""
        wanted = self._wanted(config)
        outcomes: dict[str, tuple[str, list[str]]] = {}
        for remote in list(self._queues):
            queue = self._queues[remote]
            queue.pending = {pid for pid in queue.pending if remote in wanted.get(pid, ())}
            if not queue.pending:
                del self._queues[remote]
                continue
            ids = sorted(queue.pending)
            wait = queue.next_try - self._clock()
            if wait > 0:
                outcomes[remote] = (f"waiting (retry in {format_duration(wait)})", ids)
                continue
            try:
                if self._sync is None:
                    raise SigError(ErrorCode.SYNC_ERROR, "sync not available", "")
                self._sync(config, remote, ids)
            except Exception as exc:
                queue.failures += 1
                delay = min(BACKOFF_BASE_S * 2 ** (queue.failures - 1), BACKOFF_CAP_S)
                queue.next_try = self._clock() + delay
                message = _describe_error(exc)
                self._log(f"auto-sync of {', '.join(ids)} to {remote} failed: {message}; "
                          f"retrying in {format_duration(delay)}")
                outcomes[remote] = (f"failed: {message}", ids)
                continue
            queue.pending.difference_update(ids)
            if not queue.pending:
                del self._queues[remote]
            self._log(f"{', '.join(ids)}: synced to {remote}")
            outcomes[remote] = ("ok", ids)
        return outcomes

    def next_retry(self) -> float | None:
        """Clock time of the earliest pending push retry, or None."""
        times = [q.next_try for q in self._queues.values() if q.pending]
        return min(times) if times else None

    def retry_due(self) -> None:
        """Push what is waiting and due, between passes."""
        with self._lock:
            due = self.next_retry()
            if due is None or due > self._clock():
                return
            config = self._load()
            if config is not None:
                self._flush(config)

    def pending(self) -> dict[str, list[str]]:
        """Per remote, the providers waiting to be pushed."""
        return {remote: sorted(q.pending) for remote, q in self._queues.items() if q.pending}

    # -- the loop -----------------------------------------------------------------------------------
    def run(self, stop: threading.Event, max_passes: int | None = None) -> None:
        """Pass now, then every interval, until `stop` is set (or after `max_passes` passes)."""
        self._stop = stop
        next_pass = last_pass = self._clock()
        done = 0
        while not stop.is_set():
            now = self._clock()
            if now >= next_pass:
                try:
                    self.run_once()
                except Exception as exc:  # never reached by design; belt and braces for a daemon thread
                    self._log(f"watch pass failed: {_describe_error(exc)}")
                done += 1
                if max_passes is not None and done >= max_passes:
                    return
                last_pass = self._clock()
                next_pass = last_pass + self.interval_ms() / 1000
            else:
                try:
                    self.retry_due()
                except Exception as exc:
                    self._log(f"auto-sync retry failed: {_describe_error(exc)}")
                if self._interval_override is None:
                    with self._lock:
                        self._load()
                    next_pass = last_pass + self.interval_ms() / 1000  # the user may have changed it
            if stop.is_set():
                return
            wake = next_pass
            retry = self.next_retry()
            if retry is not None:
                wake = min(wake, retry)
            self._wait(stop, min(max(0.0, wake - self._clock()), MAX_NAP_S))

    def _wait(self, stop: threading.Event, seconds: float) -> None:
        if self._sleep is None:
            stop.wait(seconds)
        else:
            self._sleep(seconds)


def push_sync(log: Callable[[str], None]) -> SyncFn:
    """The real auto-sync: `sig sync push` of the given providers to one remote."""

    def sync(config: Config, remote: str, provider_ids: list[str]) -> None:
        try:
            from ..sync.engine import push_for_watch
        except ImportError:
            raise SigError(ErrorCode.SYNC_ERROR, "sync not available in this version of sig", "") from None
        push_for_watch(config, remote, provider_ids, log)

    return sync


def make_loop(log: Callable[[str], None], debug: Callable[[str], None] | None = None,
              interval_ms: int | None = None,
              auth_for: Callable[[Config, Callable[[str], None]], AuthManager] | None = None) -> WatchLoop:
    """A WatchLoop on $SIG_HOME's config and store, auto-syncing over SSH. `log` gets the loop's lines,
    `debug` the store's and the refresh broker's (e.g. only with --verbose). `auth_for(config, log)` builds
    the AuthManager for each config the loop loads (the CLI passes its composition root's)."""
    from ..config.load import load_config

    quiet = debug or (lambda _m: None)

    def load() -> Config:
        return load_config()[0]

    def auth_factory(config: Config) -> AuthManager:
        if auth_for is not None:
            return auth_for(config, quiet)
        from ..auth.manager import AuthManager
        from ..config.load import open_store

        return AuthManager(open_store(config, quiet), quiet)

    return WatchLoop(load, auth_factory, push_sync(quiet), log, interval_ms=interval_ms)
