"""Loopback stand-ins for the APIs the skills' helpers call: Microsoft Graph, the Teams Chat API, Slack.

Each stand-in is a small HTTPS (or HTTP) server on 127.0.0.1 that answers the few endpoints a helper
uses the way the real API does (shapes, paging links, error bodies, status codes), and checks the
credential sig injected: a request without the expected one gets the real API's refusal (Graph and
Teams: 401; Slack: 200 with {"ok": false, "error": "invalid_auth"}). Every request is recorded.

    with StandIn(GraphApp(token="t1")) as api:
        api.url  # https://127.0.0.1:PORT ; api.ca_path trusts its certificate
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import trustme

from harness.servers import LoopbackServer

MAX_BODY = 8 * 1024 * 1024
IDLE_TIMEOUT_S = 15.0


@dataclass
class Request:
    method: str
    path: str  # raw (still percent-encoded)
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    base: str = ""  # scheme://host:port of the stand-in

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def form(self) -> dict[str, str]:
        """Slack style: the POST form, else the query string."""
        if self.body and "x-www-form-urlencoded" in self.headers.get("content-type", ""):
            return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8"), keep_blank_values=True).items()}
        return {k: v[0] for k, v in self.query.items()}

    def segments(self) -> list[str]:
        return [unquote(s) for s in self.path.strip("/").split("/")] if self.path.strip("/") else []


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-able, bytes, or None
    headers: dict[str, str] = field(default_factory=dict)


App = Callable[[Request], Reply]


class _Server(LoopbackServer):
    def __init__(self, app: App, ssl_context: ssl.SSLContext | None) -> None:
        self.app = app
        self.log: list[Request] = []
        self.lock = threading.Lock()
        super().__init__(_Handler, ssl_context)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_BODY)) if length else b""
        split = urlsplit(self.path)
        scheme = "https" if self.server.ssl_context else "http"
        request = Request(self.command, split.path, parse_qs(split.query, keep_blank_values=True),
                          {k.lower(): v for k, v in self.headers.items()}, body,
                          f"{scheme}://127.0.0.1:{self.server.port}")
        with self.server.lock:
            self.server.log.append(request)
        try:
            reply = self.server.app(request)
        except Exception as exc:  # a bug in the stand-in: say so loudly in the answer
            reply = Reply(500, {"standInError": repr(exc)})
        data = reply.body if isinstance(reply.body, bytes) else (
            b"" if reply.body is None else json.dumps(reply.body).encode("utf-8"))
        self.send_response(reply.status)
        headers = {"Content-Type": "application/json; charset=utf-8", **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _handle


class StandIn:
    """A running stand-in; HTTPS with its own CA unless tls=False."""

    def __init__(self, app: App, tls: bool = True) -> None:
        self.app = app
        self._tmp = tempfile.mkdtemp(prefix="sig-skill-standin-")
        context = None
        self.ca_path: str | None = None
        if tls:
            ca = trustme.CA()
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
            self.ca_path = str(Path(self._tmp) / "ca.pem")
            ca.cert_pem.write_to_path(self.ca_path)
        self.server = _Server(app, context)
        self.scheme = "https" if tls else "http"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[Request]:
        with self.server.lock:
            return list(self.server.log)

    def clear(self) -> None:
        with self.server.lock:
            self.server.log.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.drop_connections()
        self.server.server_close()
        self.thread.join(timeout=5)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> StandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    return value[len("Bearer "):] if value.startswith("Bearer ") else None


# -- Microsoft Graph ---------------------------------------------------------------------------------
def graph_error(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"error": {"code": code, "message": message,
                                    "innerError": {"request-id": "00000000-0000-0000-0000-000000000000"}}})


# Message ids hold '+', '/' and '=' like real ones, so a helper that does not escape them breaks.
MSG_IDS = ["AAMkAGI2+TAAA/1=", "AAMkAGI2+TAAA/2=", "AAMkAGI2+TAAA/3="]
PROJECTS_ID = "AAMkAGI2ProjectsFolder+Id/AAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


class GraphApp:
    """/v1.0/me, mail (folders, messages, search, drafts, send, reply, forward, move, mark, attachments),
    people (/users $search), manager, directReports and calendarView."""

    def __init__(self, token: str | Callable[[str], bool], prefix: str = "/v1.0", max_page: int = 2) -> None:
        # a fixed token, or a check (e.g. asking an authorization server whether it issued the token)
        self.accepts: Callable[[str], bool] = token if callable(token) else token.__eq__
        self.prefix = prefix
        self.max_page = max_page  # Graph caps pages on its side too: helpers must follow @odata.nextLink
        self.throttle = 0  # answer this many next requests with 429 + Retry-After
        self.sent: list[dict[str, Any]] = []  # what "went out": sendMail, send, reply, forward
        self.drafts: dict[str, dict[str, Any]] = {}
        self.moves: list[tuple[str, str]] = []
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.messages = {
            MSG_IDS[0]: self._message(MSG_IDS[0], "Quarterly report", "jane@example.com", "Jane Doe",
                                      "2026-04-03T09:00:00Z", False, "Numbers attached."),
            MSG_IDS[1]: self._message(MSG_IDS[1], "Lunch?", "bob@example.com", "Bob", "2026-04-02T12:00:00Z",
                                      True, "Noon at the usual place."),
            MSG_IDS[2]: self._message(MSG_IDS[2], "Re: report draft", "jane@example.com", "Jane Doe",
                                      "2026-04-01T08:30:00Z", True, "See my comments."),
        }
        self.attachment = b"%PDF-1.4 fake report \x00\x01\x02"

    @staticmethod
    def _message(mid: str, subject: str, addr: str, name: str, received: str, read: bool, text: str) -> dict[str, Any]:
        return {"id": mid, "subject": subject, "from": {"emailAddress": {"name": name, "address": addr}},
                "toRecipients": [{"emailAddress": {"name": "Alex Agent", "address": "alex@example.com"}}],
                "ccRecipients": [], "bccRecipients": [], "replyTo": [],
                "receivedDateTime": received, "sentDateTime": received, "isRead": read,
                "hasAttachments": mid == MSG_IDS[0], "importance": "normal", "flag": {"flagStatus": "notFlagged"},
                "bodyPreview": text, "conversationId": "conv-" + subject[:3], "internetMessageId": f"<{mid}@x>",
                "webLink": "https://outlook.office365.com/owa/?ItemID=" + quote(mid, safe=""),
                "body": {"contentType": "html", "content": f"<html><body><p>{text}</p></body></html>"}}

    def __call__(self, request: Request) -> Reply:
        if not request.path.startswith(self.prefix + "/"):
            return graph_error(404, "UnknownResource", "no such API version")
        if self.throttle > 0:
            self.throttle -= 1
            reply = graph_error(429, "TooManyRequests", "Too many requests.")
            reply.headers["Retry-After"] = "1"
            return reply
        token = bearer(request)
        if token is None:
            return graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
        if not self.accepts(token):
            return graph_error(401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed.")
        segs = [unquote(s) for s in request.path[len(self.prefix) + 1:].split("/")]
        return self.route(request, segs)

    def _page(self, request: Request, items: list[dict[str, Any]], path: str) -> Reply:
        top = min(int(request.arg("$top") or 10), self.max_page)
        skip = int(request.arg("$skip") or 0)
        out: dict[str, Any] = {"value": items[skip: skip + top]}
        if skip + top < len(items):
            query = {k: v[0] for k, v in request.query.items()}
            query["$skip"] = str(skip + top)
            out["@odata.nextLink"] = f"{request.base}{self.prefix}{path}?{urlencode(query, quote_via=quote)}"
        return Reply(200, out)

    def _text(self, message: dict[str, Any], request: Request) -> dict[str, Any]:
        out = dict(message)
        if 'outlook.body-content-type="text"' in request.headers.get("prefer", ""):
            out["body"] = {"contentType": "text", "content": message["bodyPreview"]}
        return out

    def route(self, request: Request, segs: list[str]) -> Reply:
        method = request.method
        if segs == ["me"]:
            return Reply(200, {"id": "u-alex", "displayName": "Alex Agent", "mail": "alex@example.com",
                               "userPrincipalName": "alex@example.com", "jobTitle": "Engineer"})
        if segs == ["me", "mailFolders"] and method == "GET":
            folders = [
                {"id": "inbox-id", "displayName": "Inbox", "parentFolderId": "root", "unreadItemCount": 1,
                 "totalItemCount": 3, "childFolderCount": 1},
                {"id": "drafts-id", "displayName": "Drafts", "parentFolderId": "root", "unreadItemCount": 0,
                 "totalItemCount": len(self.drafts), "childFolderCount": 0},
                {"id": PROJECTS_ID, "displayName": "Projects", "parentFolderId": "root", "unreadItemCount": 0,
                 "totalItemCount": 0, "childFolderCount": 0},
            ]
            flt = request.arg("$filter")
            if flt:
                match = re.fullmatch(r"displayName eq '((?:[^']|'')*)'", flt)
                if not match:
                    return graph_error(400, "BadRequest", "Invalid filter clause")
                name = match.group(1).replace("''", "'")
                folders = [f for f in folders if f["displayName"] == name]
            return self._page(request, folders, "/me/mailFolders")
        if len(segs) == 4 and segs[:2] == ["me", "mailFolders"] and segs[3] == "childFolders":
            kids = [{"id": "inbox-child", "displayName": "Receipts", "parentFolderId": "inbox-id",
                     "unreadItemCount": 0, "totalItemCount": 5, "childFolderCount": 0}] if segs[2] == "inbox-id" else []
            return Reply(200, {"value": kids})
        if len(segs) == 4 and segs[:2] == ["me", "mailFolders"] and segs[3] == "messages":
            folder = segs[2]
            items = list(self.messages.values()) if folder.lower() == "inbox" else []
            return self._list(request, items, "/me/mailFolders/" + quote(folder, safe="") + "/messages")
        if segs == ["me", "messages"] and method == "GET":
            return self._list(request, list(self.messages.values()), "/me/messages")
        if segs == ["me", "messages"] and method == "POST":
            return Reply(201, self._draft(request.json()))
        if segs == ["me", "sendMail"] and method == "POST":
            body = request.json()
            if not isinstance(body, dict) or not body.get("message", {}).get("toRecipients"):
                return graph_error(400, "ErrorInvalidRecipients", "At least one recipient is not valid.")
            self.sent.append({"kind": "sendMail", **body})
            return Reply(202)
        if len(segs) >= 3 and segs[:2] == ["me", "messages"]:
            return self._message_route(request, segs[2], segs[3:])
        if segs == ["users"]:
            return self._users(request)
        if len(segs) in (2, 3) and segs[-1] == "manager":
            who = "me" if segs[0] == "me" else segs[1]
            if who in ("me", "alex@example.com"):
                return Reply(200, {"id": "u-mia", "displayName": "Mia Manager", "mail": "mia@example.com",
                                   "userPrincipalName": "mia@example.com", "jobTitle": "Director"})
            return graph_error(404, "Request_ResourceNotFound",
                               "Resource 'manager' does not exist or one of its queried reference-property "
                               "objects are not present.")
        if segs == ["me", "directReports"]:
            return Reply(200, {"value": [{"@odata.type": "#microsoft.graph.user", "id": "u-rob",
                                          "displayName": "Rob Report", "mail": "rob@example.com"}]})
        if segs == ["me", "calendarView"]:
            return self._calendar(request)
        return graph_error(404, "UnknownResource", f"no route for {request.method} {request.path}")

    def _list(self, request: Request, items: list[dict[str, Any]], path: str) -> Reply:
        search, flt, order = request.arg("$search"), request.arg("$filter"), request.arg("$orderby")
        if search is not None:
            if order:
                return graph_error(400, "ErrorInvalidUrlQuery", "The query parameter 'OrderBy' is invalid.")
            if not (search.startswith('"') and search.endswith('"')):
                return graph_error(400, "BadRequest", "Syntax error: the $search value must be quoted.")
            phrase = search[1:-1].replace('\\"', '"')
            sender = re.search(r"from:(\S+)", phrase)
            words = re.sub(r"\w+:\S+", "", phrase).strip().lower()
            items = [m for m in items
                     if (not sender or m["from"]["emailAddress"]["address"] == sender.group(1))
                     and (not words or words in (m["subject"] + " " + m["bodyPreview"]).lower())]
        if flt:
            if order and not flt.startswith(order.split()[0]):
                return graph_error(400, "InefficientFilter", "The restriction or sort order is too complex "
                                   "for this operation.")
            for clause in flt.split(" and "):
                m = re.fullmatch(r"receivedDateTime (ge|lt) (\S+)", clause)
                if m:
                    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", m.group(2)):
                        return graph_error(400, "BadRequest", "Invalid date")
                    if m.group(1) == "ge":
                        items = [i for i in items if i["receivedDateTime"] >= m.group(2)]
                    else:
                        items = [i for i in items if i["receivedDateTime"] < m.group(2)]
                elif clause == "isRead eq false":
                    items = [i for i in items if not i["isRead"]]
                elif (m := re.fullmatch(r"from/emailAddress/address eq '([^']*)'", clause)):
                    items = [i for i in items if i["from"]["emailAddress"]["address"] == m.group(1)]
                else:
                    return graph_error(400, "BadRequest", f"Invalid filter clause: {clause}")
        if order == "receivedDateTime desc":
            items = sorted(items, key=lambda i: i["receivedDateTime"], reverse=True)
        return self._page(request, [self._text(i, request) for i in items], path)

    def _draft(self, body: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
        did = f"AAMkDraft+{len(self.drafts) + 1}/="
        draft = {"id": did, "subject": "", "toRecipients": [], "isDraft": True,
                 "webLink": "https://outlook.office365.com/owa/?ItemID=" + quote(did, safe=""),
                 **(base or {}), **(body if isinstance(body, dict) else {})}
        draft["id"] = did
        self.drafts[did] = draft
        return draft

    def _message_route(self, request: Request, mid: str, rest: list[str]) -> Reply:
        message = self.messages.get(mid) or self.drafts.get(mid)
        if message is None:
            return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        method = request.method
        if not rest and method == "GET":
            return Reply(200, self._text(message, request))
        if not rest and method == "PATCH":
            change = request.json() or {}
            self.patches.append((mid, change))
            message.update(change)
            return Reply(200, message)
        action = rest[0] if rest else ""
        if action == "send" and method == "POST":
            if mid not in self.drafts:
                return graph_error(400, "ErrorInvalidRequest", "Only drafts can be sent.")
            self.sent.append({"kind": "send", "id": mid})
            return Reply(202)
        if action in ("reply", "replyAll", "forward") and method == "POST":
            body = request.json() or {}
            if action == "forward" and not body.get("toRecipients"):
                return graph_error(400, "ErrorInvalidRecipients", "At least one recipient is required.")
            self.sent.append({"kind": action, "id": mid, **body})
            return Reply(202)
        if action in ("createReply", "createReplyAll", "createForward") and method == "POST":
            body = request.json() or {}
            prefix = "FW: " if action == "createForward" else "RE: "
            draft = self._draft({"toRecipients": body.get("toRecipients") or [message["from"]]},
                                {"subject": prefix + message["subject"], "comment": body.get("comment")})
            return Reply(201, draft)
        if action == "move" and method == "POST":
            destination = (request.json() or {}).get("destinationId")
            if not destination:
                return graph_error(400, "ErrorInvalidIdMalformed", "Id is malformed.")
            self.moves.append((mid, destination))
            return Reply(201, {**message, "id": mid + "moved"})
        if action == "attachments" and len(rest) == 1:
            return Reply(200, {"value": [{"@odata.type": "#microsoft.graph.fileAttachment", "id": "att/1=",
                                          "name": "../report.pdf", "contentType": "application/pdf",
                                          "size": len(self.attachment), "isInline": False}]})
        if action == "attachments" and len(rest) == 2:
            if rest[1] != "att/1=":
                return graph_error(404, "ErrorItemNotFound", "The attachment was not found.")
            return Reply(200, {"@odata.type": "#microsoft.graph.fileAttachment", "id": "att/1=",
                               "name": "../report.pdf", "contentType": "application/pdf",
                               "size": len(self.attachment),
                               "contentBytes": base64.b64encode(self.attachment).decode()})
        return graph_error(405, "ErrorInvalidRequest", f"{method} {action} is not supported")

    PEOPLE = (
        {"id": "u-jane", "displayName": "Jane Doe", "mail": "jane@example.com", "userPrincipalName": "jane@example.com",
         "jobTitle": "Analyst", "department": "Finance", "officeLocation": "Berlin"},
        {"id": "u-janet", "displayName": "Janet Roe", "mail": "janet@example.com",
         "userPrincipalName": "janet@example.com", "jobTitle": "Designer", "department": "Design",
         "officeLocation": None},
        {"id": "u-bob", "displayName": "Bob Builder", "mail": "bob@example.com", "userPrincipalName": "bob@example.com",
         "jobTitle": None, "department": None, "officeLocation": None},
    )

    def _users(self, request: Request) -> Reply:
        search = request.arg("$search")
        if search is None:
            return Reply(200, {"value": list(self.PEOPLE)})
        if request.headers.get("consistencylevel", "").lower() != "eventual":
            return graph_error(400, "Request_UnsupportedQuery", "Request with $search query parameter only works "
                               "through MSGraph with a special request header: 'ConsistencyLevel: eventual'")
        terms = re.findall(r'"(displayName|mail):([^"]*)"', search)
        if not terms:
            return graph_error(400, "Request_UnsupportedQuery", "Unsupported $search syntax")
        found = [p for p in self.PEOPLE
                 if any(term.lower() in str(p["displayName" if prop == "displayName" else "mail"] or "").lower()
                        for prop, term in terms)]
        return self._page(request, found, "/users")

    def _calendar(self, request: Request) -> Reply:
        start, end = request.arg("startDateTime"), request.arg("endDateTime")
        if not start or not end:
            return graph_error(400, "ErrorInvalidParameter", "This request requires a time window specified by "
                               "the query string parameters StartDateTime and EndDateTime.")
        if 'outlook.timezone="UTC"' not in request.headers.get("prefer", ""):
            return graph_error(400, "StandInCheck", "the helper should ask for UTC times")
        events = [{"subject": "Standup", "start": {"dateTime": "2026-04-03T09:00:00.0000000", "timeZone": "UTC"},
                   "end": {"dateTime": "2026-04-03T09:15:00.0000000", "timeZone": "UTC"}, "isAllDay": False,
                   "location": {"displayName": "Teams"}, "isOnlineMeeting": True,
                   "onlineMeeting": {"joinUrl": "https://teams.microsoft.com/l/meetup-join/x"},
                   "organizer": {"emailAddress": {"name": "Mia Manager", "address": "mia@example.com"}},
                   "showAs": "busy", "isCancelled": False, "webLink": "https://outlook.office365.com/e/1"}]
        return self._page(request, events, "/me/calendarView")


# -- Teams Chat API ----------------------------------------------------------------------------------
class TeamsChatApp:
    """/api/chatsvc/{region}/v1/users/ME/conversations[/{id}/messages] in one region; other regions 404."""

    def __init__(self, token: str, region: str = "emea", max_page: int = 2) -> None:
        self.token = token
        self.region = region
        self.max_page = max_page  # small pages, so helpers must follow _metadata.backwardLink
        self.posted: list[dict[str, Any]] = []
        self.conversations = [
            self._conv("19:standup@thread.v2", "Daily standup", "Jane Doe", "<p>Shipping &amp; testing</p>",
                       "2026-04-03T09:05:00.000Z"),
            self._conv("19:u1_u2@unq.gbl.spaces", None, "Bob", "lunch?", "2026-04-02T12:00:00.000Z"),
            self._conv("48:notifications", None, "", "", "2026-04-03T10:00:00.000Z"),
            self._conv("19:design@thread.v2", "Design review", "Janet Roe", "See the mockups",
                       "2026-03-20T15:00:00.000Z"),
        ]
        self.messages = [  # newest first, as the API returns them
            self._msg("1712300000003", "RichText/Html", "Jane Doe", "<div>Deploy <b>done</b><br>all green</div>",
                      "2026-04-03T09:05:00.000Z"),
            self._msg("1712300000002", "ThreadActivity/AddMember", "", "<addmember>...</addmember>",
                      "2026-04-03T09:01:00.000Z"),
            self._msg("1712300000001", "Text", "Bob", "starting deploy", "2026-04-03T09:00:00.000Z"),
        ]

    @staticmethod
    def _conv(cid: str, topic: str | None, sender: str, content: str, when: str) -> dict[str, Any]:
        props = {"topic": topic, "threadType": "chat"} if topic else {}
        return {"id": cid, "threadProperties": props, "version": 1,
                "lastMessage": {"content": content, "imdisplayname": sender, "composetime": when}}

    @staticmethod
    def _msg(mid: str, kind: str, sender: str, content: str, when: str) -> dict[str, Any]:
        return {"id": mid, "messagetype": kind, "imdisplayname": sender, "content": content, "composetime": when,
                "originalarrivaltime": when, "contenttype": "text",
                "from": "https://emea.ng.msg.teams.microsoft.com/v1/users/ME/contacts/8:orgid:" + mid[-4:],
                "properties": {}}

    def __call__(self, request: Request) -> Reply:
        segs = request.path.strip("/").split("/")
        if segs[:2] != ["api", "chatsvc"] or len(segs) < 6 or segs[3:6] != ["v1", "users", "ME"]:
            return Reply(404, {"errorCode": 404, "message": "Not found"})
        if segs[2] != self.region:
            return Reply(404, {"errorCode": 404, "message": f"Resource not found in region {segs[2]}"})
        if bearer(request) != self.token:
            return Reply(401, {"errorCode": 911, "message": "Authentication failed."})
        rest = segs[6:]
        base = f"{request.base}/api/chatsvc/{self.region}/v1/users/ME"
        if rest == ["conversations"] and request.method == "GET":
            if request.arg("view") != "msnp24Equivalent":
                return Reply(400, {"errorCode": 400, "message": "view is required"})
            return self._page(request, self.conversations, "conversations", f"{base}/conversations")
        if len(rest) == 3 and rest[0] == "conversations" and rest[2] == "messages":
            target, _, parent = rest[1].partition(";messageid=")
            cid = unquote(target)
            if cid not in {c["id"] for c in self.conversations}:
                return Reply(404, {"errorCode": 404, "message": "Conversation not found"})
            if request.method == "GET":
                return self._page(request, self.messages, "messages",
                                  f"{base}/conversations/{quote(cid, safe='')}/messages")
            if request.method == "POST":
                body = request.json() or {}
                if not body.get("content") or body.get("messagetype") not in ("Text", "RichText/Html"):
                    return Reply(400, {"errorCode": 400, "message": "Bad message"})
                arrival = 1712300000100 + len(self.posted)
                self.posted.append({"conversation": cid, "parent": unquote(parent) or None, **body})
                return Reply(201, {"OriginalArrivalTime": arrival})
        return Reply(404, {"errorCode": 404, "message": "Not found"})

    def _page(self, request: Request, items: list[dict[str, Any]], key: str, link_base: str) -> Reply:
        size = min(int(request.arg("pageSize") or 100), self.max_page)
        start = int(request.arg("syncState") or 0)
        out: dict[str, Any] = {key: items[start: start + size], "_metadata": {"syncState": "x"}}
        if start + size < len(items):
            query = {k: v[0] for k, v in request.query.items() if k != "syncState"}
            query["syncState"] = str(start + size)
            out["_metadata"]["backwardLink"] = f"{link_base}?{urlencode(query, quote_via=quote)}"
        return Reply(200, out)


class MultiApp:
    """Route by path prefix: e.g. Graph under /v1.0 and Teams chat under /api on one server."""

    def __init__(self, routes: dict[str, App]) -> None:
        self.routes = routes

    def __call__(self, request: Request) -> Reply:
        for prefix, app in self.routes.items():
            if request.path.startswith(prefix):
                return app(request)
        return Reply(404, {"error": "no stand-in here"})


# -- Slack Web API -----------------------------------------------------------------------------------
SLACK_TEAM = "T0STANDIN"


class SlackApp:
    """/api/<method>: auth.test, conversations.*, users.*, search.messages, chat.postMessage, reactions.*.
    Needs the `d` session cookie AND the xoxc token (Authorization: Bearer, or a `token` form field)."""

    def __init__(self, cookie_d: str, xoxc: str) -> None:
        self.cookie_d = cookie_d
        self.xoxc = xoxc
        self.posted: list[dict[str, str]] = []
        self.reactions: set[tuple[str, str, str]] = set()
        self.channels = [{"id": f"C0{n:08d}", "name": name, "is_channel": True, "is_private": private,
                          "is_member": member, "num_members": 10 + n, "topic": {"value": f"{name} topic"},
                          "purpose": {"value": ""}}
                         for n, (name, private, member) in enumerate(
                             [("general", False, True), ("random", False, True), ("eng-backend", False, False),
                              ("eng-secret", True, True), ("ops", False, True)])]
        self.users = [
            {"id": "U0000ALEX", "name": "alex", "real_name": "Alex Agent", "tz": "Europe/Berlin",
             "profile": {"display_name": "alex", "real_name": "Alex Agent", "email": "alex@example.com"}},
            {"id": "U0000JANE", "name": "jane", "real_name": "Jane Doe", "tz": "Europe/Berlin",
             "profile": {"display_name": "Jane", "real_name": "Jane Doe", "email": "jane@example.com",
                         "title": "Analyst"}},
            {"id": "U0000BOBB", "name": "bob", "real_name": "Bob Builder", "tz": "America/New_York",
             "profile": {"display_name": "", "real_name": "Bob Builder", "email": "bob@example.com"}},
            {"id": "U0000GONE", "name": "gone", "deleted": True, "profile": {"real_name": "Jane Gone"}},
        ]
        now = time.time()
        self.history = [  # newest first
            {"type": "message", "ts": f"{now - 60:.6f}", "user": "U0000JANE",
             "text": "Deploy done &lt;3 <@U0000BOBB> see <https://ci.example.com/1|the run> in <#C000000004|ops>",
             "reactions": [{"name": "tada", "count": 2}], "reply_count": 1, "thread_ts": f"{now - 60:.6f}"},
            {"type": "message", "subtype": "channel_join", "ts": f"{now - 120:.6f}", "user": "U0000BOBB",
             "text": "<@U0000BOBB> has joined the channel"},
            {"type": "message", "ts": f"{now - 3 * 86400:.6f}", "user": "U0000BOBB", "text": "old news"},
        ]

    def _authorized(self, request: Request, form: dict[str, str]) -> str | None:
        """None when both parts of the browser session are there; else Slack's error code."""
        token = bearer(request) or form.get("token")
        if not token:
            return "not_authed"
        cookies = dict(p.strip().split("=", 1) for p in request.headers.get("cookie", "").split(";") if "=" in p)
        if token != self.xoxc or cookies.get("d") != self.cookie_d:
            return "invalid_auth"
        return None

    def __call__(self, request: Request) -> Reply:
        segs = request.path.strip("/").split("/")
        if len(segs) != 2 or segs[0] != "api":
            return Reply(404, b"not found", {"Content-Type": "text/html"})
        form = request.form()
        problem = self._authorized(request, form)
        if problem:
            return Reply(200, {"ok": False, "error": problem})
        handler = getattr(self, "m_" + segs[1].replace(".", "_"), None)
        if handler is None:
            return Reply(404, {"ok": False, "error": "unknown_method"})
        return Reply(200, handler(form))

    @staticmethod
    def _paged(items: list[dict[str, Any]], form: dict[str, str], key: str) -> dict[str, Any]:
        limit = int(form.get("limit") or 100)
        start = int(form.get("cursor") or 0)
        more = start + limit < len(items)
        return {"ok": True, key: items[start: start + limit],
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def m_auth_test(self, form: dict[str, str]) -> dict[str, Any]:
        return {"ok": True, "url": "https://acme.slack.com/", "team": "Acme", "user": "alex",
                "team_id": SLACK_TEAM, "user_id": "U0000ALEX"}

    def m_conversations_list(self, form: dict[str, str]) -> dict[str, Any]:
        types = (form.get("types") or "public_channel").split(",")
        chans = [c for c in self.channels if ("private_channel" if c["is_private"] else "public_channel") in types]
        if "im" in types:
            chans.append({"id": "D0000JANE", "is_im": True, "user": "U0000JANE"})
        return self._paged(chans, form, "channels")

    def _channel(self, form: dict[str, str]) -> dict[str, Any] | None:
        cid = form.get("channel")
        return next((c for c in self.channels if c["id"] == cid), None) if cid != "D0000JANE" else {"id": cid}

    def m_conversations_history(self, form: dict[str, str]) -> dict[str, Any]:
        if self._channel(form) is None:
            return {"ok": False, "error": "channel_not_found"}
        oldest = float(form.get("oldest") or 0)
        msgs = [m for m in self.history if float(m["ts"]) > oldest]
        return {**self._paged(msgs, form, "messages"), "has_more": False}

    def m_conversations_replies(self, form: dict[str, str]) -> dict[str, Any]:
        if self._channel(form) is None:
            return {"ok": False, "error": "channel_not_found"}
        parent = next((m for m in self.history if m["ts"] == form.get("ts")), None)
        if parent is None:
            return {"ok": False, "error": "thread_not_found"}
        reply = {"type": "message", "ts": f"{float(parent['ts']) + 5:.6f}", "user": "U0000BOBB",
                 "text": "nice", "thread_ts": parent["ts"]}
        return self._paged([parent, reply], form, "messages")

    def m_conversations_open(self, form: dict[str, str]) -> dict[str, Any]:
        if form.get("users") not in {u["id"] for u in self.users}:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "channel": {"id": "D" + form["users"][1:]}}

    def m_users_list(self, form: dict[str, str]) -> dict[str, Any]:
        return self._paged(self.users, form, "members")

    def m_users_info(self, form: dict[str, str]) -> dict[str, Any]:
        user = next((u for u in self.users if u["id"] == form.get("user")), None)
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def m_search_messages(self, form: dict[str, str]) -> dict[str, Any]:
        query = form.get("query") or ""
        words = [w for w in query.split() if ":" not in w]
        matches = [{"type": "message", "channel": {"id": "C000000004", "name": "ops"}, "user": m["user"],
                    "username": "jane", "ts": m["ts"], "text": m["text"],
                    "permalink": f"https://acme.slack.com/archives/C000000004/p{m['ts'].replace('.', '')}"}
                   for m in self.history if all(w.lower() in m["text"].lower() for w in words)]
        count = int(form.get("count") or 20)
        return {"ok": True, "query": query, "messages": {"total": len(matches), "matches": matches[:count],
                                                         "paging": {"count": count, "total": len(matches)}}}

    def m_chat_postMessage(self, form: dict[str, str]) -> dict[str, Any]:
        if self._channel(form) is None and not str(form.get("channel", "")).startswith("D"):
            return {"ok": False, "error": "channel_not_found"}
        if not form.get("text"):
            return {"ok": False, "error": "no_text"}
        ts = f"{time.time():.6f}"
        self.posted.append({**{k: v for k, v in form.items() if k != "token"}, "ts": ts})
        return {"ok": True, "channel": form["channel"], "ts": ts, "message": {"text": form["text"]}}

    def m_reactions_add(self, form: dict[str, str]) -> dict[str, Any]:
        key = (form.get("channel", ""), form.get("timestamp", ""), form.get("name", ""))
        if key in self.reactions:
            return {"ok": False, "error": "already_reacted"}
        self.reactions.add(key)
        return {"ok": True}

    def m_reactions_remove(self, form: dict[str, str]) -> dict[str, Any]:
        key = (form.get("channel", ""), form.get("timestamp", ""), form.get("name", ""))
        if key not in self.reactions:
            return {"ok": False, "error": "no_reaction"}
        self.reactions.discard(key)
        return {"ok": True}


