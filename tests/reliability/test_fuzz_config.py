"""config.yaml fuzzed: both formats (v2 and seed 000), as block YAML, flow YAML and JSON, valid and damaged.

Every input gives a clear CONFIG_ERROR (naming the file, with the line where it applies, and a hint) or a
config that works: it survives the JSON cache, and every later use of it (resolving, apply rules, the
injection policy, env variables, expiry arithmetic, remotes, paths) runs without an exception.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import pytest
from fuzz_support import (
    FORBIDDEN_STDERR,
    FUZZ,
    Bounded,
    config_text,
    damaged_text,
    expect_clear_error,
    mutated,
    nasty_values,
    paths_in,
    valid_configs,
    with_deep_nesting,
    yaml_text,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sigproc import Sig
from sigcli.config.load import Config, load_config, parse_config
from sigcli.core.duration import parse_duration_ms
from sigcli.core.errors import ErrorCode, SigError, exit_code_for
from sigcli.core.hosts import valid_provider_id
from sigcli.core.jsonio import dumps_compact, loads
from sigcli.core.model import Credential
from sigcli.core.secret import Secret
from sigcli.core.strategies import NAMES as STRATEGIES
from sigcli.core.timeutil import iso_from_ms, now_ms

PATH = "/home/user/.sig/config.yaml"
HEADER_NAME_CHARS = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
LINE = re.compile(r"\(line (\d+)\)$")


def exercise(config: Config) -> None:
    """Use an accepted config the way commands do; any exception here is a defect."""
    from sigcli.core.apply import apply_rules
    from sigcli.core.policy import may_inject
    from sigcli.inject.env import app_env, provider_env
    from sigcli.sync.remotes import Remote

    # The cache keeps the normalised model as JSON and must give the same config back.
    again = Config(loads(dumps_compact(config.data)), config.path, config.warnings)
    assert list(again.providers) == list(config.providers)
    assert config.mode in ("browser", "browserless")
    for key in ("headlessTimeout", "visibleTimeout"):
        value = config.browser[key]
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0
    for folder in (config.credentials_dir, str(config.browser.get("browserDataDir") or "")):
        try:
            os.lstat(os.path.join(folder, "x"))
        except OSError:
            pass  # missing is fine; a path the OS cannot even take (NUL) is not
    assert parse_duration_ms(config.watch.get("interval", "5m")) is not None
    for name, entry in config.remotes.items():
        remote = Remote.from_config(name, entry)
        for part in (remote.host, remote.user, remote.path, remote.ssh_key):
            assert part is None or (isinstance(part, str) and "\x00" not in part)
        assert remote.port is None or 0 < remote.port < 65536
    credential = Credential("x", "api-token", {"token": Secret("t0k3n-value"), "cookie": Secret("a=1; b=2")})
    for pid, provider in config.providers.items():
        assert valid_provider_id(pid) and provider.id == pid
        assert config.resolve(pid) is provider
        assert provider.strategy in STRATEGIES
        assert isinstance(provider.name, str)
        ttl = provider.ttl_ms
        if ttl is not None:
            iso_from_ms(now_ms() + ttl)  # `sig status` prints updatedAt + ttl
        for domain in provider.domains:
            may_inject(provider, "https", domain, 443)
            config.resolve(domain)
        headers = apply_rules(provider.apply, credential.revealed()).headers
        for name, value in headers.items():  # what `get --format header`, `request` and the proxy send
            assert name and set(name) <= HEADER_NAME_CHARS, f"header name {name!r}"
            assert not set(value) & set("\r\n\x00"), f"header value of {name}"
        for rule in provider.apply:
            assert rule.get("in") in ("header", "query", "body")
            assert rule.get("action") == "remove" or isinstance(rule.get("value"), str)
        provider_env(provider, credential, expand_cookies=True)
        app_env(provider, credential)


def check(text: str, path: str = PATH) -> Config | None:
    """One input: a clear error or a config that works, within the time bound."""
    with Bounded():
        try:
            config = parse_config(text, path)
        except SigError as err:
            expect_clear_error(err, ErrorCode.CONFIG_ERROR, path)
            return None
        exercise(config)
    return config


# -- valid documents load, with what they say ---------------------------------------------------------------

@settings(FUZZ, max_examples=100)
@given(st.data())
def test_valid_configs_load_as_written(data: st.DataObject) -> None:
    doc = data.draw(valid_configs())
    text = data.draw(config_text(doc))
    config = check(text)
    assert config is not None, "a valid config was refused"
    assert config.warnings == []
    assert list(config.providers) == list(doc["providers"])
    for pid, entry in doc["providers"].items():
        provider = config.providers[pid]
        assert provider.strategy == entry["strategy"]
        if "domains" in entry:
            assert provider.domains == entry["domains"]
        if "ttl" in entry:
            assert provider.ttl_ms == parse_duration_ms(entry["ttl"])
        if "apply" in entry:
            assert provider.apply[: len(entry["apply"])] == entry["apply"]


# -- structural mutations: wrong types, nulls, huge numbers, deep nesting, odd text, unknown keys -----------

@settings(FUZZ, max_examples=250)
@given(st.data())
def test_mutated_configs_give_a_clear_error_or_work(data: st.DataObject) -> None:
    doc = data.draw(valid_configs())
    text = data.draw(config_text(data.draw(mutated(doc))))
    check(text)


@settings(FUZZ, max_examples=200)
@given(st.data())
def test_damaged_config_text_gives_a_clear_error_or_works(data: st.DataObject) -> None:
    doc = data.draw(valid_configs())
    text = data.draw(damaged_text(data.draw(config_text(doc))))
    check(text)


RICH = {
    "version": 2, "mode": "browser",
    "browser": {"browserDataDir": "~/.sig/browser-data", "execPath": "", "headlessTimeout": 20000,
                "visibleTimeout": 120000, "channel": "chromium", "adapter": "cdp", "cdpUrl": "http://127.0.0.1:9222",
                "cdpAllowRemote": False, "waitUntil": "load"},
    "storage": {"credentialsDir": "~/.sig/credentials"},
    "remotes": {"box": {"type": "ssh", "host": "ci.example.com", "user": "deploy", "port": 2222, "path": "~/.sig",
                        "sshKey": "~/.ssh/id_ed25519"}},
    "watch": {"interval": "10m", "providers": {"wiki": {"autoSync": ["box"]}, "api": None}},
    "providers": {
        "wiki": {"name": "Wiki", "domains": ["wiki.example.com", "*.wiki.example.com"],
                 "entryUrl": "https://wiki.example.com/", "validateUrl": "https://wiki.example.com/api/me",
                 "validateRule": "res.status === 200", "strategy": "browser", "ttl": "8h",
                 "loginMode": "auto", "loginUrlPatterns": ["/login"], "networkProxy": "http://127.0.0.1:3128",
                 "extract": [{"from": "cookies", "as": "session", "match": "*"},
                             {"from": "localStorage", "as": "tok", "match": "token", "jsonPath": "$.a"}],
                 "apply": [{"in": "header", "name": "Cookie", "value": "${session}"},
                           {"in": "query", "name": "t", "value": "${tok}", "action": "append"}],
                 "env": {"WIKI_COOKIE": "{session}"}, "ports": [8443], "allowHttp": False, "caFile": "/tmp/ca.pem",
                 "proxyOnError": "block", "setupInstructions": "ask IT"},
        "api": {"domains": ["api.example.com"], "strategy": "oauth2", "userinfoUrl": "https://api.example.com/me",
                "oauth2": {"tokenUrl": "https://api.example.com/token", "clientId": "c", "scopes": ["read"],
                           "grant": "client_credentials", "skew": "60s"}},
        "jira": {"url": "https://jira.example.com", "strategy": "cookie", "requiredCookies": ["SESSION"],
                 "cookiePaths": ["/wiki"], "forceVisible": True, "waitUntil": "networkidle", "ttl": "1h",
                 "proxy": {"inject": [{"in": "body", "action": "set", "name": "token",
                                       "from": "credential.localStorage.xoxc-token"}]}},
        "tok": {"domains": ["tok.example.com"], "strategy": "api-token", "headerName": "X-Api-Key",
                "headerPrefix": "", "tokenUrl": "https://tok.example.com/t"},
    },
}
WRONG = [None, 0, -1, 10**30, 1.5, float("inf"), True, "", "x" * 20_000, [], {}, [[["x"]]], {"k": {"k": 1}},
         "@@DEEP2000@@", "\x00", "9" * 400 + "d", "https://", "*.*", "${"]


def test_wrong_type_at_every_field() -> None:
    """Each field of a config that uses every key, replaced by odd values (two per field, rotating through
    WRONG so that every value meets fields of every kind), in each text form in turn."""
    count = 0
    for i, path in enumerate(paths_in(RICH)):
        for value in (WRONG[(2 * i + k) % len(WRONG)] for k in range(2)):
            doc = copy.deepcopy(RICH)
            node: Any = doc
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = value
            form = count % 3
            text = yaml_text(doc) if form == 0 else yaml_text(doc, flow=True) if form == 1 else json.dumps(doc)
            check(with_deep_nesting(text))
            count += 1
    assert count >= 200


# -- where the error is, and the regressions this suite found ---------------------------------------------

@settings(FUZZ, max_examples=100)
@given(st.data())
def test_problems_in_block_yaml_name_their_line(data: st.DataObject) -> None:
    """A wrong value in a block-style file: each problem listed says on which line it is."""
    doc = data.draw(valid_configs().filter(lambda d: d["providers"]))
    pid = data.draw(st.sampled_from(sorted(doc["providers"])))
    entry = doc["providers"][pid]
    key = data.draw(st.sampled_from(sorted(entry)))
    entry[key] = data.draw(nasty_values.filter(lambda v: not (isinstance(v, str) and "@@DEEP" in v)))
    text = yaml_text(doc)
    lines = text.count("\n") + 1
    try:
        config = parse_config(text, PATH)
    except SigError as err:
        # One problem per line (a line break inside a quoted value must not make a line of its own)
        for item in err.message.split("\n")[1:]:
            found = LINE.search(item)
            assert found, f"no line number in: {item}"
            assert 1 <= int(found[1]) <= lines
    else:
        for warning in config.warnings:
            assert "\n" not in warning and LINE.search(warning), warning


@pytest.mark.parametrize("text, words", [
    # ruamel recursed once per nesting level: a few thousand brackets blew Python's stack (RecursionError).
    ("providers: " + "[" * 5000 + "]" * 5000 + "\n", "nested"),
    ("providers:\n  p: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n", "nested"),
    # A 5000-digit integer: ruamel's int() refused it with a bare ValueError.
    ("browser:\n  headlessTimeout: " + "9" * 5000 + "\n", "line 2"),
    # A 400-digit duration: float("9"*400) is inf, int(inf) raised OverflowError.
    ("providers:\n  p:\n    domains: [a.example.com]\n    strategy: api-token\n    ttl: '" + "9" * 400 + "d'\n",
     "ttl"),
    # A ttl so long that updatedAt + ttl is past year 9999 (`sig status` could not print the date).
    ("providers:\n  p:\n    domains: [a.example.com]\n    strategy: api-token\n    ttl: 99999999999d\n", "ttl"),
    # .inf / .nan timeouts were accepted, then the JSON cache could not be written (ValueError).
    ("browser:\n  headlessTimeout: .inf\n", "headlessTimeout"),
    ("browser:\n  visibleTimeout: .nan\n", "visibleTimeout"),
    # A NUL in a path: every later os call on it raised ValueError.
    ('storage:\n  credentialsDir: "/tmp/a\\0b"\n', "credentialsDir"),
    ('browser:\n  browserDataDir: "/tmp/a\\0b"\n', "browserDataDir"),
    ('providers:\n  p:\n    domains: [a.example.com]\n    strategy: api-token\n    caFile: "/x\\0"\n', "caFile"),
    # A null or boolean key became the provider "None" / "True".
    ("providers:\n  ~:\n    domains: [a.example.com]\n    strategy: api-token\n", "id"),
    ("providers:\n  true:\n    domains: [a.example.com]\n    strategy: api-token\n", "id"),
    # A key that is a list holding a mapping: ruamel could not hash it (TypeError).
    ("[{a: 1}]: 3\n", "used as a key"),
    # Explicit tags that do not fit their value: ruamel's constructors raised IndexError / AttributeError.
    ("providers:\n  p:\n    name: !!int ''\n", "!!int"),
    ("!!omap x\n", "!!omap"),
    # A header name with a line break, a header value template with one: `get --format header` printed a
    # forged header line, and a request would carry it.
    ("providers:\n  p:\n    domains: [a.example.com]\n    strategy: api-token\n    apply:\n"
     '      - {in: header, name: "X-A\\r\\nX-Evil", value: "${token}"}\n', "header name"),
    ("providers:\n  p:\n    domains: [a.example.com]\n    strategy: api-token\n    apply:\n"
     '      - {in: header, name: X-A, value: "${token}\\r\\nX-Evil: 1"}\n', "line break"),
    ("providers:\n  p:\n    domains: [a.example.com]\n    strategy: api-token\n    headerName: 'X Api'\n",
     "headerName"),
    # Remote fields of the wrong type reached ssh's argv (TypeError in subprocess).
    ("remotes:\n  r:\n    host: h.example.com\n    user: 5\n", "user"),
    ("remotes:\n  r:\n    host: h.example.com\n    port: 99999\n", "port"),
])
def test_regressions_refused_with_a_clear_error(text: str, words: str) -> None:
    with Bounded(), pytest.raises(SigError) as info:
        parse_config(text, PATH)
    expect_clear_error(info.value, ErrorCode.CONFIG_ERROR, PATH)
    assert words in info.value.message, info.value.message


def test_json_escaped_characters_beyond_the_bmp() -> None:
    """json.dumps writes "😀" as the pair \\ud83d\\ude00, which YAML decoded as two lone surrogates: the
    cache write (UTF-8) then failed with UnicodeEncodeError. The pair is one character; half a pair is refused."""
    doc = {"providers": {"p": {"name": "wiki 😀", "domains": ["a.example.com"], "strategy": "api-token"}}}
    config = check(json.dumps(doc))
    assert config is not None and config.providers["p"].name == "wiki 😀"
    with pytest.raises(SigError) as info:
        parse_config(json.dumps(doc).replace("\\ude00", ""), PATH)
    expect_clear_error(info.value, ErrorCode.CONFIG_ERROR, PATH)
    assert "line 1" in info.value.message


def test_non_finite_numbers_under_unchecked_keys_keep_the_model_json() -> None:
    """Regression: `.inf` under a key copied as it is (a remote's extra field, an apply rule's) made the
    model non-JSON: the config cache write raised ValueError."""
    config = check("remotes:\n  r:\n    host: h.example.com\n    note: .inf\nproviders:\n  p:\n"
                   "    domains: [a.example.com]\n    strategy: api-token\n    apply:\n"
                   "      - {in: header, name: X-A, value: '${token}', weight: .nan}\n")
    assert config is not None
    assert config.remotes["r"]["note"] == "inf" and config.providers["p"].apply[0]["weight"] == "nan"


def test_a_deep_config_at_the_limit_still_loads() -> None:
    """The nesting limit leaves room for any real config (and a few levels of lists in lists)."""
    config = check("providers:\n  p:\n    domains: [a.example.com]\n    strategy: api-token\n"
                   "    unknownThing: " + "[" * 30 + "]" * 30 + "\n")
    assert config is not None and list(config.providers) == ["p"]


# -- the file on disk: bytes, encodings, the cache ---------------------------------------------------------

@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / ".sig"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("SIG_HOME", str(home))
    return home


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)  # a new inode each time: the cache key always changes


@settings(FUZZ, max_examples=60)
@given(st.data())
def test_config_file_bytes(home: Path, data: st.DataObject) -> None:
    """config.yaml as bytes: other encodings, stray non-UTF-8 bytes, BOMs; loaded twice (then from cache)."""
    path = home / "config.yaml"
    text = data.draw(config_text(data.draw(valid_configs())))
    encoding = data.draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "utf-8+junk"]))
    if encoding == "utf-8+junk":
        raw = text.encode()
        at = data.draw(st.integers(0, len(raw)))
        raw = raw[:at] + data.draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    else:
        raw = text.encode(encoding, errors="replace")
    _replace(path, raw)
    with Bounded():
        try:
            first, fresh = load_config(str(path))
        except SigError as err:
            expect_clear_error(err, ErrorCode.CONFIG_ERROR, str(path))
            return
        exercise(first)
        second, fresh_again = load_config(str(path))
    assert fresh and not fresh_again
    assert second.data == first.data


@pytest.mark.parametrize("junk", [b"", b"\n", b"\xff\xfe\x00", b"\x00" * 64, b"providers: {}\n\xc3", b"\xef\xbb\xbf"])
def test_config_file_junk(home: Path, junk: bytes) -> None:
    path = home / "config.yaml"
    _replace(path, junk)
    try:
        config, _ = load_config(str(path))
    except SigError as err:
        expect_clear_error(err, ErrorCode.CONFIG_ERROR, str(path))
    else:
        exercise(config)


# -- through the real `sig` --------------------------------------------------------------------------------

TOKEN = "tok-FUZZCFG-8c1d2e"
API = {"domains": ["api.fuzz.test"], "strategy": "api-token"}


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Sig:
    home = tmp_path_factory.mktemp("fuzzcfg") / "home"
    sig = Sig(home=home / ".sig", user_home=home)
    sig("init", "--yes", check=0)
    sig("login", "https://api.fuzz.test", "--token-stdin", "--as", "api", input=TOKEN, check=0)
    return sig


def assert_cli_outcome(sig: Sig, args: list[str], ok_codes: tuple[int, ...]) -> dict[str, Any] | None:
    """The CLI mapped the outcome to SPEC's exit codes: 0, or a JSON error whose code gives the exit."""
    r = sig(*args, timeout=60)
    for bad in FORBIDDEN_STDERR:
        assert bad not in r.err, f"sig {args}: {r.err}"
    assert TOKEN not in r.err
    if r.code in ok_codes:
        return None
    last = r.err.strip().splitlines()[-1] if r.err.strip() else ""
    error = json.loads(last)["error"]
    assert r.code == exit_code_for(error["code"]), f"exit {r.code} for {error}"
    assert error["message"] and error["hint"]
    return error


