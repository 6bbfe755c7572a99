"""The msteams skill's helper (skills/msteams/scripts/teams.py) against one HTTPS stand-in on 127.0.0.1
serving both the Teams Chat API (/api/chatsvc/emea/v1/...) and Microsoft Graph (/v1.0/...). Each API
accepts only its own token, so every call must go through the right sig provider (ms-teams or ms-graph,
both made from the config template)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from skill_setup import SKILLS, assert_secret_free, local_provider, login_prompt, run_helper, write_config
from skill_standins import GraphApp, MultiApp, StandIn, TeamsChatApp

from harness.sigproc import Sig

SCRIPT = SKILLS / "msteams" / "scripts" / "teams.py"
CHAT_TOKEN = "eyJ.ic3-chat-secret-token-5b7c"
GRAPH_TOKEN = "eyJ.graph-secret-token-0e2a"


@pytest.fixture
def api() -> Iterator[StandIn]:
    app = MultiApp({"/v1.0/": GraphApp(GRAPH_TOKEN), "/api/": TeamsChatApp(CHAT_TOKEN, region="emea")})
    with StandIn(app) as server:
        yield server


@pytest.fixture
def ready(sig_init: Sig, api: StandIn) -> Sig:
    write_config(sig_init, {"ms-teams": local_provider("ms-teams", api.url, api.ca_path),
                            "ms-graph": local_provider("ms-graph", api.url, api.ca_path)})
    login_prompt(sig_init, "ms-teams", CHAT_TOKEN)
    login_prompt(sig_init, "ms-graph", GRAPH_TOKEN)
    return sig_init


def teams(sig: Sig, api: StandIn, *args: str, **kw: object):
    env = {"GRAPH_BASE_URL": api.url + "/v1.0", "TEAMS_CHAT_BASE_URL": api.url + "/api/chatsvc/{region}/v1",
           "TEAMS_REGION": "emea", **kw.pop("env", {})}  # type: ignore[dict-item]
    outcome = run_helper(sig, SCRIPT, *args, env=env, **kw)  # type: ignore[arg-type]
    assert_secret_free(outcome, CHAT_TOKEN, GRAPH_TOKEN)
    return outcome


def chat_app(api: StandIn) -> TeamsChatApp:
    return api.app.routes["/api/"]  # type: ignore[attr-defined, no-any-return]


def tokens_seen(api: StandIn, prefix: str) -> set[str]:
    return {r.headers.get("authorization", "") for r in api.requests if r.path.startswith(prefix)}


def test_conversations_follow_pages_and_skip_system_threads(ready: Sig, api: StandIn) -> None:
    result = teams(ready, api, "conversations")
    assert result.code == 0, result.out + result.err
    convs = result.data["conversations"]
    assert [c["id"] for c in convs] == ["19:standup@thread.v2", "19:u1_u2@unq.gbl.spaces", "19:design@thread.v2"]
    assert convs[0]["topic"] == "Daily standup" and convs[0]["lastMessage"] == "Shipping & testing"
    assert convs[1]["type"] == "oneOnOne"
    assert len(api.requests) == 2  # pages of 2: the helper followed _metadata.backwardLink
    assert tokens_seen(api, "/api/") == {f"Bearer {CHAT_TOKEN}"}

    found = teams(ready, api, "conversations", "--search", "STANDUP").data
    assert [c["topic"] for c in found["conversations"]] == ["Daily standup"]
    recent = teams(ready, api, "conversations", "--since", "2026-04-01T00:00:00Z").data
    assert "19:design@thread.v2" not in [c["id"] for c in recent["conversations"]]


def test_messages_are_readable_text(ready: Sig, api: StandIn) -> None:
    result = teams(ready, api, "messages", "19:standup@thread.v2", "--limit", "5")
    assert result.code == 0, result.out
    messages = result.data["messages"]
    assert [m["id"] for m in messages] == ["1712300000003", "1712300000001"]  # the system message is left out
    assert messages[0]["content"] == "Deploy done\nall green" and messages[0]["sender"] == "Jane Doe"
    assert messages[0]["senderId"] == "8:orgid:0003"
    assert api.requests[0].path == "/api/chatsvc/emea/v1/users/ME/conversations/19%3Astandup%40thread.v2/messages"
    everything = teams(ready, api, "messages", "19:standup@thread.v2", "--all-types").data
    assert len(everything["messages"]) == 3
    search = teams(ready, api, "messages", "19:standup@thread.v2", "--search", "deploy").data
    assert search["count"] == 2
    missing = teams(ready, api, "messages", "19:nope@thread.v2")
    assert missing.code == 1 and missing.data["error"] == "NOT_FOUND"


def test_send_and_reply(ready: Sig, api: StandIn) -> None:
    fake = chat_app(api)
    sent = teams(ready, api, "send", "19:standup@thread.v2", "--message", "a < b\nsecond line")
    assert sent.code == 0, sent.out
    assert sent.data["sent"] is True and sent.data["messageId"] == "1712300000100"
    assert fake.posted[0]["content"] == "a &lt; b<br>second line"
    assert fake.posted[0]["messagetype"] == "RichText/Html" and fake.posted[0]["parent"] is None
    assert fake.posted[0]["clientmessageid"].isdigit()
    reply = teams(ready, api, "send", "19:standup@thread.v2", "--message-file", "-", "--format", "text",
                  "--reply-to", "1712300000001", stdin="thread reply")
    assert reply.code == 0, reply.out
    assert fake.posted[1] == {**fake.posted[1], "parent": "1712300000001", "messagetype": "Text",
                              "content": "thread reply"}
    empty = teams(ready, api, "send", "19:standup@thread.v2", "--message", "  ")
    assert empty.code == 1 and empty.data["error"] == "USAGE_ERROR"


def test_wrong_region_says_so(ready: Sig, api: StandIn) -> None:
    result = teams(ready, api, "conversations", "--region", "amer")
    assert result.code == 1 and result.data["error"] == "NOT_FOUND" and "region" in result.data["hint"]
    assert api.requests[0].path.startswith("/api/chatsvc/amer/")


def test_people_manager_reports_calendar_use_graph(ready: Sig, api: StandIn) -> None:
    me = teams(ready, api, "me")
    assert me.code == 0 and me.data["name"] == "Alex Agent"
    people = teams(ready, api, "people", "jan")
    assert people.code == 0, people.out
    assert [p["mail"] for p in people.data["people"]] == ["jane@example.com", "janet@example.com"]
    users_request = next(r for r in api.requests if r.path == "/v1.0/users")
    assert users_request.headers["consistencylevel"] == "eventual"
    assert teams(ready, api, "manager").data["manager"]["name"] == "Mia Manager"
    assert teams(ready, api, "manager", "bob@example.com").data == {"user": "bob@example.com", "manager": None}
    assert [r["name"] for r in teams(ready, api, "reports").data["reports"]] == ["Rob Report"]
    calendar = teams(ready, api, "calendar", "--range", "week")
    assert calendar.code == 0, calendar.out
    event = calendar.data["events"][0]
    assert event["subject"] == "Standup" and event["joinUrl"].startswith("https://teams.microsoft.com/")
    assert event["organizer"] == "Mia Manager <mia@example.com>"
    window = teams(ready, api, "calendar", "--start", "2026-04-03T00:00:00Z", "--end", "2026-04-04T00:00:00Z").data
    assert (window["start"], window["end"]) == ("2026-04-03T00:00:00Z", "2026-04-04T00:00:00Z")
    assert tokens_seen(api, "/v1.0/") == {f"Bearer {GRAPH_TOKEN}"}


def test_each_provider_logs_in_on_its_own(ready: Sig, api: StandIn) -> None:
    ready("logout", "ms-teams", check=0)
    chat = teams(ready, api, "conversations")
    assert chat.code == 3 and chat.data["error"] == "AUTH_REQUIRED" and "sig login ms-teams" in chat.data["hint"]
    assert teams(ready, api, "me").code == 0  # Graph still has its own credential
    gone = teams(ready, api, "people", "jane", "--graph-provider", "missing")
    assert gone.code == 2 and gone.data["error"] == "PROVIDER_NOT_FOUND"


def test_an_expired_chat_token_means_log_in_again(sig_init: Sig, api: StandIn) -> None:
    write_config(sig_init, {"ms-teams": local_provider("ms-teams", api.url, api.ca_path)})
    login_prompt(sig_init, "ms-teams", "an-expired-chat-token-77")
    result = teams(sig_init, api, "messages", "19:standup@thread.v2")
    assert result.code == 3 and result.data["error"] == "AUTH_REQUIRED"
    assert_secret_free(result, "an-expired-chat-token-77")
