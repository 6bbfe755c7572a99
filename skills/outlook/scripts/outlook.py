#!/usr/bin/env python3
"""Outlook mail through Microsoft Graph, with the credential kept inside sig.

    outlook.py me
    outlook.py list --folder inbox --unread --limit 10
    outlook.py read MESSAGE_ID
    outlook.py search 'from:jane@example.com subject:report'
    outlook.py draft --to jane@example.com --subject Hi --body 'Hello'
    outlook.py reply MESSAGE_ID --body 'Thanks!'            # a reply draft; --send sends it at once

Every request goes through `sig request --provider ms-graph` (see sigreq.py): this script never sees the
token. Output: one JSON document on stdout. Errors: {"error", "message", "hint"?} and exit 1, 2 (no
provider configured) or 3 (a person must log in), like sig's own exit codes.

Environment: GRAPH_BASE_URL (default https://graph.microsoft.com/v1.0), GRAPH_PROVIDER (default
ms-graph), SIG_BIN (the sig command). Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from graphapi import (
    GRAPH_PROVIDER,
    Graph,
    graph_base,
    odata_string,
    person,
    search_phrase,
    segment,
    utc_time,
)
from sigreq import ArgumentParser, SigClient, SkillError, run_main

WELL_KNOWN_FOLDERS = {
    "inbox": "inbox", "sentitems": "sentitems", "sent": "sentitems", "drafts": "drafts",
    "deleteditems": "deleteditems", "deleted": "deleteditems", "trash": "deleteditems", "archive": "archive",
    "junkemail": "junkemail", "junk": "junkemail", "outbox": "outbox",
}
LIST_FIELDS = ("id,subject,from,toRecipients,receivedDateTime,isRead,hasAttachments,importance,flag,"
               "bodyPreview,conversationId,webLink")
READ_FIELDS = LIST_FIELDS + ",ccRecipients,bccRecipients,replyTo,sentDateTime,body,internetMessageId"
MAX_LIMIT = 200
PAGE_SIZE = 50
TEXT_BODY = {"Prefer": 'outlook.body-content-type="text"'}
ID_LIKE = re.compile(r"^[A-Za-z0-9+/=_-]{40,}$")


# -- argument helpers --------------------------------------------------------------------------------
def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise SkillError("USAGE_ERROR", f"--limit must be between 1 and {MAX_LIMIT}", "e.g. --limit 20")
    return limit


def recipients(text: str | None, flag: str) -> list[dict[str, Any]]:
    """'a@x.com, Name <b@y.com>' as Graph recipients."""
    out: list[dict[str, Any]] = []
    for part in re.split(r"[,;]", text or ""):
        part = part.strip()
        if not part:
            continue
        match = re.fullmatch(r"(.*?)\s*<([^<>\s]+@[^<>\s]+)>", part)
        name, address = (match.group(1).strip().strip('"'), match.group(2)) if match else ("", part)
        if not re.fullmatch(r"[^@\s]+@[^@\s]+", address):
            raise SkillError("USAGE_ERROR", f"{flag}: not an e-mail address: {part!r}",
                             f'e.g. {flag} "jane@example.com, Bob <bob@example.com>"')
        entry: dict[str, Any] = {"address": address}
        if name:
            entry["name"] = name
        out.append({"emailAddress": entry})
    return out


def body_text(args: argparse.Namespace) -> str:
    if args.body is not None and args.body_file is not None:
        raise SkillError("USAGE_ERROR", "give --body or --body-file, not both", "")
    if args.body_file is not None:
        if args.body_file == "-":
            return sys.stdin.read()
        try:
            return Path(args.body_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise SkillError("USAGE_ERROR", f"cannot read {args.body_file}: {exc.strerror}", "check the path") from None
    if args.body is None:
        raise SkillError("USAGE_ERROR", "the message needs a body", "pass --body TEXT or --body-file PATH")
    return args.body


# -- shapes ------------------------------------------------------------------------------------------
def summarize(message: dict[str, Any]) -> dict[str, Any]:
    flag = message.get("flag")
    return {
        "id": message.get("id"),
        "subject": message.get("subject"),
        "from": person(message.get("from")),
        "to": [p for p in (person(r) for r in message.get("toRecipients") or []) if p],
        "received": message.get("receivedDateTime"),
        "isRead": message.get("isRead"),
        "hasAttachments": message.get("hasAttachments"),
        "importance": message.get("importance"),
        "flagged": isinstance(flag, dict) and flag.get("flagStatus") == "flagged",
        "preview": message.get("bodyPreview"),
        "conversationId": message.get("conversationId"),
        "webLink": message.get("webLink"),
    }


def detail(message: dict[str, Any]) -> dict[str, Any]:
    out = summarize(message)
    out.pop("preview", None)
    body = message.get("body") if isinstance(message.get("body"), dict) else {}
    out.update({
        "cc": [p for p in (person(r) for r in message.get("ccRecipients") or []) if p],
        "bcc": [p for p in (person(r) for r in message.get("bccRecipients") or []) if p],
        "replyTo": [p for p in (person(r) for r in message.get("replyTo") or []) if p],
        "sent": message.get("sentDateTime"),
        "bodyType": str(body.get("contentType") or "").lower() or None,
        "body": body.get("content"),
    })
    return out


def draft_result(message: Any, **extra: Any) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise SkillError("API_ERROR", "Graph did not return the draft", "look in the Drafts folder")
    return {"draft": True, "id": message.get("id"), "subject": message.get("subject"),
            "to": [p for p in (person(r) for r in message.get("toRecipients") or []) if p],
            "webLink": message.get("webLink"), **extra}


# -- operations --------------------------------------------------------------------------------------
def resolve_folder(graph: Graph, name: str) -> str:
    """A well-known folder name, a folder id, or a top-level folder's display name → what Graph takes."""
    key = name.strip()
    if not key:
        raise SkillError("USAGE_ERROR", "empty folder name", "e.g. --folder inbox")
    if key.lower() in WELL_KNOWN_FOLDERS:
        return WELL_KNOWN_FOLDERS[key.lower()]
    if ID_LIKE.match(key):
        return key
    found = graph.get("/me/mailFolders", {"$filter": f"displayName eq {odata_string(key)}",
                                          "$select": "id,displayName"})
    values = found.get("value") if isinstance(found, dict) else None
    if values:
        return str(values[0]["id"])
    raise SkillError("NOT_FOUND", f"no top-level mail folder named {key!r}",
                     "run `outlook.py folders --children` and pass the folder's id")


