#!/usr/bin/env python3
"""List and read Jira issues through sig, so the credential never reaches the caller.

    jira_issues.py search --base-url https://jira.example.com --jql 'project = ABC AND status = "To Do"'
    jira_issues.py get ABC-123 --comments

Transport (--transport, default auto): `sdk` uses sig's Python SDK (`sigcli.sdk.SigClient`) in this
process; `cli` runs `sig request <url> --format json` (the response is redacted by sig). `auto` takes the
SDK when it can be imported, else the `sig` command ($SIG_BIN, else `sig` on PATH).

Output: one JSON document on stdout. On failure: {"error": CODE, "message", "hint"?, "sigCode"?} on stdout
and exit 1, or 2 (sig has no provider for the URL) or 3 (no valid credential: a person must `sig login`),
the same codes as sig's own.

Standard library only (plus sig, and scripts/sigreq.py, the module the skills share). Environment:
JIRA_BASE_URL, JIRA_PROVIDER, JIRA_API_VERSION, SIG_BIN.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from urllib.parse import quote, urlencode, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sigreq import (
    EXIT_AUTH_REQUIRED,
    EXIT_GENERAL,
    EXIT_PROVIDER_NOT_FOUND,
    LOGIN_CODES,
    SkillError,
    emit,
    find_sig,
    parse_result,
)

DEFAULT_FIELDS = ("summary", "status", "issuetype", "priority", "assignee", "reporter", "created", "updated")
PAGE_SIZE = 100  # Jira caps maxResults at 100 for search (often 50 on older servers; it then says so)
MAX_LIMIT = 1000
ISSUE_KEY = re.compile(r"^[A-Z][A-Z0-9_]*-[1-9][0-9]*$")
FIELD_NAME = re.compile(r"^[A-Za-z0-9_.*-]+$")

# A failure to report as JSON: `code` (AUTH_REQUIRED, HTTP_404, ...), `message`, `hint`, exit code.
JiraError = SkillError


# -- URLs ----------------------------------------------------------------------------------------------
def normalize_base_url(base_url: str) -> str:
    """`https://host[:port][/context]` without a trailing slash; the REST paths are appended to it."""
    text = (base_url or "").strip()
    if not text:
        raise JiraError("USAGE_ERROR", "no Jira base URL", "pass --base-url https://jira.example.com or set JIRA_BASE_URL")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise JiraError("USAGE_ERROR", f"not an http(s) URL: {text}", "e.g. --base-url https://jira.example.com")
    if parts.query or parts.fragment:
        raise JiraError("USAGE_ERROR", f"the base URL must not have a query or fragment: {text}",
                        "e.g. --base-url https://example.com/jira")
    path = parts.path.rstrip("/")
    for suffix in ("/rest/api/2", "/rest/api/3", "/rest/api/latest"):  # accept a pasted API root
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    return f"{parts.scheme}://{parts.netloc}{path}"


def api_root(base_url: str, api_version: str) -> str:
    if api_version not in ("2", "3", "latest"):
        raise JiraError("USAGE_ERROR", f"unknown API version {api_version!r}", "use --api-version 2, 3 or latest")
    return f"{normalize_base_url(base_url)}/rest/api/{api_version}"


def check_issue_key(key: str) -> str:
    """An issue key such as ABC-123 (upper-cased); anything else is refused before a request is made."""
    candidate = (key or "").strip().upper()
    if not ISSUE_KEY.match(candidate):
        raise JiraError("USAGE_ERROR", f"not a Jira issue key: {key!r}", "issue keys look like ABC-123")
    return candidate


def check_fields(fields: list[str] | tuple[str, ...]) -> list[str]:
    out = [f.strip() for f in fields if f.strip()]
    for name in out:
        if not FIELD_NAME.match(name):
            raise JiraError("USAGE_ERROR", f"not a Jira field name: {name!r}", "e.g. --fields summary,status,labels")
    return out


def search_url(base_url: str, jql: str, start_at: int = 0, max_results: int = 50,
               fields: list[str] | tuple[str, ...] = DEFAULT_FIELDS, api_version: str = "2",
               next_page_token: str | None = None) -> str:
    """The search URL: /search with startAt (v2, latest) or Jira Cloud's /search/jql with nextPageToken (v3)."""
    params: list[tuple[str, str]] = [("jql", jql)]
    if api_version == "3":
        endpoint = "search/jql"
        if next_page_token:
            params.append(("nextPageToken", next_page_token))
    else:
        endpoint = "search"
        params.append(("startAt", str(int(start_at))))
    params.append(("maxResults", str(int(max_results))))
    params.append(("fields", ",".join(check_fields(fields))))
    return f"{api_root(base_url, api_version)}/{endpoint}?{urlencode(params, quote_via=quote, safe=',')}"


