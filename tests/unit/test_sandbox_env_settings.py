"""The sandboxed program's environment, the settings merge, the profile and the placeholders (pure parts)."""

from __future__ import annotations

import pytest

from sigcli.config.schema import normalise
from sigcli.core.errors import SigError
from sigcli.core.model import Credential, Provider
from sigcli.core.secret import Secret
from sigcli.sandbox.env import BUNDLE, CA, PROXY_PORT, sandbox_env
from sigcli.sandbox.placeholders import PREFIX, child_variables
from sigcli.sandbox.settings import merge, profile, tcp_target

USER_TOKEN = "0123456789abcdef0123456789abcdef0123456789abcdef"


def test_environment_scrubbed() -> None:
    environ = {
        "PATH": "/usr/bin", "HOME": "/home/u", "LANG": "C.UTF-8",
        "SIG_HOME": "/home/u/.sig", "SIG_GITHUB_TOKEN": "ghp_real", "sig_lower": "x",
        "SSH_AUTH_SOCK": "/run/user/1000/ssh", "SSH_AGENT_PID": "5", "GPG_AGENT_INFO": "x",
        "DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/1000/bus", "XDG_RUNTIME_DIR": "/run/user/1000",
        "DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0", "XAUTHORITY": "/home/u/.Xauthority",
        "https_proxy": f"http://sig:{USER_TOKEN}@127.0.0.1:7891", "NO_PROXY": "corp.internal",
        "GIT_CONFIG_PARAMETERS": f"'http.proxy=http://sig:{USER_TOKEN}@127.0.0.1:7891'",
        "TMPDIR": "/home/u/tmp",
    }
    env, left_out = sandbox_env(environ, no_proxy="localhost,::1", user_token=USER_TOKEN,
                                placeholders={"SIG_GITHUB_TOKEN": PREFIX + "0" * 32})
    assert left_out == ["GIT_CONFIG_PARAMETERS"]  # (the proxy variables are replaced anyway)
    assert env["PATH"] == "/usr/bin" and env["HOME"] == "/home/u" and env["LANG"] == "C.UTF-8"
    for gone in ("SIG_HOME", "sig_lower", "SSH_AUTH_SOCK", "SSH_AGENT_PID", "GPG_AGENT_INFO",
                 "DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR", "DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY",
                 "GIT_CONFIG_PARAMETERS"):
        assert gone not in env, gone
    assert not any(USER_TOKEN in v for v in env.values())
    proxy = f"http://127.0.0.1:{PROXY_PORT}"
    assert env["HTTPS_PROXY"] == env["https_proxy"] == env["HTTP_PROXY"] == env["http_proxy"] == proxy
    assert env["NO_PROXY"] == env["no_proxy"] == "localhost,::1"  # the user's entries lead nowhere inside
    assert env["SSL_CERT_FILE"] == env["REQUESTS_CA_BUNDLE"] == env["CURL_CA_BUNDLE"] == BUNDLE
    assert env["GIT_SSL_CAINFO"] == BUNDLE and env["NODE_EXTRA_CA_CERTS"] == CA
    assert env["SIG_SANDBOX"] == "1"
    assert env["SIG_GITHUB_TOKEN"].startswith(PREFIX)  # the placeholder, never the real value
    assert env["TMPDIR"] == "/tmp"
    kept, _ = sandbox_env({"TMPDIR": "/p/tmp"}, no_proxy="", user_token=None, tmpdir_ok=True)
    assert kept["TMPDIR"] == "/p/tmp"
    assert "TMPDIR" not in sandbox_env({}, no_proxy="", user_token=None)[0]


def test_variables_holding_a_stored_value_stay_outside() -> None:
    """A sandbox started inside a plain `sig run`: the outer run's app-named variables hold real values."""
    from sigcli.core.secret_forms import secret_forms

    forms = secret_forms({"token": "tok-outer/run+value"})
    environ = {"DATABASE_URL": "postgres://app:tok-outer%2Frun%2Bvalue@db/x", "API_KEY": "tok-outer/run+value",
               "EDITOR": "vi"}
    env, left_out = sandbox_env(environ, no_proxy="", user_token=None, secrets=forms)
    assert sorted(left_out) == ["API_KEY", "DATABASE_URL"]
    assert env["EDITOR"] == "vi" and "DATABASE_URL" not in env and "API_KEY" not in env