def op_me(graph: Graph, args: argparse.Namespace) -> Any:
    me = graph.get("/me", {"$select": "id,displayName,mail,userPrincipalName,jobTitle"})
    if not isinstance(me, dict):
        raise SkillError("API_ERROR", "the /me answer is not an object", "check --base-url")
    return {k: me.get(k) for k in ("id", "displayName", "mail", "userPrincipalName", "jobTitle")}


def _folder(entry: dict[str, Any]) -> dict[str, Any]:
    return {"id": entry.get("id"), "name": entry.get("displayName"), "parentId": entry.get("parentFolderId"),
            "unread": entry.get("unreadItemCount"), "total": entry.get("totalItemCount"),
            "children": entry.get("childFolderCount")}


def op_folders(graph: Graph, args: argparse.Namespace) -> Any:
    select = "id,displayName,parentFolderId,unreadItemCount,totalItemCount,childFolderCount"
    folders, _ = graph.collect("/me/mailFolders", {"$top": 100, "$select": select}, 500)
    out = [_folder(f) for f in folders]
    if args.children:
        for entry in list(folders):
            if entry.get("childFolderCount"):
                kids, _ = graph.collect(f"/me/mailFolders/{segment(str(entry['id']))}/childFolders",
                                        {"$top": 100, "$select": select}, 500)
                out += [_folder(k) for k in kids]
    return {"count": len(out), "folders": out}


