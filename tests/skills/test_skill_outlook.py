"""The outlook skill's helper (skills/outlook/scripts/outlook.py) against a Microsoft Graph stand-in on
127.0.0.1 (HTTPS). The credential is stored with the real `sig login` for the template's ms-graph provider
(hosts moved to the stand-in); the helper reaches it only through `sig request`."""

from __future__ import annotations

import base64
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from skill_setup import SKILLS, assert_secret_free, local_provider, login_prompt, run_helper, write_config
from skill_standins import MSG_IDS, PROJECTS_ID, GraphApp, StandIn

from harness.sigproc import Sig

SCRIPT = SKILLS / "outlook" / "scripts" / "outlook.py"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOi.graph-secret-token-8d1f"


@pytest.fixture
def graph() -> Iterator[StandIn]:
    with StandIn(GraphApp(TOKEN)) as server:
        yield server


@pytest.fixture
def ready(sig_init: Sig, graph: StandIn) -> Sig:
    write_config(sig_init, {"ms-graph": local_provider("ms-graph", graph.url, graph.ca_path)})
    login_prompt(sig_init, "ms-graph", TOKEN)
    return sig_init


def outlook(sig: Sig, graph: StandIn, *args: str, **kw: object):
    env = {"GRAPH_BASE_URL": graph.url + "/v1.0", **kw.pop("env", {})}  # type: ignore[dict-item]
    outcome = run_helper(sig, SCRIPT, *args, env=env, **kw)  # type: ignore[arg-type]
    assert_secret_free(outcome, TOKEN)
    return outcome


def app(graph: StandIn) -> GraphApp:
    return graph.app  # type: ignore[return-value]


def test_me_goes_through_sig_with_the_stored_token(ready: Sig, graph: StandIn) -> None:
    result = outlook(ready, graph, "me")
    assert result.code == 0, result.out + result.err
    assert result.data["displayName"] == "Alex Agent" and result.data["mail"] == "alex@example.com"
    (request,) = graph.requests
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["user-agent"].startswith("sig/")  # sent by sig, not by the script
    assert request.path == "/v1.0/me"


def test_list_follows_next_links_and_filters(ready: Sig, graph: StandIn) -> None:
    result = outlook(ready, graph, "list", "--limit", "3")
    assert result.code == 0, result.out
    data = result.data
    assert [m["subject"] for m in data["messages"]] == ["Quarterly report", "Lunch?", "Re: report draft"]
    assert data["more"] is False and data["messages"][0]["from"] == "Jane Doe <jane@example.com>"
    assert len(graph.requests) == 2  # the stand-in pages by 2: the helper followed @odata.nextLink

    unread = outlook(ready, graph, "list", "--unread").data
    assert [m["id"] for m in unread["messages"]] == [MSG_IDS[0]] and unread["messages"][0]["isRead"] is False
    since = outlook(ready, graph, "list", "--since", "2026-04-02T00:00:00Z", "--from", "jane@example.com").data
    assert [m["subject"] for m in since["messages"]] == ["Quarterly report"]
    limited = outlook(ready, graph, "list", "--limit", "1").data
    assert limited["count"] == 1 and limited["more"] is True


def test_read_escapes_ids_and_asks_for_text(ready: Sig, graph: StandIn) -> None:
    result = outlook(ready, graph, "read", MSG_IDS[0])  # the id holds '+', '/' and '='
    assert result.code == 0, result.out
    assert result.data["body"] == "Numbers attached." and result.data["bodyType"] == "text"
    html = outlook(ready, graph, "read", MSG_IDS[0], "--html").data
    assert html["bodyType"] == "html" and "<p>Numbers attached.</p>" in html["body"]
    missing = outlook(ready, graph, "read", "AAMkNope")
    assert missing.code == 1 and missing.data["error"] == "NOT_FOUND"
    assert "ErrorItemNotFound" in missing.data["message"]


