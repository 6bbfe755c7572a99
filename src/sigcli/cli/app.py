"""The composition root: wires config, store, audit and auth for one command. Built lazily, piece by piece.

Commands get their services from here (`app.config`, `app.store`, `app.auth`, `app.auth_for(config)` for a
loop that reloads the config); they never build a store or a manager themselves."""

from __future__ import annotations

import sys

from ..config import paths
from ..core.text import printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..auth.manager import AuthManager
    from ..config.load import Config
    from ..store.credentials import CredentialStore
    from .waiting import WaitLine


class App:
    """What a command is given: terminal output and prompts, and the services (config, store, auth, audit)."""

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose
        self._config: Config | None = None
        self._store: CredentialStore | None = None
        self._auth: AuthManager | None = None
        self._live: WaitLine | None = None  # a waiting line on stderr that messages must not break

    # -- terminal ---------------------------------------------------------------------------------------
    def _err(self, line: str) -> None:
        live = self._live
        if live is None:
            sys.stderr.write(line)
            return
        with live.lock:  # clear the live waiting line, print, draw it again below
            live.clear()
            sys.stderr.write(line)
            sys.stderr.flush()
            live.redraw()

    def log(self, message: str) -> None:
        """A --verbose line on stderr (nothing without --verbose)."""
        if self.verbose:
            self._err(f"[sig] {printable(message)}\n")

    def say(self, message: str) -> None:
        """A human-facing line on stderr (stdout is kept for data). Control characters in it (from a
        server, a remote or a config) are shown escaped, never sent to the terminal raw."""
        self._err(printable(message) + "\n")

    def warn(self, message: str) -> None:
        """A "Warning: …" line on stderr."""
        self._err(f"Warning: {printable(message)}\n")

    def waiting(self, what: str, timeout_s: float, prompt_below: bool) -> WaitLine:
        """Show that sig is waiting (device code, browser sign-in) with the time elapsed, on stderr."""
        from .waiting import WaitLine

        def ended(line: WaitLine) -> None:
            if self._live is line:
                self._live = None

        self._live = WaitLine(what, timeout_s, prompt_below, on_stop=ended)
        return self._live

    def out(self, text: str) -> None:
        """Data on stdout (a newline added when missing)."""
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")

    def ask(self, prompt: str, secret: bool) -> str | None:
        """One answer from the user: hidden on a terminal, else one line of stdin; None at end of input."""
        prompt = printable(prompt)
        if secret and sys.stdin.isatty():
            import getpass

            try:
                return getpass.getpass(f"{prompt}: ", stream=sys.stderr)
            except EOFError:
                return None
        sys.stderr.write(f"{prompt}: ")
        sys.stderr.flush()
        line = sys.stdin.readline()
        if sys.stdin.isatty() is False and line:
            sys.stderr.write("\n")
        return line.rstrip("\r\n") if line else None

    # -- services ---------------------------------------------------------------------------------------
    @property
    def config(self) -> Config:
        """The config, loaded once (its warnings shown when it was parsed afresh)."""
        if self._config is None:
            from ..config.load import load_config

            config, fresh = load_config()
            if fresh:
                for warning in config.warnings:
                    self.warn(f"config: {warning}")
            self._config = config
        return self._config

    @property
    def store(self) -> CredentialStore:
        """The credential store the config names (built once, on first use)."""
        if self._store is None:
            from ..config.load import open_store

            self._store = open_store(self.config, self.log)
        return self._store

    @property
    def auth(self) -> AuthManager:
        """The AuthManager over `store`: stored → valid? → refresh (built once, on first use)."""
        if self._auth is None:
            from ..auth.manager import AuthManager

            self._auth = AuthManager(self.store, self.log)
        return self._auth

    def auth_for(self, config: Config, log: Callable[[str], None] | None = None) -> AuthManager:
        """A fresh AuthManager for `config` (long-running loops reload the config and rebuild with it)."""
        from ..auth.manager import AuthManager
        from ..config.load import open_store

        quiet = log or (lambda _m: None)
        return AuthManager(open_store(config, quiet), quiet)

    def audit(self, action: str, status: str, provider: str | None = None,
              metadata: dict[str, Any] | None = None) -> None:
        """Append an event to the audit log (names and outcomes, never a secret)."""
        from ..store.audit import record

        if metadata is not None:
            metadata = _loggable(metadata)
        record(paths.audit_path(), action, status, provider, metadata)


def _loggable(value: Any) -> Any:
    """Audit metadata that UTF-8 can hold: bytes a C locale left undecoded in argv (lone surrogates, e.g.
    a URL typed in Latin-1) are written as visible escapes instead of failing the command."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {k: _loggable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_loggable(v) for v in value]
    return value
