"""The machine's own addresses, which a sandboxed run may not reach through the proxy.

The sandbox has no network of its own: everything it reaches, it reaches through the proxy, which runs on
the machine. Without this guard, "any other host" would include the machine's loopback services (a
database, another program's debugging port, a cloud metadata endpoint on 169.254.169.254 handing out
the machine's credentials). So for a sandbox's profile, a target whose address is loopback, link-local
or unspecified is refused (403) unless it is a provider's host, a host the run allows (--allow-host)
or a raw TCP target it allows (--allow-tcp). Names are checked on every address they resolve to, when
the route is decided and again when the proxy connects (a DNS answer that changes in between — DNS
rebinding — is caught then).
"""

from __future__ import annotations

import ipaddress
import socket


def is_local_address(address: str) -> bool:
    """Loopback (127.0.0.0/8, ::1), link-local (169.254.0.0/16, fe80::/10), unspecified (0.0.0.0, ::, which
    connect to the machine itself), also as IPv4-mapped IPv6; "localhost". False for anything else."""
    text = address.strip("[]").split("%", 1)[0].lower()
    if text == "localhost" or text.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_link_local or ip.is_unspecified


def resolves_local(host: str, port: int) -> bool:
    """Whether `host` is, or resolves to, a local address (blocking: call it in a worker thread). A name
    that does not resolve is not local (the connection fails on its own)."""
    if is_local_address(host):
        return True
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return any(is_local_address(str(sockaddr[0])) for _f, _t, _p, _c, sockaddr in infos)