def test_search_uses_graph_search_syntax(ready: Sig, graph: StandIn) -> None:
    result = outlook(ready, graph, "search", "from:jane@example.com report")
    assert result.code == 0, result.out
    assert sorted(m["subject"] for m in result.data["messages"]) == ["Quarterly report", "Re: report draft"]
    assert graph.requests[0].arg("$search") == '"from:jane@example.com report"'


def test_folders_and_folder_names(ready: Sig, graph: StandIn) -> None:
    folders = outlook(ready, graph, "folders", "--children").data
    assert {"Inbox", "Drafts", "Projects", "Receipts"} <= {f["name"] for f in folders["folders"]}
    projects = outlook(ready, graph, "list", "--folder", "Projects")
    assert projects.code == 0 and projects.data["count"] == 0
    assert any(r.path.endswith("/messages") and quote(PROJECTS_ID, safe="") in r.path for r in graph.requests)
    nope = outlook(ready, graph, "list", "--folder", "No Such Folder")
    assert nope.code == 1 and nope.data["error"] == "NOT_FOUND" and "folders" in nope.data["hint"]


def test_compose_reply_forward(ready: Sig, graph: StandIn) -> None:
    fake = app(graph)
    draft = outlook(ready, graph, "draft", "--to", "Jane Doe <jane@example.com>, bob@example.com",
                    "--subject", "Plan", "--body", "Draft text")
    assert draft.code == 0, draft.out
    assert draft.data["draft"] is True and draft.data["webLink"].startswith("https://outlook.office365.com/")
    stored = fake.drafts[draft.data["id"]]
    assert stored["toRecipients"] == [{"emailAddress": {"address": "jane@example.com", "name": "Jane Doe"}},
                                      {"emailAddress": {"address": "bob@example.com"}}]
    assert stored["body"] == {"contentType": "Text", "content": "Draft text"} and fake.sent == []

    assert outlook(ready, graph, "send-draft", draft.data["id"]).data == {"sent": True, "id": draft.data["id"]}
    sent = outlook(ready, graph, "send", "--to", "bob@example.com", "--subject", "Now", "--body-file", "-",
                   "--html", stdin="<b>hello</b>")
    assert sent.code == 0 and sent.data["sent"] is True
    assert fake.sent[-1]["message"]["body"] == {"contentType": "HTML", "content": "<b>hello</b>"}
    assert fake.sent[-1]["saveToSentItems"] is True

    reply = outlook(ready, graph, "reply", MSG_IDS[0], "--body", "Thanks")
    assert reply.data["draft"] is True and reply.data["subject"] == "RE: Quarterly report"
    assert len(fake.sent) == 2  # a reply draft sends nothing
    outlook(ready, graph, "reply", MSG_IDS[0], "--body", "All: ok", "--all", "--send")
    assert fake.sent[-1] == {"kind": "replyAll", "id": MSG_IDS[0], "comment": "All: ok"}
    forward = outlook(ready, graph, "forward", MSG_IDS[1], "--to", "eve@example.com", "--body", "FYI", "--send")
    assert forward.data == {"sent": True, "action": "forward", "inReplyTo": MSG_IDS[1]}
    assert fake.sent[-1]["toRecipients"] == [{"emailAddress": {"address": "eve@example.com"}}]

    bad = outlook(ready, graph, "draft", "--to", "not-an-address", "--subject", "x", "--body", "y")
    assert bad.code == 1 and bad.data["error"] == "USAGE_ERROR"


def test_move_delete_mark(ready: Sig, graph: StandIn) -> None:
    fake = app(graph)
    moved = outlook(ready, graph, "move", MSG_IDS[1], "--folder", "archive")
    assert moved.code == 0 and moved.data["moved"] is True
    deleted = outlook(ready, graph, "delete", MSG_IDS[2])
    assert deleted.code == 0 and deleted.data["folder"] == "deleteditems"
    assert fake.moves == [(MSG_IDS[1], "archive"), (MSG_IDS[2], "deleteditems")]
    marked = outlook(ready, graph, "mark", MSG_IDS[0], "--read", "--flag")
    assert marked.code == 0 and marked.data["isRead"] is True and marked.data["flagged"] is True
    assert fake.patches == [(MSG_IDS[0], {"isRead": True, "flag": {"flagStatus": "flagged"}})]
    nothing = outlook(ready, graph, "mark", MSG_IDS[0])
    assert nothing.code == 1 and nothing.data["error"] == "USAGE_ERROR"


