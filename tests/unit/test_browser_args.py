"""Browser command lines: no automation flag, and never a proxy password in argv."""

from __future__ import annotations

from sigcli.browser.launch import chrome_args, split_proxy
from sigcli.browser.protocol import LaunchOptions


def test_proxy_credentials_never_reach_the_browser_argv() -> None:
    options = LaunchOptions("chromium", "/tmp/profile", "about:blank",
                            proxy_server="http://alice:s3cret-pw@proxy.corp:3128")
    args = chrome_args(options, None)
    assert "--proxy-server=http://proxy.corp:3128" in args
    assert not any("s3cret-pw" in a or "alice" in a for a in args)
    assert "--remote-debugging-pipe" in args and "--enable-automation" not in args


def test_split_proxy_decodes_and_keeps_plain_urls() -> None:
    assert split_proxy("http://u%40x:p%3Ass@proxy:3128") == ("http://proxy:3128", "u@x", "p:ss")
    assert split_proxy("http://proxy:3128") == ("http://proxy:3128", None, None)
    assert split_proxy("socks5://proxy:1080") == ("socks5://proxy:1080", None, None)
