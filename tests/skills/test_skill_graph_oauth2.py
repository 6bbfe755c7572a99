"""The config template's OAuth2 alternative for ms-graph (the commented block), used as written with only
its endpoints moved to loopback: a real OAuth 2.0 server (tests/harness/oauth_server.py) runs the device
flow, the Graph stand-in accepts only tokens that server issued, and the outlook helper keeps working
after the access token expires because sig renews it with the refresh token, without the person."""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from ruamel.yaml import YAML
from skill_setup import SKILLS, TEMPLATE, assert_secret_free, run_helper, write_config
from skill_standins import GraphApp, StandIn

from harness.sigproc import Sig

pytest.importorskip("authlib")
from harness.oauth_server import OAuthServer

SCRIPT = SKILLS / "outlook" / "scripts" / "outlook.py"
CLIENT = "8f1c-outlook-skill-client"
SCOPES = "offline_access User.Read User.ReadBasic.All Mail.ReadWrite Mail.Send Calendars.Read"


def commented_block() -> dict[str, Any]:
    """The template's commented-out `ms-graph:` OAuth2 block, uncommented as its comment says."""
    lines = TEMPLATE.read_text(encoding="utf-8").splitlines()
    start = lines.index("  # ms-graph:")
    block = []
    for line in lines[start:]:
        if not line.startswith("  # "):
            break
        block.append(line[:2] + line[4:])
    return YAML(typ="safe", pure=True).load(io.StringIO("\n".join(block)))["ms-graph"]


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    server = OAuthServer()
    server.add_client(CLIENT, None, auth_method="none", scope=SCOPES)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def graph(oauth: OAuthServer) -> Iterator[StandIn]:
    def issued_by_oauth(token: str) -> bool:  # the resource server asks the authorization server
        request = urllib.request.Request(oauth.me_url, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status == 200
        except urllib.error.HTTPError:
            return False

    with StandIn(GraphApp(issued_by_oauth)) as server:
        yield server


def read_stderr_until(proc: Any, marker: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        if marker in line:
            return line.split(marker, 1)[1].strip()
    raise AssertionError(f"{marker!r} not printed by sig login:\n{seen}")


def test_device_code_login_and_silent_renewal(sig_init: Sig, oauth: OAuthServer, graph: StandIn) -> None:
    entry = commented_block()
    assert entry["strategy"] == "oauth2" and entry["oauth2"]["grant"] == "device_code"
    assert entry["oauth2"]["tokenUrl"].startswith("https://login.microsoftonline.com/")
    entry["oauth2"].update(deviceUrl=oauth.device_url, tokenUrl=oauth.token_url, clientId=CLIENT)
    entry.update(domains=["127.0.0.1"], ports=[graph.port], caFile=graph.ca_path)
    write_config(sig_init, {"ms-graph": entry})
    oauth.token_lifetime = 8  # short, so the test sees a renewal

    login = sig_init.popen("login", "ms-graph")
    code = read_stderr_until(login, "enter the code:")
    oauth.approve_device(code)
    result = sig_init.finish(login, timeout=60)
    assert result.code == 0, result.err
    assert oauth.count("urn:ietf:params:oauth:grant-type:device_code") >= 1

    env = {"GRAPH_BASE_URL": graph.url + "/v1.0"}
    first = run_helper(sig_init, SCRIPT, "me", env=env)
    assert first.code == 0 and first.data["displayName"] == "Alex Agent", first.out + first.err

    deadline = time.monotonic() + 30  # wait until sig itself says the access token has expired
    while json.loads(sig_init("status", "ms-graph", "--format", "json", check=0).out)["valid"]:
        assert time.monotonic() < deadline, "the access token never expired"
        time.sleep(0.5)
    status = json.loads(sig_init("status", "ms-graph", "--format", "json", check=0).out)
    assert status["renewable"] is True

    second = run_helper(sig_init, SCRIPT, "list", "--limit", "1", env=env)
    assert second.code == 0, second.out + second.err  # no login needed: sig used the refresh token
    assert oauth.count("refresh_token") >= 1
    tokens = [r.headers["authorization"] for r in graph.requests]
    assert tokens[0] != tokens[-1]  # the renewed token, not the expired one
    for outcome in (first, second):
        assert_secret_free(outcome, *(t.split(" ", 1)[1] for t in tokens))
