"""The "same site" decision of the login cascade: registrable domains from the Public Suffix List (the
package's bundled snapshot), so names on shared hosting (github.io, herokuapp.com, amazonaws.com) are
sites of their own, and two-level country suffixes (co.uk) are suffixes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sigcli.browser.site import on_site, registrable
from sigcli.core.model import Provider


@pytest.mark.parametrize(("host", "site"), [
    ("login.corp.example.com", "example.com"),
    ("www.example.co.uk", "example.co.uk"),
    ("a.b.example.co.uk", "example.co.uk"),
    ("shop.example.com.au", "example.com.au"),
    ("www.city.kawasaki.jp", "city.kawasaki.jp"),  # an exception rule (!city.kawasaki.jp)
    ("alice.github.io", "alice.github.io"),  # private section: github.io is a suffix
    ("docs.alice.github.io", "alice.github.io"),
    ("my-app.herokuapp.com", "my-app.herokuapp.com"),
    ("bucket.s3.amazonaws.com", "bucket.s3.amazonaws.com"),
    ("abc.execute-api.us-east-1.amazonaws.com", "abc.execute-api.us-east-1.amazonaws.com"),
    ("ec2-1-2-3-4.compute-1.amazonaws.com", "ec2-1-2-3-4.compute-1.amazonaws.com"),  # a wildcard rule
    ("WWW.Example.CO.UK.", "example.co.uk"),  # canonical form first
    ("www.bücher.de", "xn--bcher-kva.de"),
    ("github.io", "github.io"),  # a suffix alone is a site of its own
    ("co.uk", "co.uk"),
    ("127.0.0.1", "127.0.0.1"),
    ("::1", "::1"),
    ("localhost", "localhost"),
])
def test_registrable(host: str, site: str) -> None:
    assert registrable(host) == site


@pytest.mark.parametrize(("a", "b"), [
    ("alice.github.io", "bob.github.io"),
    ("app-one.herokuapp.com", "app-two.herokuapp.com"),
    ("one.s3.amazonaws.com", "two.s3.amazonaws.com"),
    ("ec2-1-2-3-4.compute-1.amazonaws.com", "ec2-5-6-7-8.compute-1.amazonaws.com"),
    ("example.co.uk", "other.co.uk"),
])
def test_neighbours_on_shared_hosting_are_different_sites(a: str, b: str) -> None:
    assert registrable(a) != registrable(b)


def _provider(entry: str, domains: list[str]) -> Provider:
    return Provider({"id": "p", "name": "P", "domains": domains, "entryUrl": entry, "strategy": "browser",
                     "extract": [{"from": "cookies", "as": "cookie", "match": "*"}],
                     "apply": [{"in": "header", "name": "Cookie", "value": "${cookie}"}]})


def test_on_site() -> None:
    provider = _provider("https://jira.example.com/", ["jira.example.com"])
    assert on_site("https://jira.example.com/browse", provider)
    assert on_site("https://home.example.com/landing", provider)  # another subdomain of the same site
    assert not on_site("https://login.microsoftonline.com/x", provider)
    assert not on_site("about:blank", provider)
    assert not on_site("chrome-error://chromewebdata/", provider)
    pages = _provider("https://alice.github.io/app/", ["alice.github.io"])
    assert on_site("https://alice.github.io/app/home", pages)
    assert not on_site("https://mallory.github.io/login", pages)  # someone else's site on the same host
    uk = _provider("https://www.example.co.uk/", ["www.example.co.uk"])
    assert on_site("https://login.example.co.uk/", uk)
    assert not on_site("https://www.other.co.uk/", uk)


def test_the_suffix_list_is_the_bundled_one_and_loads_only_when_asked() -> None:
    """No download at run time (the package's snapshot), and nothing of it imported by the cascade module
    itself: only a login that asks which site a page is on pays for it."""
    code = ("import sys, socket\n"
            "def refuse(*a, **k): raise AssertionError('network use')\n"
            "socket.socket.connect = refuse; socket.create_connection = refuse; socket.getaddrinfo = refuse\n"
            "import sigcli.auth.browser_login\n"
            "assert 'publicsuffixlist' not in sys.modules\n"
            "from sigcli.browser.site import registrable\n"
            "assert registrable('x.alice.github.io') == 'alice.github.io'\n"
            "assert 'publicsuffixlist' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
