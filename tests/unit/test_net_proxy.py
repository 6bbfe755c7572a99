"""networkProxy parsing, one parser for sig's own requests, the config check and the browser: the user info
ends at the last @, passwords may hold / # ? as typed, ambiguous input is a CONFIG_ERROR that says to
percent-encode, and no error or repr ever shows the password. The browser's view on top: scheme://host:port
only (socks5h spelled socks5), and no SOCKS proxy with a password."""

from __future__ import annotations

import pytest

from sigcli.browser.launch import chrome_args
from sigcli.browser.protocol import LaunchOptions
from sigcli.browser.proxy_url import browser_proxy, parse_proxy_url
from sigcli.core.errors import ErrorCode, SigError
from sigcli.net.network_proxy import NetworkProxy


@pytest.mark.parametrize(("raw", "label", "server", "user", "password"), [
    ("http://proxy:3128", "http://proxy:3128", "http://proxy:3128", None, None),
    ("proxy.corp:3128", "http://proxy.corp:3128", "http://proxy.corp:3128", None, None),
    ("http://proxy.corp", "http://proxy.corp:80", "http://proxy.corp:80", None, None),
    ("http://proxy.corp/", "http://proxy.corp:80", "http://proxy.corp:80", None, None),
    ("socks5://127.0.0.1:1080", "socks5://127.0.0.1:1080", "socks5://127.0.0.1:1080", None, None),
    ("socks5h://[::1]:1080", "socks5h://[::1]:1080", "socks5://[::1]:1080", None, None),
    ("socks5h://proxy.corp:9050", "socks5h://proxy.corp:9050", "socks5://proxy.corp:9050", None, None),
    ("HTTP://bob:pw@Proxy:3128", "http://proxy:3128", "http://proxy:3128", "bob", "pw"),
    ("http://bob@proxy:3128", "http://proxy:3128", "http://proxy:3128", "bob", ""),
    ("http://a:b@[::1]:3128/", "http://[::1]:3128", "http://[::1]:3128", "a", "b"),
    # As typed: / # ? inside the password (a standard parser would cut the URL there).
    ("http://bob:s3cr/t#pw@127.0.0.1:8080", "http://127.0.0.1:8080", "http://127.0.0.1:8080", "bob", "s3cr/t#pw"),
    ("http://bob:a?b/c#d@proxy:3128/", "http://proxy:3128", "http://proxy:3128", "bob", "a?b/c#d"),
    ("http://bob:p:w@proxy:3128", "http://proxy:3128", "http://proxy:3128", "bob", "p:w"),  # the first : splits
    ("http://bob:p@ss@proxy:3128", "http://proxy:3128", "http://proxy:3128", "bob", "p@ss"),  # the last @ ends it
    # Percent-encoded: decoded.
    ("http://u%40corp:p%40ss%2F%23%25@proxy:3128", "http://proxy:3128", "http://proxy:3128", "u@corp", "p@ss/#%"),
])
def test_parses(raw: str, label: str, server: str, user: str | None, password: str | None) -> None:
    proxy = NetworkProxy.parse(raw)
    assert proxy.label == label
    assert proxy.username == user and proxy.has_auth == (user is not None)
    assert (proxy.password.reveal() if proxy.password is not None else None) == password
    view = browser_proxy(proxy)
    assert view.server == server and view.username == user
    assert parse_proxy_url(raw) == view
    if password:
        for shown in (repr(proxy), str(proxy), proxy.label, repr(view), view.server):
            assert password not in shown


@pytest.mark.parametrize(("raw", "label", "user", "password"), [
    ("SOCKS5H://u:p%40ss@proxy.corp", "socks5h://proxy.corp:1080", "u", "p@ss"),
    ("socks5h://u:p/w#d@proxy.corp:1", "socks5h://proxy.corp:1", "u", "p/w#d"),  # raw / and # in a password
])
def test_socks_with_a_password_is_for_sigs_own_requests_not_the_browser(raw: str, label: str, user: str,
                                                                        password: str) -> None:
    proxy = NetworkProxy.parse(raw, 'provider "corp"')
    assert proxy.label == label and proxy.username == user and proxy.password is not None
    assert proxy.password.reveal() == password
    with pytest.raises(SigError) as info:
        browser_proxy(proxy, 'provider "corp"')
    assert info.value.code == ErrorCode.CONFIG_ERROR
    assert "SOCKS" in info.value.message and 'networkProxy of provider "corp"' in info.value.message
    assert password not in info.value.message + info.value.hint


