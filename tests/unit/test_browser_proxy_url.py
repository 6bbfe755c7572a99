"""networkProxy parsing: userinfo is everything before the last @, passwords may hold / # ? as typed,
ambiguous input is a CONFIG_ERROR that says to percent-encode, and no error ever quotes the URL."""

from __future__ import annotations

import pytest

from sigcli.browser.proxy_url import parse_proxy_url
from sigcli.core.errors import ErrorCode, SigError


@pytest.mark.parametrize(("raw", "server", "user", "password"), [
    ("http://proxy:3128", "http://proxy:3128", None, None),
    ("proxy.corp:3128", "http://proxy.corp:3128", None, None),
    ("http://proxy.corp", "http://proxy.corp:80", None, None),
    ("http://proxy.corp/", "http://proxy.corp:80", None, None),
    ("socks5://127.0.0.1:1080", "socks5://127.0.0.1:1080", None, None),
    ("socks5h://[::1]:1080", "socks5://[::1]:1080", None, None),
    ("HTTP://bob:pw@proxy:3128", "http://proxy:3128", "bob", "pw"),
    ("http://bob@proxy:3128", "http://proxy:3128", "bob", ""),
    # As typed: / # ? inside the password (a standard parser would cut the URL there).
    ("http://bob:s3cr/t#pw@127.0.0.1:8080", "http://127.0.0.1:8080", "bob", "s3cr/t#pw"),
    ("http://bob:a?b/c#d@proxy:3128/", "http://proxy:3128", "bob", "a?b/c#d"),
    ("http://bob:p:w@proxy:3128", "http://proxy:3128", "bob", "p:w"),  # the first : splits
    ("http://bob:p@ss@proxy:3128", "http://proxy:3128", "bob", "p@ss"),  # the last @ ends the user info
    # Percent-encoded: decoded.
    ("http://u%40corp:p%40ss%2F%23%25@proxy:3128", "http://proxy:3128", "u@corp", "p@ss/#%"),
])
def test_parses(raw: str, server: str, user: str | None, password: str | None) -> None:
    proxy = parse_proxy_url(raw)
    assert proxy.server == server
    assert proxy.username == user
    assert (proxy.password.reveal() if proxy.password is not None else None) == password
    assert "pw" not in repr(proxy) or password is None or "pw" not in password


@pytest.mark.parametrize(("raw", "says"), [
    ("http://bob:100%@proxy:3128", "%"),
    ("http://bob:8080/x@proxy:3128", "two different proxies"),  # host bob:8080, or proxy:3128?
    ("http://bob:#1@proxy:3128", "two different proxies"),  # host bob (empty port), or proxy?
    ("http://proxy:3128/path", "no path"),
    ("http://proxy:99999", "port"),
    ("ftp://proxy:21", "does not support"),
    ("https://proxy:443", "does not support"),
    ("socks5://bob:pw@proxy:1080", "SOCKS"),
    ("http://bob:pw word@proxy:3128", "spaces"),
    ("   ", "empty"),
])
def test_refuses_with_a_config_error_that_never_quotes_the_url(raw: str, says: str) -> None:
    with pytest.raises(SigError) as info:
        parse_proxy_url(raw, 'networkProxy of provider "corp"')
    err = info.value
    assert err.code == ErrorCode.CONFIG_ERROR
    assert says in err.message
    assert 'networkProxy of provider "corp"' in err.message
    assert err.hint
    for secret in ("p@ss", "100%", "pw word", "pw"):
        if secret in raw:
            assert secret not in err.message + err.hint


def test_ambiguous_input_is_told_to_percent_encode() -> None:
    for raw in ("http://bob:8080/x@proxy:3128", "http://bob:99%@proxy:3128"):
        with pytest.raises(SigError) as info:
            parse_proxy_url(raw)
        assert "%2F" in info.value.hint and "%25" in info.value.hint
