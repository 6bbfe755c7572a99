"""Non-browser logins end to end: api-token, cookie, basic, prompt; get/status/providers/logout."""

from __future__ import annotations

import os
import stat

import pytest

from harness.sigproc import Sig

TOKEN = "tok-SECRET-7f3a9c"
COOKIE = "SESSION=sess-SECRET-81b2; csrf=csrf-SECRET-55"
PASSWORD = "pw-SECRET-c0ffee"


def test_quick_start_flow(sig_init: Sig) -> None:
    r = sig_init("login", "https://api.example.com", "--token-stdin", "--as", "my-api", input=TOKEN, check=0)
    assert r.json() == {"provider": "my-api", "strategy": "api-token"}
    sig_init("login", "https://jira.example.com", "--cookie-stdin", input=COOKIE, check=0)
    sig_init("login", "https://git.example.com", "--username", "alice", "--password-stdin", input=PASSWORD,
             check=0)
    status = sig_init("status", "--format", "json", check=0).json()
    assert [s["id"] for s in status] == ["my-api", "jira-example", "git-example"]
    assert all(s["valid"] for s in status)
    providers = sig_init("providers", check=0).json()
    assert [(p["id"], p["strategy"]) for p in providers] == [
        ("my-api", "api-token"), ("jira-example", "cookie"), ("git-example", "basic")]
    assert sig_init("get", "my-api", check=0).json() == {"provider": "my-api",
                                                         "headers": {"Authorization": "Bearer ****"}}
    r = sig_init("get", "my-api", "--format", "header", "--no-redaction", check=0)
    assert r.out.strip() == f"Authorization: Bearer {TOKEN}"
    assert "raw credential values" in r.err
    cookie = sig_init("get", "jira-example", "--format", "value", check=0).out.strip()
    assert cookie == "****"  # the whole cookie string is a secret, names included
    basic = sig_init("get", "https://git.example.com/some/path", "--format", "value", check=0).out.strip()
    assert basic == "Basic ****"
    import base64

    raw = sig_init("get", "git-example", "--format", "value", "--no-redaction", check=0).out.strip()
    assert raw == "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    # rename, logout, remove
    sig_init("rename", "my-api", "api2", check=0)
    assert sig_init("get", "api2", "--format", "value", "--no-redaction", check=0).out.strip() == f"Bearer {TOKEN}"
    sig_init("get", "my-api", check=2)
    sig_init("logout", "api2", check=0)
    sig_init("get", "api2", check=3)
    sig_init("status", "api2", check=3)
    sig_init("remove", "api2", "--force", check=0)
    sig_init("status", "api2", check=2)
    assert "api2" not in (sig_init.home / "config.yaml").read_text()
    # nothing secret on stderr, in the audit log or in the config
    sig_init.assert_no_secret(TOKEN, PASSWORD, "sess-SECRET-81b2", "csrf-SECRET-55")
    for name in ("audit.log", "config.yaml"):
        text = (sig_init.home / name).read_text()
        for secret in (TOKEN, PASSWORD, "sess-SECRET-81b2", "csrf-SECRET-55", base64.b64encode(
                f"alice:{PASSWORD}".encode()).decode()):
            assert secret not in text, name
    for path in (sig_init.home / "credentials").iterdir():
        if path.suffix == ".json":
            assert TOKEN.encode() not in path.read_bytes()
            assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_token_from_env_and_custom_header(sig_init: Sig) -> None:
    sig_init("login", "https://api.example.com", "--token-env", "MY_TOKEN", "--header-name", "X-API-Key",
             "--header-prefix", "", env={"MY_TOKEN": TOKEN}, check=0)
    out = sig_init("get", "api-example", "--format", "header", "--no-redaction", check=0).out.strip()
    assert out == f"X-API-Key: {TOKEN}"
    sig_init("login", "https://b.example.com", "--token-env", "UNSET_VAR_X", check=1)


def test_token_in_argv_warns(sig_init: Sig) -> None:
    r = sig_init("login", "https://api.example.com", "--token", TOKEN, check=0)
    assert "prefer --token-stdin" in r.err


def test_login_conflicting_kinds(sig_init: Sig) -> None:
    r = sig_init("login", "https://x.example.com", "--token", "abcdabcd", "--cookie", "a=b", check=1)
    assert "cannot be combined" in r.err
    assert not (sig_init.home / "credentials" / "x-example.json").exists()
    assert "x-example" not in (sig_init.home / "config.yaml").read_text()


def test_failed_login_keeps_old_credential(sig_init: Sig) -> None:
    sig_init("login", "https://api.example.com", "--token-stdin", "--as", "api", input=TOKEN, check=0)
    r = sig_init("login", "api", "--cookie", "not a cookie", check=1)
    assert "name=value" in r.err
    assert sig_init("get", "api", "--format", "value", "--no-redaction", check=0).out.strip() == f"Bearer {TOKEN}"


def test_login_without_secret_non_interactive(sig_init: Sig) -> None:
    r = sig_init("login", "https://api.example.com", "--strategy", "api-token", check=1)
    assert "--token-stdin" in r.err


def test_browser_login_to_an_unreachable_site_says_so(sig_init: Sig) -> None:
    import shutil
    import socket

    if not (shutil.which("chromium") or shutil.which("google-chrome")):
        pytest.skip("no Chromium/Chrome installed")
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = sig_init("login", f"http://127.0.0.1:{port}/", "--mode", "headless", check=1, timeout=60)
    assert "could not open" in r.err and "ERR_CONNECTION_REFUSED" in r.err
    assert "127-0" not in (sig_init.home / "config.yaml").read_text()


