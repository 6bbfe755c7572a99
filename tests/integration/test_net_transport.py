"""Where sig's own HTTP traffic may go, through the real `sig` against loopback servers:

- cleartext only to real loopback (an IP literal in 127/8, ::1, or `localhost`), never to names that
  only look local (issue 20 item 3);
- OAuth2 token, device and authorization URLs follow the same rule, and `${VAR}` is read only in
  clientId / clientSecret (issue 25 item 3);
- networkProxy socks5:// and socks5h:// (with user:password) carry `sig request` and token calls through
  a real SOCKS5 server that relays the bytes (issue 17 item 4);
- host names are canonicalised as browsers do (IDNA2008 / UTS #46): look-alikes never share credentials
  (issue 19 item 14).

Names such as `127.corp.test` reach the loopback servers through the test SOCKS5 server's own resolver
(socks5h sends names to the proxy), so no test depends on real DNS.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from harness.servers import ServerHandle, start_https_echo
from harness.sigproc import Sig
from harness.socks5 import Socks5Server

TOKEN = "tok-NET-5e6f7a8b"
SECRET = "client-SECRET-net-77aa"
PROXY_PASSWORD = "px/pa#ss@w0rd"  # "/", "#" and "@" as they are: the user info ends at the last "@"


@pytest.fixture
def socks() -> Iterator[Socks5Server]:
    with Socks5Server() as server:
        yield server


def _token_provider(sig: Sig, host: str, port: int, proxy: str = "", extra: str = "") -> None:
    url_host = f"[{host}]" if ":" in host else host
    sig.add_providers(f"""  look:
    domains: ["{host}"]
    entryUrl: https://{url_host}:{port}/
    strategy: api-token
{f'    networkProxy: "{proxy}"' if proxy else ''}
{extra}""")
    sig("login", "look", "--token-stdin", input=TOKEN, check=0)


# -- cleartext only to real loopback (issue 20 item 3) --------------------------------------------------

LOOK_ALIKES = ["127.corp.test", "127.0.0.1.nip.io", "localhost.evil.test", "app.localhost", "0x7f.1",
               "2130706433", "127.1", "127.0.0.1.corp.test"]


@pytest.mark.parametrize("name", LOOK_ALIKES)
def test_cleartext_to_a_name_that_looks_local_is_refused(sig_init: Sig, http_echo: ServerHandle,
                                                          socks: Socks5Server, name: str) -> None:
    socks.hosts[name] = "127.0.0.1"
    _token_provider(sig_init, name, http_echo.port, proxy=socks.url())
    r = sig_init("request", f"http://{name}:{http_echo.port}/v1/me", check=1)
    assert "cleartext" in r.err and "allowHttp" in r.err
    assert http_echo.requests == [] and socks.connections == []
    # allowHttp: true is the one way to cleartext for such a name, and the request then really goes out
    cfg = sig_init.home / "config.yaml"
    cfg.write_text(cfg.read_text().replace("    strategy: api-token\n", "    strategy: api-token\n"
                                           "    allowHttp: true\n", 1))
    sig_init("request", f"http://{name}:{http_echo.port}/v1/me", check=0)
    assert http_echo.requests[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"
    [conn] = socks.wait_for_connections(1)
    assert (conn.host, conn.atyp) == (name, "domain") and conn.bytes_up > 0


@pytest.mark.parametrize("name", ["127.1", "2130706433", "0x7f.1", "0177.0.0.1"])
def test_shorthand_ipv4_forms_get_no_cleartext_without_a_proxy(sig_init: Sig, http_echo: ServerHandle,
                                                               name: str) -> None:
    """The resolver turns these into 127.0.0.1, but they are not IP literals: no implied allowHttp."""
    _token_provider(sig_init, name, http_echo.port)
    r = sig_init("request", f"http://{name}:{http_echo.port}/x", check=1)
    assert "cleartext" in r.err
    assert http_echo.requests == []


@pytest.mark.parametrize(("domain", "url_host"), [("localhost", "localhost"), ("127.0.0.1", "127.0.0.1."),
                                                  ("localhost", "LocalHost."),
                                                  ("::ffff:127.0.0.1", "[::ffff:127.0.0.1]")])
def test_real_loopback_may_use_cleartext(sig_init: Sig, http_echo: ServerHandle, domain: str,
                                         url_host: str) -> None:
    """The provider's own URL is https: only the host being loopback allows http (`::1` is in the unit
    table; the echo server listens on IPv4, which an IPv4-mapped address reaches)."""
    _token_provider(sig_init, domain, http_echo.port)
    sig_init("request", f"http://{url_host}:{http_echo.port}/x", check=0)
    assert http_echo.requests[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"


# -- OAuth2 endpoints (issue 25 item 3) ---------------------------------------------------------------

pytest.importorskip("authlib")
from harness.oauth_server import OAuthServer  # noqa: E402


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    server = OAuthServer()
    server.add_client("svc", SECRET, auth_method="client_secret_basic")
    server.add_client("cli", None, auth_method="none")
    try:
        yield server
    finally:
        server.close()


def _oauth_provider(sig: Sig, oauth2: str, proxy: str = "", extra: str = "") -> None:
    sig.add_providers(f"""  api:
    domains: [api.corp.test]
    entryUrl: https://api.corp.test/
    strategy: oauth2
{f'    networkProxy: "{proxy}"' if proxy else ''}
{extra}    oauth2:
{oauth2}""")


def test_token_url_in_cleartext_to_another_host_is_refused(sig_init: Sig, oauth: OAuthServer,
                                                           socks: Socks5Server,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # the test server accepts http for a non-local Host
    socks.hosts["auth.corp.test"] = "127.0.0.1"
    oauth2 = f"""      tokenUrl: http://auth.corp.test:{oauth.port}/oauth/token
      clientId: svc
      grant: client_credentials
