"""Tests for jira-issues/scripts/jira_issues.py: URL building, paging, parsing, both transports, and one
end-to-end run through a real `sig` against a loopback Jira stand-in (skipped when sig is not installed)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "jira_issues.py"


def _load():
    spec = importlib.util.spec_from_file_location("jira_issues", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["jira_issues"] = module
    spec.loader.exec_module(module)
    return module


ji = _load()
BASE = "https://jira.example.com"


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def issue(key: str, n: int = 0, **fields) -> dict:
    base = {
        "summary": f"Summary {key}",
        "status": {"name": "In Progress", "statusCategory": {"key": "indeterminate", "name": "In Progress"}},
        "issuetype": {"name": "Bug"},
        "priority": {"name": "High"},
        "assignee": {"displayName": "Alice Doe", "name": "alice"},
        "reporter": {"displayName": "Bob Roe"},
        "created": "2024-05-01T10:00:00.000+0000",
        "updated": "2024-05-02T11:00:00.000+0000",
    }
    base.update(fields)
    return {"id": str(10000 + n), "key": key, "self": f"{BASE}/rest/api/2/issue/{10000 + n}", "fields": base}


class FakeTransport:
    """Records every URL; answers with `handler(url)`."""

    def __init__(self, handler):
        self.handler = handler
        self.urls: list[str] = []

    def get_json(self, url: str):
        self.urls.append(url)
        return self.handler(url)


def paged_server(total: int, cap: int = 100):
    """A v2 search endpoint with `total` issues that returns at most `cap` per page."""

    def handler(url: str):
        q = query(url)
        start, size = int(q["startAt"]), min(int(q["maxResults"]), cap)
        keys = [f"ABC-{i + 1}" for i in range(start, min(start + size, total))]
        return {"startAt": start, "maxResults": size, "total": total,
                "issues": [issue(k, i) for i, k in enumerate(keys)]}

    return handler


# -- URL building ---------------------------------------------------------------------------------------
class TestUrls:
    def test_search_url_v2_encodes_jql_and_paging(self):
        jql = 'project = "A&B" AND summary ~ "x=1 ü" ORDER BY updated DESC'
        url = ji.search_url(BASE + "/", jql, start_at=100, max_results=20, fields=["summary", "status"])
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc, parts.path) == ("https", "jira.example.com", "/rest/api/2/search")
        assert query(url) == {"jql": jql, "startAt": "100", "maxResults": "20", "fields": "summary,status"}
        assert "%20" in parts.query and "+" not in parts.query  # spaces as %20, never "+"
        assert "%26" in parts.query  # the "&" inside the JQL does not split the query

    def test_search_url_v3_uses_search_jql_and_page_token(self):
        url = ji.search_url(BASE, "project = ABC", start_at=50, max_results=10, api_version="3",
                            next_page_token="tok/en==")
        assert urlsplit(url).path == "/rest/api/3/search/jql"
        q = query(url)
        assert q["nextPageToken"] == "tok/en==" and "startAt" not in q and q["maxResults"] == "10"

    @pytest.mark.parametrize(("given", "expected"), [
        ("https://jira.example.com", "https://jira.example.com"),
        ("https://jira.example.com/", "https://jira.example.com"),
        ("  https://example.com/jira/  ", "https://example.com/jira"),
        ("https://example.com/jira/rest/api/2", "https://example.com/jira"),
        ("http://127.0.0.1:8080/rest/api/latest/", "http://127.0.0.1:8080"),
    ])
    def test_base_url_normalised(self, given, expected):
        assert ji.normalize_base_url(given) == expected

    def test_context_path_is_kept_in_every_url(self):
        assert ji.issue_url("https://example.com/jira/", "abc-7") == "https://example.com/jira/rest/api/2/issue/ABC-7"
        assert urlsplit(ji.search_url("https://example.com/jira", "x")).path == "/jira/rest/api/2/search"
        assert ji.browse_url("https://example.com/jira/", "ABC-7") == "https://example.com/jira/browse/ABC-7"

    @pytest.mark.parametrize("bad", ["", "jira.example.com", "ftp://jira.example.com", "https://x.com/?a=1"])
    def test_bad_base_url_refused(self, bad):
        with pytest.raises(ji.JiraError) as info:
            ji.normalize_base_url(bad)
        assert info.value.code == "USAGE_ERROR"

    @pytest.mark.parametrize("bad", ["", "ABC", "ABC-0", "ABC-1/comment", "../ABC-1", "ABC-1?x=1", "1ABC-2", "A B-1"])
    def test_bad_issue_key_refused(self, bad):
        with pytest.raises(ji.JiraError) as info:
            ji.issue_url(BASE, bad)
        assert info.value.code == "USAGE_ERROR"

    def test_bad_field_name_refused(self):
        with pytest.raises(ji.JiraError):
            ji.search_url(BASE, "x", fields=["summary", "status&jql=evil"])

    def test_build_jql_from_filters_quotes_values(self):
        assert ji.build_jql(None, "ABC", "me", 'In "Review"', None) == (
            'project = "ABC" AND assignee = currentUser() AND status = "In \\"Review\\"" ORDER BY updated DESC')
        assert ji.build_jql(None, None, "bob", None, "disk full") == (
            'assignee = "bob" AND text ~ "disk full" ORDER BY updated DESC')
        assert ji.build_jql("key = ABC-1", "IGNORED", None, None, None) == "key = ABC-1"
        assert ji.build_jql(None, None, None, None, None) == "ORDER BY updated DESC"


# -- parsing --------------------------------------------------------------------------------------------
class TestParsing:
    def test_summarize_issue(self):
        out = ji.summarize_issue(issue("ABC-1", assignee=None, priority=None), BASE)
        assert out == {
            "key": "ABC-1", "id": "10000", "url": "https://jira.example.com/browse/ABC-1",
            "summary": "Summary ABC-1", "status": "In Progress", "statusCategory": "In Progress",
            "type": "Bug", "priority": None, "assignee": None, "reporter": "Bob Roe",
            "created": "2024-05-01T10:00:00.000+0000", "updated": "2024-05-02T11:00:00.000+0000",
        }

    def test_detail_issue_v2_with_comments(self):
        data = issue("ABC-2", description="Line 1\nLine 2", labels=["db", "urgent"],
                     components=[{"name": "API"}], fixVersions=[{"name": "1.2"}], resolution=None,
                     duedate="2024-06-01", parent={"key": "ABC-1"}, subtasks=[{"key": "ABC-3"}],
                     comment={"comments": [{"author": {"displayName": "Carol"}, "created": "2024-05-03",
                                            "body": "Looks good"}]})
        out = ji.detail_issue(data, BASE, comments=True)
        assert out["description"] == "Line 1\nLine 2"
        assert (out["labels"], out["components"], out["fixVersions"]) == (["db", "urgent"], ["API"], ["1.2"])
        assert (out["parent"], out["subtasks"], out["dueDate"], out["resolution"]) == ("ABC-1", ["ABC-3"],
                                                                                        "2024-06-01", None)
        assert out["comments"] == [{"author": "Carol", "created": "2024-05-03", "body": "Looks good"}]
        assert "comments" not in ji.detail_issue(data, BASE, comments=False)

    def test_adf_description_flattened(self):
        adf = {"type": "doc", "version": 1, "content": [
            {"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "Steps"}]},
            {"type": "paragraph", "content": [
                {"type": "text", "text": "Run "}, {"type": "text", "text": "it", "marks": [{"type": "strong"}]},
                {"type": "hardBreak"}, {"type": "mention", "attrs": {"text": "@Dan"}}]},
            {"type": "bulletList", "content": [
                {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "a"}]}]},
                {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "b"}]}]},
            ]},
        ]}
        assert ji.adf_text(adf) == "Steps\nRun it\n@Dan\na\nb"
        assert ji.detail_issue(issue("ABC-4", description=adf), BASE)["description"].startswith("Steps\n")

    @pytest.mark.parametrize(("status", "body", "code", "exit_code"), [
        (401, "", "AUTH_REQUIRED", 3),
        (404, '{"errorMessages": ["Issue does not exist or you do not have permission to see it."]}',
         "NOT_FOUND", 1),
        (400, '{"errorMessages": [], "errors": {"jql": "Field \'foo\' does not exist"}}', "HTTP_400", 1),
        (200, "<html>Log in</html>", "API_ERROR", 1),
    ])
    def test_decode_response_errors(self, status, body, code, exit_code):
        with pytest.raises(ji.JiraError) as info:
            ji.decode_response(status, body, BASE + "/x", login_target="https://jira.example.com")
        assert (info.value.code, info.value.exit_code) == (code, exit_code)
        if status == 400:
            assert info.value.message == "jql: Field 'foo' does not exist"
        if status == 404:
            assert "does not exist" in info.value.message
        if status == 401:
            assert info.value.hint == "ask the user to run: sig login https://jira.example.com"

    def test_decode_response_ok(self):
        assert ji.decode_response(200, '{"a": [1]}', BASE) == {"a": [1]}


# -- paging ---------------------------------------------------------------------------------------------
class TestSearch:
    def test_pages_until_limit(self):
        fake = FakeTransport(paged_server(total=130))
        out = ji.search_issues(fake, BASE, "project = ABC", limit=120)
        assert [(query(u)["startAt"], query(u)["maxResults"]) for u in fake.urls] == [("0", "100"), ("100", "20")]
        assert out["count"] == 120 and out["total"] == 130 and out["more"] is True
        assert [i["key"] for i in out["issues"]] == [f"ABC-{n}" for n in range(1, 121)]

    def test_server_capping_page_size_is_followed(self):
        fake = FakeTransport(paged_server(total=120, cap=50))
        out = ji.search_issues(fake, BASE, "x", limit=120)
        assert [query(u)["startAt"] for u in fake.urls] == ["0", "50", "100"]
        assert out["count"] == 120 and out["more"] is False

    def test_stops_at_total(self):
        fake = FakeTransport(paged_server(total=3))
        out = ji.search_issues(fake, BASE, "x", limit=50)
        assert len(fake.urls) == 1 and out["count"] == 3 and out["more"] is False

    def test_v3_token_paging(self):
        pages = {None: {"issues": [issue("ABC-1"), issue("ABC-2")], "nextPageToken": "p2"},
                 "p2": {"issues": [issue("ABC-3")], "isLast": True}}
        fake = FakeTransport(lambda url: pages[query(url).get("nextPageToken")])
        out = ji.search_issues(fake, BASE, "x", limit=10, api_version="3")
        assert [urlsplit(u).path for u in fake.urls] == ["/rest/api/3/search/jql"] * 2
        assert [i["key"] for i in out["issues"]] == ["ABC-1", "ABC-2", "ABC-3"] and out["more"] is False

    def test_malformed_search_response(self):
        with pytest.raises(ji.JiraError) as info:
            ji.search_issues(FakeTransport(lambda url: {"values": []}), BASE, "x")
        assert info.value.code == "API_ERROR"

    def test_limit_bounds(self):
        with pytest.raises(ji.JiraError):
            ji.search_issues(FakeTransport(lambda url: {}), BASE, "x", limit=0)


class TestRun:
    def test_search_command(self, capsys):
        fake = FakeTransport(paged_server(total=2))
        code, out = ji.run(["search", "--base-url", "https://example.com/jira/", "--project", "ABC",
                            "--limit", "5", "--fields", "summary,status"], transport=fake)
        assert code == 0 and out["count"] == 2
        q = query(fake.urls[0])
        assert urlsplit(fake.urls[0]).path == "/jira/rest/api/2/search"
        assert q["jql"] == 'project = "ABC" ORDER BY updated DESC' and q["fields"] == "summary,status"
        assert out["issues"][0]["url"] == "https://example.com/jira/browse/ABC-1"

    def test_get_command_and_env_base_url(self, monkeypatch):
        monkeypatch.setenv("JIRA_BASE_URL", BASE)
        fake = FakeTransport(lambda url: issue("ABC-9", description="d"))
        code, out = ji.run(["get", "abc-9", "--api-version", "latest"], transport=fake)
        assert code == 0 and fake.urls == [f"{BASE}/rest/api/latest/issue/ABC-9"]
        assert out["key"] == "ABC-9" and out["description"] == "d"

    def test_bad_key_makes_no_request(self):
        fake = FakeTransport(lambda url: pytest.fail("no request expected"))
        code, out = ji.run(["get", "ABC-1/../../admin", "--base-url", BASE], transport=fake)
        assert code == 1 and out["error"] == "USAGE_ERROR" and fake.urls == []

    def test_main_prints_json_error(self, monkeypatch, capsys):
        monkeypatch.delenv("JIRA_BASE_URL", raising=False)
        assert ji.main(["search"]) == 1
        out = json.loads(capsys.readouterr().out)
        assert out["error"] == "USAGE_ERROR" and "JIRA_BASE_URL" in out["hint"]


# -- transports -----------------------------------------------------------------------------------------
class TestCliTransport:
    def _patch(self, monkeypatch, returncode=0, stdout="", stderr="", exc=None):
        calls = []

        def fake_run(argv, **kwargs):
            calls.append((argv, kwargs))
            if exc:
                raise exc
            return subprocess.CompletedProcess(argv, returncode, stdout, stderr)

        monkeypatch.setattr(ji.subprocess, "run", fake_run)
        return calls

    def test_argv_and_envelope(self, monkeypatch):
        body = json.dumps({"key": "ABC-1", "fields": {"summary": "s"}}, indent=2)
        calls = self._patch(monkeypatch, stdout=json.dumps({"status": 200, "statusText": "OK", "headers": {},
                                                            "body": body}))
        transport = ji.CliTransport("/opt/sig", provider="my-jira", timeout=12)
        assert transport.get_json(f"{BASE}/rest/api/2/issue/ABC-1") == {"key": "ABC-1", "fields": {"summary": "s"}}
        argv, kwargs = calls[0]
        assert argv == ["/opt/sig", "request", f"{BASE}/rest/api/2/issue/ABC-1", "--format", "json",
                        "--header", "Accept: application/json", "--timeout", "12", "--provider", "my-jira"]
        assert kwargs["capture_output"] is True and kwargs.get("shell") is not True

    def test_http_error_in_envelope(self, monkeypatch):
        self._patch(monkeypatch, returncode=1, stdout=json.dumps({"status": 401, "body": ""}),
                    stderr='The server answered 401: ...\n')
        with pytest.raises(ji.JiraError) as info:
            ji.CliTransport("sig", login_target="my-jira").get_json(BASE)
        assert (info.value.code, info.value.exit_code) == ("AUTH_REQUIRED", 3)
        assert info.value.hint.endswith("sig login my-jira")

    @pytest.mark.parametrize(("sig_code", "code", "exit_code"), [
        ("PROVIDER_NOT_FOUND", "PROVIDER_NOT_FOUND", 2),
        ("CREDENTIAL_NOT_FOUND", "AUTH_REQUIRED", 3),
        ("CREDENTIAL_EXPIRED", "AUTH_REQUIRED", 3),
        ("REFRESH_FAILED", "AUTH_REQUIRED", 3),
        ("CONFIG_ERROR", "SIG_ERROR", 1),
    ])
    def test_sig_errors_keep_their_meaning(self, monkeypatch, sig_code, code, exit_code):
        err = {"error": {"code": sig_code, "message": "m", "hint": "run: sig login https://jira.example.com/"}}
        self._patch(monkeypatch, returncode=exit_code, stderr="Warning: x\n" + json.dumps(err) + "\n")
        with pytest.raises(ji.JiraError) as info:
            ji.CliTransport("sig").get_json(BASE)
        e = info.value
        assert (e.code, e.exit_code, e.sig_code, e.hint) == (code, exit_code, sig_code, err["error"]["hint"])

    def test_plain_stderr(self, monkeypatch):
        self._patch(monkeypatch, returncode=1, stderr="Error: boom\n")
        with pytest.raises(ji.JiraError) as info:
            ji.CliTransport("sig").get_json(BASE)
        assert info.value.code == "SIG_ERROR" and info.value.message == "Error: boom"

    def test_sig_missing(self, monkeypatch):
        self._patch(monkeypatch, exc=FileNotFoundError())
        with pytest.raises(ji.JiraError) as info:
            ji.CliTransport("/nope/sig").get_json(BASE)
        assert info.value.code == "SIG_NOT_FOUND"

    def test_auto_falls_back_to_cli_without_sdk(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "sigcli.sdk", None)  # makes the import fail
        monkeypatch.setenv("SIG_BIN", "/opt/bin/sig")
        transport = ji.make_transport("auto", "p", 5, "p")
        assert isinstance(transport, ji.CliTransport) and transport.sig_bin == "/opt/bin/sig"
        with pytest.raises(ji.JiraError) as info:
            ji.make_transport("sdk", None, 5, "x")
        assert info.value.code == "SDK_NOT_FOUND"


class TestSdkTransport:
    def test_request_and_errors(self):
        sdk = pytest.importorskip("sigcli.sdk")

        class Response:
            status, text = 200, '{"issues": []}'

        class Client:
            def __init__(self):
                self.calls: list = []
                self.error: Exception | None = None

            def request(self, url, **kwargs):
                self.calls.append((url, kwargs))
                if self.error:
                    raise self.error
                return Response()

        client = Client()
        transport = ji.SdkTransport("my-jira", 7, "my-jira", client=client)
        assert transport.get_json(BASE + "/a") == {"issues": []}
        assert client.calls == [(BASE + "/a", {"headers": {"Accept": "application/json"},
                                               "providers": ["my-jira"], "timeout": 7})]
        client.error = sdk.SigError("CREDENTIAL_NOT_FOUND", 'no credential stored for "my-jira"', "run: sig login x")
        with pytest.raises(ji.JiraError) as info:
            transport.get_json(BASE + "/a")
        assert (info.value.code, info.value.exit_code, info.value.hint) == ("AUTH_REQUIRED", 3, "run: sig login x")


# -- end to end: real sig, loopback Jira ------------------------------------------------------------------
def _sig_bin() -> str | None:
    found = os.environ.get("SIG_BIN") or shutil.which("sig")
    beside = Path(sys.executable).parent / "sig"
    return found or (str(beside) if beside.exists() else None)


@pytest.fixture
def fake_jira():
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append({"path": self.path, "authorization": self.headers.get("Authorization")})
            if self.headers.get("Authorization") != "Bearer e2e-secret-token-123":
                self._send(401, {"errorMessages": ["You are not authenticated."]})
            elif urlsplit(self.path).path == "/jira/rest/api/2/search":
                self._send(200, {"startAt": 0, "maxResults": 50, "total": 1, "issues": [issue("ABC-1")]})
            elif self.path == "/jira/rest/api/2/issue/ABC-1":
                self._send(200, issue("ABC-1", description="echo e2e-secret-token-123"))
            else:
                self._send(404, {"errorMessages": ["Issue does not exist"]})

        def _send(self, status, data):
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jira", seen
    server.shutdown()
    server.server_close()


def test_end_to_end_through_sig(fake_jira, tmp_path, monkeypatch):
    sig = _sig_bin()
    if not sig:
        pytest.skip("sig is not installed")
    pytest.importorskip("sigcli.sdk")
    base, seen = fake_jira
    env = {**os.environ, "SIG_HOME": str(tmp_path / "sig"), "SIG_BIN": sig}
    env.pop("JIRA_BASE_URL", None)
    monkeypatch.setenv("SIG_HOME", env["SIG_HOME"])

    def sig_run(*args, stdin=""):
        return subprocess.run([sig, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60)

    assert sig_run("init", "--yes").returncode == 0
    # No credential yet: both transports say AUTH_REQUIRED / 3 or PROVIDER_NOT_FOUND / 2 without a request.
    script = [sys.executable, str(SCRIPT)]
    cli = subprocess.run([*script, "get", "ABC-1", "--base-url", base, "--transport", "cli"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert cli.returncode == 2 and json.loads(cli.stdout)["error"] == "PROVIDER_NOT_FOUND"
    assert sig_run("login", base, "--token-stdin", "--as", "jira-e2e", stdin="e2e-secret-token-123").returncode == 0

    code, out = ji.run(["search", "--base-url", base, "--project", "ABC", "--transport", "sdk"])
    assert code == 0 and [i["key"] for i in out["issues"]] == ["ABC-1"]
    cli = subprocess.run([*script, "get", "ABC-1", "--base-url", base, "--transport", "cli", "--provider", "jira-e2e"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    got = json.loads(cli.stdout)
    assert got["key"] == "ABC-1" and got["url"] == f"{base}/browse/ABC-1"
    assert got["description"] == "echo ****"  # sig request redacts the secret even when the API echoes it
    assert [s["authorization"] for s in seen] == ["Bearer e2e-secret-token-123"] * 2

    assert sig_run("logout", "jira-e2e").returncode == 0
    cli = subprocess.run([*script, "get", "ABC-1", "--base-url", base, "--transport", "cli"],
                         capture_output=True, text=True, env=env, timeout=60)
    err = json.loads(cli.stdout)
    assert cli.returncode == 3 and err["error"] == "AUTH_REQUIRED" and "sig login" in err["hint"]
    assert "e2e-secret-token-123" not in cli.stdout + cli.stderr
