"""Who a client is (its proxy token) and what it may do (its profile), decided once per client connection.

The user's own token (`$SIG_HOME/proxy/token`) gets `USER`: every provider is injected, hosts no provider
covers get a blind CONNECT tunnel (plain HTTP is forwarded as it is), any TCP target may be tunnelled.

Extra tokens carry their own `Profile` (the sandbox of `sig run --sandbox` mints one per run and revokes
it when the run ends). They are registered in-process (`TokenTable.add` / `revoke`) or by a file in
`$SIG_HOME/proxy/profiles/` (0600, written atomically, removed to revoke), which the daemon re-reads when
the folder changes (checked once a second, and at once when an unknown token shows up); connections
made with a token that went away are closed. A profile file:

    {"name": "run-1234", "tokenSha256": "<hex sha256 of the token>",
     "providers": ["github"],              # injected providers (absent: all; []: none)
     "otherHosts": "mitm",                 # hosts no allowed provider covers: "mitm" (TLS terminated,
                                           #   requests logged, nothing added), "tunnel", or "refuse" (403)
     "allowHosts": ["pypi.org", "*.pythonhosted.org"],   # with "refuse": still allowed (MITM'd)
     "tcp": ["db.internal:5432"],          # raw TCP targets a CONNECT may tunnel blind
     "placeholders": {"sig-ph-0f3a...": ["openai", "token"]}}   # see below

Placeholders: strings a sandboxed program holds instead of a secret (each starts with
`PLACEHOLDER_MARK`). In a request to a host of the named provider the proxy swaps each one for that
credential's value (the field named, e.g. "token"); in a request anywhere else it is refused (403) and
audited as an attempted exfiltration. Requests of such a profile are always MITM'd (a blind tunnel could
carry a placeholder unseen), and their bodies are read whole to be checked (up to the proxy's
`max_inject_body`; larger ones get 413).

Only a SHA-256 of a token is kept in files; the token itself travels only in Proxy-Authorization.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

PLACEHOLDER_MARK = b"sig-ph-"
OTHER_HOSTS = ("tunnel", "mitm", "refuse")


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: it keys pools of connections
class Profile:
    """What a client may do through the proxy: which providers are injected, what happens to other hosts,
    which TCP targets it may tunnel, and its placeholders."""
    name: str
    providers: frozenset[str] | None = None  # None: every provider
    other_hosts: str = "tunnel"
    allow_hosts: tuple[str, ...] = ()
    tcp: frozenset[tuple[str, int]] | None = None  # None: any target may be tunnelled
    placeholders: Mapping[bytes, tuple[str, str]] = field(default_factory=dict)
    # A sandbox's run (`sig run --sandbox`, adopt.py): its connections come through the sandbox's own
    # listening socket, and the machine's loopback and link-local addresses are not reachable for it
    # except as a provider's host or a host it allows (local_guard.py).
    sandbox: bool = False

    def tunnel_allowed(self, host: str, port: int) -> bool:
        """Whether a blind CONNECT tunnel to host:port is allowed."""
        return self.tcp is None or (host, port) in self.tcp

    def host_allowed(self, host: str) -> bool:
        """For otherHosts "refuse": whether this host is in allowHosts."""
        from ..core.hosts import domain_matches

        return any(domain_matches(pattern, host) for pattern in self.allow_hosts)

    def same_as(self, other: Profile) -> bool:
        """Whether `other` grants exactly the same (a re-read profile file that did not change keeps the
        old object, so connections bound to it stay open)."""
        return (self.name, self.providers, self.other_hosts, self.allow_hosts, self.tcp, dict(self.placeholders),
                self.sandbox) \
            == (other.name, other.providers, other.other_hosts, other.allow_hosts, other.tcp,
                dict(other.placeholders), other.sandbox)


USER = Profile("user")


def profile_from_json(data: Mapping[str, object]) -> Profile:
    """A Profile from a profile file's object (ValueError when malformed)."""
    from ..core.hosts import canonical_host

    name = str(data.get("name") or "profile")
    providers_raw = data.get("providers")
    providers = None if providers_raw is None else frozenset(str(p) for p in _list(providers_raw, "providers"))
    other = str(data.get("otherHosts") or "mitm")
    if other not in OTHER_HOSTS:
        raise ValueError(f"otherHosts must be one of {', '.join(OTHER_HOSTS)}")
    allow = tuple(str(h).lower() for h in _list(data.get("allowHosts") or [], "allowHosts"))
    tcp: set[tuple[str, int]] = set()
    for item in _list(data.get("tcp") or [], "tcp"):
        host, _, port = str(item).rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"tcp entry {item!r} is not HOST:PORT")
        tcp.add((canonical_host(host.strip("[]")), int(port)))
    placeholders: dict[bytes, tuple[str, str]] = {}
    raw = data.get("placeholders") or {}
    if not isinstance(raw, dict):
        raise ValueError("placeholders must be an object")
    for key, target in raw.items():
        if not str(key).encode().startswith(PLACEHOLDER_MARK) or len(str(key)) < len(PLACEHOLDER_MARK) + 16:
            raise ValueError("a placeholder must start with sig-ph- and hold at least 16 more characters")
        pair = _list(target, "placeholder target")
        if len(pair) != 2:
            raise ValueError("a placeholder maps to [provider, field]")
        placeholders[str(key).encode()] = (str(pair[0]), str(pair[1]))
    return Profile(name, providers, other, allow, frozenset(tcp), placeholders, data.get("sandbox") is True)


