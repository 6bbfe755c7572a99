"""Browser extraction rules, expiry and the cascade's site checks: pure functions on plain data."""

from __future__ import annotations

import json
import time
from typing import Any

from sigcli.browser.extract import (
    Extraction,
    cookie_domain_matches,
    cookie_value,
    expiry_ms,
    extract,
    glob_values,
    header_value,
    json_path,
    provider_cookies,
    storage_value,
    timestamp_ms,
)
from sigcli.browser.protocol import BrowserError
from sigcli.core.model import Provider


def _cookie(name: str, value: str, domain: str = "app.example.com", path: str = "/",
            expires: float = -1) -> dict[str, Any]:
    return {"name": name, "value": value, "domain": domain, "path": path, "expires": expires,
            "httpOnly": True, "secure": True}


def _provider(**extra: Any) -> Provider:
    data = {"id": "app", "domains": ["app.example.com"], "entryUrl": "https://app.example.com/",
            "strategy": "browser", "extract": [{"from": "cookies", "as": "cookie", "match": "*"}],
            "apply": [{"in": "header", "name": "Cookie", "value": "${cookie}"}]}
    data.update(extra)
    return Provider(data)


class FakePage:
    """Stands in for a browser page (the real adapters are tested against Chromium elsewhere)."""

    def __init__(self, storage: dict[str, str] | None = None, fail: bool = False) -> None:
        self.storage = storage or {}
        self.fail = fail

    def url(self) -> str:
        return "https://app.example.com/"

    def ready_state(self) -> str:
        return "complete"

    def evaluate(self, expression: str) -> Any:
        if self.fail:
            raise BrowserError("page gone")
        if "localStorage.getItem(" in expression and "localStorage.length" not in expression:
            key = json.loads(expression.split("localStorage.getItem(", 1)[1].split(")", 1)[0])
            return self.storage.get(key)
        return [[k, v] for k, v in self.storage.items()]


def test_cookie_domains_exact_parent_and_glob() -> None:
    assert cookie_domain_matches(".example.com", ["app.example.com"])  # parent-domain cookie is sent
    assert cookie_domain_matches("APP.example.com", ["app.example.com"])
    assert not cookie_domain_matches("evil-example.com", ["example.com"])  # no suffix confusion
    assert not cookie_domain_matches("other.example.com", ["app.example.com"])
    assert not cookie_domain_matches("example.com.evil.net", ["example.com"])
    assert cookie_domain_matches("a.x.com", ["*.x.com"])
    assert cookie_domain_matches("x.com", ["*.x.com"])
    assert not cookie_domain_matches("a.b.x.com", ["*.x.com"])
    assert not cookie_domain_matches("", ["x.com"])


def test_cookie_match_star_name_and_duplicates() -> None:
    jar = [_cookie("a", "1"), _cookie("b", '"quoted"'), _cookie("a", "2", path="/wiki")]
    assert cookie_value(jar, "*")[0] == "a=1; b=\"quoted\"; a=2"
    assert cookie_value(jar, "b")[0] == "quoted"
    assert cookie_value(jar, "a")[0] == "a=1; a=2"
    assert cookie_value(jar, "zzz") == (None, [])
    assert cookie_value([], "*") == (None, [])


def test_cookie_paths_keep_listed_and_root_drop_other_scoped() -> None:
    jar = [_cookie("session", "s", path="/wiki"), _cookie("lang", "en"), _cookie("static", "3", path="/static"),
           _cookie("idp", "x", domain="login.other.com")]
    names = [c["name"] for c in provider_cookies(jar, _provider(cookiePaths=["/wiki"]))]
    assert names == ["session", "lang"]
    # without cookiePaths every path is kept (the original's behaviour); other sites never are
    assert [c["name"] for c in provider_cookies(jar, _provider())] == ["session", "lang", "static"]


def test_required_cookies_hold_back_extraction() -> None:
    provider = _provider(requiredCookies=["SESSION"])
    out = extract(provider, [_cookie("tracker", "t")], None, [])
    assert not out.complete and "SESSION" in out.missing[0]
    out = extract(provider, [_cookie("tracker", "t"), _cookie("SESSION", "abc")], None, [])
    assert out.complete and out.values == {"cookie": "tracker=t; SESSION=abc"}


