"""What the proxy does for a host: intercept or tunnel, and what to add (the apply engine, per provider).

The config is re-read when the file changes (no restart). Credentials come through the AuthManager, so an
expired one is renewed by the single-flight broker; nothing here can open a browser.
"""

from __future__ import annotations

from ..core.errors import SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..auth.manager import AuthManager
    from ..config.load import Config
    from ..core.model import Provider


class Additions:
    __slots__ = ("body", "cafiles", "headers", "passthrough_on_error", "providers", "query", "secrets")

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.query: dict[str, str] = {}
        self.body: dict[str, str] = {}
        self.cafiles: list[str] = []
        self.providers: list[str] = []
        self.secrets: list[str] = []
        self.passthrough_on_error = False

    def __repr__(self) -> str:
        return f"Additions(providers={self.providers}, headers={sorted(self.headers)})"


class ConfigPolicy:
    def __init__(self, log: Callable[[str], None]) -> None:
        self._log = log
        self._config: Config | None = None
        self._auth: AuthManager | None = None
        self._key: tuple[int, int] | None = None
        # (scheme, host, port) -> (credential file stamps, valid until ms, additions): skips re-reading and
        # re-decrypting the credential on every proxied request while nothing changed.
        self._cache: dict[tuple[str, str, int], tuple[tuple[object, ...], int, Additions | None]] = {}

    def config(self) -> Config:
        import os

        from ..config import paths
        from ..config.load import load_config

        try:
            st = os.stat(paths.config_path())
            key = (st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        if self._config is None or key != self._key:
            try:
                config, _fresh = load_config()
            except SigError as err:
                if self._config is None:
                    raise
                self._log(f"config: {err.code}; keeping the previous one")
                return self._config
            from ..auth.manager import AuthManager
            from ..store.credentials import CredentialStore

            self._config = config
            self._auth = AuthManager(CredentialStore(config.credentials_dir, paths.key_path(), self._log), self._log)
            self._key = key
            self._log(f"config loaded: {len(config.providers)} provider(s)")
        return self._config

    def _matching(self, host: str) -> list[Provider]:
        from ..inject.policy import host_allowed

        return [p for p in self.config().providers.values() if host_allowed(p, host)]

    def intercept(self, host: str, port: int) -> bool:
        """MITM only hosts some provider is for; everything else is a blind tunnel."""
        from ..core.hosts import canonical_host

        return bool(self._matching(canonical_host(host)))

    def additions(self, scheme: str, host: str, port: int) -> Additions | None:
        from ..core.hosts import canonical_host

        host = canonical_host(host)
        config = self.config()
        key = (scheme, host, port)
        stamps = self._stamps(config, host)
        cached = self._cache.get(key)
        from ..core.timeutil import now_ms

        if cached is not None and cached[0] == stamps and now_ms() < cached[1]:
            return cached[2]
        result, until = self._compute(scheme, host, port)
        if len(self._cache) > 1024:
            self._cache.clear()
        self._cache[key] = (stamps, until, result)
        return result

    def _stamps(self, config: Config, host: str) -> tuple[object, ...]:
        import os

        out: list[object] = [self._key]
        assert self._auth is not None
        for provider in self._matching(host):
            try:
                st = os.stat(self._auth.store.path_for(provider.id))
                out.append((provider.id, st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append((provider.id, None))
        return tuple(out)

    def _compute(self, scheme: str, host: str, port: int) -> tuple[Additions | None, int]:
        from ..core.timeutil import now_ms
        from ..inject.apply import apply_rules
        from ..inject.policy import may_inject
        from ..inject.redact import secret_forms

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
            out.secrets += secret_forms(values)
        return (out if out.providers else None), until
