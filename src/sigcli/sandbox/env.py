"""The environment of the sandboxed program: the user's, minus every way back to a secret, plus the proxy.

Removed: every SIG_* variable (SIG_HOME included: sig's data is not there), agent and keyring sockets
(SSH_AUTH_SOCK, GPG_AGENT_INFO, D-Bus, XDG_RUNTIME_DIR, X11/Wayland), the user's own proxy settings,
any variable whose value holds the user's proxy token (`eval "$(sig proxy env)"` puts it in
HTTPS_PROXY), and any variable whose value holds a stored credential value in one of its forms (a
`sig run --sandbox` started inside a plain `sig run` would otherwise hand the outer run's variables in). Added: the proxy at 127.0.0.1:PORT inside the sandbox (no token: the connection itself
is bound to this run's profile outside), the CA files at CERT_DIR, the marker SIG_SANDBOX=1, and the
run's placeholders. Pure.
"""

from __future__ import annotations

from .view import CERT_DIR

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

PROXY_PORT = 3128  # inside the sandbox's own network namespace; nothing else listens there
MARKER = "SIG_SANDBOX"
BUNDLE = f"{CERT_DIR}/ca-bundle.pem"  # system roots + sig's CA, for clients that take one CA file
CA = f"{CERT_DIR}/ca.crt"  # sig's CA alone (Node adds it to its roots)

DROPPED = frozenset({
    "SSH_AUTH_SOCK", "SSH_AGENT_PID", "GPG_AGENT_INFO", "GNUPGHOME", "DBUS_SESSION_BUS_ADDRESS",
    "DBUS_SYSTEM_BUS_ADDRESS", "XDG_RUNTIME_DIR", "WAYLAND_DISPLAY", "DISPLAY", "XAUTHORITY", "KRB5CCNAME",
    "DOCKER_HOST", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "FTP_PROXY", "GIT_PROXY_COMMAND",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS", "NODE_USE_ENV_PROXY",
})


def sandbox_env(environ: Mapping[str, str], *, no_proxy: str, user_token: str | None,
                placeholders: Mapping[str, str] | None = None, tmpdir_ok: bool = False,
                secrets: Iterable[str] = ()) -> tuple[dict[str, str], list[str]]:
    """The child's environment, and the names of the variables left out because they held a secret.
    `no_proxy`: what NO_PROXY becomes (loopback inside the sandbox is the sandbox's own); `tmpdir_ok`: the
    user's TMPDIR is writable inside (else TMPDIR=/tmp); `secrets`: the stored credential values and their
    forms (core/secret_forms.py)."""
    env: dict[str, str] = {}
    held: list[str] = []
    forms = [f for f in secrets if f]
    for name, value in environ.items():
        upper = name.upper()
        if upper.startswith("SIG_") or upper in DROPPED:
            continue
        if (user_token and user_token in value) or any(f in value for f in forms):
            if not upper.startswith("SIG_"):
                held.append(name)
            continue
        env[name] = value
    if "TMPDIR" in env and not tmpdir_ok:
        env["TMPDIR"] = "/tmp"
    url = f"http://127.0.0.1:{PROXY_PORT}"
    env.update({
        "HTTP_PROXY": url, "HTTPS_PROXY": url, "http_proxy": url, "https_proxy": url,
        "NO_PROXY": no_proxy, "no_proxy": no_proxy,
        "SSL_CERT_FILE": BUNDLE, "REQUESTS_CA_BUNDLE": BUNDLE, "CURL_CA_BUNDLE": BUNDLE, "GIT_SSL_CAINFO": BUNDLE,
        "NODE_EXTRA_CA_CERTS": CA, "NODE_USE_ENV_PROXY": "1",
        MARKER: "1",
    })
    env.update(placeholders or {})
    return env, held
