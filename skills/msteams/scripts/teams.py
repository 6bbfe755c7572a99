#!/usr/bin/env python3
"""Microsoft Teams chats (Teams Chat API) and people/calendar (Microsoft Graph), credentials kept in sig.

    teams.py conversations --search standup --limit 10
    teams.py messages '19:abc@thread.v2' --limit 30
    teams.py send '19:abc@thread.v2' --message 'On my way'
    teams.py people 'Jane Doe'
    teams.py calendar --range today

Chat calls go through `sig request --provider ms-teams`, Graph calls through `--provider ms-graph`
(see sigreq.py): this script never sees a token. Output: one JSON document on stdout. Errors:
{"error", "message", "hint"?} and exit 1, 2 (no provider configured) or 3 (a person must log in).

Environment: TEAMS_REGION (amer, emea, apac; default amer), TEAMS_CHAT_BASE_URL (default
https://teams.cloud.microsoft/api/chatsvc/{region}/v1), GRAPH_BASE_URL, TEAMS_PROVIDER (default ms-teams),
GRAPH_PROVIDER (default ms-graph), SIG_BIN. Standard library only.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import secrets
import sys
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any, ClassVar
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from graphapi import GRAPH_PROVIDER, Graph, graph_base, person, segment, utc_time
from sigreq import ArgumentParser, SigClient, SkillError, api_url, auth_required, run_main

TEAMS_PROVIDER = "ms-teams"
DEFAULT_REGION = "amer"
DEFAULT_CHAT_BASE = "https://teams.cloud.microsoft/api/chatsvc/{region}/v1"
MAX_LIMIT = 200
MAX_PAGES = 20
USER_MESSAGE_TYPES = ("Text", "RichText/Html", "RichText/Media_Card", "RichText/Media_CallRecording")
PEOPLE_FIELDS = "id,displayName,mail,userPrincipalName,jobTitle,department,officeLocation"
EVENT_FIELDS = "subject,start,end,location,organizer,isAllDay,isOnlineMeeting,onlineMeeting,showAs,webLink,isCancelled"
REGION = re.compile(r"^[a-z]{2,8}$")


# -- HTML message bodies -----------------------------------------------------------------------------
class _Text(HTMLParser):
    BREAKS: ClassVar[frozenset[str]] = frozenset({"br", "p", "div", "li", "tr", "blockquote", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BREAKS and self.parts and not self.parts[-1].endswith("\n"):
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BREAKS and self.parts and not self.parts[-1].endswith("\n"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_text(content: str) -> str:
    """The readable text of a Teams message body (HTML), tags dropped and entities decoded."""
    if "<" not in content:
        return html.unescape(content).strip()
    parser = _Text()
    parser.feed(content)
    parser.close()
    text = "".join(parser.parts)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# -- Teams Chat API ----------------------------------------------------------------------------------
def chat_base(flag: str | None, region: str) -> str:
    if not REGION.match(region):
        raise SkillError("USAGE_ERROR", f"not a Teams region: {region!r}", "use amer, emea or apac")
    text = (flag or os.environ.get("TEAMS_CHAT_BASE_URL") or DEFAULT_CHAT_BASE).strip().rstrip("/")
    text = text.replace("{region}", region)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise SkillError("USAGE_ERROR", f"not a Teams chat base URL: {text}",
                         "e.g. --chat-base-url https://teams.cloud.microsoft/api/chatsvc/amer/v1")
    return text


class Chat:
    def __init__(self, client: SigClient, base: str) -> None:
        self.client = client
        self.base = base

    def _url(self, path_or_link: str) -> str:
        return api_url(self.base, path_or_link, "Teams")

    def call(self, method: str, path: str, params: dict[str, Any] | None = None, json_body: Any = None) -> Any:
        response = self.client.request(method, self._url(path), params=params, json_body=json_body)
        data = response.json() if response.text.strip() else None
        if response.ok:
            return data
        message = ""
        if isinstance(data, dict):
            message = str(data.get("message") or data.get("errorMessage") or data.get("error") or "")
        if response.status == 401:
            raise auth_required(self.client.provider, message or "Teams answered 401: the token is missing or expired")
        if response.status == 403:
            raise SkillError("FORBIDDEN", message or "Teams answered 403", "the person has no access to this chat")
        if response.status == 404:
            raise SkillError("NOT_FOUND", message or "Teams answered 404",
                             "check the conversation id; if every call says this, the region is wrong "
                             "(--region amer|emea|apac)")
        raise SkillError(f"HTTP_{response.status}", message or f"Teams answered {response.status}", "")

    def pages(self, path: str, params: dict[str, Any], key: str, want: int) -> list[dict[str, Any]]:
        """Items of `key` across pages (each page's _metadata.backwardLink) until `want` are kept."""
        items: list[dict[str, Any]] = []
        data = self.call("GET", path, params)
        for _ in range(MAX_PAGES):
            if not isinstance(data, dict) or not isinstance(data.get(key), list):
                raise SkillError("API_ERROR", f"the answer has no {key} list", "check --chat-base-url / --region")
            batch = [i for i in data[key] if isinstance(i, dict)]
            items += batch
            meta = data.get("_metadata") if isinstance(data.get("_metadata"), dict) else {}
            link = meta.get("backwardLink")
            if len(items) >= want or not batch or not isinstance(link, str) or not link:
                break
            data = self.call("GET", link)
        return items


def sender_id(value: Any) -> str | None:
    """"8:orgid:<guid>" from a contact URL such as https://…/v1/users/ME/contacts/8:orgid:<guid>."""
    if not isinstance(value, str) or not value:
        return None
    return value.rstrip("/").rsplit("/", 1)[-1]


def summarize_conversation(conv: dict[str, Any]) -> dict[str, Any]:
    props = conv.get("threadProperties") if isinstance(conv.get("threadProperties"), dict) else {}
    last = conv.get("lastMessage") if isinstance(conv.get("lastMessage"), dict) else {}
    return {
        "id": conv.get("id"),
        "type": props.get("threadType") or ("oneOnOne" if str(conv.get("id", "")).endswith("@unq.gbl.spaces")
                                            else "chat"),
        "topic": props.get("topic") or props.get("spaceThreadTopic") or None,
        "lastMessage": html_text(str(last.get("content") or ""))[:300] or None,
        "lastSender": last.get("imdisplayname") or None,
        "lastTime": last.get("composetime") or last.get("originalarrivaltime") or None,
    }


def summarize_message(msg: dict[str, Any]) -> dict[str, Any]:
    props = msg.get("properties") if isinstance(msg.get("properties"), dict) else {}
    return {
        "id": msg.get("id"),
        "time": msg.get("composetime") or msg.get("originalarrivaltime"),
        "sender": msg.get("imdisplayname") or None,
        "senderId": sender_id(msg.get("from")),
        "type": msg.get("messagetype"),
        "content": html_text(str(msg.get("content") or "")),
        "edited": bool(props.get("edittime")) or None,
        "deleted": bool(props.get("deletetime")) or None,
    }


def _after(value: str | None, since: str | None, until: str | None) -> bool:
    """ISO times compare as strings when both are UTC ("…Z"), which the Chat API uses."""
    if not value:
        return True
    if since and value < since:
        return False
    return not (until and value >= until)


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise SkillError("USAGE_ERROR", f"--limit must be between 1 and {MAX_LIMIT}", "e.g. --limit 20")
    return limit


def utc_bound(value: str | None, flag: str) -> str | None:
    return None if value is None else utc_time(value, flag)


def op_conversations(chat: Chat, args: argparse.Namespace) -> Any:
    limit = check_limit(args.limit)
    since, until = utc_bound(args.since, "--since"), utc_bound(args.until, "--until")
    filtering = bool(args.search or since or until)
    page = min(MAX_LIMIT, limit * 3 if filtering else limit + 10)
    raw = chat.pages("/users/ME/conversations", {"view": "msnp24Equivalent", "pageSize": page}, "conversations",
                     MAX_LIMIT if filtering else limit + 10)
    out = []
    needle = (args.search or "").casefold()
    for conv in raw:
        if str(conv.get("id", "")).startswith("48:"):  # notifications, call logs, mentions: not chats
            continue
        item = summarize_conversation(conv)
        if not _after(item["lastTime"], since, until):
            continue
        if needle and not any(needle in str(item[k] or "").casefold() for k in ("topic", "lastMessage", "lastSender")):
            continue
        out.append(item)
        if len(out) >= limit:
            break
    return {"count": len(out), "conversations": out}


def op_messages(chat: Chat, args: argparse.Namespace) -> Any:
    limit = check_limit(args.limit)
    since, until = utc_bound(args.since, "--since"), utc_bound(args.until, "--until")
    filtering = bool(args.search or since or until)
    path = f"/users/ME/conversations/{segment(args.conversation_id)}/messages"
    params = {"view": "msnp24Equivalent|supportsMessageProperties", "pageSize": min(MAX_LIMIT, limit * 2),
              "startTime": 1}
    raw = chat.pages(path, params, "messages", MAX_LIMIT * 2 if filtering else limit * 2)
    needle = (args.search or "").casefold()
    out = []
    for msg in raw:
        if not args.all_types and msg.get("messagetype") not in USER_MESSAGE_TYPES:
            continue
        item = summarize_message(msg)
        if not _after(item["time"], since, until):
            continue
        if needle and needle not in item["content"].casefold():
            continue
        out.append(item)
        if len(out) >= limit:
            break
    return {"conversationId": args.conversation_id, "count": len(out), "messages": out, "order": "newest first"}


def op_send(chat: Chat, args: argparse.Namespace) -> Any:
    if args.message is not None and args.message_file is not None:
        raise SkillError("USAGE_ERROR", "give --message or --message-file, not both", "")
    text = args.message if args.message is not None else sys.stdin.read() if args.message_file == "-" else None
    if args.message_file not in (None, "-"):
        try:
            with open(args.message_file, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise SkillError("USAGE_ERROR", f"cannot read {args.message_file}: {exc.strerror}", "check the path") from None
    if not text or not text.strip():
        raise SkillError("USAGE_ERROR", "the message is empty", "pass --message TEXT or --message-file PATH")
    conv = segment(args.conversation_id)
    target = f"{conv};messageid={segment(args.reply_to)}" if args.reply_to else conv
    if args.format == "text":
        content, kind = text, "Text"
    elif args.format == "html":
        content, kind = text, "RichText/Html"
    else:  # plain text shown as typed: escape it and keep its line breaks
        content, kind = html.escape(text).replace("\n", "<br>"), "RichText/Html"
    payload = {"content": content, "messagetype": kind, "contenttype": "text",
               "clientmessageid": str(secrets.randbelow(10**18) + 10**18)}
    data = chat.call("POST", f"/users/ME/conversations/{target}/messages", json_body=payload)
    arrival = data.get("OriginalArrivalTime") if isinstance(data, dict) else None
    message_id = (data.get("id") if isinstance(data, dict) else None) or (str(arrival) if arrival else None)
    return {"sent": True, "conversationId": args.conversation_id, "messageId": message_id,
            "replyTo": args.reply_to, "clientMessageId": payload["clientmessageid"]}


# -- Graph: people and calendar ----------------------------------------------------------------------
def summarize_person(entry: dict[str, Any]) -> dict[str, Any]:
    return {"id": entry.get("id"), "name": entry.get("displayName"), "mail": entry.get("mail"),
            "upn": entry.get("userPrincipalName"), "jobTitle": entry.get("jobTitle"),
            "department": entry.get("department"), "office": entry.get("officeLocation")}


def op_me(graph: Graph, args: argparse.Namespace) -> Any:
    me = graph.get("/me", {"$select": PEOPLE_FIELDS})
    if not isinstance(me, dict):
        raise SkillError("API_ERROR", "the /me answer is not an object", "check --graph-base-url")
    return summarize_person(me)


def op_people(graph: Graph, args: argparse.Namespace) -> Any:
    limit = check_limit(args.limit)
    term = re.sub(r'["\\]', " ", args.query).strip()
    if not term:
        raise SkillError("USAGE_ERROR", "empty search", "e.g. teams.py people 'Jane Doe'")
    params = {"$search": f'"displayName:{term}" OR "mail:{term}"', "$select": PEOPLE_FIELDS,
              "$top": min(limit, 100), "$count": "true"}
    items, more = graph.collect("/users", params, limit, {"ConsistencyLevel": "eventual"})
    return {"query": args.query, "count": len(items), "more": more, "people": [summarize_person(p) for p in items]}


def _user_path(user: str | None) -> str:
    return f"/users/{segment(user)}" if user else "/me"


def op_manager(graph: Graph, args: argparse.Namespace) -> Any:
    try:
        boss = graph.get(f"{_user_path(args.user)}/manager", {"$select": PEOPLE_FIELDS})
    except SkillError as err:
        if err.code == "NOT_FOUND" and "manager" in err.message.lower():
            return {"user": args.user or "me", "manager": None}
        raise
    return {"user": args.user or "me", "manager": summarize_person(boss) if isinstance(boss, dict) else None}


def op_reports(graph: Graph, args: argparse.Namespace) -> Any:
    items, _ = graph.collect(f"{_user_path(args.user)}/directReports", {"$select": PEOPLE_FIELDS}, 500)
    return {"user": args.user or "me", "count": len(items), "reports": [summarize_person(p) for p in items]}


def calendar_window(args: argparse.Namespace, now: datetime | None = None) -> tuple[str, str]:
    """(start, end) as ISO times with the local offset: --start/--end, or --range from local midnight."""
    now = (now or datetime.now()).astimezone()
    if args.start:
        start = utc_bound(args.start, "--start")
        end = utc_bound(args.end, "--end") if args.end else None
        if end is None:
            begin = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
            end = (begin + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return str(start), end
    if args.end:
        raise SkillError("USAGE_ERROR", "--end needs --start", "e.g. --start 2026-04-01 --end 2026-04-08")
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    days = {"today": (0, 1), "tomorrow": (1, 2), "week": (0, 7), "month": (0, 31)}[args.range]
    begin, end_dt = midnight + timedelta(days=days[0]), midnight + timedelta(days=days[1])
    return begin.isoformat(timespec="seconds"), end_dt.isoformat(timespec="seconds")


def op_calendar(graph: Graph, args: argparse.Namespace) -> Any:
    limit = check_limit(args.limit)
    start, end = calendar_window(args)
    params = {"startDateTime": start, "endDateTime": end, "$select": EVENT_FIELDS,
              "$orderby": "start/dateTime", "$top": min(limit, 100)}
    items, more = graph.collect("/me/calendarView", params, limit, {"Prefer": 'outlook.timezone="UTC"'})
    events = []
    for ev in items:
        location = ev.get("location") if isinstance(ev.get("location"), dict) else {}
        online = ev.get("onlineMeeting") if isinstance(ev.get("onlineMeeting"), dict) else {}
        events.append({
            "subject": ev.get("subject"),
            "start": (ev.get("start") or {}).get("dateTime"),
            "end": (ev.get("end") or {}).get("dateTime"),
            "allDay": ev.get("isAllDay"),
            "location": location.get("displayName") or None,
            "organizer": person(ev.get("organizer")),
            "online": ev.get("isOnlineMeeting"),
            "joinUrl": online.get("joinUrl"),
            "showAs": ev.get("showAs"),
            "cancelled": ev.get("isCancelled"),
            "webLink": ev.get("webLink"),
        })
    return {"start": start, "end": end, "timeZone": "UTC", "count": len(events), "more": more, "events": events}


# -- command line ------------------------------------------------------------------------------------
CHAT_OPS = {"conversations": op_conversations, "messages": op_messages, "send": op_send}
GRAPH_OPS = {"me": op_me, "people": op_people, "manager": op_manager, "reports": op_reports,
             "calendar": op_calendar}


def build_parser() -> argparse.ArgumentParser:
    chat_common = ArgumentParser(add_help=False)
    chat_common.add_argument("--region", default=os.environ.get("TEAMS_REGION") or DEFAULT_REGION,
                             help="Teams chat region: amer, emea, apac (default $TEAMS_REGION or amer)")
    chat_common.add_argument("--chat-base-url", default=None,
                             help="Chat API root (default $TEAMS_CHAT_BASE_URL or "
                                  "https://teams.cloud.microsoft/api/chatsvc/{region}/v1)")
    chat_common.add_argument("--chat-provider", default=os.environ.get("TEAMS_PROVIDER") or TEAMS_PROVIDER,
                             help="sig provider for the Chat API (default ms-teams; env TEAMS_PROVIDER)")
    chat_common.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    graph_common = ArgumentParser(add_help=False)
    graph_common.add_argument("--graph-base-url", default=None,
                              help="Graph root (default $GRAPH_BASE_URL or https://graph.microsoft.com/v1.0)")
    graph_common.add_argument("--graph-provider", default=os.environ.get("GRAPH_PROVIDER") or GRAPH_PROVIDER,
                              help="sig provider for Microsoft Graph (default ms-graph; env GRAPH_PROVIDER)")
    graph_common.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")

    parser = ArgumentParser(prog="teams.py", description="Microsoft Teams chats, people and calendar through sig.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, helptext: str, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=helptext, description=helptext, parents=[common])

    p = add("conversations", "recent chats, group chats and meetings (Chat API)", chat_common)
    p.add_argument("--search", help="only those whose topic, last message or last sender contains this")
    p.add_argument("--limit", type=int, default=20, help=f"max conversations, 1..{MAX_LIMIT} (default 20)")
    p.add_argument("--since", help="last activity on or after (YYYY-MM-DD or ISO time)")
    p.add_argument("--until", help="last activity before (YYYY-MM-DD or ISO time)")
    p = add("messages", "messages of one conversation, newest first (Chat API)", chat_common)
    p.add_argument("conversation_id")
    p.add_argument("--limit", type=int, default=20, help=f"max messages, 1..{MAX_LIMIT} (default 20)")
    p.add_argument("--search", help="only messages containing this text")
    p.add_argument("--since", help="sent on or after (YYYY-MM-DD or ISO time)")
    p.add_argument("--until", help="sent before (YYYY-MM-DD or ISO time)")
    p.add_argument("--all-types", action="store_true", help="include system messages (joins, topic changes, ...)")
    p = add("send", "send a message to a conversation, or a reply in a channel thread (Chat API)", chat_common)
    p.add_argument("conversation_id")
    p.add_argument("--message", help="the text")
    p.add_argument("--message-file", help="read the text from a file ('-' = stdin)")
    p.add_argument("--format", choices=("plain", "html", "text"), default="plain",
                   help="plain (default: shown as typed), html (your own markup), text (Teams plain text)")
    p.add_argument("--reply-to", help="the id of the thread's first message (channel threads)")
    add("me", "the signed-in account (Graph; a quick login check)", graph_common)
    p = add("people", "find people in the organisation by name or e-mail (Graph)", graph_common)
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=10, help=f"max people, 1..{MAX_LIMIT} (default 10)")
    p = add("manager", "someone's manager (Graph; default: yours)", graph_common)
    p.add_argument("user", nargs="?", help="user id or e-mail (default: me)")
    p = add("reports", "someone's direct reports (Graph; default: yours)", graph_common)
    p.add_argument("user", nargs="?", help="user id or e-mail (default: me)")
    p = add("calendar", "your calendar events in a time window (Graph; times in UTC)", graph_common)
    p.add_argument("--range", choices=("today", "tomorrow", "week", "month"), default="today",
                   help="from local midnight today (or tomorrow): 1, 7 or 31 days (default today)")
    p.add_argument("--start", help="window start (YYYY-MM-DD or ISO time); overrides --range")
    p.add_argument("--end", help="window end (default: start + 1 day)")
    p.add_argument("--limit", type=int, default=50, help=f"max events, 1..{MAX_LIMIT} (default 50)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def action() -> Any:
        if args.command in CHAT_OPS:
            chat = Chat(SigClient(args.chat_provider, args.timeout), chat_base(args.chat_base_url, args.region))
            return CHAT_OPS[args.command](chat, args)
        graph = Graph(SigClient(args.graph_provider, args.timeout), graph_base(args.graph_base_url))
        return GRAPH_OPS[args.command](graph, args)

    return run_main(action)


if __name__ == "__main__":
    sys.exit(main())