def issue_url(base_url: str, key: str, api_version: str = "2", fields: list[str] | None = None) -> str:
    url = f"{api_root(base_url, api_version)}/issue/{quote(check_issue_key(key), safe='')}"
    if fields:
        url += "?" + urlencode([("fields", ",".join(check_fields(fields)))], quote_via=quote, safe=",")
    return url


def browse_url(base_url: str, key: str) -> str:
    return f"{normalize_base_url(base_url)}/browse/{quote(key, safe='')}"


def build_jql(jql: str | None, project: str | None, assignee: str | None, status: str | None,
              text: str | None) -> str:
    """The caller's JQL, or one built from the simple filters (values quoted for JQL)."""
    if jql:
        return jql
    clauses = []
    if project:
        clauses.append(f"project = {_jql_string(project)}")
    if assignee:
        clauses.append("assignee = currentUser()" if assignee == "me" else f"assignee = {_jql_string(assignee)}")
    if status:
        clauses.append(f"status = {_jql_string(status)}")
    if text:
        clauses.append(f"text ~ {_jql_string(text)}")
    where = " AND ".join(clauses)
    return f"{where} ORDER BY updated DESC" if where else "ORDER BY updated DESC"


def _jql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- transports ----------------------------------------------------------------------------------------
def _sig_error(code: str, message: str, hint: str) -> JiraError:
    """A sig error as this script reports it, keeping sig's exit-code meaning (2: provider, 3: login)."""
    if code == "PROVIDER_NOT_FOUND":
        return JiraError("PROVIDER_NOT_FOUND", message,
                         hint or "run `sig providers`, or ask the user to run `sig login <base url>`",
                         EXIT_PROVIDER_NOT_FOUND, code)
    if code in LOGIN_CODES:
        return JiraError("AUTH_REQUIRED", message, hint or "ask the user to run `sig login <base url>`",
                         EXIT_AUTH_REQUIRED, code)
    return JiraError("SIG_ERROR", message, hint, EXIT_GENERAL, code or "GENERAL_ERROR")


def _jira_messages(text: str) -> str:
    """Jira's own error text ({"errorMessages": [...], "errors": {...}}), if the body has it."""
    try:
        data = json.loads(text)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    parts = [str(m) for m in data.get("errorMessages") or [] if m]
    errors = data.get("errors")
    if isinstance(errors, dict):
        parts += [f"{k}: {v}" for k, v in errors.items()]
    return "; ".join(parts)


def decode_response(status: int, text: str, url: str, login_target: str = "<base url>") -> object:
    """The JSON of a 2xx response; a JiraError for anything else."""
    detail = _jira_messages(text)
    if status == 401:
        raise JiraError("AUTH_REQUIRED", detail or "Jira answered 401: the credential is missing, expired or revoked",
                        f"ask the user to run: sig login {login_target}", EXIT_AUTH_REQUIRED)
    if status == 404:
        raise JiraError("NOT_FOUND", detail or f"nothing at {url}",
                        "check the issue key, and --base-url / --api-version")
    if not 200 <= status < 300:
        raise JiraError(f"HTTP_{status}", detail or f"Jira answered {status}",
                        "403 often means no permission or a CAPTCHA after failed logins" if status == 403 else "")
    try:
        return json.loads(text)
    except ValueError:
        raise JiraError("API_ERROR", "the response is not JSON",
                        f"an expired session often gets a login page: ask the user to run sig login {login_target}"
                        ) from None


class SdkTransport:
    """Requests through `sigcli.sdk.SigClient` in this process."""

    name = "sdk"

    def __init__(self, provider: str | None = None, timeout: float = 30.0, login_target: str = "<base url>",
                 client: object | None = None) -> None:
        from sigcli.sdk import SigClient, SigError

        self._error_type = SigError
        self._client = client if client is not None else SigClient()
        self.provider = provider
        self.timeout = timeout
        self.login_target = login_target

    def get_json(self, url: str) -> object:
        try:
            response = self._client.request(  # type: ignore[attr-defined]
                url, headers={"Accept": "application/json"},
                providers=[self.provider] if self.provider else None, timeout=self.timeout)
        except self._error_type as err:
            raise _sig_error(err.code, err.message, err.hint) from None
        return decode_response(response.status, response.text, url, self.login_target)


