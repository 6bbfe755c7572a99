"""The config template's browser providers, used as written (only their hosts moved to 127.0.0.1): real
`sig login --mode headless` in Debian Chromium against stand-in web apps that hold tokens the way Teams
(MSAL cache in localStorage) and Slack (`d` cookie + localConfig_v2) do, then each skill's helper calls
the stand-in APIs with what sig captured."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import datetime

import pytest
from skill_setup import SKILLS, assert_secret_free, local_provider, run_helper, write_config
from skill_standins import (
    SLACK_TEAM,
    GraphApp,
    MultiApp,
    SlackApp,
    SlackWebApp,
    StandIn,
    TeamsChatApp,
    TeamsWebApp,
)

from harness.sigproc import Sig

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium/Chrome installed (apt-get install chromium)"),
    pytest.mark.timeout(180),
]

GRAPH_TOKEN = "eyJ.browser-graph-token-61c2"
CHAT_TOKEN = "eyJ.browser-ic3-token-94ad"
D_COOKIE = "xoxd-browser-session-cookie-7d1e"
XOXC = "xoxc-9999-8888-browser-token-2b3c"


def browser_config(sig: Sig) -> dict[str, object]:
    return {"execPath": CHROMIUM, "adapter": "cdp", "browserDataDir": str(sig.home / "browser-data"),
            "headlessTimeout": 20000, "visibleTimeout": 30000}


@pytest.fixture
def microsoft() -> Iterator[StandIn]:
    web = TeamsWebApp(GRAPH_TOKEN, CHAT_TOKEN)
    app = MultiApp({"/v2": web, "/v1.0/": GraphApp(GRAPH_TOKEN), "/api/": TeamsChatApp(CHAT_TOKEN, "emea")})
    with StandIn(app, tls=False) as server:  # http on loopback: Chromium need not trust a test CA
        yield server


@pytest.fixture
def slack_site() -> Iterator[StandIn]:
    app = MultiApp({"/client/": SlackWebApp(D_COOKIE, XOXC), "/api/": SlackApp(D_COOKIE, XOXC)})
    with StandIn(app, tls=False) as server:
        yield server


def status(sig: Sig, pid: str) -> dict[str, object]:
    data = sig("status", pid, "--format", "json", check=0).json()
    return data[0] if isinstance(data, list) else data


def test_teams_web_login_feeds_the_outlook_and_msteams_helpers(sig_init: Sig, microsoft: StandIn) -> None:
    write_config(sig_init, {pid: local_provider(pid, microsoft.url, None, prompt=False)
                            for pid in ("ms-teams", "ms-graph")}, browser_config(sig_init))
    for pid in ("ms-teams", "ms-graph"):
        result = sig_init("login", pid, "--mode", "headless", timeout=120)
        assert result.code == 0, result.out + result.err
        state = status(sig_init, pid)
        assert state["valid"] is True
        # the expiry is the token's own (expiresOn), not the template's 1h ttl
        expires = datetime.fromisoformat(str(state["expiresAt"]).replace("Z", "+00:00")).timestamp()
        assert abs(expires - microsoft.app.routes["/v2"].expires_on) < 5  # type: ignore[attr-defined]
    sig_init.assert_no_secret(GRAPH_TOKEN, CHAT_TOKEN)
    microsoft.clear()

    env = {"GRAPH_BASE_URL": microsoft.url + "/v1.0",
           "TEAMS_CHAT_BASE_URL": microsoft.url + "/api/chatsvc/{region}/v1", "TEAMS_REGION": "emea"}
    mail = run_helper(sig_init, SKILLS / "outlook" / "scripts" / "outlook.py", "me", env=env)
    assert mail.code == 0 and mail.data["mail"] == "alex@example.com", mail.out + mail.err
    chats = run_helper(sig_init, SKILLS / "msteams" / "scripts" / "teams.py", "conversations", "--limit", "1", env=env)
    assert chats.code == 0 and chats.data["conversations"][0]["topic"] == "Daily standup", chats.out
    for outcome in (mail, chats):
        assert_secret_free(outcome, GRAPH_TOKEN, CHAT_TOKEN)
    seen = {r.path.split("/")[1]: r.headers["authorization"] for r in microsoft.requests}
    assert seen == {"v1.0": f"Bearer {GRAPH_TOKEN}", "api": f"Bearer {CHAT_TOKEN}"}  # the decoys were not taken


def test_slack_web_login_feeds_the_slack_helper(sig_init: Sig, slack_site: StandIn) -> None:
    entry = local_provider("app-slack", slack_site.url, None, prompt=False)
    # The person's team id goes where the template says T00000000.
    entry = json.loads(json.dumps(entry).replace("T00000000", SLACK_TEAM))
    write_config(sig_init, {"app-slack": entry}, browser_config(sig_init))
    result = sig_init("login", "app-slack", "--mode", "headless", timeout=120)
    assert result.code == 0, result.out + result.err
    assert status(sig_init, "app-slack")["valid"] is True
    probe = [r for r in slack_site.requests if r.path == "/api/auth.test"]
    assert probe, "the template's validateUrl was not probed"
    slack_site.clear()

    whoami = run_helper(sig_init, SKILLS / "slack" / "scripts" / "slack.py", "whoami",
                        env={"SLACK_API_BASE_URL": slack_site.url + "/api"})
    assert whoami.code == 0 and whoami.data["teamId"] == SLACK_TEAM, whoami.out + whoami.err
    assert_secret_free(whoami, D_COOKIE, XOXC)
    (request,) = slack_site.requests
    assert f"d={D_COOKIE}" in request.headers["cookie"] and request.headers["authorization"] == f"Bearer {XOXC}"
    sig_init.assert_no_secret(D_COOKIE, XOXC)
