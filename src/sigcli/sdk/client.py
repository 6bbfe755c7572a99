"""SigClient: sig's config, sealed store and AuthManager in this process; SigResponse: one finished request."""

from __future__ import annotations

import os
import threading

from ..config import paths
from ..core.errors import ErrorCode, SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

    from ..auth.manager import AuthManager
    from ..config.load import Config
    from ..core.apply import Applied
    from ..core.model import Provider

    HeadersArg = Mapping[str, str] | Iterable[tuple[str, str]] | None
    BodyArg = bytes | bytearray | str | dict[str, Any] | list[Any] | None

_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class SigResponse:
    """A response read in full: `status`, `reason`, `headers` (lower-case names; repeats joined by ", "),
    `header_list` (as received), `body` (bytes), `url` (the final URL, after redirects)."""

    __slots__ = ("body", "header_list", "headers", "reason", "status", "url")

    def __init__(self, status: int, reason: str, header_list: list[tuple[str, str]], body: bytes, url: str) -> None:
        self.status = status
        self.reason = reason
        self.header_list = header_list
        self.body = body
        self.url = url
        merged: dict[str, str] = {}
        for name, value in header_list:
            key = name.lower()
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        self.headers = merged

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        """The body decoded with the Content-Type charset (UTF-8 when none or unknown)."""
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"').strip()
        try:
            return self.body.decode(charset, "replace")
        except LookupError:
            return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON (ValueError when it is not JSON)."""
        import json

        return json.loads(self.text)

    def __repr__(self) -> str:
        return f"SigResponse({self.status} {self.reason})"


def _provider_not_found(text: str) -> SigError:
    from ..config.load import provider_not_found

    return provider_not_found(text)


def _header_list(headers: HeadersArg) -> list[tuple[str, str]]:
    if headers is None:
        return []
    items = headers.items() if hasattr(headers, "items") else headers
    out = []
    for name, value in items:
        name, value = str(name), str(value)
        if not name or any(c not in _TOKEN_CHARS for c in name):
            raise SigError(ErrorCode.USAGE_ERROR, f'"{name[:64]}" is not a valid header name',
                           "header names are letters, digits and !#$%&'*+-.^_`|~")
        if any(c in value for c in "\r\n\0"):
            raise SigError(ErrorCode.USAGE_ERROR, f'the value of header "{name}" contains a line break or NUL',
                           "remove control characters from header values")
        out.append((name, value))
    return out


def _payload(body: BodyArg) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (dict, list)):
        import json

        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raise SigError(ErrorCode.USAGE_ERROR, f"cannot send a body of type {type(body).__name__}",
                   "pass bytes, str, or a dict/list (sent as JSON)")


class SigClient:
    """Credentials from sig's own store, refreshed by sig, applied by the provider's rules.

    `sig_home` selects the sig folder (default: $SIG_HOME, else ~/.sig). The config is re-read when the
    file changes; the credential is read (and refreshed when due) on every call. Errors are `SigError`.
    """

    def __init__(self, sig_home: str | os.PathLike[str] | None = None) -> None:
        current = paths.sig_home()
        self.sig_home = os.path.abspath(os.path.expanduser(os.fspath(sig_home))) if sig_home else current
        self._own_home = self.sig_home != current  # then SIG_HOME's config cache is not ours to use
        self._lock = threading.Lock()
        self._stamp: list[int] | None = None
        self._config: Config | None = None
        self._auth: AuthManager | None = None

    @property
    def config_path(self) -> str:
        """The config file of this client's sig folder."""
        return os.path.join(self.sig_home, "config.yaml")

    @property
    def key_path(self) -> str:
        """The key file of this client's sig folder."""
        return os.path.join(self.sig_home, "encryption.key")

    # -- services ---------------------------------------------------------------------------------------
    def _load_config(self) -> Config:
        from ..config.load import load_config, missing_config_error, parse_config

        path = self.config_path
        if not self._own_home:
            return load_config(path)[0]
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            raise missing_config_error(path) from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise SigError(ErrorCode.CONFIG_ERROR, f"cannot read {path}: {reason}", "check the file") from None
        return parse_config(text, path)

    def _credentials_dir(self, config: Config) -> str:
        if not self._own_home:
            return config.credentials_dir
        raw = str((config.data.get("storage") or {}).get("credentialsDir") or "~/.sig/credentials").strip()
        if raw == "~/.sig" or raw.startswith(("~/.sig/", "~\\.sig\\")):
            return os.path.join(self.sig_home, raw[7:]) if len(raw) > 6 else self.sig_home
        return paths.expand_path(raw)

    def _services(self) -> tuple[Config, AuthManager]:
        from ..sandbox.inside import in_sandbox

        if in_sandbox():  # say it plainly (the data is not there either way)
            from ..sandbox.inside import values_unavailable

            raise values_unavailable("sdk: SigClient")
        from ..config.load import stat_key

        stamp = stat_key(self.config_path)
        with self._lock:
            if self._config is None or self._auth is None or stamp != self._stamp:
                from ..auth.manager import AuthManager
                from ..config.load import open_store

                config = self._load_config()
                store = open_store(config, credentials_dir=self._credentials_dir(config), key_path=self.key_path)
                self._config, self._auth, self._stamp = config, AuthManager(store), stamp
            return self._config, self._auth

    @property
    def config(self) -> Config:
        """sig's config (`sigcli.config.load.Config`), re-read when the file changed."""
        return self._services()[0]

    def provider(self, provider: str) -> Provider:
        """The provider named by id, name, URL or host; SigError PROVIDER_NOT_FOUND otherwise."""
        found = self.config.resolve(provider)
        if found is None:
            raise _provider_not_found(provider)
        return found

    # -- credentials ------------------------------------------------------------------------------------
    def get_headers(self, provider: str) -> dict[str, str]:
        """The headers the provider's apply rules produce from its current credential.

        No URL is involved, so no domain check: send them only to the provider's own hosts.
        """
        config, auth = self._services()
        found = config.resolve(provider)
        if found is None:
            raise _provider_not_found(provider)
        from ..core.apply import apply_rules

        return apply_rules(found.apply, auth.credential(found).revealed()).headers

    def apply(self, provider: str, url: str) -> Applied:
        """What the provider adds to a request for `url` (`.headers`, `.query`, `.body`; the last two may be
        None). Refuses (SigError) when the URL's host or scheme is not one the provider may receive."""
        from ._common import refuse_if_needed

        config, auth = self._services()
        found = config.resolve(provider)
        if found is None:
            raise _provider_not_found(provider)
        refuse_if_needed(found, url)
        from ..core.apply import apply_rules

        return apply_rules(found.apply, auth.credential(found).revealed())

    # -- one request ------------------------------------------------------------------------------------
    def request(
        self,
        url: str,
        method: str = "GET",
        headers: HeadersArg = None,
        body: BodyArg = None,
        providers: str | Iterable[str] | None = None,
        timeout: float = 30.0,
        cafile: str | None = None,
    ) -> SigResponse:
        """Send one authenticated request and read the whole response.

        The provider is chosen by the URL's host unless `providers` names some. A dict/list body is sent as
        JSON; any body defaults to Content-Type application/json. Redirects are followed; what sig added is
        sent only to the original origin. `cafile` adds a CA for HTTPS (the provider's caFile is used too).
        """
        from .._version import __version__
        from ..inject.request import authenticated_request

        method = str(method).upper()
        if not method.isalpha():
            raise SigError(ErrorCode.USAGE_ERROR, f'"{method[:32]}" is not an HTTP method', 'e.g. method="POST"')
        names = [providers] if isinstance(providers, str) else list(providers or [])
        header_list = _header_list(headers)
        payload = _payload(body)
        config, auth = self._services()
        try:
            result = authenticated_request(
                config, auth, url, method=method, headers=header_list, body=payload, provider_names=names,
                cafiles=[os.fspath(cafile)] if cafile else [], timeout=float(timeout),
                user_agent=f"sig-sdk/{__version__}")
        except ValueError:
            # http.client rejected a header; its message may quote a credential, so it is not passed on.
            raise SigError(ErrorCode.USAGE_ERROR, "a header of the request has an invalid name or value",
                           "check the headers passed, and the provider's apply rules") from None
        import http.client

        try:
            response = result.response
            data = response.read()
            return SigResponse(response.status, response.reason, list(response.getheaders()), data,
                               str(result.url))
        except TimeoutError:
            raise SigError(ErrorCode.GENERAL_ERROR, f"{result.url.host} stopped answering (timeout {timeout:g}s)",
                           "retry, or raise timeout=") from None
        except (OSError, http.client.HTTPException) as exc:
            raise SigError(ErrorCode.GENERAL_ERROR,
                           f"reading the response from {result.url.host} failed ({type(exc).__name__})",
                           "retry; check that the server is reachable") from None
        finally:
            result.close()

    def __repr__(self) -> str:
        return f"SigClient(sig_home={self.sig_home!r})"