class CliTransport:
    """Requests through `sig request <url> --format json` in a child process."""

    name = "cli"

    def __init__(self, sig_bin: str, provider: str | None = None, timeout: float = 30.0,
                 login_target: str = "<base url>") -> None:
        self.sig_bin = sig_bin
        self.provider = provider
        self.timeout = timeout
        self.login_target = login_target

    def argv(self, url: str) -> list[str]:
        argv = [self.sig_bin, "request", url, "--format", "json", "--header", "Accept: application/json",
                "--timeout", f"{self.timeout:g}"]
        if self.provider:
            argv += ["--provider", self.provider]
        return argv

    def get_json(self, url: str) -> object:
        try:
            proc = subprocess.run(self.argv(url), capture_output=True, text=True, check=False,
                                  timeout=self.timeout + 30, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise JiraError("SIG_NOT_FOUND", f"cannot run {self.sig_bin}",
                            "install sig, or set SIG_BIN to its path") from None
        except subprocess.TimeoutExpired:
            raise JiraError("TIMEOUT", f"sig request did not finish in {self.timeout + 30:g}s", "retry") from None
        response = parse_result(proc.stdout, proc.stderr, proc.returncode, _sig_error)
        return decode_response(response.status, response.text, url, self.login_target)


def make_transport(kind: str, provider: str | None, timeout: float, login_target: str) -> object:
    if kind in ("auto", "sdk"):
        try:
            return SdkTransport(provider, timeout, login_target)
        except ImportError:
            if kind == "sdk":
                raise JiraError("SDK_NOT_FOUND", "sigcli.sdk cannot be imported by this Python",
                                "use --transport cli, or run with the Python that has sig installed") from None
    sig_bin = find_sig()
    if not sig_bin:
        raise JiraError("SIG_NOT_FOUND", "neither sigcli.sdk nor the sig command is available",
                        "install sig (see its README), or set SIG_BIN to the sig executable")
    return CliTransport(sig_bin, provider, timeout, login_target)


# -- Jira payloads -------------------------------------------------------------------------------------
def _name(value: object) -> str | None:
    if isinstance(value, dict):
        for key in ("name", "displayName", "value", "key"):
            if value.get(key):
                return str(value[key])
    return None


def _person(value: object) -> str | None:
    if isinstance(value, dict):
        for key in ("displayName", "name", "emailAddress", "accountId"):
            if value.get(key):
                return str(value[key])
    return None


def adf_text(node: object) -> str:
    """Plain text of a field: a string as is (API v2), Atlassian Document Format flattened (API v3)."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return "".join(adf_text(n) for n in node)
    if not isinstance(node, dict):
        return str(node)
    kind = node.get("type")
    if kind == "text":
        return str(node.get("text", ""))
    if kind == "hardBreak":
        return "\n"
    if kind in ("mention", "emoji"):
        attrs = node.get("attrs") or {}
        return str(attrs.get("text") or attrs.get("shortName") or "")
    inner = adf_text(node.get("content") or [])
    if kind in ("paragraph", "heading", "codeBlock", "listItem", "blockquote", "rule"):
        return inner.rstrip("\n") + "\n"
    if kind == "doc":
        return inner.strip("\n")
    return inner


def summarize_issue(issue: dict[str, object], base_url: str) -> dict[str, object]:
    fields = issue.get("fields") or {}
    if not isinstance(fields, dict):
        fields = {}
    key = str(issue.get("key", ""))
    status = fields.get("status")
    category = status.get("statusCategory") if isinstance(status, dict) else None
    return {
        "key": key,
        "id": str(issue.get("id", "")),
        "url": browse_url(base_url, key) if key else None,
        "summary": fields.get("summary"),
        "status": _name(status),
        "statusCategory": _name(category) if isinstance(category, dict) else None,
        "type": _name(fields.get("issuetype")),
        "priority": _name(fields.get("priority")),
        "assignee": _person(fields.get("assignee")),
        "reporter": _person(fields.get("reporter")),
        "created": fields.get("created"),
        "updated": fields.get("updated"),
    }


def detail_issue(issue: dict[str, object], base_url: str, comments: bool = False) -> dict[str, object]:
    out = summarize_issue(issue, base_url)
    fields = issue.get("fields") or {}
    if not isinstance(fields, dict):
        fields = {}
    parent = fields.get("parent")
    out.update({
        "description": adf_text(fields.get("description")) or None,
        "labels": list(fields.get("labels") or []),
        "components": [n for n in (_name(c) for c in fields.get("components") or []) if n],
        "fixVersions": [n for n in (_name(v) for v in fields.get("fixVersions") or []) if n],
        "resolution": _name(fields.get("resolution")),
        "dueDate": fields.get("duedate"),
        "parent": parent.get("key") if isinstance(parent, dict) else None,
        "subtasks": [s.get("key") for s in fields.get("subtasks") or [] if isinstance(s, dict)],
    })
    if comments:
        block = fields.get("comment")
        items = block.get("comments") if isinstance(block, dict) else None
        out["comments"] = [
            {"author": _person(c.get("author")), "created": c.get("created"), "body": adf_text(c.get("body"))}
            for c in items or [] if isinstance(c, dict)
        ]
    return out


# -- operations ----------------------------------------------------------------------------------------
def search_issues(transport: object, base_url: str, jql: str, limit: int = 50,
                  fields: list[str] | tuple[str, ...] = DEFAULT_FIELDS, api_version: str = "2") -> dict[str, object]:
    """Up to `limit` issues matching `jql`, following Jira's paging."""
    if not 1 <= limit <= MAX_LIMIT:
        raise JiraError("USAGE_ERROR", f"--limit must be between 1 and {MAX_LIMIT}", "e.g. --limit 50")
    issues: list[dict[str, object]] = []
    total: int | None = None
    token: str | None = None
    while len(issues) < limit:
        want = min(PAGE_SIZE, limit - len(issues))
        url = search_url(base_url, jql, start_at=len(issues), max_results=want, fields=fields,
                         api_version=api_version, next_page_token=token)
        page = transport.get_json(url)  # type: ignore[attr-defined]
        if not isinstance(page, dict) or not isinstance(page.get("issues"), list):
            raise JiraError("API_ERROR", "the search response has no issues list",
                            "is --base-url the Jira root (not a page of it), and --api-version right?")
        batch = [i for i in page["issues"] if isinstance(i, dict)]
        issues += [summarize_issue(i, base_url) for i in batch[: limit - len(issues)]]
        if isinstance(page.get("total"), int):
            total = page["total"]
        if api_version == "3":
            token = page.get("nextPageToken") if isinstance(page.get("nextPageToken"), str) else None
            if not batch or page.get("isLast") is True or not token:
                break
        elif not batch or (total is not None and len(issues) >= total):
            break
    more = (total is not None and total > len(issues)) or (api_version == "3" and token is not None)
    return {"jql": jql, "count": len(issues), "total": total, "more": bool(more), "issues": issues}


def get_issue(transport: object, base_url: str, key: str, comments: bool = False,
              api_version: str = "2") -> dict[str, object]:
    data = transport.get_json(issue_url(base_url, key, api_version))  # type: ignore[attr-defined]
    if not isinstance(data, dict) or "fields" not in data:
        raise JiraError("API_ERROR", "the issue response has no fields", "check --base-url and --api-version")
    return detail_issue(data, base_url, comments)


# -- command line --------------------------------------------------------------------------------------
def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", default=os.environ.get("JIRA_BASE_URL", ""),
                        help="Jira root URL, e.g. https://jira.example.com (env JIRA_BASE_URL)")
    parser.add_argument("--provider", default=os.environ.get("JIRA_PROVIDER") or None,
                        help="sig provider id (default: the one whose domains match the URL; env JIRA_PROVIDER)")
    parser.add_argument("--api-version", default=os.environ.get("JIRA_API_VERSION", "2"),
                        choices=("2", "3", "latest"),
                        help="REST API version: 2 (Server/Data Center, default) or 3 (Jira Cloud)")
    parser.add_argument("--transport", default="auto", choices=("auto", "sdk", "cli"),
                        help="sig's Python SDK, or the sig command (default: SDK when importable)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jira_issues.py", description="List and read Jira issues through sig.")
    sub = parser.add_subparsers(dest="command", required=True)
    search = sub.add_parser("search", help="list issues (JQL or simple filters)")
    _common(search)
    search.add_argument("--jql", help='JQL, e.g. \'project = ABC AND status = "In Progress"\'')
    search.add_argument("--project", help="project key (ignored with --jql)")
    search.add_argument("--assignee", help='user name, or "me" (ignored with --jql)')
    search.add_argument("--status", help="status name (ignored with --jql)")
    search.add_argument("--text", help="full-text search (ignored with --jql)")
    search.add_argument("--limit", type=int, default=50, help=f"max issues, 1..{MAX_LIMIT} (default 50)")
    search.add_argument("--fields", default=",".join(DEFAULT_FIELDS), help="comma-separated Jira fields")
    get = sub.add_parser("get", help="one issue with description, labels, subtasks (and --comments)")
    _common(get)
    get.add_argument("key", help="issue key, e.g. ABC-123")
    get.add_argument("--comments", action="store_true", help="include comments")
    return parser


def run(argv: list[str] | None = None, transport: object | None = None) -> tuple[int, dict[str, object]]:
    """Parse, do, and return (exit code, JSON-able result)."""
    args = build_parser().parse_args(argv)
    try:
        base = normalize_base_url(args.base_url)
        if transport is None:
            target = args.provider or base
            transport = make_transport(args.transport, args.provider, args.timeout, target)
        if args.command == "search":
            jql = build_jql(args.jql, args.project, args.assignee, args.status, args.text)
            fields = check_fields(args.fields.split(","))
            return 0, search_issues(transport, base, jql, args.limit, fields, args.api_version)
        return 0, get_issue(transport, base, args.key, args.comments, args.api_version)
    except JiraError as err:
        return err.exit_code, err.to_dict()


def main(argv: list[str] | None = None) -> int:
    return emit(*run(argv))


if __name__ == "__main__":
    sys.exit(main())
