"""`sig remote` and `sig sync` against a real sshd on 127.0.0.1 (the remote has no sig installed)."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from harness import sshd
from harness.sigproc import Sig

pytestmark = pytest.mark.skipif(not sshd.available(), reason="OpenSSH server not installed (apt-get install openssh-server)")

TOKEN = "tok-SYNC-a1b2c3d4"


@pytest.fixture
def remote_home(tmp_path: Path) -> Path:
    return tmp_path / "remote side" / ".sig"  # a path with a space


@pytest.fixture
def local(sig_init: Sig, ssh_server: sshd.SshServer, remote_home: Path) -> Sig:
    ssh_server.add_remote(sig_init, "box", remote_home)
    sig_init("login", "https://api.example.com", "--token-stdin", "--as", "api", input=TOKEN, check=0)
    sig_init("login", "https://jira.example.com", "--cookie-stdin", "--as", "jira", input="S=sess-SYNC-77aa",
             check=0)
    return sig_init


def _remote_sig(local: Sig, remote_home: Path, *args: str, check: int | None = 0, input: str | None = None) -> object:
    return local(*args, env={"SIG_HOME": str(remote_home)}, check=check, input=input)


def test_remote_add_list_remove(sig_init: Sig) -> None:
    sig_init("remote", "add", "prod", "ssh://deploy@ci.example.com:2222/home/deploy/.sig", check=0)
    sig_init("remote", "add", "b", "ci2.example.com", "--user", "ops", "--ssh-key", "~/.ssh/id_ed25519", check=0)
    rows = sig_init("remote", "list", "--format", "json", check=0).json()
    assert rows[0] == {"name": "prod", "type": "ssh", "host": "ci.example.com", "user": "deploy", "port": 2222,
                       "path": "/home/deploy/.sig", "sshKey": None}
    assert rows[1]["user"] == "ops" and rows[1]["path"] == "~/.sig"
    assert "# SigCLI configuration" in (sig_init.home / "config.yaml").read_text()
    sig_init("remote", "remove", "prod", check=0)
    sig_init("remote", "remove", "prod", check=4)
    assert "-oProxyCommand" not in (sig_init.home / "config.yaml").read_text()
    assert sig_init("remote", "add", "x", "-oProxyCommand=evil", check=1).code == 1
    sig_init("sync", "push", "nosuch", check=4)


def test_push_then_use_on_the_remote(local: Sig, remote_home: Path) -> None:
    r = local("sync", "push", "box", check=0)
    out = r.json()
    assert sorted(out["pushed"]) == ["api", "jira"] and out["configSynced"]["providers"] == ["api", "jira"]
    assert stat.S_IMODE(os.stat(remote_home).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(remote_home / "credentials").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(remote_home / "encryption.key").st_mode) == 0o400
    assert stat.S_IMODE(os.stat(remote_home / "credentials" / "api.json").st_mode) == 0o600
    # sealed with the remote's own key, not ours
    assert (remote_home / "encryption.key").read_bytes() != (local.home / "encryption.key").read_bytes()
    assert TOKEN.encode() not in (remote_home / "credentials" / "api.json").read_bytes()
    # the remote folder is a working sig home: config (browserless) + credentials
    assert "mode: browserless" in (remote_home / "config.yaml").read_text()
    got = _remote_sig(local, remote_home, "get", "api", "--format", "value", "--no-redaction")
    assert got.out.strip() == f"Bearer {TOKEN}"  # type: ignore[attr-defined]
    # pushing again changes nothing
    again = local("sync", "push", "box", check=0).json()
    assert again["pushed"] == [] and sorted(again["unchanged"]) == ["api", "jira"]
    audit = (local.home / "audit.log").read_text()
    assert '"action":"sync_push"' in audit and TOKEN not in audit


def test_pull_into_another_machine(local: Sig, remote_home: Path, ssh_server: sshd.SshServer, tmp_path: Path) -> None:
    local("sync", "push", "box", check=0)
    other = Sig(tmp_path / "other" / ".sig", tmp_path / "other", cmd=local.cmd)
    other("init", "--remote", check=0)
    ssh_server.add_remote(other, "box", remote_home)
    # a remote is trusted only with what was exchanged with it: a first plain pull takes nothing, says why
    r = other("sync", "pull", check=0)  # the only remote is used by default
    assert r.json()["pulled"] == [] and r.json()["notExchanged"] == ["api", "jira"]
    assert "--provider api" in r.err
    r = other("sync", "pull", "--provider", "api,jira", check=0)
    assert sorted(r.json()["pulled"]) == ["api", "jira"]
    assert other("get", "api", "--format", "value", "--no-redaction", check=0).out.strip() == f"Bearer {TOKEN}"
    assert "api:" in (other.home / "config.yaml").read_text()
    # named once, trusted from then on: a plain pull takes the remote's newer credential
    _remote_sig(local, remote_home, "login", "api", "--token-stdin", input="tok-ROTATED-ON-REMOTE")
    assert other("sync", "pull", check=0).json()["pulled"] == ["api"]


def test_single_provider_and_conflicts(local: Sig, remote_home: Path) -> None:
    r = local("sync", "push", "box", "--provider", "api", check=0).json()
    assert r["pushed"] == ["api"]
    assert not (remote_home / "credentials" / "jira.json").exists()
    # the remote gets a newer credential (someone logged in there)
    _remote_sig(local, remote_home, "login", "api", "--token-stdin", input="tok-NEWER-ON-REMOTE")
    r = local("sync", "push", "box", "--provider", "api", check=1)
    assert "SYNC_CONFLICT" in r.err or "newer" in r.err
    assert r.json()["skipped"][0]["provider"] == "api"
    got = _remote_sig(local, remote_home, "get", "api", "--format", "value", "--no-redaction")
    assert got.out.strip() == "Bearer tok-NEWER-ON-REMOTE"  # type: ignore[attr-defined]
    # pull takes the newer one; then --force pushes ours back over it
    local("sync", "pull", "box", "--provider", "api", check=0)
    assert local("get", "api", "--format", "value", "--no-redaction", check=0).out.strip() == \
        "Bearer tok-NEWER-ON-REMOTE"
    local("login", "api", "--token-stdin", input=TOKEN, check=0)
    _remote_sig(local, remote_home, "login", "api", "--token-stdin", input="tok-EVEN-NEWER")
    local("sync", "push", "box", "--provider", "api", check=1)
    local("sync", "push", "box", "--provider", "api", "--force", check=0)
    got = _remote_sig(local, remote_home, "get", "api", "--format", "value", "--no-redaction")
    assert got.out.strip() == f"Bearer {TOKEN}"  # type: ignore[attr-defined]


def test_oauth2_secrets_travel(local: Sig, remote_home: Path) -> None:
    """The original dropped client secrets and refresh tokens; a server must be able to refresh."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    cfg = local.home / "config.yaml"
    payload = {"version": 2, "providerId": "oa", "strategy": "oauth2", "updatedAt": "2026-01-01T00:00:00.000Z",
               "values": {"access_token": "at-SYNC-1"},
               "oauth2": {"clientId": "svc", "clientSecret": "cs-SYNC-2", "refreshToken": "rt-SYNC-3"}}
    key = base64.b64decode((local.home / "encryption.key").read_text())
    iv = os.urandom(12)
    sealed = AESGCM(key).encrypt(iv, json.dumps(payload).encode(), None)
    envelope = {"version": 1, "encrypted": True, "algorithm": "aes-256-gcm", "iv": base64.b64encode(iv).decode(),
                "authTag": base64.b64encode(sealed[-16:]).decode(),
                "ciphertext": base64.b64encode(sealed[:-16]).decode()}
    (local.home / "credentials" / "oa.json").write_text(json.dumps(envelope))
    (local.home / "credentials" / "oa.json").chmod(0o600)  # as sig writes it
    cfg.write_text(cfg.read_text().replace("providers:\n", "providers:\n  oa:\n    domains: [oa.example.com]\n"
                                           "    strategy: oauth2\n    oauth2: {tokenUrl: 'https://oa.example.com/t'}\n", 1))
    local("sync", "push", "box", "--provider", "oa", check=0)
    rkey = base64.b64decode((remote_home / "encryption.key").read_text())
    env = json.loads((remote_home / "credentials" / "oa.json").read_text())
    plain = json.loads(AESGCM(rkey).decrypt(base64.b64decode(env["iv"]), base64.b64decode(env["ciphertext"])
                                            + base64.b64decode(env["authTag"]), None))
    assert plain["oauth2"] == payload["oauth2"] and plain["values"] == payload["values"]


