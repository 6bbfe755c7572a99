"""No surprising state changes: `logout` asks before clearing everything, one-off login flags stay one-off,
`init` runs twice, and a client-credentials provider set up in the config fetches its first token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.sigproc import Sig
from harness.terminal import on_pty

TOKEN = "tok-STATE-aaaa1111"


def _two_logins(sig: Sig) -> None:
    sig("login", "https://a.example.com", "--token-stdin", input=TOKEN, check=0)
    sig("login", "https://b.example.com", "--cookie-stdin", input="sid=STATE-cookie-2222", check=0)


def _stored(sig: Sig) -> list[str]:
    return [s["id"] for s in sig("status", check=0).json() if s["configured"]]


# -- logout ----------------------------------------------------------------------------------------


def test_logout_all_off_a_terminal_refuses_without_all_force(sig_init: Sig) -> None:
    _two_logins(sig_init)
    for flags in ((), ("--all",), ("--force",)):
        r = sig_init("logout", *flags, check=1)
        assert "not a terminal" in r.err and "2 stored credentials (a-example, b-example)" in r.err
        assert "sig logout --all --force" in r.err
        assert _stored(sig_init) == ["a-example", "b-example"]
    assert "name no provider" in sig_init("logout", "a-example", "--all", check=1).err
    r = sig_init("logout", "--all", "--force", check=0)
    assert "Cleared 2 stored credentials (a-example, b-example)" in r.err
    assert _stored(sig_init) == []
    assert "nothing to clear" in sig_init("logout", check=0).err  # nothing stored: nothing to ask


def test_logout_all_on_a_terminal_asks_and_says_which(sig_init: Sig) -> None:
    _two_logins(sig_init)
    code, _out, screen = on_pty(sig_init, ["logout"], answer="n")
    assert code == 0, screen
    assert "Clear 2 stored credentials (a-example, b-example)?" in screen and "Aborted" in screen
    assert _stored(sig_init) == ["a-example", "b-example"]
    code, _out, screen = on_pty(sig_init, ["logout"], answer="y")
    assert code == 0 and "Cleared 2 stored credentials" in screen, screen
    assert _stored(sig_init) == []
    # --all --force asks nothing, on a terminal too
    _two_logins(sig_init)
    code, _out, screen = on_pty(sig_init, ["logout", "--all", "--force"], answer=None)
    assert code == 0 and "[y/N]" not in screen and _stored(sig_init) == []


def test_logout_one_provider_needs_no_confirmation(sig_init: Sig) -> None:
    _two_logins(sig_init)
    sig_init("logout", "a-example", check=0)
    assert _stored(sig_init) == ["b-example"]


# -- login: one-off flags ----------------------------------------------------------------------------


def test_one_off_login_flags_are_not_saved_for_a_new_provider(sig_init: Sig) -> None:
    sig_init("login", "https://api.example.com", "--token-stdin", "--mode", "headless",
             "--network-proxy", "http://127.0.0.1:9", input=TOKEN, check=0)
    text = (sig_init.home / "config.yaml").read_text()
    assert "api-example:" in text
    assert "loginMode" not in text and "networkProxy" not in text and "127.0.0.1:9" not in text


# -- init ------------------------------------------------------------------------------------------


def test_init_twice_keeps_everything_and_force_rewrites(sig: Sig) -> None:
    sig("init", "--yes", check=0)
    sig("login", "https://api.example.com", "--token-stdin", input=TOKEN, check=0)
    cfg = sig.home / "config.yaml"
    key = sig.home / "encryption.key"
    before_cfg, before_key = cfg.read_bytes(), key.read_bytes()
    r = sig("init", "--yes", check=0)
    assert "Config kept" in r.err and "(1 stored)" in r.err and "Providers:      1" in r.err
    assert "encryption.key (kept)" in r.err
    assert cfg.read_bytes() == before_cfg and key.read_bytes() == before_key
    assert not (sig.home / "config.yaml.bak").exists()
    r = sig("init", "--yes", "--remote", check=0)
    assert "--remote not applied" in r.err and cfg.read_bytes() == before_cfg
    # a missing folder or key is made again; the config stays
    (sig.home / "credentials" / "api-example.json").unlink()
    key.chmod(0o600)
    key.unlink()
    r = sig("init", "--yes", check=0)
    assert "encryption.key (created)" in r.err and cfg.read_bytes() == before_cfg
    # --force rewrites, keeping the old file as config.yaml.bak
    r = sig("init", "--yes", "--force", check=0)
    assert (sig.home / "config.yaml.bak").read_bytes() == before_cfg
    assert "api-example" not in cfg.read_text()


def test_init_again_with_a_broken_config_says_how_to_fix_it(sig: Sig) -> None:
    sig("init", "--yes", check=0)
    (sig.home / "config.yaml").write_text("version: 2\nproviders: [\n")
    r = sig("init", "--yes", check=1)
    assert "config.yaml" in r.err and "sig init --force" in r.err and "Traceback" not in r.err


# -- OAuth2 client credentials only in the config ----------------------------------------------------

pytest.importorskip("authlib")
from harness.oauth_server import OAuthServer  # noqa: E402

SECRET = "client-SECRET-state-77"


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    server = OAuthServer()
    server.add_client("svc", SECRET, auth_method="client_secret_basic")
    try:
        yield server
    finally:
        server.close()


def config_only_provider(sig: Sig, oauth: OAuthServer, secret: str = "${SVC_SECRET}") -> None:
    sig.add_providers(oauth.provider_entry(clientId="svc", clientSecret=secret, grant="client_credentials"))


def test_config_only_client_credentials_fetches_its_first_token(sig_init: Sig, oauth: OAuthServer) -> None:
    config_only_provider(sig_init, oauth)
    env = {"SVC_SECRET": SECRET}
    assert sig_init("status", "api", check=3).json()["configured"] is False
    r = sig_init("get", "api", env=env, check=0)
    assert r.json()["headers"]["Authorization"] == "Bearer ****"
    assert oauth.count("client_credentials") == 1
    r = sig_init("request", f"{oauth.url}/api/me", "--format", "body", env=env, check=0)
    assert '"client_id": "svc"' in r.out or '"client_id":"svc"' in r.out
    assert oauth.count("client_credentials") == 1  # the stored token is used
    assert SECRET not in (sig_init.home / "config.yaml").read_text()
    sig_init.assert_no_secret(SECRET)


def test_config_only_provider_without_a_secret_says_what_to_run(sig_init: Sig, oauth: OAuthServer) -> None:
    config_only_provider(sig_init, oauth)
    r = sig_init("get", "api", check=1)  # ${SVC_SECRET} not set: a config error naming it
    assert "SVC_SECRET" in r.err
    r = sig_init("get", "api", env={"SVC_SECRET": "wrong-secret"}, check=3)
    assert "first token" in r.err and "sig login" in r.err
    assert oauth.count("client_credentials") == 1