@settings(FUZZ, max_examples=40)
@given(st.data())
def test_cli_maps_config_errors_to_spec_exit_codes(cli: Sig, data: st.DataObject) -> None:
    doc = data.draw(valid_configs())
    doc["providers"] = {"api": copy.deepcopy(API), **doc["providers"]}
    if data.draw(st.booleans()):
        doc = data.draw(mutated(doc))
    text = data.draw(config_text(doc))
    if data.draw(st.booleans()):
        text = data.draw(damaged_text(text))
    (cli.home / "config.yaml").write_text(text, encoding="utf-8")
    error = assert_cli_outcome(cli, ["status", "--format", "json"], (0,))
    if error is not None:
        assert error["code"] == ErrorCode.CONFIG_ERROR and str(cli.home / "config.yaml") in error["message"]
    error = assert_cli_outcome(cli, ["get", "api", "--format", "json"], (0,))
    if error is not None:
        assert error["code"] in (ErrorCode.CONFIG_ERROR, ErrorCode.PROVIDER_NOT_FOUND,
                                 ErrorCode.CREDENTIAL_NOT_FOUND, ErrorCode.CREDENTIAL_EXPIRED), error


@pytest.mark.parametrize("text", [
    "providers: " + "[" * 5000 + "]" * 5000 + "\n",  # RecursionError
    "browser:\n  headlessTimeout: " + "9" * 5000 + "\n",  # ValueError (int digits)
    "providers:\n  p:\n    domains: [a.example.com]\n    strategy: api-token\n    ttl: 99999999999d\n",  # gmtime
    "browser:\n  headlessTimeout: .inf\n",  # the JSON cache could not hold it
    'storage:\n  credentialsDir: "/tmp/a\\0b"\n',  # ValueError: embedded null byte
    json.dumps({"providers": {"p": {"name": "\U0001f600", "domains": ["a.example.com"], "strategy": "api-token"}}})
    .replace("\\ude00", ""),  # a lone surrogate: the cache write raised UnicodeEncodeError
])
def test_cli_regressions(cli: Sig, text: str) -> None:
    """Configs that made `sig status` end in "unexpected internal error" before: now exit 1, CONFIG_ERROR."""
    (cli.home / "config.yaml").write_text(text, encoding="utf-8")
    error = assert_cli_outcome(cli, ["status", "--format", "json"], ())
    assert error is not None and error["code"] == ErrorCode.CONFIG_ERROR