"""
    _oauth_provider(sig_init, oauth2, proxy=socks.url())
    r = sig_init("login", "api", "--client-secret-stdin", input=SECRET, check=1)
    assert "oauth2.tokenUrl" in r.err and "cleartext" in r.err and "allowHttp" in r.err
    assert oauth.token_requests == [] and socks.connections == []
    sig_init.assert_no_secret(SECRET)

    # allowHttp: true lets it through — over the provider's SOCKS proxy, which resolves the name
    cfg = sig_init.home / "config.yaml"
    cfg.write_text(cfg.read_text().replace("    oauth2:\n", "    allowHttp: true\n    oauth2:\n", 1))
    oauth.token_lifetime = 1
    sig_init("login", "api", "--client-secret-stdin", input=SECRET, check=0)
    assert oauth.count("client_credentials") == 1
    [conn] = socks.wait_for_connections(1)
    assert (conn.host, conn.port, conn.atyp) == ("auth.corp.test", oauth.port, "domain")

    # renewal follows the rule too: without allowHttp the expired token is not renewed
    cfg.write_text(cfg.read_text().replace("    allowHttp: true\n", "", 1))
    deadline = time.monotonic() + 10
    while sig_init("status", "api", check=0).json()["valid"] and time.monotonic() < deadline:
        time.sleep(0.2)
    r = sig_init("get", "api", check=1)
    assert "oauth2.tokenUrl" in r.err and "cleartext" in r.err
    assert oauth.count() == 1 and len(socks.connections) == 1
    sig_init.assert_no_secret(SECRET)


@pytest.mark.parametrize(("grant", "field", "urls"), [
    ("device_code", "deviceUrl", "      deviceUrl: http://auth.corp.test/device/code\n"
                                 "      tokenUrl: https://auth.corp.test/token\n"),
    ("authorization_code", "authUrl", "      authUrl: http://auth.corp.test/authorize\n"
                                      "      tokenUrl: https://auth.corp.test/token\n"
                                      "      callbackTimeout: 2\n"),
    ("device_code", "tokenUrl", "      deviceUrl: https://auth.corp.test/device/code\n"
                                "      tokenUrl: http://auth.corp.test/token\n"),
])
def test_device_and_authorization_urls_follow_the_rule(sig_init: Sig, socks: Socks5Server, grant: str,
                                                       field: str, urls: str) -> None:
    socks.hosts["auth.corp.test"] = "127.0.0.1"
    _oauth_provider(sig_init, f"{urls}      clientId: cli\n      grant: {grant}\n", proxy=socks.url())
    r = sig_init("login", "api", env={"BROWSER": "false"}, check=1)
    assert f"oauth2.{field}" in r.err and "cleartext" in r.err
    assert "Open this URL" not in r.err and "visit" not in r.err  # refused before any browser or prompt
    assert socks.connections == []


@pytest.mark.parametrize("field", ["tokenUrl", "scopes", "audience"])
def test_env_variables_are_not_expanded_outside_client_id_and_secret(sig_init: Sig, oauth: OAuthServer,
                                                                     field: str) -> None:
    token_url = f"{oauth.token_url}?leak=${{LEAKME}}" if field == "tokenUrl" else oauth.token_url
    other = {"tokenUrl": "", "scopes": '      scopes: [read, "${LEAKME}"]\n',
             "audience": '      audience: "${LEAKME}"\n'}[field]
    _oauth_provider(sig_init, f"""      tokenUrl: "{token_url}"
      clientId: ${{CID}}
      clientSecret: ${{CSECRET}}
      grant: client_credentials
{other}""")
    env = {"LEAKME": "env-VALUE-never-sent", "CID": "svc", "CSECRET": SECRET}
    r = sig_init("login", "api", env=env, check=1)
    assert f"oauth2.{field}" in r.err and "${" in r.err and "clientId" in r.err
    assert "env-VALUE-never-sent" not in r.err + r.out
    assert oauth.token_requests == []
    # clientId and clientSecret are still read from the environment
    cfg = sig_init.home / "config.yaml"
    cfg.write_text(cfg.read_text().replace(f'"{token_url}"', f'"{oauth.token_url}"').replace(other, ""))
    sig_init("login", "api", env=env, check=0)
    assert oauth.token_requests[-1]["client_id"] == "svc"


# -- SOCKS for `sig request` (issue 17 item 4) ----------------------------------------------------------


@pytest.fixture
def corp_https() -> Iterator[ServerHandle]:
    handle = start_https_echo(names=("app.corp.test",))
    try:
        yield handle
    finally:
        handle.close()


def _corp_provider(sig: Sig, server: ServerHandle, proxy: str) -> None:
    sig.add_providers(f"""  corp:
    domains: [app.corp.test]
    entryUrl: https://app.corp.test:{server.port}/
    strategy: api-token
    caFile: {server.ca_path}
    networkProxy: "{proxy}"
