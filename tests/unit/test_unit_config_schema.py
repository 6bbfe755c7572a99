"""config/schema.py via config/load.py: both config formats, every problem reported at once, warnings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sigcli.config.load import parse_config
from sigcli.config.schema import normalise
from sigcli.core.apply import apply_rules
from sigcli.core.errors import ErrorCode, SigError


def _config_error(text: str, path: str = "/tmp/x/config.yaml") -> SigError:
    with pytest.raises(SigError) as info:
        parse_config(text, path)
    assert info.value.code == ErrorCode.CONFIG_ERROR
    return info.value


def test_upstream_config_loads_cleanly(fixtures_dir: Path) -> None:
    path = fixtures_dir / "sig-home" / ".sig" / "config.yaml"
    config = parse_config(path.read_text(encoding="utf-8"), str(path))
    assert config.warnings == []
    assert list(config.providers) == ["local-http", "local-tls", "local-basic", "local-oauth"]
    http = config.get("local-http")
    assert http is not None
    assert http.name == "Local HTTP echo"
    assert http.domains == ["127.0.0.1"]
    assert http.entry_url == "http://127.0.0.1:18080/"
    assert http.strategy == "prompt"
    assert http.apply == [{"in": "header", "name": "Authorization", "value": "Bearer ${token}"}]
    assert http.extract == [{"from": "prompt", "as": "token", "match": "API token"}]
    basic = config.get("local-basic")
    assert basic is not None and basic.ttl_ms == 24 * 3_600_000
    oauth = config.get("local-oauth")
    assert oauth is not None
    assert oauth.strategy == "oauth2"
    assert oauth.get("oauth2") == {"tokenUrl": "http://127.0.0.1:18080/token"}
    assert config.mode == "browser"
    assert config.browser["headlessTimeout"] == 20000
    assert config.browser["visibleTimeout"] == 120000
    # Resolution by host: exact domains first, then a glob.
    assert config.resolve("http://127.0.0.1:18080/x") is http
    tls = config.resolve_host("https://127.0.1.7/")
    assert tls is not None and tls.id == "local-tls"


@pytest.mark.parametrize(
    "name", ["config.init.yaml", "config.after-remote-watch.yaml", "config.after-rename-remove.yaml"]
)
def test_other_upstream_configs_load_cleanly(fixtures_dir: Path, name: str) -> None:
    config = parse_config((fixtures_dir / name).read_text(encoding="utf-8"), name)
    assert config.warnings == []
    if name == "config.after-remote-watch.yaml":
        assert config.remotes["box"] == {
            "type": "ssh", "host": "127.0.0.1", "user": "bench", "path": "~/.sig/credentials",
        }
        assert config.watch == {"interval": "10m", "providers": {"local-oauth": {"autoSync": ["box"]}}}


SEED = """\
providers:
  x-example:
    url: https://x.example.com
    strategy: cookie
    proxy:
      inject:
        - in: header
          action: set
          name: Cookie
          from: credential.cookies
"""


def test_seed_format_normalises() -> None:
    config = parse_config(SEED, "seed.yaml")
    assert config.warnings == []
    p = config.get("x-example")
    assert p is not None
    assert p.domains == ["x.example.com"]
    assert p.entry_url == "https://x.example.com"
    assert p.strategy == "cookie"
    assert {"in": "header", "name": "Cookie", "value": "${cookie}", "action": "set"} in p.apply
    assert all(rule["name"] == "Cookie" for rule in p.apply)
    assert apply_rules(p.apply, {"cookie": "sid=abc"}).headers == {"Cookie": "sid=abc"}
    assert config.resolve("https://x.example.com/path") is p


@pytest.mark.parametrize(
    ("source", "key"),
    [
        ("credential.cookies", "cookie"),
        ("credential.accessToken", "access_token"),
        ("credential.localStorage.xoxc-token", "xoxc-token"),
    ],
)
def test_seed_inject_sources(source: str, key: str) -> None:
    text = (
        "providers:\n  s:\n    url: https://s.example.com\n    strategy: api-token\n"
        f"    proxy:\n      inject:\n        - in: body\n          action: set\n          name: token\n"
        f"          from: {source}\n"
    )
    p = parse_config(text, "seed.yaml").get("s")
    assert p is not None
    assert {"in": "body", "name": "token", "value": "${" + key + "}", "action": "set"} in p.apply


def test_seed_inject_bad_source_is_an_error() -> None:
    text = SEED.replace("credential.cookies", "cookies")
    err = _config_error(text)
    assert 'Provider "x-example"' in err.message
    assert "credential." in err.message


SEVERAL_PROBLEMS = """\
version: 2
providers:
  nodomains:
    entryUrl: https://a.example.com/
    strategy: cookie
  badstrat:
    domains: [b.example.com]
    strategy: magic
  badttl:
    domains: [c.example.com]
    strategy: cookie
    ttl: 2 hours
  bad id!:
    domains: [d.example.com]
    strategy: cookie
  fine:
    domains: [e.example.com]
    strategy: cookie