# -- the web apps a browser login visits --------------------------------------------------------------
def _page(script: str, title: str) -> bytes:
    return (f"<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1>"
            f"<script>{script}</script></body></html>").encode()


class TeamsWebApp:
    """/v2/: Teams for the web after sign-in. Its MSAL cache in localStorage holds a Graph token, a
    Teams chat (ic3) token, and decoys the template's rules must not pick: an expired Graph token under
    another key format, a refresh token and an id token."""

    def __init__(self, graph_token: str, chat_token: str, lifetime_s: int = 3000) -> None:
        self.graph_token = graph_token
        self.chat_token = chat_token
        self.expires_on = int(time.time()) + lifetime_s

    def entries(self) -> dict[str, dict[str, Any]]:
        account = "0f0e-uid.72f9-tid"
        def token(secret: str, target: str, expires: int, kind: str = "AccessToken") -> dict[str, Any]:
            return {"homeAccountId": account, "environment": "login.windows.net", "credentialType": kind,
                    "clientId": "5e3ce6c0-2b1f-4285-8d4b-75ee78787346", "secret": secret, "target": target,
                    "realm": "72f9-tid", "expiresOn": str(expires), "cachedAt": str(int(time.time()))}
        return {
            f"msal.2|{account}|login.windows.net|accesstoken|5e3ce6c0|72f9-tid|"
            "https://graph.microsoft.com/.default openid profile|":
                token(self.graph_token, "https://graph.microsoft.com/.default", self.expires_on),
            f"{account}-login.windows.net-accesstoken-5e3ce6c0-72f9-tid-https://graph.microsoft.com/mail.read":
                token("expired-graph-token-decoy", "https://graph.microsoft.com/mail.read", 1_600_000_000),
            f"msal.2|{account}|login.windows.net|accesstoken|5e3ce6c0|72f9-tid|"
            "https://ic3.teams.office.com/.default|":
                token(self.chat_token, "https://ic3.teams.office.com/.default", self.expires_on),
            f"msal.2|{account}|login.windows.net|refreshtoken|5e3ce6c0||graph.microsoft.com|":
                token("refresh-token-decoy", "", self.expires_on, "RefreshToken"),
            f"msal.2|{account}|login.windows.net|idtoken|5e3ce6c0|72f9-tid||":
                token("id-token-decoy", "", self.expires_on, "IdToken"),
        }

    def __call__(self, request: Request) -> Reply:
        if request.path.rstrip("/") != "/v2":
            return Reply(404, b"not found", {"Content-Type": "text/html"})
        script = "".join(f"localStorage.setItem({json.dumps(k)}, {json.dumps(json.dumps(v))});"
                         for k, v in self.entries().items())
        return Reply(200, _page(script, "Microsoft Teams"), {"Content-Type": "text/html; charset=utf-8"})


class SlackWebApp:
    """/client/<team>: the Slack web client after sign-in: the HttpOnly `d` cookie on the response and
    the xoxc token in localStorage.localConfig_v2 (teams.<id>.token)."""

    def __init__(self, cookie_d: str, xoxc: str, team: str = SLACK_TEAM) -> None:
        self.cookie_d = cookie_d
        self.xoxc = xoxc
        self.team = team

    def __call__(self, request: Request) -> Reply:
        if request.path.rstrip("/") != f"/client/{self.team}":
            return Reply(302, b"", {"Location": "/signin", "Content-Type": "text/html"})
        config = {"teams": {self.team: {"id": self.team, "name": "Acme", "token": self.xoxc,
                                        "url": "https://acme.slack.com/"}},
                  "lastActiveTeamId": self.team}
        script = f"localStorage.setItem('localConfig_v2', {json.dumps(json.dumps(config))});"
        return Reply(200, _page(script, "Slack"), {
            "Content-Type": "text/html; charset=utf-8",
            "Set-Cookie": f"d={self.cookie_d}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"})