def test_localstorage_exact_glob_json_path_and_expiry() -> None:
    now = int(time.time() * 1000)
    future = now + 3_600_000
    auth = json.dumps({"data": {"token": "tok-1", "exp": future // 1000}})
    provider = _provider(extract=[
        {"from": "localStorage", "as": "token", "match": "auth", "jsonPath": "data.token",
         "expiresJsonPath": "data.exp"},
        {"from": "localStorage", "as": "xoxc", "match": "localConfig_*", "jsonPath": "teams.0.token"},
    ])
    page = FakePage({"auth": auth, "other": "1", "localConfig_v2": json.dumps({"teams": [{"token": "x-1"}]})})
    out = extract(provider, [], page, [])
    assert out.complete, out.missing
    assert out.values == {"token": "tok-1", "xoxc": "x-1"}
    assert out.storage_expiries == [(future // 1000) * 1000]


def test_localstorage_problems_are_explained_without_values() -> None:
    now = int(time.time() * 1000)
    rule = {"from": "localStorage", "as": "t", "match": "auth", "jsonPath": "a.b"}
    assert storage_value(None, rule, now)[2] == 'localStorage has no key "auth" yet'
    value, _, reason = storage_value(json.dumps({"a": {}}), rule, now)
    assert value is None and "does not resolve" in reason
    value, _, reason = storage_value("not json", rule, now)
    assert value is None and "not JSON" in reason
    expired = {"from": "localStorage", "as": "t", "match": "auth", "jsonPath": "t", "expiresJsonPath": "e"}
    value, _, reason = storage_value(json.dumps({"t": "secret-value", "e": now - 1000}), expired, now)
    assert value is None and "expired" in reason and "secret-value" not in reason
    assert storage_value(json.dumps({"x": 1}), {"as": "t", "match": "auth"}, now)[0] == '{"x": 1}'
    assert storage_value(json.dumps({"n": 5}), {"as": "t", "match": "auth", "jsonPath": "n"}, now)[0] == "5"


def test_page_errors_count_as_not_yet() -> None:
    provider = _provider(extract=[{"from": "localStorage", "as": "t", "match": "auth"}])
    out = extract(provider, [], FakePage(fail=True), [])
    assert not out.complete and out.missing == ["localStorage not readable yet"]


def test_glob_values_are_anchored_and_literal() -> None:
    pairs = [["localConfig_v2", "a"], ["xlocalConfig_v2", "b"], ["localConfig.", "c"], ["k", None]]
    assert glob_values(pairs, "localConfig_*") == ["a"]
    assert glob_values(pairs, "local*.") == ["c"]
    assert glob_values(pairs, "*") == ["a", "b", "c"]
    assert glob_values("nope", "*") == []


def test_json_path_forms() -> None:
    data = {"a": {"b": [{"c": 1}]}}
    assert json_path(data, "a.b.0.c") == 1
    assert json_path(data, "a.b[0].c") == 1
    assert json_path(data, "a.x") is None
    assert json_path(data, "a.b.5") is None


def test_timestamps_seconds_ms_digits_iso() -> None:
    assert timestamp_ms(1_777_983_731) == 1_777_983_731_000
    assert timestamp_ms("1777983731") == 1_777_983_731_000
    assert timestamp_ms(1_777_983_731_000) == 1_777_983_731_000
    assert timestamp_ms(1e12) == int(1e15)  # exactly 1e12 counts as seconds (the original pins this)
    assert timestamp_ms("2026-01-01T00:00:00Z") == 1_767_225_600_000
    assert timestamp_ms("soon") is None
    assert timestamp_ms(True) is None
    assert timestamp_ms(None) is None


def test_expiry_algorithm() -> None:
    now = 1_800_000_000_000
    out = Extraction()
    out.cookie_expiries = [(now + 30_000) / 1000, (now + 86_400_000) / 1000, (now + 43_200_000) / 1000]
    out.storage_expiries = [now + 7_200_000, now - 5]
    assert expiry_ms(out, None, now) == now + 7_200_000  # tracker ignored, past storage ignored
    only_session = Extraction()
    only_session.cookie_expiries = [-1]
    assert expiry_ms(only_session, None, now) is None
    assert expiry_ms(only_session, 3_600_000, now) == now + 3_600_000
    assert expiry_ms(Extraction(), 3_600_000, now) is None


def test_bearer_seen_on_provider_hosts_only() -> None:
    provider = _provider(domains=["api.example.com"])
    seen = [("https://api.example.com/me", "Bearer first"), ("https://evil.net/x", "Bearer stolen"),
            ("https://api.example.com/me", "Bearer second")]
    assert header_value(seen, provider, "Authorization") == "second"
    assert header_value(seen[:2], provider, "Authorization") == "first"
    assert header_value([("https://api.example.com/", "Token abc")], provider, "Authorization") == "Token abc"
    assert header_value([("https://evil.net/", "Bearer x")], provider, "Authorization") is None
