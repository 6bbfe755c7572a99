"""The cascade's "same site" check in a real browser: a hop from one name on shared hosting to a neighbour
(alice.github.io → mallory.github.io) is a hop off the provider's site, as the Public Suffix List says,
not "the same registrable domain github.io" as a last-two-labels guess would have it.

Chromium reaches the two names through a networkProxy that maps them to a loopback server (no DNS)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest

from harness.browser_login import CHROMIUM
from harness.browser_login import configure as _configure
from harness.forward_proxy import ForwardProxy
from harness.servers import ServerHandle, start_http_echo
from harness.sigproc import Sig

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium/Chrome installed (apt-get install chromium)"),
    pytest.mark.timeout(120),
]

PAGES = """\
  alice-pages:
    domains: [alice.github.io]
    entryUrl: "{entry}"
    networkProxy: "{proxy}"
    strategy: browser
    requiredCookies: [session]
    extract:
      - {{from: cookies, as: cookie, match: "*"}}
    apply:
      - {{in: header, name: Cookie, value: "${{cookie}}"}}
"""


@pytest.fixture
def echo() -> Iterator[ServerHandle]:
    with start_http_echo() as server:
        yield server


def test_a_hop_to_a_neighbour_on_github_io_is_off_site(sig: Sig, echo: ServerHandle) -> None:
    with ForwardProxy(hosts={"alice.github.io": "127.0.0.1", "mallory.github.io": "127.0.0.1"}) as proxy:
        neighbour = f"http://mallory.github.io:{echo.port}/welcome"
        entry = f"http://alice.github.io:{echo.port}/redirect?to={quote(neighbour, safe='')}"
        _configure(sig, PAGES.format(entry=entry, proxy=proxy.url), browser_extra="  headlessTimeout: 4000\n")
        result = sig("login", "alice-pages", "--mode", "headless", timeout=100)
        assert any("mallory.github.io" in url for url in proxy.seen), proxy.seen  # the browser got there
    assert result.code == 1, result.err
    # Off the provider's site: waiting for the browser to come back (same site: "session" cookie missing).
    assert "the browser is on mallory.github.io (waiting to come back)" in result.err, result.err
