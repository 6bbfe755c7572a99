"""OAuth2 end to end against a real (Authlib) authorization server on 127.0.0.1."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.sigproc import Sig

pytest.importorskip("authlib")
from harness.oauth_server import OAuthServer

SECRET = "client-SECRET-0f9e8d"


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    server = OAuthServer()
    server.add_client("svc", SECRET, auth_method="client_secret_basic")
    server.add_client("svc-post", SECRET, auth_method="client_secret_post")
    server.add_client("cli", None, auth_method="none")
    try:
        yield server
    finally:
        server.close()


def _login_cc(sig: Sig, oauth: OAuthServer, pid: str = "api", client: str = "svc", extra: tuple[str, ...] = (),
              check: int | None = 0) -> object:
    return sig("login", f"{oauth.url}/", "--as", pid, "--strategy", "oauth2", "--token-url", oauth.token_url,
               "--client-id", client, "--client-secret-stdin", "--scope", "read write", *extra,
               input=SECRET, check=check)


def _api_me(sig: Sig, oauth: OAuthServer, pid: str = "api") -> dict[str, object]:
    r = sig("request", f"{oauth.url}/api/me", "--provider", pid, "--format", "body", check=0)
    return json.loads(r.out)


def test_client_credentials_login_and_use(sig_init: Sig, oauth: OAuthServer) -> None:
    r = _login_cc(sig_init, oauth)
    out = r.json()
    assert out["provider"] == "api" and out["strategy"] == "oauth2" and out["expiresAt"]
    assert _api_me(sig_init, oauth)["client_id"] == "svc"
    status = sig_init("status", "api", check=0).json()
    assert status["valid"] and status["renewable"] and 55 <= status["expiresInMinutes"] <= 60
    # the client secret is sealed: not in the config, audit log, stderr
    for name in ("config.yaml", "audit.log"):
        assert SECRET not in (sig_init.home / name).read_text()
    assert "tokenUrl" in (sig_init.home / "config.yaml").read_text()
    raw = sig_init("get", "api", "--no-redaction", check=0)
    assert SECRET not in raw.out
    sig_init.assert_no_secret(SECRET)


def test_client_secret_post(sig_init: Sig, oauth: OAuthServer) -> None:
    _login_cc(sig_init, oauth, client="svc-post", check=1)  # basic auth is refused for this client
    sig_init.add_providers(oauth.provider_entry(clientId="svc-post", clientAuth="client_secret_post"))
    sig_init("login", "api", "--client-secret-stdin", input=SECRET, check=0)
    assert _api_me(sig_init, oauth)["client_id"] == "svc-post"


def test_env_references_in_config(sig_init: Sig, oauth: OAuthServer) -> None:
    sig_init.add_providers(oauth.provider_entry(clientId="${MY_CLIENT_ID}", clientSecret="${MY_CLIENT_SECRET}",
                                                grant="client_credentials"))
    r = sig_init("login", "api", check=1)
    assert "MY_CLIENT_ID" in r.err and "CONFIG_ERROR" not in r.out
    sig_init("login", "api", env={"MY_CLIENT_ID": "svc", "MY_CLIENT_SECRET": SECRET}, check=0)
    r = sig_init("request", f"{oauth.url}/api/me", "--format", "body",
                 env={"MY_CLIENT_ID": "svc", "MY_CLIENT_SECRET": SECRET}, check=0)
    assert json.loads(r.out)["client_id"] == "svc"


def test_expired_token_is_renewed_silently(sig_init: Sig, oauth: OAuthServer) -> None:
    oauth.token_lifetime = 2
    _login_cc(sig_init, oauth)
    before = oauth.count("client_credentials")
    time.sleep(2.5)
    assert _api_me(sig_init, oauth)["client_id"] == "svc"
    assert oauth.count("client_credentials") == before + 1


def test_logout_keeps_client_secret_and_reexchanges(sig_init: Sig, oauth: OAuthServer) -> None:
    _login_cc(sig_init, oauth)
    sig_init("logout", "api", check=0)
    assert sig_init("status", "api", check=0).json()["valid"] is False
    r = sig_init("get", "api", check=0)
    assert r.json()["headers"]["Authorization"] == "Bearer ****"


def test_refresh_token_rotation(sig_init: Sig, oauth: OAuthServer) -> None:
    oauth.issue_refresh_for_client_credentials = True
    oauth.rotate_refresh_tokens = True
    oauth.token_lifetime = 2
    _login_cc(sig_init, oauth)
    for _ in range(2):
        time.sleep(2.2)
        assert _api_me(sig_init, oauth)["client_id"] == "svc"
    assert oauth.count("refresh_token") == 2


def test_401_renews_once(sig_init: Sig, oauth: OAuthServer) -> None:
    _login_cc(sig_init, oauth)
    oauth.expire_all_access_tokens()
    assert _api_me(sig_init, oauth)["client_id"] == "svc"


def test_jwt_exp_without_expires_in(sig_init: Sig, oauth: OAuthServer) -> None:
    oauth.jwt_access_tokens = True
    oauth.omit_expires_in = True
    oauth.token_lifetime = 600
    _login_cc(sig_init, oauth)
    minutes = sig_init("status", "api", check=0).json()["expiresInMinutes"]
    assert 8 <= minutes <= 10


def _read_stderr_until(proc: object, pattern: str, timeout: float = 30) -> re.Match[str]:
    """Read the login's stderr line by line (bounded) until `pattern` appears."""
    assert proc.stderr is not None  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()  # type: ignore[attr-defined]
        if not line:
            break
        seen += line
        m = re.search(pattern, seen)
        if m:
            return m
    raise AssertionError(f"{pattern!r} not in stderr: {seen!r}")


