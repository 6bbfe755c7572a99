"""What the proxy does for a host: intercept or tunnel, and what to add (the apply engine, per provider).

The config is re-read when the file changes (no restart). Credentials come through the AuthManager, so an
expired one is renewed by the single-flight broker; nothing here can open a browser.

The server asks once per client connection and origin (and again after routes.ROUTE_TTL), never per
request: `peek_additions` / `peek_intercept` answer from the cache without blocking (a stat of the
config and of the credential files shows whether it is still current); `additions` / `intercept` may
load the config or renew a credential and run in the server's worker threads. What one provider adds
is computed once per credential (not once per host it covers), so a provider with 200 domains reads and
logs its credential once.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

from ..core.errors import SigError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ..auth.manager import AuthManager
    from ..config.load import Config
    from ..core.model import Provider

_Stamp = tuple[object, ...]


class Additions:
    """What sig adds to requests for one origin: headers, query and body fields, the CA files to verify it
    with, and the secrets to mask in its answers."""
    __slots__ = ("body", "cafiles", "headers", "passthrough_on_error", "providers", "query", "redact", "refusal",
                 "secrets", "values")

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.query: dict[str, str] = {}
        self.body: dict[str, str] = {}
        self.cafiles: list[str] = []
        self.providers: list[str] = []
        self.secrets: list[str] = []
        # The forms of `secrets` as bytes, longest first: what the proxy masks in responses to requests
        # it injected into (providers with `redactResponses: false` add none).
        self.redact: tuple[bytes, ...] = ()
        self.passthrough_on_error = False
        # Why nothing was added although the host is a provider's (a port it does not use, cleartext):
        # the same text `sig request` gives (inject.policy.may_inject).
        self.refusal: str | None = None
        self.values: dict[str, dict[str, str]] = {}  # provider id -> credential values (placeholders)

    def __repr__(self) -> str:
        return f"Additions(providers={self.providers}, headers={sorted(self.headers)})"


class _Part:
    """What one provider's credential adds, computed once per credential file version."""

    __slots__ = ("body", "headers", "query", "secrets", "stamp", "until", "values")

    def __init__(self, stamp: object, until: int, headers: dict[str, str], query: dict[str, str],
                 body: dict[str, str], secrets: list[str], values: dict[str, str]) -> None:
        self.stamp = stamp
        self.until = until
        self.headers = headers
        self.query = query
        self.body = body
        self.secrets = secrets
        self.values = values