def op_list(graph: Graph, args: argparse.Namespace) -> Any:
    limit = check_limit(args.limit)
    folder = resolve_folder(graph, args.folder)
    # Graph wants the $orderby property first in $filter when both are given.
    clauses = [f"receivedDateTime ge {utc_time(args.since, '--since') if args.since else '1900-01-01T00:00:00Z'}"]
    if args.until:
        clauses.append(f"receivedDateTime lt {utc_time(args.until, '--until')}")
    if args.unread:
        clauses.append("isRead eq false")
    if args.sender:
        clauses.append(f"from/emailAddress/address eq {odata_string(args.sender)}")
    params = {"$select": LIST_FIELDS, "$top": min(limit, PAGE_SIZE), "$orderby": "receivedDateTime desc",
              "$filter": " and ".join(clauses)}
    items, more = graph.collect(f"/me/mailFolders/{segment(folder)}/messages", params, limit)
    return {"folder": args.folder, "count": len(items), "more": more, "messages": [summarize(m) for m in items]}


def op_read(graph: Graph, args: argparse.Namespace) -> Any:
    message = graph.get(f"/me/messages/{segment(args.message_id)}", {"$select": READ_FIELDS},
                        None if args.html else TEXT_BODY)
    if not isinstance(message, dict):
        raise SkillError("API_ERROR", "the message answer is not an object", "check the id")
    return detail(message)


def op_search(graph: Graph, args: argparse.Namespace) -> Any:
    limit = check_limit(args.limit)
    path = "/me/messages"
    if args.folder:
        path = f"/me/mailFolders/{segment(resolve_folder(graph, args.folder))}/messages"
    params = {"$search": search_phrase(args.query), "$select": LIST_FIELDS, "$top": min(limit, PAGE_SIZE)}
    items, more = graph.collect(path, params, limit)
    return {"query": args.query, "count": len(items), "more": more, "messages": [summarize(m) for m in items]}


def new_message(args: argparse.Namespace) -> dict[str, Any]:
    to = recipients(args.to, "--to")
    if not to:
        raise SkillError("USAGE_ERROR", "the message needs at least one recipient", "pass --to a@example.com")
    message: dict[str, Any] = {
        "subject": args.subject,
        "body": {"contentType": "HTML" if args.html else "Text", "content": body_text(args)},
        "toRecipients": to,
        "importance": args.importance,
    }
    for key, flag in (("ccRecipients", "cc"), ("bccRecipients", "bcc")):
        value = recipients(getattr(args, flag), f"--{flag}")
        if value:
            message[key] = value
    return message


def op_draft(graph: Graph, args: argparse.Namespace) -> Any:
    return draft_result(graph.call("POST", "/me/messages", json_body=new_message(args)))


def op_send(graph: Graph, args: argparse.Namespace) -> Any:
    message = new_message(args)
    graph.call("POST", "/me/sendMail", json_body={"message": message, "saveToSentItems": not args.no_save})
    return {"sent": True, "subject": message["subject"],
            "to": [person(r) for r in message["toRecipients"]], "savedToSentItems": not args.no_save}


def op_send_draft(graph: Graph, args: argparse.Namespace) -> Any:
    graph.call("POST", f"/me/messages/{segment(args.message_id)}/send")
    return {"sent": True, "id": args.message_id}


def _respond(graph: Graph, args: argparse.Namespace, kind: str) -> Any:
    """reply / replyAll / forward: a draft (createReply...) unless --send (reply... sends at once)."""
    payload: dict[str, Any] = {"comment": body_text(args)}
    if kind == "forward":
        to = recipients(args.to, "--to")
        if not to:
            raise SkillError("USAGE_ERROR", "forward needs --to", "pass --to a@example.com")
        payload["toRecipients"] = to
    path = f"/me/messages/{segment(args.message_id)}"
    if args.send:
        graph.call("POST", f"{path}/{kind}", json_body=payload)
        return {"sent": True, "action": kind, "inReplyTo": args.message_id}
    create = {"reply": "createReply", "replyAll": "createReplyAll", "forward": "createForward"}[kind]
    return draft_result(graph.call("POST", f"{path}/{create}", json_body=payload), action=kind,
                        inReplyTo=args.message_id)


def op_reply(graph: Graph, args: argparse.Namespace) -> Any:
    return _respond(graph, args, "replyAll" if args.all else "reply")


def op_forward(graph: Graph, args: argparse.Namespace) -> Any:
    return _respond(graph, args, "forward")


def _move(graph: Graph, message_id: str, folder: str) -> dict[str, Any]:
    moved = graph.call("POST", f"/me/messages/{segment(message_id)}/move", json_body={"destinationId": folder})
    return {"moved": True, "id": moved.get("id") if isinstance(moved, dict) else None, "previousId": message_id}