def test_settings_merge_and_profile() -> None:
    section = {"hide": ["~/a"], "allowWrite": ["~/.cache"], "allowHosts": ["PyPI.org.", "*.pythonhosted.org"],
               "allowTcp": ["db.internal:5432"], "show": ["~/.npmrc"]}
    s = merge(section, hide=["./b"], allow_write=["/w"], allow_hosts=["pypi.org"], allow_tcp=["[::1]:6379"],
              deny_other_hosts=False)
    assert s.hide == ["~/a", "./b"] and s.allow_write == ["~/.cache", "/w"] and s.show == ["~/.npmrc"]
    assert s.allow_hosts == ["pypi.org", "*.pythonhosted.org"]
    assert s.other_hosts == "mitm"  # allowed hosts do not turn the refusal on: --deny-other-hosts does
    assert s.allow_tcp == [("db.internal", 5432), ("::1", 6379)]
    prof = profile("run-1", s, ["github"], {PREFIX + "a" * 32: ("github", "token")})
    assert prof == {"name": "run-1", "kind": "sandbox", "providers": ["github"], "otherHosts": "mitm",
                    "allowHosts": ["pypi.org", "*.pythonhosted.org"], "tcp": ["db.internal:5432", "[::1]:6379"],
                    "placeholders": {PREFIX + "a" * 32: ["github", "token"]}}
    plain = merge(None, hide=[], allow_write=[], allow_hosts=[], allow_tcp=[], deny_other_hosts=False)
    assert plain.other_hosts == "mitm"
    assert merge({"denyOtherHosts": True}, hide=[], allow_write=[], allow_hosts=[], allow_tcp=[],
                 deny_other_hosts=False).other_hosts == "refuse"
    assert profile("r", plain, None, {})["providers"] is None  # no provider named: every one is injected


@pytest.mark.parametrize("bad", ["db", "db:", ":5432", "db:0", "db:70000", "db:x"])
def test_tcp_targets(bad: str) -> None:
    with pytest.raises(SigError):
        tcp_target(bad)
    assert tcp_target("DB.Internal.:5432") == ("db.internal", 5432)


def test_config_section_validated() -> None:
    doc = {"version": 2, "providers": {}, "sandbox": {
        "hide": ["~/x"], "allowWrite": "~/not-a-list", "allowHosts": ["https://pypi.org/"], "denyOtherHosts": "yes",
        "allowTcp": ["db"], "colour": 1}}
    _cfg, errors, warnings = normalise(doc)
    joined = "\n".join(errors)
    assert "sandbox.allowWrite must be a list of strings" in joined
    assert "sandbox.allowHosts[0]" in joined
    assert "sandbox.denyOtherHosts must be true or false" in joined
    assert 'sandbox.allowTcp[0] "db" is not HOST:PORT' in joined
    assert any('"sandbox.colour"' in w for w in warnings)
    good, errors, _w = normalise({"version": 2, "sandbox": {"hide": ["~/x"], "denyOtherHosts": True,
                                                             "allowHosts": ["*.pythonhosted.org"]}})
    assert not errors
    assert good["sandbox"] == {"hide": ["~/x"], "allowHosts": ["*.pythonhosted.org"], "denyOtherHosts": True}
    assert "sandbox" not in normalise({"version": 2})[0]


def test_placeholders_stand_for_every_secret_value() -> None:
    provider = Provider({"id": "db", "domains": ["db.example"], "strategy": "api-token",
                         "apply": [{"in": "header", "name": "Authorization", "value": "Bearer ${token}"}],
                         "env": {"DATABASE_URL": "postgres://{username}:{password}@db.example/app"}})
    credential = Credential("db", "api-token", {"token": Secret("tok-REAL-1234567890"),
                                                "password": Secret("pw-REAL-0987654321"),
                                                "username": Secret("alice")})
    env, table = child_variables([(provider, credential)], [("OPENAI_API_KEY", provider, "token")])
    text = "\n".join(f"{k}={v}" for k, v in env.items())
    assert "REAL" not in text
    by_key = {key: ph for ph, (_pid, key) in table.items()}
    assert set(by_key) == {"token", "password"}  # username is an identifier, not a secret
    assert all(table[ph][0] == "db" for ph in table)
    assert env["SIG_DB_TOKEN"] == by_key["token"] and env["OPENAI_API_KEY"] == by_key["token"]
    assert env["SIG_DB_AUTH_HEADER"] == f"Bearer {by_key['token']}"
    assert env["DATABASE_URL"] == f"postgres://alice:{by_key['password']}@db.example/app"
    assert env["SIG_DB_USERNAME"] == "alice"
    assert all(ph.startswith(PREFIX) and len(ph) == len(PREFIX) + 32 for ph in table)
    _again, table2 = child_variables([(provider, credential)], [])
    assert not set(table2) & set(table)  # new ones every run
