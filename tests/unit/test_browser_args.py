"""Browser command lines: no automation flag and no debugging port. (The proxy's place on the command
line, without its password, is tested with the proxy parser in test_net_proxy.py.)"""

from __future__ import annotations

from sigcli.browser.launch import chrome_args
from sigcli.browser.protocol import LaunchOptions


def test_no_automation_flag_and_no_debugging_port() -> None:
    args = chrome_args(LaunchOptions("chromium", "/tmp/profile", "about:blank"))
    assert "--remote-debugging-pipe" in args and "--enable-automation" not in args
    assert not any(a.startswith("--remote-debugging-port") for a in args)