def test_remote_down_and_host_key_changed(local: Sig, remote_home: Path, ssh_server: sshd.SshServer,
                                          tmp_path: Path) -> None:
    local("remote", "add", "dead", "127.0.0.1", "--port", "1", "--ssh-key", str(ssh_server.client_key), check=0)
    r = local("sync", "push", "dead", check=1)
    assert "cannot reach" in r.err and "Traceback" not in r.err
    known = local.user_home / ".ssh" / "known_hosts"
    other_key = tmp_path / "other_host"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True, timeout=30)
    pub = other_key.with_suffix(".pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{ssh_server.port} {pub[0]} {pub[1]}\n")
    r = local("sync", "push", "box", check=1)
    assert "host key" in r.err
    assert not remote_home.exists()  # nothing written


def test_remote_permission_problem_writes_nothing(local: Sig, ssh_server: sshd.SshServer) -> None:
    local("remote", "add", "bad", f"ssh://{ssh_server.user}@127.0.0.1:{ssh_server.port}/proc/sig-cannot-write",
          "--ssh-key", str(ssh_server.client_key), check=0)
    r = local("sync", "push", "bad", check=1)
    assert "failed" in r.err and "Traceback" not in r.err


def test_push_uses_one_connection(local: Sig, remote_home: Path, tmp_path: Path) -> None:
    """Counting ssh invocations: one master connection serves the read and the write."""
    log = tmp_path / "ssh.log"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ssh").write_text(f"#!/bin/sh\ncase \" $* \" in *' -O exit '*) ;; *) echo call >> '{log}';; esac\n"
                              "exec /usr/bin/ssh \"$@\"\n")
    (fake / "ssh").chmod(0o755)
    local("sync", "push", "box", env={"PATH": f"{fake}:{os.environ['PATH']}"}, check=0)
    calls = log.read_text().splitlines()
    assert len(calls) == 2  # read + write, multiplexed over one ControlMaster connection


def test_watch_renews_and_auto_syncs(local: Sig, remote_home: Path) -> None:
    pytest.importorskip("authlib")
    from harness.oauth_server import OAuthServer

    with OAuthServer() as oauth:
        oauth.add_client("svc", "cs-WATCH-0001")
        oauth.token_lifetime = 30  # expires within the next watch interval
        local("login", f"{oauth.url}/", "--as", "oa", "--strategy", "oauth2", "--token-url", oauth.token_url,
              "--client-id", "svc", "--client-secret-stdin", input="cs-WATCH-0001", check=0)
        local("watch", "add", "oa", "--auto-sync", "box", check=0)
        oauth.token_lifetime = 3600
        before = oauth.count()
        r = local("watch", "start", "--once", "--format", "json", check=0)
        assert oauth.count() == before + 1, r.err
        assert (remote_home / "credentials" / "oa.json").exists()
        got = _remote_sig(local, remote_home, "status", "oa")
        assert got.json()["valid"] is True and got.json()["expiresInMinutes"] > 50  # type: ignore[attr-defined]