""")
    sig("login", "corp", "--token-stdin", input=TOKEN, check=0)


def test_request_through_socks5h_with_password(sig_init: Sig, corp_https: ServerHandle) -> None:
    with Socks5Server(users={"alice": PROXY_PASSWORD}, hosts={"app.corp.test": "127.0.0.1"}) as socks:
        _corp_provider(sig_init, corp_https, socks.url("socks5h", "alice", PROXY_PASSWORD))
        r = sig_init("request", f"https://app.corp.test:{corp_https.port}/v1/me", "--verbose", "--format", "body",
                     check=0)
        seen = json.loads(r.out)
        assert seen["path"] == "/v1/me" and seen["headers"]["host"] == f"app.corp.test:{corp_https.port}"
        assert corp_https.requests[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"
        [conn] = socks.wait_for_connections(1)
        assert (conn.host, conn.atyp, conn.user) == ("app.corp.test", "domain", "alice")
        assert conn.bytes_up > 200 and conn.bytes_down > 200  # TLS, end to end, through the relay
        assert f"socks5h://127.0.0.1:{socks.port}" in r.err  # --verbose names the proxy, not its password
        assert PROXY_PASSWORD not in r.err + r.out and "px/pa" not in r.err


def test_socks5_resolves_names_locally(sig_init: Sig, https_echo: ServerHandle, socks: Socks5Server) -> None:
    sig_init.add_providers(f"""  local:
    domains: [localhost]
    entryUrl: https://localhost:{https_echo.port}/
    strategy: api-token
    caFile: {https_echo.ca_path}
    networkProxy: "socks5://127.0.0.1:{socks.port}"
