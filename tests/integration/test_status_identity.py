"""Identity in status: `sig status P` / `sig whoami P` show the account behind a credential (userinfo,
JWT claims marked "claimed", a stored user name) and never a secret."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import pytest

from harness.servers import HandlerServer
from harness.sigproc import Sig


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


JWT = ".".join([_b64({"alg": "RS256", "typ": "JWT"}),
                _b64({"sub": "user-42", "email": "alice@example.com", "preferred_username": "alice", "exp": 4102444800}),
                "c2lnbmF0dXJlLW5vdC1jaGVja2Vk"])
PLAIN = "tok-IDENT-plain-000111"
USERINFO_TOKEN = "tok-IDENT-userinfo-9a9a9a"


class _Userinfo(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Userinfo.seen.append(self.headers.get("Authorization", ""))
        ok = self.path == "/userinfo" and self.headers.get("Authorization") == f"Bearer {USERINFO_TOKEN}"
        body = json.dumps({"sub": "248289761001", "email": "bob@corp.example", "name": "Bob"} if ok
                          else {"error": "invalid_token"}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def userinfo() -> Iterator[str]:
    _Userinfo.seen = []
    with HandlerServer(_Userinfo) as server:
        yield server.url


def test_jwt_claims_are_shown_as_claimed(sig_init: Sig) -> None:
    sig_init("login", "https://api.example.com", "--token-stdin", "--as", "api", input=JWT, check=0)
    for command in ("status", "whoami"):
        r = sig_init(command, "api", "--format", "json", check=0)
        identity = r.json()["identity"]
        assert identity == {"account": "alice@example.com", "source": "jwt", "claimed": True,
                            "details": {"email": "alice@example.com", "preferred_username": "alice",
                                        "sub": "user-42"}}
        assert JWT not in r.out and JWT.split(".")[2] not in r.out
    table = sig_init("whoami", "api", "--format", "table", check=0).out
    assert "alice@example.com (claimed)" in table
    sig_init.assert_no_secret(JWT)


def test_stored_user_name_and_no_identity(sig_init: Sig) -> None:
    sig_init("login", "https://git.example.com", "--username", "carol", "--password-stdin", "--as", "git",
             input="pw-IDENT-123456", check=0)
    sig_init("login", "https://plain.example.com", "--token-stdin", "--as", "plain", input=PLAIN, check=0)
    git = sig_init("status", "git", "--format", "json", check=0)
    assert git.json()["identity"] == {"account": "carol", "source": "stored", "claimed": False,
                                      "details": {"username": "carol"}}
    assert "pw-IDENT-123456" not in git.out
    plain = sig_init("whoami", "plain", "--format", "json", check=0)
    assert "identity" not in plain.json() and PLAIN not in plain.out
    # The list of every provider stays as it was (no identity: no extra reads or requests).
    assert all("identity" not in s for s in sig_init("status", "--format", "json", check=0).json())


def test_userinfo_endpoint(sig_init: Sig, userinfo: str) -> None:
    sig_init("login", userinfo, "--token-stdin", "--as", "idp", input=USERINFO_TOKEN, check=0)
    cfg = sig_init.home / "config.yaml"
    cfg.write_text(cfg.read_text().replace("    strategy: api-token\n",
                                           f"    strategy: api-token\n    userinfoUrl: {userinfo}/userinfo\n", 1))
    r = sig_init("whoami", "idp", "--format", "json", check=0)
    assert r.json()["identity"] == {"account": "bob@corp.example", "source": "userinfo", "claimed": False,
                                    "details": {"email": "bob@corp.example", "name": "Bob",
                                                "sub": "248289761001"}}
    assert _Userinfo.seen == [f"Bearer {USERINFO_TOKEN}"]
    assert USERINFO_TOKEN not in r.out
    sig_init.assert_no_secret(USERINFO_TOKEN)


def test_userinfo_on_another_host_gets_no_credential(sig_init: Sig, userinfo: str) -> None:
    sig_init("login", userinfo, "--token-stdin", "--as", "idp", input=USERINFO_TOKEN, check=0)
    other = userinfo.replace("127.0.0.1", "localhost")
    cfg = sig_init.home / "config.yaml"
    cfg.write_text(cfg.read_text().replace("    strategy: api-token\n",
                                           f"    strategy: api-token\n    userinfoUrl: {other}/userinfo\n", 1))
    r = sig_init("whoami", "idp", "--format", "json", "--verbose", check=0)
    assert "identity" not in r.json()
    assert _Userinfo.seen == []  # nothing was sent to a host the provider's domains do not name
    assert "userinfo not available" in r.err


def test_status_stays_light(sig_init: Sig) -> None:
    """`sig status P` with a JWT credential decodes it with the JSON accelerator, not the json package."""
    import subprocess
    import sys

    sig_init("login", "https://api.example.com", "--token-stdin", "--as", "api", input=JWT, check=0)
    sig_init("status", check=0)
    code = ("import sys, runpy; sys.argv = ['sig', 'status', 'api', '--format', 'json']\n"
            "try:\n    runpy.run_module('sigcli', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], env=sig_init.env, capture_output=True, text=True,
                          timeout=60)
    loaded = set(proc.stderr.split())
    assert "sigcli.inject.identity" in loaded
    heavy = {"json", "re", "ssl", "http", "urllib", "socket", "asyncio", "yaml", "ruamel"} & {
        m.split(".")[0] for m in loaded}
    assert heavy == set(), heavy
