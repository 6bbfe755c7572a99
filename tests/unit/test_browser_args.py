"""Browser command lines: no automation flag, no debugging port, and never a proxy password in argv."""

from __future__ import annotations

from sigcli.browser.launch import chrome_args
from sigcli.browser.protocol import LaunchOptions
from sigcli.browser.proxy_url import parse_proxy_url


def test_proxy_credentials_never_reach_the_browser_argv() -> None:
    for raw in ("http://alice:s3cret-pw@proxy.corp:3128", "http://alice:s3cr/t#pw@proxy.corp:3128",
                "alice:s3cret-pw@proxy.corp:3128"):
        options = LaunchOptions("chromium", "/tmp/profile", "about:blank", proxy=parse_proxy_url(raw))
        args = chrome_args(options)
        assert "--proxy-server=http://proxy.corp:3128" in args, raw
        assert not any("s3cr" in a or "alice" in a or "pw" in a.split("=")[-1] for a in args), args
        assert "--remote-debugging-pipe" in args and "--enable-automation" not in args
        assert not any(a.startswith("--remote-debugging-port") for a in args)


def test_socks5h_is_passed_as_socks5() -> None:
    options = LaunchOptions("chromium", "/tmp/profile", "about:blank", proxy=parse_proxy_url("socks5h://p:1080"))
    assert "--proxy-server=socks5://p:1080" in chrome_args(options)
