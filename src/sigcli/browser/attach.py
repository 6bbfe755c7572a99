"""Attach to a browser the user already runs with ``--remote-debugging-port`` (browser.cdpUrl / --cdp-url).

sig then starts no browser: it opens one tab of its own in that browser, watches it like any login, and
closes only that tab (never the browser). The user's browser, its profile and its cookies are the user's:
sig reads the cookie jar of that browser (Storage.getCookies) and keeps only what the provider's rules
extract.

Only loopback endpoints are accepted unless ``browser.cdpAllowRemote: true``: the DevTools protocol has
no authentication and no encryption, so whoever can reach or watch a remote endpoint can read every
cookie of that browser and drive it, and sees what sig captures.
"""

from __future__ import annotations

from ..core.errors import ErrorCode, SigError
from .protocol import CONNECTION_CLOSED, BrowserError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SCHEMES = ("http", "https", "ws", "wss")
START_HINT = ("start the browser with --remote-debugging-port=9222 --user-data-dir=<a folder of its own> "
              "and give sig http://127.0.0.1:9222 (browser.cdpUrl or --cdp-url)")


def check_cdp_url(url: str, allow_remote: bool = False) -> tuple[str, str, int]:
    """(scheme, host, port) of a DevTools endpoint sig may use; CONFIG_ERROR for one it will not."""
    import ipaddress
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise SigError(ErrorCode.CONFIG_ERROR, "browser.cdpUrl is not a valid URL", START_HINT) from None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in SCHEMES or not host or port is None:
        raise SigError(ErrorCode.CONFIG_ERROR,
                       "browser.cdpUrl must be http://host:port (or ws://host:port/devtools/browser/…)",
                       START_HINT)
    if parts.username is not None:
        raise SigError(ErrorCode.CONFIG_ERROR, "browser.cdpUrl must not hold a user name or password",
                       "the DevTools endpoint has no login; drop user:password@ from the URL")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise SigError(
            ErrorCode.CONFIG_ERROR,
            f"browser.cdpUrl points at {host}, which is not this machine (loopback)",
            "a DevTools endpoint has no password and no encryption: anyone who reaches it reads every "
            "cookie of that browser. Forward it to 127.0.0.1 (ssh -L 9222:127.0.0.1:9222 …), or set "
            "browser.cdpAllowRemote: true if you accept that")
    return scheme, host, port


def websocket_url(url: str, timeout_s: float, allow_remote: bool = False) -> str:
    """The browser-level WebSocket URL: `url` itself (ws://…), or what /json/version names."""
    import http.client
    import json
    from urllib.parse import urlsplit, urlunsplit

    scheme, host, port = check_cdp_url(url, allow_remote)
    if scheme in ("ws", "wss"):
        return url.strip()
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    conn = cls(host, port, timeout=max(1.0, timeout_s))
    try:
        conn.request("GET", "/json/version")
        resp = conn.getresponse()
        body = resp.read(1 << 20)
        found = json.loads(body).get("webSocketDebuggerUrl") if resp.status == 200 else None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise SigError(ErrorCode.BROWSER_LAUNCH_ERROR,
                       f"no browser answers at {scheme}://{netloc} ({reason})", START_HINT) from None
    finally:
        conn.close()
    if not isinstance(found, str) or not found.startswith("ws://"):
        raise SigError(ErrorCode.BROWSER_LAUNCH_ERROR,
                       f"{scheme}://{netloc} is not a browser's DevTools endpoint (no webSocketDebuggerUrl)",
                       START_HINT)
    # The browser names itself after the Host header it got; keep the endpoint the user gave.
    path = urlsplit(found)
    return urlunsplit(("wss" if scheme == "https" else "ws", netloc, path.path, path.query, ""))


def connect(url: str, timeout_s: float, allow_remote: bool = False) -> WebSocketTransport:
    """A CDP connection to the browser behind `url` (BROWSER_LAUNCH_ERROR with the fix when none)."""
    ws_url = websocket_url(url, timeout_s, allow_remote)
    try:
        return WebSocketTransport(ws_url, open_timeout=max(1.0, timeout_s))
    except Exception as exc:  # websockets' handshake errors, OSError, TimeoutError
        raise SigError(ErrorCode.BROWSER_LAUNCH_ERROR,
                       f"cannot open the DevTools connection at {url.strip()} ({type(exc).__name__})",
                       START_HINT) from None


class WebSocketTransport:
    """CDP over a WebSocket to the browser-level endpoint of a debugging port."""

    def __init__(self, ws_url: str, open_timeout: float = 10.0) -> None:
        from websockets.sync.client import connect

        # No keep-alive pings: a busy browser that misses one would look closed; a dead one closes TCP.
        # No proxy: an http_proxy in the environment (maybe sig's own) must not see loopback CDP traffic.
        kwargs: dict[str, Any] = {"max_size": None, "open_timeout": open_timeout, "ping_interval": None,
                                  "compression": None}
        try:
            ws = connect(ws_url, proxy=None, **kwargs)
        except TypeError:  # websockets < 15 has no proxy support (and so no proxy to avoid)
            ws = connect(ws_url, **kwargs)
        # __enter__ returns the connection itself on every websockets version and marks it as managed
        # (websockets 17 warns about a connection used without a context manager).
        self._ws = ws.__enter__()

    @property
    def closed(self) -> bool:
        """Whether the WebSocket is no longer open."""
        from websockets.protocol import State

        return self._ws.protocol.state is not State.OPEN

    def send(self, text: str, timeout: float) -> None:
        """Send one CDP message; BrowserError once the browser end is gone."""
        from websockets.exceptions import ConnectionClosed

        try:
            self._ws.send(text)
        except ConnectionClosed:
            raise BrowserError(CONNECTION_CLOSED) from None

    def recv(self, timeout: float) -> str | bytes | None:
        """One whole message, or None when none came within `timeout`."""
        from websockets.exceptions import ConnectionClosed

        try:
            message: str | bytes = self._ws.recv(timeout=max(0.0, timeout))
            return message
        except TimeoutError:
            return None
        except ConnectionClosed:
            raise BrowserError(CONNECTION_CLOSED) from None

    def close(self) -> None:
        """Close the WebSocket (the user's browser keeps running)."""
        try:
            self._ws.close()
        except Exception:
            pass
