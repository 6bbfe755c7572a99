"""The state files sig reads back fuzzed: the proxy's state.json and token, the shared browser window's
.cdp-state.json, the sync record exchanged.json, the config cache and `sig run`'s mount records.

None of them is ever a reason to crash: a damaged file counts as absent (or is a clear error that says how to
fix it), and above all a damaged pid never leads sig to signal a process group or every process.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fuzz_support import FORBIDDEN_STDERR, FUZZ, Bounded, expect_clear_error, mutated, nasty_values
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sigproc import Sig
from sigcli.core.errors import ErrorCode, SigError

# pids and ports as a damaged file may hold them, beside the real ones the tests fill in
odd_numbers = st.sampled_from([0, -1, 1, -os.getpid(), 2**31, 2**31 - 1, 2**63, 10**30, -(10**30), 65536, 99999,
                               True, False, 1.5, "1234", "", None, float("inf"), [], {}])


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


@st.composite
def state_bytes(draw: Any, good: dict[str, Any]) -> bytes:
    """A state file: the good one with fields changed, other JSON, or damaged bytes."""
    kind = draw(st.sampled_from(["fields", "fields", "mutated", "json", "bytes", "deep"]))
    if kind == "fields":
        state = dict(good)
        for key in draw(st.lists(st.sampled_from(sorted(good)), min_size=1, max_size=len(good), unique=True)):
            state[key] = draw(st.one_of(odd_numbers, nasty_values))
        return _json_bytes(state)
    if kind == "mutated":
        return _json_bytes(draw(mutated(good)))
    if kind == "json":
        return _json_bytes(draw(nasty_values.filter(lambda v: not (isinstance(v, str) and "@@DEEP" in v))))
    if kind == "deep":
        n = draw(st.integers(100, 50_000))
        return b"[" * n + b"]" * n
    good_raw = _json_bytes(good)
    return draw(st.one_of(st.binary(max_size=64), st.integers(0, len(good_raw)).map(lambda n: good_raw[:n]),
                          st.just(b"\xff" + good_raw), st.just(good_raw.replace(b'"', b"'"))))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / ".sig"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("SIG_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path))
    return home


@pytest.fixture
def listener() -> Iterator[int]:
    """A loopback port that answers (so a state naming it passes the daemon's "answers" test)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


def _put(path: Path, raw: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".incoming")
    tmp.write_bytes(raw)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


# -- the proxy daemon's state.json ---------------------------------------------------------------------------

@settings(FUZZ, max_examples=300)
@given(st.data())
def test_proxy_state_file(home: Path, listener: int, data: st.DataObject) -> None:
    """read_state: None for anything but a live daemon's {pid, port}; never a pid stop() must not signal."""
    from sigcli.proxy import daemon

    # pid 1 (init) and our parent are alive and the port answers: only the checks on the values refuse them.
    good = {"pid": data.draw(st.sampled_from([os.getppid(), 1, os.getpid()])), "port": listener}
    raw = data.draw(state_bytes(good))
    path = Path(daemon.state_path())
    _put(path, raw)
    with Bounded():
        state = daemon.read_state()
        daemon.clear_state()
    if state is None:
        assert not path.exists(), "a stale or damaged state file was left behind"
        return
    assert set(state) == {"pid", "port"}
    pid, port = state["pid"], state["port"]
    assert type(pid) is int and type(port) is int
    assert 1 < pid < 2**31 and pid != os.getpid(), f"stop() would signal {pid}"
    assert 0 < port < 65536


@pytest.mark.parametrize("pid", [0, -1, "minus-own-pid", 1, True])
def test_proxy_state_never_names_a_group_or_every_process(home: Path, listener: int, pid: int | str) -> None:
    """Regression: {"pid": 0 or -1, …} passed the liveness test (kill(0, 0) and kill(-1, 0) succeed), so
    `sig proxy stop` sent SIGTERM to its own process group, or to every process the user may signal."""
    from sigcli.proxy import daemon

    if pid == "minus-own-pid":  # (the value is made here: a collected parameter must be the same in every worker)
        pid = -os.getpid()
    _put(Path(daemon.state_path()), _json_bytes({"pid": pid, "port": listener}))
    # (stop() itself is not called here: were this broken, it would signal the test's own processes)
    assert daemon.read_state() is None


@pytest.mark.parametrize("state", [{"pid": 10**30, "port": 7891}, {"pid": 1e999, "port": 7891},
                                   {"pid": 1234, "port": 10**6}, {"pid": 1234, "port": -5}, [], "x", 7])
def test_proxy_state_regressions(home: Path, state: Any) -> None:
    """Regression: a huge pid raised OverflowError in os.kill, a port over 65535 in connect, `1e999`
    OverflowError in int(), a list AttributeError in clear_state."""
    from sigcli.proxy import daemon

    _put(Path(daemon.state_path()), _json_bytes(state))
    daemon.clear_state()
    assert daemon.read_state() is None


@settings(FUZZ, max_examples=100)
@given(st.data())
def test_proxy_token_file(home: Path, data: st.DataObject) -> None:
    """The proxy token: a clear STORAGE_ERROR or text that fits in the proxy URL (it did raise
    UnicodeDecodeError on a non-ASCII byte)."""
    from sigcli.proxy import daemon

    path = Path(daemon.folder()) / "token"
    raw = data.draw(st.one_of(st.binary(min_size=1, max_size=64), st.just(os.urandom(24).hex().encode() + b"\n"),
                              st.sampled_from([b"\xff\xfe", b"ab:cd@x", b"tok en", b"\n\n", "tök".encode()])))
    _put(path, raw)
    with Bounded():
        try:
            value = daemon.token()
        except SigError as err:
            expect_clear_error(err, ErrorCode.STORAGE_ERROR, str(path))
            return
    assert value is None or (value and value.isascii() and not set(value) & set(":@/ \r\n\t"))


# -- the shared browser window's state -----------------------------------------------------------------------

@settings(FUZZ, max_examples=200)
@given(st.data())
def test_browser_window_state_file(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    from sigcli.browser.launch import STATE_FILE, pid_alive, read_state

    profile = tmp_path_factory.mktemp("profile")
    good = {"pid": os.getppid(), "relayPid": os.getppid(), "socket": "/run/sig/s", "createdAt": 1}
    _put(profile / STATE_FILE, data.draw(state_bytes(good)))
    with Bounded():
        state = read_state(str(profile))
        if state is not None:
            for key in ("pid", "relayPid"):
                if key in state:
                    assert type(state[key]) is int and 1 < state[key] < 2**31
                    pid_alive(state[key])


# -- the sync record ----------------------------------------------------------------------------------------

@settings(FUZZ, max_examples=200)
@given(st.data())
def test_sync_record_file(home: Path, data: st.DataObject) -> None:
    """exchanged.json damaged: a remote is trusted with nothing (or what the record says), and the next
    record written is whole again."""
    from sigcli.sync import trust
    from sigcli.sync.remotes import Remote

    remote = Remote("box", "ci.example.com", "deploy", 2222, "~/.sig")
    good = {"version": 1, "remotes": {"box": {"target": "deploy@ci.example.com:2222:~/.sig",
                                              "providers": ["ci", "wiki"]}}}
    _put(Path(trust.record_path()), data.draw(state_bytes(good)))
    with Bounded():
        ids = trust.exchanged(remote)
        assert isinstance(ids, set) and all(isinstance(i, str) for i in ids)
        trust.remember(remote, ["api"])
        assert "api" in trust.exchanged(remote)
        trust.forget("box")
        assert trust.exchanged(remote) == set()
    json.loads(Path(trust.record_path()).read_text())


# -- the config cache ---------------------------------------------------------------------------------------

CONFIG = """\
version: 2
providers:
  api:
    domains: [api.example.com]
    strategy: api-token
"""


@settings(FUZZ, max_examples=200)
@given(st.data())
def test_config_cache_file(home: Path, data: st.DataObject) -> None:
    """cache/config.json damaged but keyed to the current config.yaml: its outline is checked (sections are
    mappings, each provider a mapping with its own id), and a cache that fails is ignored: the YAML is
    parsed again. (The values inside are sig's own, validated before they were written; they are not
    checked again on every start-up.)"""
    from sigcli.config.load import CACHE_VERSION, _cache_path, load_config, stat_key

    config_path = home / "config.yaml"
    if not config_path.exists():
        _put(config_path, CONFIG.encode())
    cache = Path(_cache_path())
    good = {"v": CACHE_VERSION, "path": str(config_path), "key": stat_key(str(config_path)),
            "config": {"version": 2, "mode": "browser", "browser": {}, "storage": {}, "remotes": {},
                       "watch": {"interval": "5m", "providers": {}},
                       "providers": {"api": {"id": "api", "domains": ["api.example.com"], "strategy": "api-token",
                                             "apply": []}}},
            "warnings": []}
    body: dict[str, Any] = json.loads(json.dumps(good))
    kind = data.draw(st.sampled_from(["config", "section", "section", "provider", "warnings", "bytes"]))
    value = data.draw(st.one_of(odd_numbers, nasty_values.filter(lambda v: not (isinstance(v, str) and "@@" in v))))
    if kind == "config":
        body["config"] = value
    elif kind == "section":
        body["config"][data.draw(st.sampled_from(sorted(good["config"])))] = value
    elif kind == "provider":
        entry = body["config"]["providers"]["api"]
        if data.draw(st.booleans()):
            body["config"]["providers"]["api"] = value
        else:
            entry[data.draw(st.sampled_from(["id", "domains"]))] = value
    elif kind == "warnings":
        body["warnings"] = value
    raw = data.draw(state_bytes(good)) if kind == "bytes" else _json_bytes(body)
    _put(cache, raw)
    with Bounded():
        config, fresh = load_config(str(config_path))
    for pid, provider in config.providers.items():
        assert provider.id == pid and isinstance(provider.domains, list)
    if fresh:
        assert config.get("api") is not None


# -- `sig run`'s mount records -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["99999999999999999999.mount", "0.mount", "-1.mount", "x.mount", ".mount"])
def test_mount_records_with_odd_pids(tmp_path: Path, name: str) -> None:
    """Regression: a record named after a pid beyond 2**31 made os.kill raise OverflowError at the
    start of every `sig run`."""
    from sigcli.inject.mount import sweep_stale

    folder = tmp_path / "run"
    folder.mkdir()
    target = tmp_path / "mounted.env"
    target.write_text("")
    (folder / name).write_text(f"{target}\n{target.stat().st_ino}")
    assert sweep_stale(str(tmp_path)) == []
    assert target.exists()


# -- through the real `sig` --------------------------------------------------------------------------------

def test_cli_with_damaged_state_files(sig_init: Sig) -> None:
    """`sig proxy status/stop/env`, `sig status` and `sig doctor` with each state file damaged: exit codes
    per SPEC, no traceback."""
    proxy = sig_init.home / "proxy"
    states = [b"", b"\xff", b"[" * 50_000 + b"]" * 50_000, b'{"pid": 0, "port": 1}', b'{"pid": -1, "port": 1}',
              b'{"pid": 1e999, "port": 7891}', b'{"pid": 99999999999999999999, "port": 7891}', b"[]", b"null"]
    for raw in states:
        _put(proxy / "state.json", raw)
        for args in (["proxy", "status", "--format", "json"], ["proxy", "stop"], ["status", "--format", "json"]):
            r = sig_init(*args, timeout=60)
            for bad in FORBIDDEN_STDERR:
                assert bad not in r.err, f"sig {args} with state {raw[:40]!r}: {r.err}"
            assert r.code in (0, 1), (args, raw[:40], r.code, r.err)
    _put(proxy / "token", b"\xff\xfe not a token")
    r = sig_init("proxy", "env", "--format", "json", timeout=60)
    assert "Traceback" not in r.err and "unexpected internal error" not in r.err
    _put(sig_init.home / "sync" / "exchanged.json", b"[" * 50_000)
    _put(sig_init.home / "cache" / "config.json", b'{"v": 5, "config": []}')
    r = sig_init("status", "--format", "json", check=0)
    assert "Traceback" not in r.err
