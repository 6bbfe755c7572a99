"""What the proxy does for a host: intercept or tunnel, and what to add (the apply engine, per provider).

The config is re-read when the file changes (no restart). Credentials come through the AuthManager, so an
expired one is renewed by the single-flight broker; nothing here can open a browser.
"""

from __future__ import annotations

import os
import time

from ..core.errors import SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..auth.manager import AuthManager
    from ..config.load import Config
    from ..core.model import Provider


class Additions:
    __slots__ = ("body", "cafiles", "headers", "passthrough_on_error", "providers", "query", "redact", "secrets")

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

    def __repr__(self) -> str:
        return f"Additions(providers={self.providers}, headers={sorted(self.headers)})"


class ConfigPolicy:
    def __init__(self, log: Callable[[str], None]) -> None:
        import threading

        self._log = log
        self._config: Config | None = None
        self._auth: AuthManager | None = None
        self._key: tuple[int, int] | None = None
        self._config_file: str | None = None  # resolved once: SIG_HOME does not change under a daemon
        # Serialises config reloads and credential reads/renewals (the proxy calls in from many threads);
        # a cache hit never takes it.
        self._lock = threading.RLock()
        # host -> (providers for it, their credential files), for the current config: the proxy asks for
        # every request, and matching domains + building paths cost more than the rest of a cache hit.
        self._hosts: dict[str, tuple[tuple[Provider, ...], tuple[str, ...]]] = {}
        # (scheme, host, port) -> (credential file stamps, valid until ms, additions): skips re-reading and
        # re-decrypting the credential on every proxied request while nothing changed.
        self._cache: dict[tuple[str, str, int], tuple[tuple[object, ...], int, Additions | None]] = {}

    def _stat_config(self) -> tuple[int, int] | None:
        import os

        if self._config_file is None:
            from ..config import paths

            self._config_file = paths.config_path()
        try:
            st = os.stat(self._config_file)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def config(self) -> Config:
        key = self._stat_config()
        if self._config is not None and key == self._key:
            return self._config
        with self._lock:
            return self._reload(key)

    def _reload(self, key: tuple[int, int] | None) -> Config:
        if self._config is not None and key == self._key:
            return self._config  # another thread reloaded it meanwhile
        from ..config import paths
        from ..config.load import load_config

        try:
            config, _fresh = load_config()
        except SigError as err:
            if self._config is None:
                raise
            self._log(f"config: {err.code}; keeping the previous one")
            return self._config
        from ..auth.manager import AuthManager
        from ..store.credentials import CredentialStore

        self._auth = AuthManager(CredentialStore(config.credentials_dir, paths.key_path(), self._log), self._log)
        self._hosts = {}
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

    def _matching(self, host: str) -> list[Provider]:
        self.config()
        return list(self._for_host(host)[0])

    def intercept(self, host: str, port: int) -> bool:
        """MITM only hosts some provider is for; everything else is a blind tunnel."""
        from ..core.hosts import canonical_host

        self.config()
        return bool(self._for_host(canonical_host(host))[0])

    def additions(self, scheme: str, host: str, port: int) -> Additions | None:
        """What to add for scheme://host:port. A cache hit costs two stat calls (config, credential file)
        and no decryption; anything that changed either file, or the credential nearing expiry, recomputes."""
        from ..core.hosts import canonical_host

        host = canonical_host(host)
        self.config()
        key = (scheme, host, port)
        stamps = self._stamps(host)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == stamps and time.time() * 1000 < cached[1]:
            return cached[2]
        with self._lock:
            result, until = self._compute(scheme, host, port)
            if len(self._cache) > 1024:
                self._cache.clear()
            self._cache[key] = (stamps, until, result)
        return result

    def _stamps(self, host: str) -> tuple[object, ...]:
        out: list[object] = [self._key]
        providers, files = self._for_host(host)
        for provider, path in zip(providers, files, strict=True):
            try:
                st = os.stat(path)
                out.append((provider.id, st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append((provider.id, None))
        return tuple(out)

    def _compute(self, scheme: str, host: str, port: int) -> tuple[Additions | None, int]:
        from ..core.apply import apply_rules
        from ..core.policy import may_inject
        from ..core.secret_forms import secret_forms
        from ..core.timeutil import now_ms

        until = now_ms() + 60_000
        out = Additions()
        for provider in self._matching(host):
            refusal = may_inject(provider, scheme, host, port)
            if refusal is not None:
                self._log(f"{provider.id}: not injected ({refusal})")
                continue
            assert self._auth is not None
            try:
                credential = self._auth.credential(provider)  # may renew; raises SigError when it cannot
            except SigError as err:
                # block (default): the client gets 502 naming the problem; passthrough: the request goes on
                # without this provider's credentials (for sites that also work logged out).
                err.passthrough_on_error = provider.get("proxyOnError") == "passthrough"  # type: ignore[attr-defined]
                err.cafiles = [str(provider.get("caFile"))] if provider.get("caFile") else []  # type: ignore[attr-defined]
                raise
            expiry = credential.expiry_ms(provider.ttl_ms)
            if expiry is not None:
                until = min(until, expiry - 120_000)  # re-check well before the renewal window
            values = credential.revealed()
            applied = apply_rules(provider.apply, values)
            out.headers.update(applied.headers)
            out.query.update(applied.query or {})
            out.body.update(applied.body or {})
            if provider.get("caFile"):
                out.cafiles.append(str(provider.get("caFile")))
            out.providers.append(provider.id)
            if provider.get("redactResponses") is not False:
                # Only the secrets that go into this request: an upstream can echo what it received,
                # and other providers' secrets never travel to it through the proxy.
                out.secrets += secret_forms(values)
        forms = {f.encode("utf-8", "surrogatepass") for f in out.secrets}
        out.redact = tuple(sorted(forms, key=lambda f: (-len(f), f)))
        return (out if out.providers else None), until