def test_authorization_code_pkce(sig_init: Sig, oauth: OAuthServer) -> None:
    proc = sig_init.popen("login", f"{oauth.url}/", "--as", "app", "--strategy", "oauth2", "--grant",
                          "authorization_code", "--auth-url", oauth.authorize_url, "--token-url", oauth.token_url,
                          "--client-id", "cli", "--scope", "read")
    url = _read_stderr_until(proc, r"(http://127\.0\.0\.1:\d+/oauth/authorize\?\S+)").group(1)
    assert "code_challenge_method=S256" in url and "state=" in url
    # the user's browser: follow the consent redirect to sig's loopback callback
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.status == 200
    result = sig_init.finish(proc, timeout=60)
    assert result.code == 0, result.err
    assert _api_me(sig_init, oauth, "app")["client_id"] == "cli"


def test_authorization_code_wrong_state_rejected(sig_init: Sig, oauth: OAuthServer) -> None:
    proc = sig_init.popen("login", f"{oauth.url}/", "--as", "app", "--strategy", "oauth2", "--grant",
                          "authorization_code", "--auth-url", oauth.authorize_url, "--token-url", oauth.token_url,
                          "--client-id", "cli")
    url = _read_stderr_until(proc, r"(http://127\.0\.0\.1:\d+/oauth/authorize\?\S+)").group(1)
    redirect = re.search(r"redirect_uri=([^&]+)", url)
    assert redirect is not None
    callback = urllib.request.unquote(redirect.group(1))
    try:
        urllib.request.urlopen(f"{callback}?code=forged&state=wrong", timeout=10)
        raise AssertionError("a forged state was accepted")
    except urllib.error.HTTPError as err:
        assert err.code == 400
    with urllib.request.urlopen(url, timeout=30):  # the genuine redirect still completes the login
        pass
    assert sig_init.finish(proc, timeout=60).code == 0


def test_device_code(sig_init: Sig, oauth: OAuthServer) -> None:
    proc = sig_init.popen("login", f"{oauth.url}/", "--as", "dev", "--strategy", "oauth2", "--grant",
                          "device_code", "--device-url", oauth.device_url, "--token-url", oauth.token_url,
                          "--client-id", "cli")
    code = _read_stderr_until(proc, r"enter the code: (\S+)").group(1)
    time.sleep(1.5)  # let sig poll at least once (authorization_pending)
    oauth.approve_device(code)
    result = sig_init.finish(proc, timeout=60)
    assert result.code == 0, result.err
    assert _api_me(sig_init, oauth, "dev")["client_id"] == "cli"


def test_device_code_denied(sig_init: Sig, oauth: OAuthServer) -> None:
    proc = sig_init.popen("login", f"{oauth.url}/", "--as", "dev", "--strategy", "oauth2", "--grant",
                          "device_code", "--device-url", oauth.device_url, "--token-url", oauth.token_url,
                          "--client-id", "cli")
    code = _read_stderr_until(proc, r"enter the code: (\S+)").group(1)
    oauth.deny_device(code)
    result = sig_init.finish(proc, timeout=60)
    assert result.code == 1 and "access_denied" in result.err


@pytest.mark.parametrize(("mode", "message"), [("down", "could not be reached"), ("html", "not an OAuth2 JSON"),
                                               ("no_token", "without an access_token")])
def test_token_endpoint_failures(sig_init: Sig, oauth: OAuthServer, mode: str, message: str) -> None:
    oauth.mode = mode
    r = _login_cc(sig_init, oauth, check=1)
    assert message in r.err and "Traceback" not in r.err
    assert SECRET not in r.err


