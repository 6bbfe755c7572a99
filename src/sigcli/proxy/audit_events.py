"""Proxy injections in the audit log: one `proxy_request` event per request sig added credentials to.

An add-on of the proxy server: the server calls the hook with what it already has (providers, method, the
Host value, the raw request target, the status) and the hook only queues a tuple; the event is built and
appended by the audit log's background writer (`store.audit.BatchAppender`), in batches, so the
request path pays no formatting and no I/O.

Event: {"timestamp", "action": "proxy_request", "status": "success" (status < 400) | "failure",
"provider": the first provider that added credentials, "metadata": {"host", "method", "path",
"statusCode"} (+ "providers" when more than one added credentials)}. `path` keeps the query's keys and
drops their values (`/search?q=&page=`): values (and bare items, which may be values) can be secrets, and
so can anything after `#`. No header, no body, no credential is ever in it.

A request refused for carrying a placeholder of a sandboxed run to another host (profiles.py) is a
`proxy_blocked` event: {"status": "failure", "metadata": {"host", "method", "path", "profile", "reason"}}.

`SIG_PROXY_AUDIT=off` in the daemon's environment turns it off (for measurements);
`SIG_PROXY_AUDIT_FLUSH_MS` sets how long events may wait before they are written (default 250).
"""

from __future__ import annotations

import os
import re
import time

from ..core.timeutil import iso_from_ms
from ..store.audit import BatchAppender, event_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

ACTION = "proxy_request"
PATH_LIMIT = 200
QUERY_KEYS_LIMIT = 200
_PLAIN = re.compile(rb"[\x21-\x7e]*")

_Item = tuple[float, tuple[str, ...], str, bytes, bytes, int]
_Blocked = tuple[str, float, str, str, bytes, bytes]
BLOCKED = "proxy_blocked"
_MILLIS = [b"%03d" % i for i in range(1000)]


def audit_path(target: bytes) -> str:
    """The request target as the audit log shows it: path, then the query's keys without their values."""
    path, sep, query = bytes(target).partition(b"#")[0].partition(b"?")
    shown = _printable(path, PATH_LIMIT)
    if not sep:
        return shown
    keys = [item.partition(b"=")[0] for item in query.split(b"&") if b"=" in item]
    return shown + "?" + _printable(b"&".join(key + b"=" for key in keys), QUERY_KEYS_LIMIT)


def _printable(data: bytes, limit: int) -> str:
    head = data[:limit]
    if _PLAIN.fullmatch(head) is not None:
        text = head.decode("ascii")
    else:
        text = "".join(chr(b) if 0x20 < b < 0x7F else "?" for b in head)
    return text + ("…" if len(data) > limit else "")


class _Render:
    """item → the event line `store.audit.event_line` would make, built directly: the writer renders every
    proxied request on the daemon's CPU, so this matters. The part that depends on (providers, method,
    host, target, status) is cached, as agents call the same endpoints again and again; one second's
    timestamp prefix too. Used by one writer thread."""

    CACHE_SIZE = 1024

    def __init__(self) -> None:
        from json.encoder import encode_basestring  # the C escaper event_line's encoder uses too

        self._esc = encode_basestring
        self._second = -1
        self._stamp = b""
        self._rests: dict[tuple[tuple[str, ...], str, bytes, bytes, int], bytes] = {}

    def _fields(self, providers: tuple[str, ...], method: str, host: bytes, target: bytes) -> tuple[str, str]:
        esc = self._esc
        middle = f',"provider":{esc(providers[0])}' if providers else ""
        middle += (f',"metadata":{{"host":{esc(host.decode("ascii", "replace"))},"method":{esc(method)},'
                   f'"path":{esc(audit_path(target))},"statusCode":')
        tail = (',"providers":[' + ",".join(map(esc, providers)) + "]" if len(providers) > 1 else "") + "}}\n"
        return middle, tail

    def __call__(self, item: _Item | _Blocked) -> bytes:
        if isinstance(item[0], str):  # a placeholder refused (rare): the generic writer
            _kind, when_b, profile, method_b, host_b, target_b = item
            return event_line(int(when_b * 1000), BLOCKED, "failure", None, {
                "host": host_b.decode("ascii", "replace"), "method": method_b, "path": audit_path(target_b),
                "profile": profile, "reason": "placeholder sent to a host it does not belong to"})
        when, providers, method, host, target, status = item
        # Everything after the milliseconds depends on (providers, method, host, target, status) only: made
        # once per distinct request and status, as bytes; a line is then two concatenations.
        key = (providers, method, host, target, status)
        rest = self._rests.get(key)
        if rest is None:
            if len(self._rests) >= self.CACHE_SIZE:
                self._rests.clear()
            middle, tail = self._fields(providers, method, host, target)
            rest = self._rests[key] = (f'Z","action":"{ACTION}","status":"{"success" if status < 400 else "failure"}"'
                                       f"{middle}{int(status)}{tail}").encode()
        second, millis = divmod(int(when * 1000), 1000)
        if second != self._second:  # the events of one second share its formatting
            self._second = second
            self._stamp = ('{"timestamp":"' + iso_from_ms(second * 1000)[:-5] + ".").encode()
        return self._stamp + _MILLIS[millis] + rest


class InjectionAudit:
    """The proxy server's `on_injected` hook. close() writes what is still queued (daemon shutdown)."""

    def __init__(self, path: str, *, interval: float = 0.25, log: Callable[[str], None] | None = None) -> None:
        self._batch = BatchAppender(path, _Render(), interval=interval, log=log)
        self._add = self._batch.add

    def __call__(self, providers: tuple[str, ...], method: str, host: bytes, target: bytes,
                 status: int) -> None:
        """Queue a `proxy_inject` event: sig added `providers`' credentials to a request that got `status`."""
        self._add((time.time(), providers, method, host, target, status))

    def blocked(self, profile: str, method: str, host: bytes, target: bytes) -> None:
        """The server's `on_blocked` hook: a `proxy_blocked` event (a sandboxed program sent a placeholder
        to a host it does not belong to: an attempted exfiltration)."""
        self._add(("blocked", time.time(), profile, method, host, target))

    def close(self) -> None:
        """Write what is still queued and stop the writer."""
        self._batch.close()


def from_environment(path: str, log: Callable[[str], None] | None = None) -> InjectionAudit | None:
    """The hook as the daemon's environment asks for it (None: audit of injections turned off)."""
    if os.environ.get("SIG_PROXY_AUDIT", "").strip().lower() in ("off", "0", "false", "no"):
        return None
    try:
        interval = max(0.01, float(os.environ.get("SIG_PROXY_AUDIT_FLUSH_MS", "250")) / 1000)
    except ValueError:
        interval = 0.25
    return InjectionAudit(path, interval=interval, log=log)