def test_attachments_are_saved_safely(ready: Sig, graph: StandIn, tmp_path: Path) -> None:
    listed = outlook(ready, graph, "attachments", MSG_IDS[0]).data
    assert listed["attachments"][0]["name"] == "../report.pdf" and listed["attachments"][0]["kind"] == "fileAttachment"
    out = tmp_path / "downloads"
    out.mkdir()
    first = outlook(ready, graph, "download", MSG_IDS[0], "att/1=", "--out", str(out))
    assert first.code == 0, first.out
    saved = Path(first.data["saved"])
    assert saved == out / "report.pdf"  # the "../" in the name does not escape the folder
    assert saved.read_bytes() == app(graph).attachment and stat.S_IMODE(saved.stat().st_mode) == 0o600
    second = outlook(ready, graph, "download", MSG_IDS[0], "att/1=", "--out", str(out))
    assert Path(second.data["saved"]) == out / "report (1).pdf"
    assert base64.b64encode(app(graph).attachment).decode() not in first.out


def test_rate_limit_is_retried_once(ready: Sig, graph: StandIn) -> None:
    app(graph).throttle = 1
    result = outlook(ready, graph, "me")
    assert result.code == 0, result.out
    assert len(graph.requests) == 2
    app(graph).throttle = 2
    again = outlook(ready, graph, "me")
    assert again.code == 1 and again.data["error"] == "RATE_LIMITED"


def test_a_refused_token_means_log_in_again(sig_init: Sig, graph: StandIn) -> None:
    write_config(sig_init, {"ms-graph": local_provider("ms-graph", graph.url, graph.ca_path)})
    login_prompt(sig_init, "ms-graph", "an-old-revoked-token-1234")
    result = outlook(sig_init, graph, "me")
    assert result.code == 3 and result.data["error"] == "AUTH_REQUIRED"
    assert "sig login ms-graph" in result.data["hint"]
    assert graph.requests[0].headers["authorization"] == "Bearer an-old-revoked-token-1234"
    assert_secret_free(result, "an-old-revoked-token-1234")


def test_sig_errors_keep_their_exit_codes(ready: Sig, graph: StandIn) -> None:
    missing = outlook(ready, graph, "me", "--provider", "no-such-provider")
    assert missing.code == 2 and missing.data["error"] == "PROVIDER_NOT_FOUND"
    ready("logout", "ms-graph", check=0)
    logged_out = outlook(ready, graph, "me")
    assert logged_out.code == 3 and logged_out.data["sigCode"] == "CREDENTIAL_NOT_FOUND"
    assert graph.requests == []  # sig refused before any request
    no_sig = outlook(ready, graph, "me", env={"SIG_BIN": "/nonexistent/sig"})
    assert no_sig.code == 1 and no_sig.data["error"] == "SIG_NOT_FOUND"
    elsewhere = outlook(ready, graph, "me", env={"GRAPH_BASE_URL": "https://127.0.0.1:1/v1.0"})
    assert elsewhere.code == 1 and elsewhere.data["error"] == "SIG_ERROR"  # sig will not send it to another port
    assert "refusing" in elsewhere.data["message"]
    usage = outlook(ready, graph, "list", "--limit", "0")
    assert usage.code == 1 and usage.data["error"] == "USAGE_ERROR"
    argparse_usage = outlook(ready, graph, "list", "--bogus")
    assert argparse_usage.code == 1 and argparse_usage.data["error"] == "USAGE_ERROR"


def test_works_for_an_agent(ready: Sig, graph: StandIn) -> None:
    """Agents run sig with its agent markers set; the helper needs nothing sig refuses them."""
    result = outlook(ready, graph, "me", env={"SIG_AGENT": "1", "CLAUDECODE": "1"})
    assert result.code == 0, result.out + result.err