def op_move(graph: Graph, args: argparse.Namespace) -> Any:
    return {**_move(graph, args.message_id, resolve_folder(graph, args.folder)), "folder": args.folder}


def op_delete(graph: Graph, args: argparse.Namespace) -> Any:
    # Moving to Deleted Items (rather than DELETE) keeps the message recoverable, as Outlook's own Delete does.
    return {**_move(graph, args.message_id, "deleteditems"), "folder": "deleteditems"}


def op_mark(graph: Graph, args: argparse.Namespace) -> Any:
    change: dict[str, Any] = {}
    if args.read or args.unread:
        change["isRead"] = bool(args.read)
    if args.flag or args.unflag or args.complete:
        change["flag"] = {"flagStatus": "flagged" if args.flag else ("complete" if args.complete else "notFlagged")}
    if not change:
        raise SkillError("USAGE_ERROR", "nothing to mark", "pass --read, --unread, --flag, --unflag or --complete")
    message = graph.call("PATCH", f"/me/messages/{segment(args.message_id)}", json_body=change)
    out = summarize(message) if isinstance(message, dict) else {"id": args.message_id}
    return {"updated": True, **out}


def op_attachments(graph: Graph, args: argparse.Namespace) -> Any:
    items, _ = graph.collect(f"/me/messages/{segment(args.message_id)}/attachments",
                             {"$select": "id,name,contentType,size,isInline"}, 500)
    return {"messageId": args.message_id, "count": len(items), "attachments": [
        {"id": a.get("id"), "name": a.get("name"), "contentType": a.get("contentType"), "size": a.get("size"),
         "inline": a.get("isInline"), "kind": str(a.get("@odata.type") or "").rsplit(".", 1)[-1] or None}
        for a in items]}


def safe_name(name: str) -> str:
    base = os.path.basename(name.replace("\\", "/")).strip().lstrip(".")
    base = re.sub(r"[\x00-\x1f]", "_", base)
    return base[:200] or "attachment"


def unique_path(folder: Path, name: str) -> Path:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    candidate = folder / name
    for n in range(1, 1000):
        if not candidate.exists():
            return candidate
        candidate = folder / (f"{stem} ({n}).{ext}" if ext else f"{stem} ({n})")
    raise SkillError("USAGE_ERROR", f"too many files named {name} in {folder}", "pass another --out folder")


def op_download(graph: Graph, args: argparse.Namespace) -> Any:
    data = graph.get(f"/me/messages/{segment(args.message_id)}/attachments/{segment(args.attachment_id)}")
    if not isinstance(data, dict) or not isinstance(data.get("contentBytes"), str):
        raise SkillError("UNSUPPORTED", "this attachment has no file content (an attached item or a link)",
                         "open the message in Outlook (its webLink) to see it")
    try:
        content = base64.b64decode(data["contentBytes"], validate=True)
    except ValueError:
        raise SkillError("API_ERROR", "the attachment content is not valid base64", "retry") from None
    folder = Path(args.out).expanduser()
    if not folder.is_dir():
        raise SkillError("USAGE_ERROR", f"{folder} is not a folder", "pass an existing folder with --out")
    path = unique_path(folder, safe_name(str(data.get("name") or "attachment")))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
    return {"saved": str(path), "name": data.get("name"), "size": len(content), "contentType": data.get("contentType")}


# -- command line ------------------------------------------------------------------------------------
def _compose(parser: argparse.ArgumentParser, to_required: bool) -> None:
    parser.add_argument("--to", required=to_required, help="recipients: 'a@x.com, Name <b@y.com>'")
    parser.add_argument("--cc", help="cc recipients")
    parser.add_argument("--bcc", help="bcc recipients")
    parser.add_argument("--subject", required=True, help="subject line")
    _body(parser)
    parser.add_argument("--html", action="store_true", help="the body is HTML (default: plain text)")
    parser.add_argument("--importance", choices=("low", "normal", "high"), default="normal")


