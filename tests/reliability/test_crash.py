"""Crash safety: `kill -9` of sig at random moments during 200 writes (login, OAuth2 refresh, rename, sync pull
over a real sshd) while other processes read. Afterwards every credential file decrypts, none is lost, and no
temp file is left behind once a later sig writes.

Half of the kills land at a random time within the operation's usual duration; the other half the moment a
temp file of that process shows up (mid-write: between creating the temp file and renaming it), so the
writes themselves are hit, not only start-up."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import sshd
from harness.sigproc import Sig

pytest.importorskip("authlib")
from harness.oauth_server import OAuthServer

pytestmark = pytest.mark.skipif(not sshd.available(), reason="OpenSSH server not installed")

SEED = int(os.environ.get("SIG_CRASH_SEED", "1913"))
OPS = ["login"] * 60 + ["refresh"] * 50 + ["rename"] * 50 + ["pull"] * 40  # 200 writes
LOGIN_IDS = ("p0", "p1", "p2")
SECRET = "client-SECRET-crash-9"
SYNCED_TOKEN = "tok-CRASH-SYNCED-0001"
RENAMED_TOKEN = "tok-CRASH-RENAMED-0001"


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    server = OAuthServer()
    server.add_client("svc", SECRET)
    server.token_lifetime = 1  # every refresh op finds the token about to expire
    try:
        yield server
    finally:
        server.close()


def _decrypt_all(home: Path) -> dict[str, dict[str, object]]:
    """Every credential file, decrypted in this process with the key: {file stem: payload}."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = base64.b64decode((home / "encryption.key").read_bytes())
    out: dict[str, dict[str, object]] = {}
    for path in (home / "credentials").glob("*.json"):
        try:
            envelope = json.loads(path.read_bytes())
        except FileNotFoundError:
            continue  # renamed away meanwhile
        sealed = base64.b64decode(envelope["ciphertext"]) + base64.b64decode(envelope["authTag"])
        payload = json.loads(AESGCM(key).decrypt(base64.b64decode(envelope["iv"]), sealed, None))
        assert payload["providerId"] == path.stem, path
        out[path.stem] = payload
    return out


def _temp_files(home: Path) -> list[Path]:
    return [p for p in home.rglob("*") if ".tmp." in p.name]


class Reader(threading.Thread):
    """Another process reading all along: `sig get p0` and `sig status`, plus every file decrypted here."""

    def __init__(self, sig: Sig, tokens: set[str]) -> None:
        super().__init__(daemon=True)
        self.sig, self.tokens = sig, tokens
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.reads = 0

    def run(self) -> None:
        while not self.stop.is_set() and len(self.failures) < 5:
            try:
                got = self.sig("get", "p0", "--format", "value", "--no-redaction")
                if got.code != 0 or got.out.strip().removeprefix("Bearer ") not in self.tokens:
                    self.failures.append(f"get p0: exit {got.code}: {got.err.strip()[-300:]}")
                status = self.sig("status", "--format", "json")
                errors = [s for s in json.loads(status.out) if "error" in s] if status.code == 0 else [status.err]
                if errors:
                    self.failures.append(f"status: {errors}")
                _decrypt_all(self.sig.home)
                self.reads += 1
            except Exception as exc:  # a file that does not decrypt, JSON that does not parse
                self.failures.append(f"{type(exc).__name__}: {exc}")


def _config_has(home: Path, pid: str) -> bool:
    return f"\n  {pid}:" in (home / "config.yaml").read_text()