""")
    sig_init("login", "local", "--token-stdin", input=TOKEN, check=0)
    sig_init("request", f"https://localhost:{https_echo.port}/x", check=0)
    [conn] = socks.wait_for_connections(1)
    assert conn.atyp in ("ipv4", "ipv6") and conn.host in ("127.0.0.1", "::1")  # an address, not the name
    assert https_echo.requests[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"


def test_socks_wrong_password_or_no_proxy(sig_init: Sig, corp_https: ServerHandle) -> None:
    with Socks5Server(users={"alice": "right-one"}, hosts={"app.corp.test": "127.0.0.1"}) as socks:
        _corp_provider(sig_init, corp_https, socks.url("socks5h", "alice", PROXY_PASSWORD))
        r = sig_init("request", f"https://app.corp.test:{corp_https.port}/x", check=1)
        assert "SOCKS proxy" in r.err and "authentication" in r.err.lower()
        assert PROXY_PASSWORD not in r.err and socks.auth_failures == 1
        port = socks.port
    assert corp_https.requests == []
    r = sig_init("request", f"https://app.corp.test:{corp_https.port}/x", check=1)  # the proxy is gone
    assert f"socks5h://127.0.0.1:{port}" in r.err and PROXY_PASSWORD not in r.err


# -- IDNA2008 / UTS #46 (issue 19 item 14) -------------------------------------------------------------


@pytest.mark.parametrize(("provider_host", "other_host"), [
    ("fass.de", "faß.de"),  # IDNA2003 made these one host
    ("faß.de", "fass.de"),
    ("apple.test", "аpple.test"),  # Cyrillic а
    ("paypal.test", "paypaӏ.test"),  # Cyrillic palochka
    ("βόλος.test", "βόλοσ.test"),  # final sigma vs sigma
])
def test_look_alike_hosts_never_share_credentials(sig_init: Sig, http_echo: ServerHandle, socks: Socks5Server,
                                                  provider_host: str, other_host: str) -> None:
    from sigcli.core.hosts import canonical_host

    for name in (provider_host, other_host):
        socks.hosts[canonical_host(name)] = "127.0.0.1"
    sig_init.add_providers(f"""  idn:
    domains: ["{provider_host}"]
    entryUrl: https://{provider_host}:{http_echo.port}/
    strategy: api-token
    allowHttp: true
    networkProxy: "{socks.url()}"
""")
    sig_init("login", "idn", "--token-stdin", input=TOKEN, check=0)
    r = sig_init("request", f"http://{other_host}:{http_echo.port}/x", check=2)
    assert "no provider" in r.err
    r = sig_init("request", f"http://{other_host}:{http_echo.port}/x", "--provider", "idn", check=1)
    assert "not one of the domains" in r.err
    assert http_echo.requests == [] and socks.connections == []
    # the provider's own host, in any spelling, gets it — the proxy is asked for the A-label
    sig_init("request", f"http://{provider_host}.:{http_echo.port}/x", check=0)  # (upper() would turn ß into SS)
    assert http_echo.requests[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"
    [conn] = socks.wait_for_connections(1)
    assert conn.host == canonical_host(provider_host) and conn.host.isascii()
