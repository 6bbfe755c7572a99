"""A networkProxy that asks for a password: the browser gets scheme://host:port on its command line and
the password only over CDP (Fetch.authRequired), so /proc/<pid>/cmdline of no process shows it, and the
page loads through the proxy. The password holds / and # as typed (no percent-encoding)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.browser_login import CHROMIUM, cmdlines
from harness.forward_proxy import ForwardProxy
from harness.servers import PageServer
from sigcli.browser.cdp import CdpAdapter
from sigcli.browser.protocol import LaunchOptions
from sigcli.browser.proxy_url import parse_proxy_url

try:
    import playwright  # noqa: F401

    HAVE_PLAYWRIGHT = True
except ImportError:
    HAVE_PLAYWRIGHT = False

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium/Chrome installed (apt-get install chromium)"),
    pytest.mark.timeout(120),
]


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with PageServer(b"<!doctype html><html><body>through the proxy</body></html>") as page:
        yield page.url


def _launch(adapter: str, options: LaunchOptions):  # type: ignore[no-untyped-def]
    if adapter == "playwright":
        from sigcli.browser.playwright_adapter import PlaywrightAdapter

        return PlaywrightAdapter().launch(options)
    return CdpAdapter().launch(options)


@pytest.mark.parametrize(("adapter", "shared"), [
    ("cdp", False),
    ("cdp", True),  # the shared window: the relay starts the browser, our tab answers the proxy
    pytest.param("playwright", False,
                 marks=pytest.mark.skipif(not HAVE_PLAYWRIGHT, reason="playwright not installed")),
])
def test_the_proxy_password_is_answered_over_cdp_never_in_argv(site: str, tmp_path: Path, adapter: str,
                                                                shared: bool) -> None:
    password = f"s3/cr#t-{secrets.token_hex(6)}"
    with ForwardProxy(user="bob", password=password) as proxy:
        raw = f"http://bob:{password}@127.0.0.1:{proxy.port}"
        assert CHROMIUM is not None
        options = LaunchOptions(executable=CHROMIUM, user_data_dir=str(tmp_path / "profile"), url=site + "/x",
                                headless=True, shared=shared, timeout_s=60.0, proxy=parse_proxy_url(raw))
        session = _launch(adapter, options)
        try:
            assert session.page.evaluate("document.body.innerText") == "through the proxy"
            leaks = {pid: cmd for pid, cmd in cmdlines().items() if password in cmd or "s3/cr#t" in cmd}
            own = [cmd for cmd in cmdlines().values() if str(tmp_path / "profile") in cmd]
            assert own, "no browser process found for the profile: the scan itself is broken"
            assert any(f"127.0.0.1:{proxy.port}" in cmd for cmd in own) or adapter == "playwright"
        finally:
            session.close()
    assert leaks == {}
    assert proxy.challenges >= 1  # it asked,
    assert proxy.wrong == 0  # got the right answer (no wrong guess),
    assert site + "/x" in proxy.seen  # and the page came through it