def test_kill_9_during_200_writes_loses_nothing(sig_init: Sig, oauth: OAuthServer, ssh_server: sshd.SshServer,
                                                tmp_path: Path) -> None:
    sig = sig_init
    rng = random.Random(SEED)
    tokens: dict[str, set[str]] = {pid: {f"tok-CRASH-{pid}-start"} for pid in LOGIN_IDS}
    for pid in LOGIN_IDS:
        sig("login", f"https://{pid}.example.com", "--as", pid, "--token-stdin", input=f"tok-CRASH-{pid}-start",
            check=0)
    sig("login", "https://rename.example.com", "--as", "rn-a", "--token-stdin", input=RENAMED_TOKEN, check=0)
    sig("login", f"{oauth.url}/", "--as", "oa", "--strategy", "oauth2", "--token-url", oauth.token_url,
        "--client-id", "svc", "--client-secret-stdin", input=SECRET, check=0)
    # the remote: another sig home reached over ssh, holding the credential that `sync pull` brings in
    remote_home = tmp_path / "remote" / ".sig"
    remote = {"SIG_HOME": str(remote_home)}
    sig("init", "--remote", env=remote, check=0)
    sig("login", "https://synced.example.com", "--as", "synced", "--token-stdin", input=SYNCED_TOKEN,
        env=remote, check=0)
    ssh_server.add_remote(sig, "box", remote_home)

    def argv(op: str, n: int) -> tuple[list[str], str | None]:
        if op == "login":
            pid = LOGIN_IDS[n % len(LOGIN_IDS)]
            token = f"tok-CRASH-{pid}-{n:04d}"
            tokens[pid].add(token)
            return ["login", pid, "--token-stdin"], token
        if op == "refresh":
            return ["get", "oa"], None
        if op == "rename":
            old, new = ("rn-a", "rn-b") if _config_has(sig.home, "rn-a") else ("rn-b", "rn-a")
            return ["rename", old, new], None
        return ["sync", "pull", "box", "--provider", "synced", "--force"], None

    # how long each operation takes here, undisturbed (also the first pull, so "synced" exists)
    usual = {}
    for op in ("login", "refresh", "rename", "pull"):
        args, token = argv(op, 0)
        start = time.monotonic()
        sig(*args, input=token, check=0, timeout=120)
        usual[op] = time.monotonic() - start
    all_tokens = set().union(*tokens.values())
    reader = Reader(sig, all_tokens | {f"tok-CRASH-p0-{n:04d}" for n in range(len(OPS))})
    reader.start()

    ops = OPS[:]
    rng.shuffle(ops)
    outcome = {"finished": 0, "killed": 0, "killed mid-write": 0}
    per_op: dict[str, dict[str, int]] = {op: dict.fromkeys(outcome, 0) for op in set(ops)}
    try:
        for n, op in enumerate(ops, start=1):
            args, token = argv(op, n)
            proc = subprocess.Popen(sig.argv(*args), env=sig.env, cwd=sig.user_home, start_new_session=True,
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if token is not None:
                proc.stdin.write(token.encode())  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
            mid_write = n % 2 == 0
            deadline = time.monotonic() + (usual[op] * 3 if mid_write else rng.uniform(0.0, 1.1) * usual[op])
            marker = f".tmp.{proc.pid}."
            while proc.poll() is None and time.monotonic() < deadline:
                if mid_write and any(marker in p.name for p in _watched(sig.home)):
                    time.sleep(rng.uniform(0.0, 0.003))
                    break
                time.sleep(0.0005 if mid_write else 0.005)
            if proc.poll() is None:
                had_temp = any(marker in p.name for p in _watched(sig.home))
                os.kill(proc.pid, signal.SIGKILL)
                kind = "killed mid-write" if had_temp else "killed"
            else:
                kind = "finished"
            outcome[kind] += 1
            per_op[op][kind] += 1
            proc.wait(timeout=60)
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # children it left (ssh), as a closed terminal would
            except ProcessLookupError:
                pass
    finally:
        reader.stop.set()
        reader.join(timeout=120)
    print(f"\ncrash run (seed {SEED}): {outcome}; by operation: {per_op}; reader passes: {reader.reads}; "
          f"temp files left by the kills: {len(_temp_files(sig.home))}; token requests: {len(oauth.token_requests)}")
    assert reader.failures == []
    assert reader.reads > 0
    assert outcome["killed mid-write"] > 0, outcome

    # every credential file decrypts, and none is lost
    payloads = _decrypt_all(sig.home)
    renamed = [pid for pid in ("rn-a", "rn-b") if _config_has(sig.home, pid)]
    assert len(renamed) == 1, renamed
    configured = {p["id"] for p in sig("providers", "--format", "json", check=0).json()}
    assert configured == {*LOGIN_IDS, "oa", "synced", renamed[0]}
    assert configured <= set(payloads)
    for pid in LOGIN_IDS:
        assert payloads[pid]["values"]["token"] in tokens[pid]  # type: ignore[index]
    expected = {renamed[0]: RENAMED_TOKEN, "synced": SYNCED_TOKEN}
    for pid, token in expected.items():
        assert sig("get", pid, "--format", "value", "--no-redaction", check=0).out.strip() == f"Bearer {token}"
    sig("get", "oa", check=0)
    status = sig("status", "--format", "json", check=0).json()
    assert [s for s in status if "error" in s] == []
    assert [s["id"] for s in status if not s["valid"] and s["id"] != "oa"] == []  # oa's tokens last 1 s

    # a later sig that writes (a credential and the config) sweeps what the killed writers left
    sig("login", "https://fresh.example.com", "--as", "fresh", "--token-stdin", input="tok-CRASH-FRESH", check=0)
    sig("status", check=0)
    assert _temp_files(sig.home) == []
    assert not [p for p in sig.home.rglob("*.unreadable.*")]  # nothing was ever found damaged


def _watched(home: Path) -> list[Path]:
    """Where sig's writes make temp files: the credentials folder, SIG_HOME (config) and the cache."""
    out: list[Path] = []
    for folder in (home / "credentials", home, home / "cache"):
        try:
            out += list(folder.iterdir())
        except FileNotFoundError:
            pass
    return out
