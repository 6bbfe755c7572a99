"""Parse a provider's ``networkProxy`` into what a browser may see (scheme://host:port) and what it may not
(the user name and password, answered over CDP when the proxy asks).

How a proxy URL is read (README, "Configuration" and "Browser login"):

* ``scheme://[user[:password]@]host[:port][/]``; no scheme means ``http://``. Schemes: http, socks5,
  socks5h (the same set sig's own requests support; Chromium resolves names through a SOCKS5 proxy
  either way, so socks5h reaches it as socks5). Chromium cannot authenticate to a SOCKS proxy, so the
  browser refuses a SOCKS URL with a user.
* The user info ends at the **last** ``@`` and a proxy URL has no path, query or fragment, so a
  password may hold ``/``, ``#``, ``?`` or ``@`` as typed (``http://bob:pa/ss#1@proxy:3128``), which a
  generic URL parser would cut at the first ``/ ? #`` -- handing the rest, password included, to the
  browser's command line. Percent-escapes in the user name and password are decoded.
* Refused as ambiguous, with a CONFIG_ERROR that says to percent-encode: a ``%`` that does not start a
  ``%XX`` escape (literal, or an escape?), and a URL that a standard parser reads as another valid
  proxy (``http://u:8080/x@host:3128``: host ``u`` port 8080, or host ``host``?).

Error messages never quote the URL: it may hold the password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..core.errors import ErrorCode, SigError
from ..core.secret import Secret

SCHEMES = {"http": 80, "socks5": 1080, "socks5h": 1080}
# A host (name, IPv4 or bracketed IPv6) and an optional port: all a proxy URL's host part may hold.
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::([0-9]{1,5}))?/?")
# The same, as a standard (RFC 3986 / WHATWG) parser reads an authority: an empty port is allowed.
_STD_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::[0-9]{0,5})?")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
ENCODE_HINT = ("write networkProxy as scheme://user:password@host:port and percent-encode the user name and "
               "password where they hold % (%25), / (%2F), # (%23), ? (%3F) or @ (%40)")


@dataclass(frozen=True)
class ProxyUrl:
    scheme: str  # as Chromium spells it: http, https, socks4, socks5
    host: str  # brackets kept around an IPv6 address
    port: int
    username: str | None = None
    password: Secret | None = None

    @property
    def server(self) -> str:
        """What goes on a command line (--proxy-server=): no user name, no password."""
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def has_auth(self) -> bool:
        return self.username is not None


def _error(where: str, what: str, hint: str = ENCODE_HINT) -> SigError:
    return SigError(ErrorCode.CONFIG_ERROR, f"{where} {what}", hint)


def parse_proxy_url(raw: str, where: str = "networkProxy") -> ProxyUrl:
    """Read a proxy URL as the module docstring says. `where` names it in errors (never its text)."""
    from urllib.parse import unquote

    text = raw.strip()
    if not text:
        raise _error(where, "is empty", "remove it, or write scheme://host:port")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in text):
        raise _error(where, "contains spaces or control characters", ENCODE_HINT)
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "http", text
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        shown = f'"{scheme}://"' if scheme.isalnum() and len(scheme) <= 10 else "a scheme"  # never a password
        raise _error(where, f"uses {shown}, which sig does not support", "use http://, socks5:// or socks5h://")
    userinfo, at, host_part = rest.rpartition("@")
    match = _HOST_PORT.fullmatch(host_part)
    if match is None:
        raise _error(where, "is not scheme://[user:password@]host:port (a proxy URL has no path, query or "
                            "fragment)")
    host, port_text = match.group(1), match.group(2)
    port = int(port_text) if port_text else SCHEMES[scheme]
    if not 0 < port < 65536:
        raise _error(where, "has a port outside 1-65535", "write scheme://host:port")
    chromium_scheme = "socks5" if scheme == "socks5h" else scheme
    if not at:
        return ProxyUrl(chromium_scheme, host, port)
    if scheme.startswith("socks"):
        raise _error(where, "has a user name and password, and the browser cannot authenticate to a SOCKS proxy",
                     "use an http:// proxy that asks for the password, or a local forwarder without one")
    if _BAD_PERCENT.search(userinfo):
        raise _error(where, "has a % in its user name or password that is not a %XX escape (ambiguous)")
    if any(c in userinfo for c in "/?#"):
        # A standard parser ends the authority at the first / ? #: if what it would read there is a valid
        # proxy as well, the URL means two different things depending on who reads it.
        authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
        if _STD_HOST_PORT.fullmatch(authority.rpartition("@")[2]):
            raise _error(where, "can be read as two different proxies (a / # or ? in the user name or "
                                "password)")
    user, _, password = userinfo.partition(":")
    return ProxyUrl(chromium_scheme, host, port, unquote(user), Secret(unquote(password)))
