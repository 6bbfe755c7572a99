"""Host names as sig decides on them: loopback (one test, on the parsed host), IDNA2008/UTS #46 canonical
forms (look-alikes stay apart), and the cleartext rule every sender shares.
(networkProxy parsing: test_net_proxy.py.)"""

from __future__ import annotations

import subprocess
import sys

import pytest

from sigcli.core.errors import SigError
from sigcli.core.hosts import canonical_host, domain_matches, is_loopback, is_valid_host
from sigcli.core.model import Provider
from sigcli.core.policy import cleartext_refusal, endpoint_refusal, may_inject
from sigcli.net.http import Url

# -- loopback --------------------------------------------------------------------------------------------

LOOPBACK = ["127.0.0.1", "127.0.0.53", "127.255.255.254", "::1", "[::1]", "localhost", "LOCALHOST",
            "localhost.", "127.0.0.1.", "[::ffff:127.0.0.1]", "::ffff:7f00:1", "0:0:0:0:0:0:0:1",
            "１２７.0.0.1"]  # full-width digits map to 127.0.0.1, the address sig then connects to
NOT_LOOPBACK = [
    "127.corp.test", "127.0.0.1.nip.io", "127-0-0-1.sslip.io", "localhost.evil.test", "app.localhost",
    "localhost.localdomain", "evil-localhost", "0x7f.1", "0x7f000001", "2130706433", "127.1", "0177.0.0.1",
    "127.000.000.001", "0.0.0.0", "::", "::127.0.0.1", "64:ff9b::7f00:1", "[::ffff:10.0.0.1]", "10.0.0.1",
    "fe80::1%eth0", "", "1.2.3.4", "127.0.0.1:80", "[::1]x", "loca1host",
]


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", NOT_LOOPBACK)
def test_names_that_only_look_local_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def _provider(**extra: object) -> Provider:
    data: dict[str, object] = {"id": "p", "strategy": "api-token", "domains": ["127.corp.test"],
                               "entryUrl": "https://127.corp.test/"}
    data.update(extra)
    return Provider(data)


@pytest.mark.parametrize("host", ["127.corp.test", "127.0.0.1.nip.io", "localhost.evil.test", "0x7f.1",
                                  "2130706433", "127.1", "app.localhost"])
def test_cleartext_to_a_look_alike_is_refused(host: str) -> None:
    provider = _provider(domains=[host], entryUrl=f"https://{host}/")
    refusal = may_inject(provider, "http", host, 80)
    assert refusal is not None and "cleartext" in refusal
    assert may_inject(provider, "https", host, 443) is None
    assert may_inject(_provider(domains=[host], entryUrl=f"https://{host}/", allowHttp=True), "http", host,
                      80) is None


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "::ffff:127.0.0.1"])
def test_cleartext_to_real_loopback_is_allowed(host: str) -> None:
    provider = _provider(domains=[host], entryUrl=f"https://[{host}]/" if ":" in host else f"https://{host}/")
    assert may_inject(provider, "http", host, 80) is None


def test_allow_http_must_be_true_itself() -> None:
    for value in ("true", "yes", 1, None):
        assert cleartext_refusal(_provider(allowHttp=value), "http", "127.corp.test") is not None
    assert cleartext_refusal(_provider(allowHttp=True), "http", "127.corp.test") is None


def test_http_entry_url_allows_cleartext_to_its_own_host_only() -> None:
    provider = _provider(domains=["app.corp.test", "api.corp.test"], entryUrl="http://app.corp.test/")
    assert may_inject(provider, "http", "app.corp.test", 80) is None
    assert may_inject(provider, "http", "APP.corp.test.", 80) is None
    refusal = may_inject(provider, "http", "api.corp.test", 80)
    assert refusal is not None and "cleartext" in refusal


