"""The login validation probe follows the rules of every other sender (issue 25 item 5) and goes through
a SOCKS networkProxy (issue 17 item 4), against real loopback servers and a real SOCKS5 relay."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.servers import ServerHandle, start_http_echo, start_https_echo
from harness.socks5 import Socks5Server
from sigcli.auth.validation import Verdict, probe
from sigcli.core.errors import SigError
from sigcli.core.model import Provider

SESSION = "sess-PROBE-NET-91c2"
VALUES = {"session": SESSION}
PROXY_PASSWORD = "pr0xy/pass#word"


def _provider(entry_url: str, domains: list[str], **extra: Any) -> Provider:
    data: dict[str, Any] = {
        "id": "probe-net",
        "strategy": "browser",
        "domains": domains,
        "entryUrl": entry_url,
        "extract": [{"from": "cookies", "as": "session", "match": "session"}],
        "apply": [{"in": "header", "name": "Cookie", "value": "session=${session}"}],
    }
    data.update(extra)
    return Provider(data)


@pytest.fixture
def other_http() -> Iterator[ServerHandle]:
    with start_http_echo() as handle:
        yield handle


@pytest.fixture
def corp_https() -> Iterator[ServerHandle]:
    with start_https_echo(names=("app.corp.test",)) as handle:
        yield handle


def _cookies_seen(server: ServerHandle) -> list[str]:
    return [r["headers"].get("cookie", "") for r in server.requests]


def test_validate_url_on_another_port_gets_no_cookies(http_echo: ServerHandle, other_http: ServerHandle) -> None:
    provider = _provider(http_echo.url_for("/"), ["127.0.0.1"], validateUrl=other_http.url_for("/api/me"))
    with pytest.raises(SigError) as info:
        probe(provider, VALUES, timeout=5)
    assert info.value.code == "CONFIG_ERROR"
    assert f"port {other_http.port}" in info.value.message and "ports:" in info.value.message
    assert other_http.requests == [] and http_echo.requests == []
    # listed in ports: it is the provider's own, and the probe goes there
    provider = _provider(http_echo.url_for("/"), ["127.0.0.1"], validateUrl=other_http.url_for("/api/me"),
                         ports=[other_http.port])
    verdict, reason = probe(provider, VALUES, timeout=5)
    assert verdict is Verdict.VALID, reason
    assert _cookies_seen(other_http) == [f"session={SESSION}"]


def test_validate_url_over_http_when_the_provider_is_https(corp_https: ServerHandle,
                                                           other_http: ServerHandle) -> None:
    with Socks5Server(hosts={"app.corp.test": "127.0.0.1"}) as socks:
        provider = _provider(f"https://app.corp.test:{corp_https.port}/", ["app.corp.test"],
                             validateUrl=f"http://app.corp.test:{corp_https.port}/api/me",
                             caFile=corp_https.ca_path, networkProxy=socks.url())
        with pytest.raises(SigError) as info:
            probe(provider, VALUES, timeout=5)
        assert info.value.code == "CONFIG_ERROR" and "cleartext" in info.value.message
        assert socks.connections == [] and corp_https.requests == []


def test_probe_through_socks5h_with_password(corp_https: ServerHandle) -> None:
    with Socks5Server(users={"bob": PROXY_PASSWORD}, hosts={"app.corp.test": "127.0.0.1"}) as socks:
        provider = _provider(f"https://app.corp.test:{corp_https.port}/", ["app.corp.test"],
                             validateUrl=f"https://app.corp.test:{corp_https.port}/api/me",
                             caFile=corp_https.ca_path, networkProxy=socks.url("socks5h", "bob", PROXY_PASSWORD))
        verdict, reason = probe(provider, VALUES, timeout=5)
        assert verdict is Verdict.VALID, reason
        assert PROXY_PASSWORD not in reason
        [conn] = socks.wait_for_connections(1)
        assert (conn.host, conn.port, conn.atyp, conn.user) == ("app.corp.test", corp_https.port, "domain", "bob")
        assert conn.bytes_up > 0 and conn.bytes_down > 0
    assert _cookies_seen(corp_https) == [f"session={SESSION}"]


def test_probe_through_socks5_resolves_locally(https_echo: ServerHandle) -> None:
    with Socks5Server() as socks:
        provider = _provider(https_echo.url_for("/"), ["127.0.0.1"], caFile=https_echo.ca_path,
                             networkProxy=f"socks5://127.0.0.1:{socks.port}")
        verdict, reason = probe(provider, VALUES, timeout=5)
        assert verdict is Verdict.VALID, reason
        [conn] = socks.wait_for_connections(1)
        assert (conn.host, conn.atyp) == ("127.0.0.1", "ipv4")
    assert _cookies_seen(https_echo) == [f"session={SESSION}"]


def test_probe_socks_failures_are_unknown_without_the_password(https_echo: ServerHandle) -> None:
    with Socks5Server(users={"bob": "the-right-one"}) as socks:
        provider = _provider(https_echo.url_for("/"), ["127.0.0.1"], caFile=https_echo.ca_path,
                             networkProxy=f"socks5h://bob:{PROXY_PASSWORD}@127.0.0.1:{socks.port}")
        verdict, reason = probe(provider, VALUES, timeout=5)
        assert verdict is Verdict.UNKNOWN and "SOCKS" in reason and PROXY_PASSWORD not in reason
        assert socks.auth_failures == 1
    assert https_echo.requests == []