class ConfigPolicy:
    """The server's policy, from the config and the credential store (see the module's text)."""
    def __init__(self, log: Callable[[str], None]) -> None:
        self._log = log
        self._config: Config | None = None
        self._auth: AuthManager | None = None
        self._key: list[int] | None = None
        self._config_file: str | None = None  # resolved once: SIG_HOME does not change under a daemon
        # Serialises config reloads and credential reads/renewals (the server calls in from its worker
        # threads); a cache hit never takes it.
        self._lock = threading.RLock()
        # host -> (providers for it, their credential files), for the current config
        self._hosts: dict[str, tuple[tuple[Provider, ...], tuple[str, ...]]] = {}
        self._parts: dict[str, _Part] = {}  # provider id -> what it adds
        # (scheme, host, port, providers allowed) -> (credential file stamps, valid until ms, additions)
        self._cache: dict[tuple[Any, ...], tuple[_Stamp, int, Additions | None]] = {}

    # -- the config -----------------------------------------------------------------------------------

    def _stat_config(self) -> list[int] | None:
        from ..config.load import stat_key

        if self._config_file is None:
            from ..config import paths

            self._config_file = paths.config_path()
        return stat_key(self._config_file)

    def config(self) -> Config:
        """The current config, reloaded when its file changed (a broken new one keeps the previous one)."""
        key = self._stat_config()
        if self._config is not None and key == self._key:
            return self._config
        with self._lock:
            return self._reload(key)

    def _reload(self, key: list[int] | None) -> Config:
        if self._config is not None and key == self._key:
            return self._config  # another thread reloaded it meanwhile
        from ..config.load import load_config, open_store

        try:
            config, _fresh = load_config()
        except SigError as err:
            if self._config is None:
                raise
            self._log(f"config: {err.code}; keeping the previous one")
            return self._config
        from ..auth.manager import AuthManager

        self._auth = AuthManager(open_store(config, self._log), self._log)
        self._hosts = {}
        self._parts = {}
        self._cache = {}
        self._config = config
        self._key = key
        self._log(f"config loaded: {len(config.providers)} provider(s)")
        return config

    def _for_host(self, host: str) -> tuple[tuple[Provider, ...], tuple[str, ...]]:
        """The providers whose domains cover `host` and their credential files (config() first)."""
        hosts = self._hosts
        found = hosts.get(host)
        if found is None:
            from ..core.policy import host_allowed

            assert self._config is not None and self._auth is not None
            providers = tuple(p for p in self._config.providers.values() if host_allowed(p, host))
            found = (providers, tuple(self._auth.store.path_for(p.id) for p in providers))
            if len(hosts) > 4096:  # hosts come from clients: keep the memo bounded
                hosts.clear()
            hosts[host] = found
        return found

    # -- intercept ------------------------------------------------------------------------------------

    def intercept(self, host: str, port: int) -> bool:
        """MITM only hosts some provider is for; everything else is a blind tunnel."""
        from ..core.hosts import canonical_host

        self.config()
        return bool(self._for_host(canonical_host(host))[0])

    def peek_intercept(self, host: str, port: int) -> tuple[bool, bool | None]:
        """intercept() when the config is loaded and unchanged: (True, answer); else (False, None)."""
        if self._config is None or self._stat_config() != self._key:
            return False, None
        from ..core.hosts import canonical_host

        return True, bool(self._for_host(canonical_host(host))[0])

    # -- additions ------------------------------------------------------------------------------------

    def additions(self, scheme: str, host: str, port: int) -> Additions | None:
        """additions_for() with every provider allowed (the user's own requests)."""
        return self.additions_for(scheme, host, port, None)

    def peek_additions(self, scheme: str, host: str, port: int) -> tuple[bool, Additions | None]:
        """additions() from the cache, without blocking: (True, answer) when it is still current (the
        config and the credential files unchanged, no credential near expiry); else (False, None)."""
        if self._config is None or self._stat_config() != self._key:
            return False, None
        from ..core.hosts import canonical_host

        host = canonical_host(host)
        cached = self._cache.get((scheme, host, port, None))
        if cached is not None and cached[0] == self._stamps(host) and time.time() * 1000 < cached[1]:
            return True, cached[2]
        return False, None

    def additions_for(self, scheme: str, host: str, port: int, allowed: Iterable[str] | None) -> Additions | None:
        """What to add for scheme://host:port from the providers in `allowed` (None: all of them). Cached
        while the config and the credential files stay the same and no credential nears expiry."""
        from ..core.hosts import canonical_host

        host = canonical_host(host)
        self.config()
        allowed_key = None if allowed is None else frozenset(allowed)
        key = (scheme, host, port, allowed_key)
        stamps = self._stamps(host)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == stamps and time.time() * 1000 < cached[1]:
            return cached[2]
        with self._lock:
            result, until = self._compute(scheme, host, port, allowed_key)
            if len(self._cache) > 1024:
                self._cache.clear()
            self._cache[key] = (stamps, until, result)
        return result

    def statuses(self, allowed: Iterable[str] | None) -> list[dict[str, Any]]:
        """Each provider's status as `sig status` shows it (stored? valid? until when?), for those in
        `allowed` (None: all): what a sandbox may know. Never a value; an error only as its kind."""
        config = self.config()
        out = []
        with self._lock:
            assert self._auth is not None
            for provider in config.providers.values():
                if allowed is not None and provider.id not in allowed:
                    continue
                status = self._auth.status(provider)
                if status.pop("error", None) is not None:
                    status["error"] = "unreadable"  # the message names sig's files: not for the sandbox
                out.append(status)
        return out

    def warm(self) -> None:
        """Read each provider's credential once (the daemon's start): the store, the key and the crypto
        are loaded off the first request's path, and a missing credential is logged once per provider."""
        config = self.config()
        for provider in config.providers.values():
            try:
                self._part(provider, self._file_stamp(provider))
            except SigError as err:
                self._log(f"{provider.id}: {err.code} at start")
            except Exception as exc:
                self._log(f"{provider.id}: {type(exc).__name__} at start")

    def _file_stamp(self, provider: Provider) -> object:
        assert self._auth is not None
        try:
            st = os.stat(self._auth.store.path_for(provider.id))
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _stamps(self, host: str) -> _Stamp:
        out: list[object] = [self._key]
        for path in self._for_host(host)[1]:
            try:
                st = os.stat(path)
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    def _part(self, provider: Provider, stamp: object) -> _Part:
        """What `provider` adds (may renew its credential; SigError when there is none usable)."""
        from ..core.timeutil import now_ms

        part = self._parts.get(provider.id)
        if part is not None and part.stamp == stamp and now_ms() < part.until:
            return part
        from ..core.apply import apply_rules
        from ..core.secret_forms import secret_forms

        assert self._auth is not None
        credential = self._auth.credential(provider)  # may renew; raises SigError when it cannot
        until = now_ms() + 60_000
        expiry = credential.expiry_ms(provider.ttl_ms)
        if expiry is not None:
            until = min(until, expiry - 120_000)  # re-check well before the renewal window
        values = credential.revealed()
        applied = apply_rules(provider.apply, values)
        secrets = secret_forms(values) if provider.get("redactResponses") is not False else []
        part = _Part(self._file_stamp(provider), until, dict(applied.headers), dict(applied.query or {}),
                     dict(applied.body or {}), list(secrets), dict(values))
        self._parts[provider.id] = part
        return part

    def _compute(self, scheme: str, host: str, port: int,
                 allowed: frozenset[str] | None) -> tuple[Additions | None, int]:
        from ..core.policy import may_inject
        from ..core.timeutil import now_ms

        until = now_ms() + 60_000
        out = Additions()
        refusals: list[str] = []
        for provider in self._for_host(host)[0]:
            if allowed is not None and provider.id not in allowed:
                continue
            refusal = may_inject(provider, scheme, host, port)
            if refusal is not None:
                self._log(f"{provider.id}: not injected ({refusal})")
                refusals.append(refusal)
                continue
            try:
                part = self._part(provider, self._file_stamp(provider))
            except SigError as err:
                # block (default): the client gets 502 naming the problem; passthrough: the request goes on
                # without this provider's credentials (for sites that also work logged out).
                err.passthrough_on_error = provider.get("proxyOnError") == "passthrough"  # type: ignore[attr-defined]
                err.cafiles = [str(provider.get("caFile"))] if provider.get("caFile") else []  # type: ignore[attr-defined]
                raise
            until = min(until, part.until)
            out.headers.update(part.headers)
            out.query.update(part.query)
            out.body.update(part.body)
            if provider.get("caFile"):
                out.cafiles.append(str(provider.get("caFile")))
            out.providers.append(provider.id)
            out.values[provider.id] = part.values
            # Only the secrets that go into this request: an upstream can echo what it received, and
            # other providers' secrets never travel to it through the proxy.
            out.secrets += part.secrets
        forms = {f.encode("utf-8", "surrogatepass") for f in out.secrets}
        out.redact = tuple(sorted(forms, key=lambda f: (-len(f), f)))
        if not out.providers:
            if not refusals:
                return None, until
            out.refusal = refusals[0]
        return out, until
