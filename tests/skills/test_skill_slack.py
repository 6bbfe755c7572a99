"""The slack skill's helper (skills/slack/scripts/slack.py) against a Slack Web API stand-in on 127.0.0.1
(HTTPS). The template's app-slack provider (hosts moved to the stand-in) holds the browser session: the
`d` cookie and the xoxc token; the stand-in answers like Slack (HTTP 200, {"ok": false, "error":
"invalid_auth"}) unless both arrive."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from skill_setup import SKILLS, assert_secret_free, local_provider, login_prompt, run_helper, write_config
from skill_standins import SLACK_TEAM, SlackApp, StandIn

from harness.sigproc import Sig

SCRIPT = SKILLS / "slack" / "scripts" / "slack.py"
D_COOKIE = "xoxd-session%2Bcookie%3D%3D-9a8b7c"
XOXC = "xoxc-1111-2222-3333-secret-4f5e"


@pytest.fixture
def api() -> Iterator[StandIn]:
    with StandIn(SlackApp(D_COOKIE, XOXC)) as server:
        yield server


def configure(sig: Sig, api: StandIn, cookie: str, token: str) -> None:
    write_config(sig, {"app-slack": local_provider("app-slack", api.url, api.ca_path)})
    login_prompt(sig, "app-slack", cookie, token)


@pytest.fixture
def ready(sig_init: Sig, api: StandIn) -> Sig:
    configure(sig_init, api, f"b=browser1; d={D_COOKIE}; lc=1712000000", XOXC)
    return sig_init


def slack(sig: Sig, api: StandIn, *args: str, **kw: object):
    env = {"SLACK_API_BASE_URL": api.url + "/api", **kw.pop("env", {})}  # type: ignore[dict-item]
    outcome = run_helper(sig, SCRIPT, *args, env=env, **kw)  # type: ignore[arg-type]
    assert_secret_free(outcome, D_COOKIE, XOXC)
    return outcome


def fake(api: StandIn) -> SlackApp:
    return api.app  # type: ignore[return-value]


def test_whoami_sends_the_whole_browser_session(ready: Sig, api: StandIn) -> None:
    result = slack(ready, api, "whoami")
    assert result.code == 0, result.out + result.err
    assert result.data == {"user": "alex", "userId": "U0000ALEX", "team": "Acme", "teamId": SLACK_TEAM,
                           "url": "https://acme.slack.com/", "enterpriseId": None}
    (request,) = api.requests
    assert request.method == "POST" and request.path == "/api/auth.test"
    assert f"d={D_COOKIE}" in request.headers["cookie"]
    assert request.headers["authorization"] == f"Bearer {XOXC}"


def test_channels_pages_and_filters(ready: Sig, api: StandIn) -> None:
    result = slack(ready, api, "channels", "--limit", "3")
    assert result.code == 0, result.out
    assert [c["name"] for c in result.data["channels"]] == ["general", "random", "eng-backend"]
    eng = slack(ready, api, "channels", "--query", "ENG").data
    assert [(c["name"], c["type"]) for c in eng["channels"]] == [("eng-backend", "public"), ("eng-secret", "private")]
    member = slack(ready, api, "channels", "--member", "--types", "public_channel").data
    assert [c["name"] for c in member["channels"]] == ["general", "random", "ops"]


def test_history_resolves_names_and_markup(ready: Sig, api: StandIn) -> None:
    result = slack(ready, api, "history", "#general", "--since", "1d")
    assert result.code == 0, result.out
    (msg,) = result.data["messages"]  # the join is activity; the 3-day-old one is before --since
    assert msg["text"] == "Deploy done <3 @Bob Builder see the run (https://ci.example.com/1) in #ops"
    assert msg["userName"] == "Jane" and msg["reactions"] == [{"name": "tada", "count": 2}] and msg["replies"] == 1
    history = next(r for r in api.requests if r.path == "/api/conversations.history")
    assert history.form()["channel"] == "C000000000" and float(history.form()["oldest"]) > 0
    everything = slack(ready, api, "history", "C000000000", "--include-activity", "--no-names").data
    assert len(everything["messages"]) == 3 and everything["messages"][0]["userName"] is None
    missing = slack(ready, api, "history", "#no-such-channel")
    assert missing.code == 1 and missing.data["error"] == "NOT_FOUND"


def test_thread_and_search(ready: Sig, api: StandIn) -> None:
    parent = slack(ready, api, "history", "#general", "--limit", "1").data["messages"][0]
    thread = slack(ready, api, "thread", "#general", parent["ts"])
    assert thread.code == 0, thread.out
    assert [m["text"] for m in thread.data["messages"]][1:] == ["nice"]
    bad_ts = slack(ready, api, "thread", "#general", "yesterday")
    assert bad_ts.code == 1 and bad_ts.data["error"] == "USAGE_ERROR"
    found = slack(ready, api, "search", "deploy in:#ops")
    assert found.code == 0, found.out
    assert found.data["total"] == 1 and found.data["matches"][0]["channelName"] == "ops"
    assert found.data["matches"][0]["permalink"].startswith("https://acme.slack.com/archives/")


def test_send_to_channels_people_and_threads(ready: Sig, api: StandIn) -> None:
    posted = fake(api).posted
    sent = slack(ready, api, "send", "#ops", "--message", "Deployed *v2*")
    assert sent.code == 0, sent.out
    assert posted[0]["channel"] == "C000000004" and posted[0]["text"] == "Deployed *v2*"
    dm = slack(ready, api, "send", "@jane", "--message", "hi")
    assert dm.code == 0 and posted[1]["channel"] == "D0000JANE"
    by_mail = slack(ready, api, "send", "bob@example.com", "--message-file", "-", "--thread", "1712345678.000100",
                    stdin="in thread")
    assert by_mail.code == 0, by_mail.out
    assert posted[2]["channel"] == "D0000BOBB" and posted[2]["thread_ts"] == "1712345678.000100"
    ambiguous = slack(ready, api, "send", "@e", "--message", "x")  # alex, jane, bob builder
    assert ambiguous.code == 1 and ambiguous.data["error"] == "AMBIGUOUS"


def test_reactions_and_users(ready: Sig, api: StandIn) -> None:
    ts = "1712345678.000100"
    added = slack(ready, api, "react", "#general", ts, ":thumbsup:")
    assert added.code == 0 and added.data["changed"] is True
    assert ("C000000000", ts, "thumbsup") in fake(api).reactions
    again = slack(ready, api, "react", "#general", ts, "thumbsup")
    assert again.code == 0 and again.data["changed"] is False  # already_reacted is not a failure
    removed = slack(ready, api, "react", "#general", ts, "thumbsup", "--remove")
    assert removed.data["changed"] is True and not fake(api).reactions
    users = slack(ready, api, "users", "jane")
    assert [u["id"] for u in users.data["users"]] == ["U0000JANE"]  # the deleted "Jane Gone" is left out
    assert users.data["users"][0]["email"] == "jane@example.com"


@pytest.mark.parametrize(("cookie", "token"), [
    ("d=xoxd-an-old-session-cookie", XOXC),   # the cookie expired: the token alone is not enough
    (f"d={D_COOKIE}", "xoxc-revoked-token-0000"),
])
def test_an_incomplete_session_means_log_in_again(sig_init: Sig, api: StandIn, cookie: str, token: str) -> None:
    configure(sig_init, api, cookie, token)
    result = slack(sig_init, api, "whoami")
    assert result.code == 3 and result.data["error"] == "AUTH_REQUIRED", result.out
    assert "sig login app-slack" in result.data["hint"]
    assert_secret_free(result, cookie, token)


def test_sig_errors_keep_their_exit_codes(ready: Sig, api: StandIn) -> None:
    missing = slack(ready, api, "whoami", "--provider", "other-slack")
    assert missing.code == 2 and missing.data["error"] == "PROVIDER_NOT_FOUND"
    ready("logout", "app-slack", check=0)
    result = slack(ready, api, "channels")
    assert result.code == 3 and result.data["sigCode"] == "CREDENTIAL_NOT_FOUND"
    assert api.requests == []