def _body(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--body", help="message text")
    parser.add_argument("--body-file", help="read the text from a file ('-' = stdin)")


def build_parser() -> argparse.ArgumentParser:
    common = ArgumentParser(add_help=False)
    common.add_argument("--provider", default=os.environ.get("GRAPH_PROVIDER") or GRAPH_PROVIDER,
                        help="sig provider for Microsoft Graph (default ms-graph; env GRAPH_PROVIDER)")
    common.add_argument("--base-url", default=None,
                        help="Graph root (default $GRAPH_BASE_URL or https://graph.microsoft.com/v1.0)")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    parser = ArgumentParser(prog="outlook.py", description="Outlook mail through Microsoft Graph and sig.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, helptext: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=helptext, description=helptext, parents=[common])

    add("me", "the signed-in account (a quick login check)")
    p = add("folders", "mail folders with unread/total counts")
    p.add_argument("--children", action="store_true", help="also list child folders (one level)")
    p = add("list", "newest messages of a folder")
    p.add_argument("--folder", default="inbox", help="inbox (default), sentitems, drafts, archive, ..., a name or an id")
    p.add_argument("--limit", type=int, default=20, help=f"max messages, 1..{MAX_LIMIT} (default 20)")
    p.add_argument("--unread", action="store_true", help="only unread messages")
    p.add_argument("--since", help="received on or after (YYYY-MM-DD or ISO time)")
    p.add_argument("--until", help="received before (YYYY-MM-DD or ISO time)")
    p.add_argument("--from", dest="sender", help="only from this address")
    p = add("read", "one message with its body (plain text unless --html)")
    p.add_argument("message_id")
    p.add_argument("--html", action="store_true", help="the body as HTML")
    p = add("search", "search messages (KQL, e.g. 'from:jane subject:report hasattachment:true')")
    p.add_argument("query")
    p.add_argument("--folder", help="only this folder")
    p.add_argument("--limit", type=int, default=20, help=f"max messages, 1..{MAX_LIMIT} (default 20)")
    _compose(add("draft", "create a draft in Drafts (nothing is sent)"), True)
    p = add("send", "send a new message now")
    _compose(p, True)
    p.add_argument("--no-save", action="store_true", help="do not keep a copy in Sent Items")
    p = add("send-draft", "send an existing draft")
    p.add_argument("message_id")
    p = add("reply", "reply: a draft, or sent at once with --send")
    p.add_argument("message_id")
    _body(p)
    p.add_argument("--all", action="store_true", help="reply to all")
    p.add_argument("--send", action="store_true", help="send now instead of creating a draft")
    p = add("forward", "forward: a draft, or sent at once with --send")
    p.add_argument("message_id")
    p.add_argument("--to", required=True, help="recipients")
    _body(p)
    p.add_argument("--send", action="store_true", help="send now instead of creating a draft")
    p = add("move", "move a message to another folder")
    p.add_argument("message_id")
    p.add_argument("--folder", required=True, help="destination: a well-known name, a name or an id")
    p = add("delete", "move a message to Deleted Items")
    p.add_argument("message_id")
    p = add("mark", "mark read/unread or flag/unflag/complete")
    p.add_argument("message_id")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--read", action="store_true")
    group.add_argument("--unread", action="store_true")
    flags = p.add_mutually_exclusive_group()
    flags.add_argument("--flag", action="store_true")
    flags.add_argument("--unflag", action="store_true")
    flags.add_argument("--complete", action="store_true")
    p = add("attachments", "list a message's attachments")
    p.add_argument("message_id")
    p = add("download", "save one attachment to a folder")
    p.add_argument("message_id")
    p.add_argument("attachment_id")
    p.add_argument("--out", default=".", help="folder to save into (default: the current folder)")
    return parser


OPERATIONS = {
    "me": op_me, "folders": op_folders, "list": op_list, "read": op_read, "search": op_search,
    "draft": op_draft, "send": op_send, "send-draft": op_send_draft, "reply": op_reply, "forward": op_forward,
    "move": op_move, "delete": op_delete, "mark": op_mark, "attachments": op_attachments,
    "download": op_download,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def action() -> Any:
        graph = Graph(SigClient(args.provider, args.timeout), graph_base(args.base_url))
        return OPERATIONS[args.command](graph, args)

    return run_main(action)


if __name__ == "__main__":
    sys.exit(main())
