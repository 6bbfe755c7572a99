"""What the proxy does for requests to one origin on one client connection: decided once (and again after
ROUTE_TTL), then applied to each request without asking the policy, touching a file or re-encoding
anything.

A Route holds what each hook of the request path needs, already in the form it is used in:
- injection: the headers to add (encoded, validated), the header names they replace, query and body
  fields;
- redaction: the secret forms to mask in answers to injected requests (redaction.py);
- audit: the providers to name in the audit event of an injected request (audit.py);
- placeholders: the per-run values to swap into requests to this provider's hosts (profiles.py).
"""

from __future__ import annotations

from typing import Any

from . import fast, h1

ROUTE_TTL = 1.0  # seconds a route is used before the policy is asked again (a new login, a logout)


class Route:
    """What to do for requests to one origin (scheme, host, port) on one client connection, until `until`."""
    __slots__ = (
        "_head",
        "_memo",
        "add_body",
        "add_headers",
        "add_names",
        "add_query",
        "drop",
        "error",
        "forms",
        "host",
        "host_value",
        "injects",
        "invalid",
        "key",
        "log_slots",
        "logged",
        "no_local",
        "passthrough",
        "placeholders",
        "port",
        "profile",
        "providers",
        "refusal",
        "scheme",
        "swaps",
        "until",
    )

    def __init__(self, scheme: str, host: str, port: int, additions: Any, until: float,
                 swaps: dict[bytes, bytes] | None = None, placeholders: frozenset[bytes] = frozenset(),
                 profile: str = "") -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.host_value = h1.authority(host, port, 443 if scheme == "https" else 80)
        self.until = until
        self.error: tuple[int, str] | None = None  # the policy failed: every request gets this answer
        self.passthrough = ""  # the policy failed, the provider says go on without credentials: why
        headers: dict[str, str] = getattr(additions, "headers", None) or {}
        self.add_headers = [(name.encode("latin-1"), value.encode("utf-8")) for name, value in headers.items()]
        self.add_names = frozenset(name.lower() for name, _ in self.add_headers)
        self.invalid = not all(fast.valid_header(n, v) for n, v in self.add_headers)
        self.drop = h1.REQUEST_DROP | self.add_names  # (and what sig adds: replaced)
        self.add_query: dict[str, str] = dict(getattr(additions, "query", None) or {})
        self.add_body: dict[str, str] = dict(getattr(additions, "body", None) or {})
        self.providers = tuple(getattr(additions, "providers", None) or ())
        self.forms: tuple[bytes, ...] = tuple(getattr(additions, "redact", None) or ())
        self.refusal: str | None = getattr(additions, "refusal", None)  # why nothing is added (the port)
        self.key = (scheme, host, port, tuple(getattr(additions, "cafiles", None) or ()))
        self.injects = bool(self.add_headers or self.add_query)
        self.swaps = swaps or {}  # placeholder -> real value, for this origin's providers
        self.placeholders = placeholders  # every placeholder of the client's profile
        self.profile = profile
        # A sandbox's route to a host no provider covers: every request is logged (the sandbox's traffic
        # is visible), and the dialer never connects to one of this machine's addresses (local_guard.py).
        self.logged = False
        self.no_local = False
        self._memo: tuple[bytes, bool, bytes] | None = None  # (client header block, limit, upstream lines)
        # (request head, target, body length, limit, upstream head) of the last request_head() call
        self._head: tuple[fast.RequestHead, bytes, int | None, bool, bytes] | None = None
        self.log_slots: dict[str, list[float]] = {}  # the Forwarder's rate-limit slots for this origin

    def swap(self, *parts: bytes) -> list[bytes] | None:
        """The placeholder hook: `parts` (target, header values, body) with this profile's placeholders
        swapped for the real values where they belong to this origin's providers; None when one that
        belongs elsewhere is there (the request must be refused). Only called for profiles that have
        placeholders."""
        from .profiles import PLACEHOLDER_MARK

        if not any(PLACEHOLDER_MARK in part for part in parts):
            return list(parts)
        out = []
        for part in parts:
            if PLACEHOLDER_MARK in part:
                for placeholder in self.placeholders:
                    if placeholder in part:
                        real = self.swaps.get(placeholder)
                        if real is None:
                            return None
                        part = part.replace(placeholder, real)
            out.append(part)
        return out

    @classmethod
    def failed(cls, scheme: str, host: str, port: int, until: float, status: int, text: str) -> Route:
        """A route whose every request gets `status` and `text` (the policy could not decide)."""
        route = cls(scheme, host, port, None, until)
        route.error = (status, text)
        return route

    def upstream_head(self, method: bytes, target: bytes, headers: h1.Headers, length: int | None,
                      limit_encoding: bool, block: bytes = b"") -> bytes:
        """The request head sent upstream on the fast path: the client's headers minus hop-by-hop ones
        (the fast path took no Connection header but keep-alive), Host set to the real target, sig's
        headers replacing any of the same name, Content-Length when the message has a body. The header
        lines are built once per distinct client header block (`block`, the bytes they came from)."""
        memo = self._memo
        if memo is not None and block and memo[0] == block and memo[1] is limit_encoding:
            lines = memo[2]
        else:
            lines = self._lines(headers, limit_encoding)
            if block:
                self._memo = (block, limit_encoding, lines)
        if length is None:
            return b"".join((method, b" ", target, b" HTTP/1.1\r\nhost: ", self.host_value, b"\r\n", lines, b"\r\n"))
        return b"".join((method, b" ", target, b" HTTP/1.1\r\nhost: ", self.host_value, b"\r\n", lines,
                         b"content-length: ", str(length).encode("ascii"), b"\r\n\r\n"))

    def request_head(self, req: fast.RequestHead, target: bytes, length: int | None, limit_encoding: bool) -> bytes:
        """upstream_head() for a fast-path request sent with the client's own headers. A keep-alive client
        repeating a request hands over the same RequestHead (fast.parse_request): its upstream head is
        the one built last time, when the target (query fields added), length and limit are the same."""
        last = self._head
        if last is not None and last[0] is req and last[1] == target and last[2] == length \
                and last[3] is limit_encoding:
            return last[4]
        head = self.upstream_head(req.method, target, req.headers, length, limit_encoding, req.block)
        self._head = (req, target, length, limit_encoding, head)
        return head

    def _lines(self, headers: h1.Headers, limit_encoding: bool) -> bytes:
        drop = self.drop
        parts: list[bytes] = []
        for name, value in headers:
            if name in drop:
                continue
            if limit_encoding and name == b"accept-encoding":
                from .redaction import limit_accept_encoding

                value = limit_accept_encoding([(name, value)])[-1][1]
            parts += (name, b": ", value, b"\r\n")
        for name, value in self.add_headers:
            parts += (name, b": ", value, b"\r\n")
        return b"".join(parts)