def _list(value: object, what: str) -> list[object]:
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list")
    return value


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


class TokenTable:
    """Proxy-Authorization → Profile. `check` returns None for a missing or wrong token (407)."""

    def __init__(self, user_token: str | None, folder: str | None = None,
                 log: object = None) -> None:
        self._user = b"sig:" + user_token.encode("utf-8") if user_token is not None else None
        self._open = user_token is None  # --no-auth: a request without a token is the user's
        self._folder = folder
        self._added: dict[bytes, Profile] = {}  # sha256(token) -> profile, registered in-process
        self._files: dict[bytes, Profile] = {}  # the same, from the profiles folder
        self._stamp: tuple[int, int] | None = None
        self._log = log

    # -- registration ----------------------------------------------------------------------------------

    def add(self, token: str, profile: Profile) -> None:
        """Let `token` use the proxy with `profile` (until revoke())."""
        self._added[_digest(token.encode("utf-8"))] = profile

    def revoke(self, token: str) -> None:
        """`token` no longer works; connections made with it see that through valid()."""
        self._added.pop(_digest(token.encode("utf-8")), None)

    def valid(self, profile: Profile) -> bool:
        """Whether a profile handed out earlier still has its token (connections check it)."""
        return profile is USER or any(p is profile for p in self._added.values()) \
            or any(p is profile for p in self._files.values())

    # -- lookup ----------------------------------------------------------------------------------------

    def check(self, values: Iterable[bytes]) -> Profile | None:
        """The profile for the Proxy-Authorization values of a request (Basic base64("sig:<token>"));
        None when none of them is a known token (and auth is on)."""
        found: Profile | None = None
        any_value = False
        for value in values:
            any_value = True
            scheme, _, cred = value.strip().partition(b" ")
            if scheme.lower() != b"basic":
                continue
            try:
                decoded = base64.b64decode(cred.strip(), validate=True)
            except (binascii.Error, ValueError):
                continue
            if self._user is not None and hmac.compare_digest(decoded, self._user):
                found = found or USER
                continue
            user, _, token = decoded.partition(b":")
            if user != b"sig" or not token:
                continue
            digest = _digest(token)
            profile = self._added.get(digest) or self._files.get(digest)
            if profile is None and self._folder is not None and self.reload():
                profile = self._files.get(digest)
            if profile is not None:
                found = found or profile
        if found is None and self._open and not any_value:
            return USER
        return found

    # -- the profiles folder ---------------------------------------------------------------------------

    def _folder_stamp(self) -> tuple[int, int] | None:
        if self._folder is None:
            return None
        try:
            st = os.stat(self._folder)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_ino)

    def reload(self) -> bool:
        """Re-read the profiles folder when it changed; True when it did."""
        stamp = self._folder_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        files: dict[bytes, Profile] = {}
        if stamp is not None and self._folder is not None:
            for name in sorted(os.listdir(self._folder)):
                if not name.endswith(".json"):
                    continue
                path = os.path.join(self._folder, name)
                try:
                    with open(path, "rb") as fh:
                        if os.fstat(fh.fileno()).st_mode & 0o077:
                            raise ValueError("the file is readable by others (it must be 0600)")
                        data = json.loads(fh.read())
                    digest = bytes.fromhex(str(data["tokenSha256"]))
                    if len(digest) != 32:
                        raise ValueError("tokenSha256 is not a SHA-256")
                    old = self._files.get(digest)
                    profile = profile_from_json(data)
                    files[digest] = old if old is not None and old.same_as(profile) else profile
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    if callable(self._log):
                        with contextlib.suppress(Exception):
                            self._log(f"proxy: profile {name} ignored ({type(exc).__name__}: "
                                      f"{str(exc)[:120]})")
        self._files = files
        return True