"""


def test_all_problems_reported_at_once() -> None:
    err = _config_error(SEVERAL_PROBLEMS, "/tmp/x/config.yaml")
    msg = err.message
    assert "/tmp/x/config.yaml" in msg
    lines = msg.splitlines()

    def problem(*needles: str) -> str:
        found = [line for line in lines if all(n in line for n in needles)]
        assert found, f"no problem line with {needles} in:\n{msg}"
        return found[0]

    # Each problem names the provider and the field, with the line it is on.
    assert problem('"nodomains"', "domains").endswith("(line 3)")
    assert problem('"badstrat"', "strategy", "magic").endswith("(line 8)")
    assert problem('"badttl"', "ttl", "2 hours").endswith("(line 12)")
    assert problem('"bad id!"', "id").endswith("(line 13)")
    assert '"fine"' not in msg
    count = int(re.search(r"has (\d+) problems?", msg).group(1))  # type: ignore[union-attr]
    assert count == len([line for line in lines if line.startswith("  - ")])
    assert count >= 4
    assert err.hint


def test_single_problem_wording() -> None:
    err = _config_error("providers:\n  a:\n    domains: [a.example.com]\n    strategy: nope\n")
    assert "has 1 problem:" in err.message
    assert 'invalid strategy "nope"' in err.message
    assert "(line 4)" in err.message
    # A missing or invalid strategy does not make up requirements of a guessed one (entryUrl, extract, ...).
    err = _config_error("providers:\n  a:\n    domains: [a.example.com]\n")
    assert "has 1 problem:" in err.message
    assert 'missing required field "strategy"' in err.message


def test_unknown_keys_are_warnings_not_errors() -> None:
    text = (
        "version: 2\nbogus: 1\nbrowser:\n  colour: red\nproviders:\n  a:\n    domains: [a.example.com]\n"
        "    strategy: cookie\n    flavour: vanilla\n"
    )
    config = parse_config(text, "c.yaml")
    assert "a" in config.providers
    joined = "\n".join(config.warnings)
    assert len(config.warnings) == 3
    assert '"bogus"' in joined and "(line 2)" in joined
    assert '"browser.colour"' in joined and "(line 4)" in joined
    assert 'Provider "a"' in joined and '"flavour"' in joined and "(line 9)" in joined


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: [1, 2\nb: c\n", 2),
        ("providers:\n  a:\n    domains: [x\n  b: 1\n", 4),
        ("version: 2\n\tmode: browser\n", 2),
        ("a: 'unterminated\n", 2),
    ],
)
def test_malformed_yaml(text: str, line: int) -> None:
    err = _config_error(text, "/tmp/x/config.yaml")
    assert "not valid YAML" in err.message
    assert "/tmp/x/config.yaml" in err.message
    assert f"(line {line}," in err.message


def test_url_in_domains_is_rejected() -> None:
    err = _config_error(
        "providers:\n  a:\n    domains:\n      - https://a.example.com/path\n    strategy: cookie\n"
    )
    assert 'Provider "a": domains[0]' in err.message
    assert "not a host name" in err.message
    assert '"a.example.com"' in err.message  # suggests the host
    assert "(line 4)" in err.message


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ("domains: a.example.com\n    strategy: cookie", '"domains"'),
        ("domains: []\n    strategy: cookie", '"domains"'),
        ("domains: [a.example.com]", '"strategy"'),
        ("domains: [a.example.com]\n    strategy: browser", '"entryUrl"'),
        ("domains: [a.example.com]\n    strategy: oauth2", "tokenUrl"),
        ("domains: [a.example.com]\n    strategy: cookie\n    ttl: 5", "ttl"),
        ("domains: [a.example.com]\n    strategy: cookie\n    ttl: ²h", "ttl"),
        ("domains: [a.example.com]\n    strategy: cookie\n    allowHttp: 'yes'", "allowHttp"),
        ("domains: [a.example.com]\n    strategy: cookie\n    apply: {in: header}", '"apply" must be a list'),
        ("domains: [a.example.com]\n    strategy: cookie\n    apply:\n      - {in: cookie, name: X, value: v}",
         "apply[0].in"),
        ("domains: [a.example.com]\n    strategy: cookie\n    apply:\n      - {in: header, value: v}",
         "apply[0].name"),
        ("domains: [a.example.com]\n    strategy: cookie\n    apply:\n      - {in: header, name: X, action: add, "
         "value: v}", "apply[0].action"),
        ("domains: [a.example.com]\n    strategy: cookie\n    apply:\n      - {in: header, name: X}",
         "apply[0].value"),
        ("domains: [a.example.com]\n    strategy: cookie\n    loginMode: sometimes", "loginMode"),
    ],
)
def test_provider_field_errors(entry: str, needle: str) -> None:
    err = _config_error(f"providers:\n  p1:\n    {entry}\n")
    assert 'Provider "p1"' in err.message
    assert needle in err.message


def test_apply_remove_needs_no_value() -> None:
    text = "providers:\n  a:\n    domains: [a.example.com]\n    strategy: cookie\n    apply:\n" \
           "      - {in: header, name: X, action: remove}\n"
    p = parse_config(text, "c.yaml").get("a")
    assert p is not None and p.apply == [{"in": "header", "name": "X", "action": "remove"}]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("mode: sideways\n", "mode"),
        ("browser:\n  headlessTimeout: -1\n", "headlessTimeout"),
        ("browser:\n  visibleTimeout: soon\n", "visibleTimeout"),
        ("watch:\n  interval: often\n", "watch.interval"),
        ("watch:\n  providers:\n    a: 5\n", "watch.providers.a"),
        ("remotes:\n  box:\n    type: ftp\n    host: h\n", 'Remote "box"'),
        ("remotes:\n  box:\n    type: ssh\n", '"host"'),
        ("providers: [a, b]\n", '"providers"'),
        ("- just\n- a list\n", "not a mapping"),
    ],
)
def test_top_level_errors(text: str, needle: str) -> None:
    err = _config_error(text)
    assert needle in err.message


def test_defaults_for_a_minimal_config() -> None:
    config = parse_config("version: 2\n", "c.yaml")
    assert config.providers == {}
    assert config.mode == "browser"
    assert config.browser["browserDataDir"] == "~/.sig/browser-data"
    assert config.watch == {"interval": "5m", "providers": {}}
    assert config.remotes == {}


def test_normalise_plain_dict_has_no_line_numbers() -> None:
    data, errors, warnings = normalise({"providers": {"a": {"strategy": "cookie"}}})
    assert warnings == []
    assert len(errors) == 1
    assert "domains" in errors[0] and "(line" not in errors[0]
    assert data["providers"]["a"]["strategy"] == "cookie"


def test_default_apply_per_strategy() -> None:
    text = """\
providers:
  c:
    domains: [c.example.com]
    strategy: cookie
  t:
    domains: [t.example.com]
    strategy: api-token
  k:
    domains: [k.example.com]
    strategy: api-token
    headerName: X-Api-Key
  b:
    domains: [b.example.com]
    strategy: basic
"""
    config = parse_config(text, "c.yaml")
    values = {"cookie": "sid=1", "token": "T", "basic_auth": "dTpw"}
    headers = {pid: apply_rules(p.apply, values).headers for pid, p in config.providers.items()}
    assert headers == {
        "c": {"Cookie": "sid=1"},
        "t": {"Authorization": "Bearer T"},
        "k": {"X-Api-Key": "T"},
        "b": {"Authorization": "Basic dTpw"},
    }