@pytest.mark.parametrize(("raw", "says"), [
    ("http://bob:100%@proxy:3128", "%"),
    ("http://bob:8080/x@proxy:3128", "two different proxies"),  # host bob:8080, or proxy:3128?
    ("http://bob:#1@proxy:3128", "two different proxies"),  # host bob (empty port), or proxy?
    ("http://proxy:3128/path", "no path"),
    ("socks5://u:SeCrEt@h:1/x", "no path"),
    ("socks5://u:SeCrEt@:1", "host:port"),
    ("http://proxy:99999", "port"),
    ("socks5://u:SeCrEt@h:99999", "port"),
    ("ftp://proxy:21", "does not support"),
    ("https://u:SeCrEt@h:443", "does not support"),
    ("socks4://u:SeCrEt@h:1", "does not support"),
    ("weird:SeCrEt://h:1", "a scheme"),
    ("http://bob:pw word@proxy:3128", "spaces"),
    ("   ", "empty"),
])
def test_refuses_with_a_config_error_that_never_quotes_the_url(raw: str, says: str) -> None:
    for parse in (NetworkProxy.parse, parse_proxy_url):
        with pytest.raises(SigError) as info:
            parse(raw, 'provider "corp"')
        err = info.value
        assert err.code == ErrorCode.CONFIG_ERROR
        assert says in err.message
        assert 'networkProxy of provider "corp"' in err.message
        assert err.hint
        for secret in ("SeCrEt", "100%", "pw word", "8080/x", "#1"):
            if secret in raw:
                assert secret not in err.message + err.hint


def test_ambiguous_input_is_told_to_percent_encode() -> None:
    for raw in ("http://bob:8080/x@proxy:3128", "http://bob:99%@proxy:3128"):
        with pytest.raises(SigError) as info:
            NetworkProxy.parse(raw)
        assert "%2F" in info.value.hint and "%25" in info.value.hint


def test_proxy_credentials_never_reach_the_browser_argv() -> None:
    for raw in ("http://alice:s3cret-pw@proxy.corp:3128", "http://alice:s3cr/t#pw@proxy.corp:3128",
                "alice:s3cret-pw@proxy.corp:3128"):
        options = LaunchOptions("chromium", "/tmp/profile", "about:blank", proxy=parse_proxy_url(raw))
        args = chrome_args(options)
        assert "--proxy-server=http://proxy.corp:3128" in args, raw
        assert not any("s3cr" in a or "alice" in a or "pw" in a.split("=")[-1] for a in args), args


def test_socks5h_is_passed_to_the_browser_as_socks5() -> None:
    options = LaunchOptions("chromium", "/tmp/profile", "about:blank", proxy=parse_proxy_url("socks5h://p:1080"))
    assert "--proxy-server=socks5://p:1080" in chrome_args(options)


# -- checked when the config loads ---------------------------------------------------------------------------

CONFIG = """\
version: 2
providers:
  good:
    domains: [a.example.com]
    entryUrl: https://a.example.com/
    strategy: browser
    networkProxy: "socks5h://u:p/w@proxy.corp:1080"
    extract: [{{from: cookies, as: cookie, match: "*"}}]
    apply: [{{in: header, name: Cookie, value: "${{cookie}}"}}]
  corp:
    domains: [b.example.com]
    entryUrl: https://b.example.com/
    strategy: browser
    networkProxy: "{proxy}"
    extract: [{{from: cookies, as: cookie, match: "*"}}]
    apply: [{{in: header, name: Cookie, value: "${{cookie}}"}}]
"""


@pytest.mark.parametrize(("proxy", "says"), [
    ("ftp://u:SeCrEt@proxy:21", '"ftp://"'),
    ("http://u:SeCrEt%@proxy:3128", "not a %XX escape"),
    ("http://u:8080/SeCrEt@proxy:3128", "two different proxies"),
    ("http://proxy:3128/SeCrEt", "no path"),
])
def test_a_bad_network_proxy_is_reported_when_the_config_loads(proxy: str, says: str) -> None:
    from sigcli.config.load import parse_config

    with pytest.raises(SigError) as info:
        parse_config(CONFIG.format(proxy=proxy), "/tmp/x/config.yaml")
    err = info.value
    assert err.code == ErrorCode.CONFIG_ERROR
    problems = [line for line in err.message.splitlines() if line.strip().startswith("- ")]
    assert len(problems) == 1, err.message  # the good provider's proxy is fine
    assert 'Provider "corp": networkProxy' in problems[0] and says in problems[0]
    assert "(line 14)" in problems[0]
    assert "SeCrEt" not in err.message + err.hint


def test_a_good_network_proxy_loads() -> None:
    from sigcli.config.load import parse_config

    config = parse_config(CONFIG.format(proxy="http://bob:s3/cr#t@127.0.0.1:3128"), "/tmp/x/config.yaml")
    corp = config.get("corp")
    assert corp is not None and corp.get("networkProxy") == "http://bob:s3/cr#t@127.0.0.1:3128"
