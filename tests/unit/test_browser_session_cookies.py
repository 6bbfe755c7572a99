"""SessionCookies: which cookies a browser login keeps for the next one (session cookies of the provider's
domains only), how they come back from a stored credential (re-checked against the domains configured now,
malformed entries dropped), that a browser's own cookie is never overwritten, and that no value shows in
repr or pickles."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from sigcli.browser.session_cookies import MAX_COOKIE_BYTES, MAX_COOKIES, PAYLOAD_KEY, SessionCookies
from sigcli.core.model import Credential, Provider
from sigcli.core.secret import Secret


def _provider(domains: list[str]) -> Provider:
    return Provider({"id": "jira", "name": "Jira", "domains": domains, "entryUrl": f"https://{domains[0]}/",
                     "strategy": "browser", "extract": [{"from": "cookies", "as": "c", "match": "*"}],
                     "apply": [{"in": "header", "name": "Cookie", "value": "${c}"}]})


def _cookie(name: str, domain: str, expires: float = -1, **more: Any) -> dict[str, Any]:
    return {"name": name, "value": f"v-{name}", "domain": domain, "path": "/", "expires": expires,
            "httpOnly": True, "secure": True, **more}


JAR = [
    _cookie("JSESSIONID", "jira.example.com", sameSite="Lax"),  # host-only session cookie: kept
    _cookie("corp_sso", ".example.com"),  # a parent domain's session cookie (sent to jira too): kept
    _cookie("remember", "jira.example.com", expires=2_000_000_000),  # persistent: the profile keeps it
    _cookie("idp_session", "login.idp.test"),  # the IdP's: never
    _cookie("evil", "jira.example.com.evil.test"),  # a look-alike: never
    _cookie("other", "wiki.example.com"),  # a sibling host: not sent to jira, never
    _cookie("chips", "jira.example.com", partitioned=True),  # partitioned: belongs to a top-level site
]


def test_keeps_the_session_cookies_of_the_providers_domains_only() -> None:
    kept = SessionCookies.from_jar(JAR, _provider(["jira.example.com"]))
    assert [(c["name"], c["domain"]) for c in kept.to_payload()] == [
        ("JSESSIONID", "jira.example.com"), ("corp_sso", ".example.com")]
    first = kept.to_payload()[0]
    assert first == {"name": "JSESSIONID", "value": "v-JSESSIONID", "domain": "jira.example.com", "path": "/",
                     "secure": True, "httpOnly": True, "sameSite": "Lax"}
    assert "expires" not in first  # put back as a session cookie
    wildcard = SessionCookies.from_jar(JAR, _provider(["*.example.com"]))
    assert {c["name"] for c in wildcard.to_payload()} == {"JSESSIONID", "corp_sso", "other"}


def test_nothing_to_keep() -> None:
    kept = SessionCookies.from_jar([_cookie("remember", "jira.example.com", expires=2e9)],
                                   _provider(["jira.example.com"]))
    assert not kept and len(kept) == 0 and kept.to_payload() == []


def test_from_a_stored_credential_rechecks_domains_and_drops_malformed_entries() -> None:
    stored = SessionCookies.from_jar(JAR, _provider(["*.example.com"])).to_payload()
    stored += [{"name": "x"}, "junk", {"name": "", "value": "v", "domain": "jira.example.com"},
               {"name": "n", "value": 3, "domain": "jira.example.com"},
               {"name": "big", "value": "v" * MAX_COOKIE_BYTES, "domain": "jira.example.com"},
               {"name": "odd", "value": "v", "domain": "jira.example.com", "path": "nope", "sameSite": "weird"}]
    credential = Credential("jira", "browser", {"c": Secret("x")}, extra={PAYLOAD_KEY: stored})
    # The config now names one host: a cookie of another host is not put back, whatever was stored.
    back = SessionCookies.from_credential(credential, _provider(["jira.example.com"]))
    assert [(c["name"], c["path"]) for c in back.to_payload()] == [
        ("JSESSIONID", "/"), ("corp_sso", "/"), ("odd", "/")]
    assert "sameSite" not in back.to_payload()[2]
    assert not SessionCookies.from_credential(None, _provider(["jira.example.com"]))
    junk = Credential("jira", "browser", {}, extra={PAYLOAD_KEY: {"not": "a list"}})
    assert not SessionCookies.from_credential(junk, _provider(["jira.example.com"]))


def test_bounded() -> None:
    jar = [_cookie(f"c{i}", "jira.example.com") for i in range(MAX_COOKIES + 50)]
    assert len(SessionCookies.from_jar(jar, _provider(["jira.example.com"]))) == MAX_COOKIES


def test_never_over_a_cookie_the_browser_holds() -> None:
    kept = SessionCookies.from_jar(JAR, _provider(["jira.example.com"]))
    held = [{"name": "JSESSIONID", "value": "newer", "domain": "JIRA.example.com", "path": "/"},
            {"name": "corp_sso", "value": "x", "domain": ".example.com", "path": "/other"}]
    assert [(c["name"], c["domain"]) for c in kept.missing_from(held)] == [("corp_sso", ".example.com")]
    assert len(kept.missing_from([])) == 2


def test_values_never_show() -> None:
    kept = SessionCookies.from_jar(JAR, _provider(["jira.example.com"]))
    for text in (repr(kept), str(kept), f"{kept}"):
        assert "JSESSIONID" in text and "v-" not in text
    with pytest.raises(TypeError):
        pickle.dumps(kept)