def test_slow_endpoint_times_out(sig_init: Sig, oauth: OAuthServer) -> None:
    sig_init.add_providers(oauth.provider_entry(clientId="svc", timeout=1))
    oauth.mode = "slow"
    oauth.slow_seconds = 3
    r = sig_init("login", "api", "--client-secret-stdin", input=SECRET, check=1)
    assert "did not answer within" in r.err


def test_bad_client_and_scope(sig_init: Sig, oauth: OAuthServer) -> None:
    r = sig_init("login", f"{oauth.url}/", "--as", "api", "--strategy", "oauth2", "--token-url", oauth.token_url,
                 "--client-id", "svc", "--client-secret-stdin", input="wrong-secret", check=1)
    assert "invalid_client" in r.err
    r = sig_init("login", f"{oauth.url}/", "--as", "api", "--strategy", "oauth2", "--token-url", oauth.token_url,
                 "--client-id", "svc", "--client-secret-stdin", "--scope", "admin", input=SECRET, check=1)
    assert "invalid_scope" in r.err


def test_failed_refresh_keeps_credential(sig_init: Sig, oauth: OAuthServer) -> None:
    oauth.token_lifetime = 2
    _login_cc(sig_init, oauth)
    time.sleep(2.5)
    oauth.mode = "down"
    r = sig_init("get", "api", check=3)  # expired and not renewable: log in (exit 3)
    assert "REFRESH_FAILED" in r.err or "renewing" in r.err
    oauth.mode = "normal"
    assert sig_init("get", "api", check=0).json()["provider"] == "api"


# 50 processes on one expired credential: tests/reliability/test_concurrency.py


def test_callback_never_arrives(sig_init: Sig, oauth: OAuthServer) -> None:
    sig_init.add_providers(oauth.provider_entry("app", grant="authorization_code", authUrl=oauth.authorize_url,
                                                clientId="cli", callbackTimeout=1))
    r = sig_init("login", "app", check=1)
    assert "no sign-in response arrived within 1 seconds" in r.err
    assert "http://127.0.0.1" in r.err  # the URL was printed for the user


def test_invalid_grant_after_rotation_elsewhere(sig_init: Sig, oauth: OAuthServer, tmp_path: Path) -> None:
    """Another copy of the credential (another machine after `sync`) rotated the refresh token first."""
    import shutil

    oauth.issue_refresh_for_client_credentials = True
    oauth.rotate_refresh_tokens = True
    oauth.token_lifetime = 2
    _login_cc(sig_init, oauth)
    other = tmp_path / "other-home"
    shutil.copytree(sig_init.home, other)
    time.sleep(2.5)
    oauth.token_lifetime = 600
    sig_init("get", "api", env={"SIG_HOME": str(other)}, check=0)  # rotates R1 -> R2 over there
    # here R1 is now refused (invalid_grant); the client secret is still good, but sig must not loop
    # or delete anything: it reports REFRESH_FAILED, keeps the file, and a new login fixes it
    r = sig_init("get", "api", "--verbose", check=3)
    assert "REFRESH_FAILED" in r.err and "invalid_grant" in r.err
    assert (sig_init.home / "credentials" / "api.json").exists()
    # the other machine's store (copied back, as `sig sync pull` would) is picked up
    shutil.copy(other / "credentials" / "api.json", sig_init.home / "credentials" / "api.json")
    assert sig_init("get", "api", check=0).json()["provider"] == "api"


def test_seed_001_config_form(sig_init: Sig, oauth: OAuthServer) -> None:
    sig_init.add_providers(f"""\
  api-example:
    domains:
      - 127.0.0.1
    entryUrl: {oauth.url}/
    strategy: oauth2
    tokenUrl: {oauth.token_url}
    clientId: ${{CLIENT_ID}}
    clientSecret: ${{CLIENT_SECRET}}
    scopes:
      - read
    extract:
      - from: oauth2
        as: access_token
    apply:
      - in: header
        name: Authorization
        value: 'Bearer ${{access_token}}'
""")
    env = {"CLIENT_ID": "svc", "CLIENT_SECRET": SECRET}
    # never logged in, but the config holds the client credentials: the first get fetches a token
    assert sig_init("get", "api-example", env=env, check=0).json()["provider"] == "api-example"
    sig_init("login", "api-example", env=env, check=0)
    r = sig_init("request", f"{oauth.url}/api/me", "--format", "body", env=env, check=0)
    assert json.loads(r.out) == {**json.loads(r.out), "client_id": "svc"}
    assert SECRET not in (sig_init.home / "audit.log").read_text()
