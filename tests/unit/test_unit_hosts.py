"""core/hosts.py: provider ids from host names, domain patterns, file and env names, URL splitting."""

from __future__ import annotations

import pytest

from sigcli.core.hosts import (
    canonical_host,
    derive_short_id,
    domain_matches,
    env_name,
    sanitize_filename,
    split_url,
    unique_id,
    valid_provider_id,
)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        # Pinned by the original's tests (reference §2.6).
        ("dashboard-analytics-prod-us.x.y", "dashboard-analytics-prod-us"),
        ("abcdefgh.example.com", "abcdefgh"),
        ("internal.corp", "internal"),
        ("insecure.local", "insecure"),
        ("jira.example.com", "jira-example"),
        ("jira.tools.example.com", "jira-tools"),
        ("app.com", "app-com"),
        ("127.0.0.1", "127-0"),
        ("localhost", "localhost"),
        ("grafana.example.com", "grafana-example"),
    ],
)
def test_derive_short_id_pinned(host: str, expected: str) -> None:
    assert derive_short_id(host) == expected


def test_derive_short_id_is_a_valid_lower_case_id() -> None:
    derived = derive_short_id("Jira.Example.COM")
    assert derived == "jira-example"
    assert valid_provider_id(derived)
    # A first label of 7 chars is "short": it is joined with the second one.
    assert derive_short_id("abcdefg.example.com") == "abcdefg-example"


def test_derive_short_id_never_empty() -> None:
    assert derive_short_id("") == "provider"
    assert derive_short_id("---.x") != ""


def test_unique_id() -> None:
    assert unique_id("jira-tools", set()) == "jira-tools"
    assert unique_id("jira-tools", {"other"}) == "jira-tools"
    assert unique_id("jira-tools", {"jira-tools"}) == "jira-tools-2"
    assert unique_id("jira-tools", {"jira-tools", "jira-tools-2", "jira-tools-3"}) == "jira-tools-4"
    # A gap is reused.
    assert unique_id("a", {"a", "a-3"}) == "a-2"


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("example.com", "example.com", True),
        ("example.com", "www.example.com", False),
        ("example.com", "example.org", False),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", "evilexample.com", False),
        ("*.example.com", "a.evilexample.com", False),
        ("*.example.com", "example.com.evil.org", False),
        ("*.example.com", "a.example.com.evil.org", False),
        ("*.example.com", ".example.com", False),
        ("example.com", "example.com.evil.org", False),
        # Case-insensitive both ways.
        ("*.Example.COM", "A.example.com", True),
        ("EXAMPLE.com", "example.COM", True),
        # Trailing dot (fully qualified form) on either side.
        ("example.com.", "example.com", True),
        ("example.com", "example.com.", True),
        ("*.example.com", "a.example.com.", True),
        # IDNA: Unicode and punycode spellings are the same host.
        ("bücher.example", "xn--bcher-kva.example", True),
        ("xn--bcher-kva.example", "BÜCHER.example", True),
        ("*.bücher.example", "shop.xn--bcher-kva.example", True),
        ("*.bücher.example", "xn--bcher-kva.example", False),
        # Regex metacharacters in a pattern are literal.
        ("a.b.com", "axb.com", False),
        ("127.0.1.*", "127.0.1.5", True),
        ("127.0.1.*", "127.0.15", False),
        ("127.0.1.*", "127.0.1.5.6", False),
    ],
)
def test_domain_matches(pattern: str, host: str, expected: bool) -> None:
    assert domain_matches(pattern, host) is expected


def test_canonical_host() -> None:
    assert canonical_host(" Example.COM. ") == "example.com"
    assert canonical_host("[::1]") == "::1"
    assert canonical_host("bücher.example") == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("provider_id", "expected"),
    [
        ("jira", "jira.json"),
        ("my.provider_1-x", "my.provider_1-x.json"),
        ("a/b", "a_b.json"),
        ("../etc/passwd", ".._etc_passwd.json"),
        ("a b:c", "a_b_c.json"),
        ("é", "_.json"),
    ],
)
def test_sanitize_filename(provider_id: str, expected: str) -> None:
    assert sanitize_filename(provider_id) == expected
    assert "/" not in sanitize_filename(provider_id)


@pytest.mark.parametrize(
    "good", ["a", "jira", "jira-example", "Jira_2", "127-0", "a.b", "x" * 64, "0start"]
)
def test_valid_provider_id_accepts(good: str) -> None:
    assert valid_provider_id(good)


@pytest.mark.parametrize(
    "bad", ["", "bad id!", "-lead", ".lead", "_lead", "a/b", "a b", "x" * 65, "é", "a:b", None, 5, ["a"]]
)
def test_valid_provider_id_rejects(bad: object) -> None:
    assert not valid_provider_id(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("jira-example", "JIRA_EXAMPLE"),
        ("access_token", "ACCESS_TOKEN"),
        ("my.provider", "MY_PROVIDER"),
        ("a1", "A1"),
        ("x-y z/é", "X_Y_Z__"),
    ],
)
def test_env_name(text: str, expected: str) -> None:
    assert env_name(text) == expected


def test_env_name_only_upper_alnum_and_underscore() -> None:
    out = env_name("weird key!$é-ß")
    assert all(c == "_" or "A" <= c <= "Z" or "0" <= c <= "9" for c in out)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://Example.COM./path?q=1", ("https", "example.com", None)),
        ("http://127.0.0.1:18080/", ("http", "127.0.0.1", 18080)),
        ("HTTPS://a.example.com:8443", ("https", "a.example.com", 8443)),
        ("jira.example.com", ("https", "jira.example.com", None)),
        ("jira.example.com:8080/x", ("https", "jira.example.com", 8080)),
        ("http://[::1]:8080/", ("http", "::1", 8080)),
        ("https://user:pw@host.example/", ("https", "host.example", None)),
        ("https://bücher.example/", ("https", "xn--bcher-kva.example", None)),
        ("http://a.example:99999/", ("", "", None)),
        ("http://a.example:port/", ("", "", None)),
    ],
)
def test_split_url(text: str, expected: tuple[str, str, int | None]) -> None:
    assert split_url(text) == expected


def test_split_url_without_host() -> None:
    for text in ("", "   ", "https://", "https:///path"):
        _, host, port = split_url(text)
        assert host == ""
        assert port is None