def test_endpoint_rule() -> None:
    provider = _provider()
    assert endpoint_refusal(provider, "https://auth.corp.test/token", "oauth2.tokenUrl") is None
    assert endpoint_refusal(provider, "http://127.0.0.1:8080/token", "oauth2.tokenUrl") is None
    for url in ("http://auth.corp.test/token", "http://127.auth.test/token", "http://localhost.evil.test/t"):
        refusal = endpoint_refusal(provider, url, "oauth2.tokenUrl")
        assert refusal is not None and refusal.startswith("oauth2.tokenUrl") and "cleartext" in refusal
    assert endpoint_refusal(_provider(allowHttp=True), "http://auth.corp.test/token", "oauth2.tokenUrl") is None
    for url in ("ftp://auth.corp.test/token", "auth.corp.test/token", "", "javascript:alert(1)"):
        assert endpoint_refusal(provider, url, "oauth2.tokenUrl") is not None


def test_loopback_and_ascii_hosts_load_neither_ipaddress_nor_idna() -> None:
    """Start-up: a DNS name is decided without ipaddress, an ASCII name canonicalised without idna."""
    code = ("import sys\nfrom sigcli.core.hosts import canonical_host, is_loopback\n"
            "assert canonical_host('Api.Example.COM.') == 'api.example.com'\n"
            "assert not is_loopback('127.corp.test') and is_loopback('localhost')\n"
            "print(sorted(m for m in ('ipaddress', 'idna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


# -- IDNA2008 / UTS #46 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "canonical"), [
    ("faß.de", "xn--fa-hia.de"),
    ("FAß.DE.", "xn--fa-hia.de"),
    ("fass.de", "fass.de"),
    ("βόλος.com", "xn--nxasmm1c.com"),  # final sigma kept (IDNA2003 turned ς into σ)
    ("ｅｘａｍｐｌｅ.com", "example.com"),  # full-width letters map as in browsers
    ("example。com", "example.com"),  # ideographic full stop
    ("münchen.de", "xn--mnchen-3ya.de"),
    ("xn--fa-hia.de", "xn--fa-hia.de"),
    ("аpple.com", "xn--pple-43d.com"),  # Cyrillic а
    ("foo_bar.münchen.de", "foo_bar.xn--mnchen-3ya.de"),  # ASCII labels kept as they are
])
def test_canonical_host_uses_uts46(host: str, canonical: str) -> None:
    assert canonical_host(host) == canonical


@pytest.mark.parametrize(("provider_domain", "other"), [
    ("faß.de", "fass.de"),
    ("fass.de", "faß.de"),
    ("βόλος.com", "βόλοσ.com"),
    ("apple.com", "аpple.com"),  # Cyrillic а
    ("apple.com", "applе.com"),  # Cyrillic е at the end
    ("paypal.com", "paypaӏ.com"),  # Cyrillic palochka for l
    ("google.com", "ɡoogle.com"),  # Latin script g
    ("example.com", "exam\u200dple.com"),  # a zero-width joiner IDNA2003 silently removed
    ("*.example.com", "xn--fa-hia.ex\u0430mple.com"),  # mixed Latin/Cyrillic under a wildcard
])
def test_look_alikes_never_match(provider_domain: str, other: str) -> None:
    assert not domain_matches(provider_domain, other)


def test_same_name_in_any_spelling_matches() -> None:
    assert domain_matches("faß.de", "xn--fa-hia.de")
    assert domain_matches("xn--fa-hia.de", "FAß.de.")
    assert domain_matches("*.münchen.de", "wiki.MÜNCHEN.de")


def test_invalid_idn_never_matches_and_is_refused_as_url() -> None:
    bad = "exam\u200dple.com"
    assert not is_valid_host(canonical_host(bad))
    assert not domain_matches(bad, bad)
    with pytest.raises(SigError) as info:
        Url.parse(f"https://{bad}/")
    assert info.value.code == "USAGE_ERROR"
    assert Url.parse("https://faß.de/x").host == "xn--fa-hia.de"