def test_browserless_machine_offers_alternatives(sig: Sig) -> None:
    sig("init", "--remote", check=0)
    r = sig("login", "https://sso.example.com", check=1)
    assert "sig sync pull" in r.err


def test_prompt_strategy_reads_answers(sig_init: Sig) -> None:
    sig_init.add_providers("""\
  echo:
    domains: [127.0.0.1]
    entryUrl: http://127.0.0.1:1/
    strategy: prompt
    extract:
      - {from: prompt, as: username, match: Username}
      - {from: prompt, as: password, match: Password}
    apply:
      - {in: header, name: X-User, value: "${username}"}
      - {in: header, name: X-Password, value: "${password}"}
""")
    r = sig_init("login", "echo", input=f"bob\n{PASSWORD}\n", check=0)
    assert "Username" in r.err and "Password" in r.err
    assert sig_init("get", "echo", check=0).json()["headers"] == {"X-User": "bob", "X-Password": "****"}
    r = sig_init("login", "echo", "--force", input="", check=1)
    assert "needs a value" in r.err
    assert sig_init("get", "echo", check=0).json()["headers"]["X-User"] == "bob"


def test_get_exit_codes(sig_init: Sig) -> None:
    sig_init("get", "nosuch", check=2)
    sig_init("get", "https://nowhere.example.org/", check=2)
    sig_init("login", "https://api.example.com", "--token-stdin", input=TOKEN, check=0)
    sig_init("logout", "--all", "--force", check=0)
    r = sig_init("get", "api-example", check=3)
    assert "sig login" in r.err


def test_expired_credential_is_exit_3(sig_init: Sig) -> None:
    cfg = sig_init.home / "config.yaml"
    sig_init("login", "https://api.example.com", "--token-stdin", input=TOKEN, check=0)
    text = cfg.read_text().replace("strategy: api-token", "strategy: api-token\n    ttl: 1ms")
    cfg.write_text(text)
    r = sig_init("get", "api-example", check=3)
    assert "expired" in r.err
    assert sig_init("status", "api-example", check=0).json()["valid"] is False


def test_login_as_copies_existing_provider(sig_init: Sig) -> None:
    sig_init("login", "https://api.example.com", "--token-stdin", input=TOKEN, check=0)
    sig_init("login", "api-example", "--as", "api-staging", "--token-stdin", input="tok-OTHER-1234", check=0)
    ids = [p["id"] for p in sig_init("providers", check=0).json()]
    assert ids == ["api-example", "api-staging"]
    assert sig_init("get", "api-staging", "--format", "value", "--no-redaction", check=0).out.strip() == \
        "Bearer tok-OTHER-1234"


def test_invalid_as_id(sig_init: Sig) -> None:
    r = sig_init("login", "https://api.example.com", "--as", "Bad id!", "--token", "abcd1234", check=1)
    assert "not a valid provider id" in r.err


def test_remove_needs_force_without_tty(sig_init: Sig) -> None:
    sig_init("login", "https://api.example.com", "--token-stdin", input=TOKEN, check=0)
    r = sig_init("remove", "api-example", check=1)
    assert "--force" in r.err
    r = sig_init("remove", "api-example", "nosuch", "--force", check=2)
    assert "nosuch" in r.err
    assert sig_init("status", "api-example", check=0).json()["valid"] is True
    sig_init("remove", "--force", "api-example", "--keep-config", check=0)
    assert sig_init("status", "api-example", check=3).json()["configured"] is False


def test_rename_rejects_existing_and_invalid(sig_init: Sig) -> None:
    sig_init("login", "https://a.example.com", "--token-stdin", input=TOKEN, check=0)
    sig_init("login", "https://b.example.com", "--token-stdin", input=TOKEN, check=0)
    assert "already exists" in sig_init("rename", "a-example", "b-example", check=1).err
    assert "not a valid" in sig_init("rename", "a-example", "bad/id", check=1).err
    assert sig_init("get", "a-example", check=0).json()["provider"] == "a-example"


def test_logout_all(sig_init: Sig) -> None:
    sig_init("login", "https://a.example.com", "--token-stdin", input=TOKEN, check=0)
    sig_init("login", "https://b.example.com", "--cookie-stdin", input=COOKIE, check=0)
    sig_init("logout", "--all", "--force", check=0)
    assert [s["configured"] for s in sig_init("status", check=0).json()] == [False, False]
    assert [ln for ln in (sig_init.home / "audit.log").read_text().splitlines() if '"scope":"all"' in ln]


def test_concurrent_logins_same_provider(sig_init: Sig) -> None:
    procs = [sig_init.popen("login", "https://api.example.com", "--token-stdin", "--as", "api") for _ in range(4)]
    results = [sig_init.finish(p, input=f"tok-CONCURRENT-{i}000") for i, p in enumerate(procs)]
    assert [r.code for r in results] == [0, 0, 0, 0], [r.err for r in results]
    value = sig_init("get", "api", "--format", "value", "--no-redaction", check=0).out.strip()
    assert value in {f"Bearer tok-CONCURRENT-{i}000" for i in range(4)}
    assert sig_init("providers", check=0).json()[0]["id"] == "api"
    assert len(sig_init("providers", check=0).json()) == 1


def test_permissions(sig_init: Sig) -> None:
    sig_init("login", "https://api.example.com", "--token-stdin", input=TOKEN, check=0)
    home = sig_init.home
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(home / "credentials").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(home / "encryption.key").st_mode) == 0o400
    assert stat.S_IMODE(os.stat(home / "config.yaml").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(home / "audit.log").st_mode) == 0o600
