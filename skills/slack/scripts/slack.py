#!/usr/bin/env python3
"""Slack channels, messages, search and reactions through the Slack Web API, credentials kept in sig.

    slack.py whoami
    slack.py channels --query eng
    slack.py history '#general' --since 1d
    slack.py search 'deploy in:#ops after:2026-04-01'
    slack.py send '#general' --message 'Deployed.'

Every call is `sig request --provider app-slack` to https://slack.com/api/<method> (see sigreq.py): sig
adds the browser session (the `d` cookie and the xoxc token) and this script never sees them. Output:
one JSON document on stdout. Errors: {"error", "message", "hint"?, "slackError"?} and exit 1, 2 (no
provider configured) or 3 (a person must log in).

Environment: SLACK_API_BASE_URL (default https://slack.com/api), SLACK_PROVIDER (default app-slack),
SIG_BIN. Standard library only.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sigreq import ArgumentParser, SigClient, SkillError, auth_required, run_main

DEFAULT_BASE = "https://slack.com/api"
SLACK_PROVIDER = "app-slack"
MAX_LIMIT = 1000
MAX_PAGES = 25
MAX_NAME_LOOKUPS = 50
AUTH_ERRORS = ("invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive")
NOT_FOUND_HINTS = {
    "channel_not_found": "check the channel: `slack.py channels --query NAME` lists ids",
    "user_not_found": "check the user: `slack.py users NAME`",
    "thread_not_found": "check the thread's ts (the first message's ts)",
    "message_not_found": "check the message ts",
}
ACTIVITY_SUBTYPES = ("channel_join", "channel_leave", "channel_topic", "channel_purpose", "channel_name",
                     "channel_archive", "channel_unarchive", "group_join", "group_leave", "group_topic",
                     "group_purpose", "group_name", "group_archive", "group_unarchive")
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
USER_ID = re.compile(r"^[UW][A-Z0-9]{6,}$")
TS = re.compile(r"^\d{9,11}\.\d{6}$")
RELATIVE = re.compile(r"^(\d+)([mhdw])$")
UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


def api_base(flag: str | None) -> str:
    text = (flag or os.environ.get("SLACK_API_BASE_URL") or DEFAULT_BASE).strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise SkillError("USAGE_ERROR", f"not a Slack API base URL: {text}", f"e.g. --base-url {DEFAULT_BASE}")
    return text


class Slack:
    def __init__(self, client: SigClient, base: str) -> None:
        self.client = client
        self.base = base
        self._names: dict[str, str] = {}

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """POST a form to one Web API method; {"ok": false} answers become SkillErrors."""
        form = {k: v for k, v in params.items() if v is not None}
        response = self.client.request("POST", f"{self.base}/{method}", form=form)
        data = response.json() if response.text.strip() else None
        if not isinstance(data, dict):
            if response.status == 401:
                raise auth_required(self.client.provider, "Slack answered 401")
            raise SkillError(f"HTTP_{response.status}", f"{method}: Slack answered {response.status} without JSON",
                             "check --base-url")
        if data.get("ok") is True:
            return data
        raise slack_error(method, str(data.get("error") or f"http_{response.status}"), self.client.provider,
                          data.get("needed"))

    def paged(self, method: str, key: str, want: int, **params: Any) -> list[dict[str, Any]]:
        """Items of `key` across cursor pages until `want` are gathered (or the list ends)."""
        items: list[dict[str, Any]] = []
        cursor = None
        for _ in range(MAX_PAGES):
            data = self.call(method, cursor=cursor, **params)
            items += [i for i in data.get(key) or [] if isinstance(i, dict)]
            meta = data.get("response_metadata") if isinstance(data.get("response_metadata"), dict) else {}
            cursor = meta.get("next_cursor") or None
            if len(items) >= want or not cursor:
                break
        return items

    def user_name(self, user_id: str) -> str:
        """A display name for a user id (users.info, cached; bounded so a busy channel stays cheap)."""
        if user_id in self._names:
            return self._names[user_id]
        if len(self._names) >= MAX_NAME_LOOKUPS:
            return user_id
        try:
            user = self.call("users.info", user=user_id).get("user") or {}
        except SkillError as err:
            if err.exit_code != 1:
                raise
            user = {}
        profile = user.get("profile") if isinstance(user.get("profile"), dict) else {}
        name = profile.get("display_name") or profile.get("real_name") or user.get("name") or user_id
        self._names[user_id] = str(name)
        return self._names[user_id]


class SlackError(SkillError):
    """A Slack {"ok": false, "error": ...} answer; `slack_error` is Slack's own code."""

    def __init__(self, code: str, message: str, hint: str, slack_error: str) -> None:
        super().__init__(code, message, hint)
        self.slack_error = slack_error

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "slackError": self.slack_error}


def slack_error(method: str, error: str, provider: str, needed: Any = None) -> SkillError:
    if error in AUTH_ERRORS:
        return auth_required(provider, f"{method}: Slack said {error} (the browser session ended or is incomplete)")
    if error in NOT_FOUND_HINTS:
        return SlackError("NOT_FOUND", f"{method}: {error}", NOT_FOUND_HINTS[error], error)
    if error == "not_in_channel":
        return SlackError("NOT_IN_CHANNEL", f"{method}: the person is not a member of this channel",
                          "ask the person to join it in Slack first", error)
    if error in ("ratelimited", "rate_limited"):
        return SlackError("RATE_LIMITED", f"{method}: Slack is rate-limiting", "wait a minute, then retry", error)
    if error == "missing_scope":
        return SlackError("FORBIDDEN", f"{method}: the session lacks a permission" + (f" ({needed})" if needed else ""),
                          "this workspace does not allow it for this account", error)
    return SlackError("SLACK_ERROR", f"{method}: {error}", "see https://api.slack.com/methods/" + method, error)


# -- helpers -----------------------------------------------------------------------------------------
def check_limit(limit: int, top: int = MAX_LIMIT) -> int:
    if not 1 <= limit <= top:
        raise SkillError("USAGE_ERROR", f"--limit must be between 1 and {top}", "e.g. --limit 50")
    return limit


def oldest(value: str | None, now: float | None = None) -> str | None:
    """--since as Slack's `oldest` (epoch seconds): 30m, 2h, 1d, 1w, or a date / ISO time (local)."""
    if value is None:
        return None
    text = value.strip()
    match = RELATIVE.match(text)
    if match:
        seconds = int(match.group(1)) * UNITS[match.group(2)]
        return f"{(now if now is not None else time.time()) - seconds:.6f}"
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SkillError("USAGE_ERROR", f"--since takes 30m, 2h, 1d, 1w or a date: {value!r}",
                         "e.g. --since 1d or --since 2026-04-01") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return f"{moment.timestamp():.6f}"


def check_ts(value: str, flag: str) -> str:
    if not TS.match(value.strip()):
        raise SkillError("USAGE_ERROR", f"{flag} is a Slack message ts such as 1712345678.123456: {value!r}",
                         "take it from `slack.py history` (the ts field)")
    return value.strip()


def readable(text: str, slack: Slack | None) -> str:
    """Slack's markup in readable form: <@U1> → @name, <#C1|x> → #x, <url|label> → label (url)."""

    def swap(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            uid = target[1:]
            return "@" + (label or (slack.user_name(uid) if slack and USER_ID.match(uid) else uid))
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):  # <!here>, <!subteam^S1|@team>
            return "@" + (label or target[1:].split("^")[0]).lstrip("@")
        return f"{label} ({target})" if label and label != target else target

    return html.unescape(re.sub(r"<([^<>]+)>", swap, text or ""))


def message(msg: dict[str, Any], slack: Slack | None) -> dict[str, Any]:
    user = msg.get("user")
    return {
        "ts": msg.get("ts"),
        "user": user or msg.get("bot_id"),
        "userName": (slack.user_name(user) if slack and isinstance(user, str) and USER_ID.match(user)
                     else msg.get("username")) or None,
        "text": readable(str(msg.get("text") or ""), slack),
        "threadTs": msg.get("thread_ts"),
        "replies": msg.get("reply_count") or 0,
        "reactions": [{"name": r.get("name"), "count": r.get("count")} for r in msg.get("reactions") or []
                      if isinstance(r, dict)] or None,
        "files": [f.get("name") for f in msg.get("files") or [] if isinstance(f, dict)] or None,
        "subtype": msg.get("subtype"),
    }


def resolve_channel(slack: Slack, value: str) -> str:
    """#name (channels you can see), @name or an e-mail (opens the DM), or a channel id."""
    text = value.strip()
    if CHANNEL_ID.match(text):
        return text
    if text.startswith("@") or ("@" in text and "." in text.split("@")[-1]):
        return open_dm(slack, find_user(slack, text.lstrip("@")))
    name = text.lstrip("#").lower()
    for channel in slack.paged("conversations.list", "channels", 100_000, limit=200, exclude_archived="true",
                               types="public_channel,private_channel"):
        if str(channel.get("name") or "").lower() == name:
            return str(channel["id"])
    raise SkillError("NOT_FOUND", f"no channel named #{name} that this account can see",
                     "`slack.py channels --query NAME` lists channels; pass the id")


def _user_matches(user: dict[str, Any], needle: str) -> bool:
    profile = user.get("profile") if isinstance(user.get("profile"), dict) else {}
    fields = (user.get("name"), user.get("real_name"), profile.get("display_name"), profile.get("real_name"),
              profile.get("email"))
    return any(needle in str(f or "").casefold() for f in fields)


def find_user(slack: Slack, query: str) -> dict[str, Any]:
    """The one user whose handle, name or e-mail is `query` (exactly, else the only partial match)."""
    needle = query.strip().casefold()
    users = [u for u in slack.paged("users.list", "members", 100_000, limit=200) if not u.get("deleted")]
    exact = [u for u in users if needle in {str(u.get("name") or "").casefold(),
                                            str((u.get("profile") or {}).get("email") or "").casefold(),
                                            str((u.get("profile") or {}).get("display_name") or "").casefold()}]
    found = exact or [u for u in users if _user_matches(u, needle)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise SkillError("NOT_FOUND", f"no user matches {query!r}", "`slack.py users NAME` searches users")
    names = ", ".join(f"{u.get('name')} ({u.get('id')})" for u in found[:10])
    raise SkillError("AMBIGUOUS", f"{len(found)} users match {query!r}: {names}", "pass the exact handle or e-mail")


def open_dm(slack: Slack, user: dict[str, Any]) -> str:
    data = slack.call("conversations.open", users=user.get("id"))
    channel = data.get("channel") if isinstance(data.get("channel"), dict) else {}
    if not channel.get("id"):
        raise SkillError("API_ERROR", "conversations.open returned no channel", "retry")
    return str(channel["id"])


def user_summary(user: dict[str, Any]) -> dict[str, Any]:
    profile = user.get("profile") if isinstance(user.get("profile"), dict) else {}
    return {"id": user.get("id"), "name": user.get("name"), "realName": profile.get("real_name") or user.get("real_name"),
            "displayName": profile.get("display_name") or None, "email": profile.get("email"),
            "title": profile.get("title") or None, "timeZone": user.get("tz"), "bot": bool(user.get("is_bot"))}


# -- operations --------------------------------------------------------------------------------------
def op_whoami(slack: Slack, args: argparse.Namespace) -> Any:
    data = slack.call("auth.test")
    return {"user": data.get("user"), "userId": data.get("user_id"), "team": data.get("team"),
            "teamId": data.get("team_id"), "url": data.get("url"), "enterpriseId": data.get("enterprise_id")}


def op_channels(slack: Slack, args: argparse.Namespace) -> Any:
    limit = check_limit(args.limit)
    needle = (args.query or "").casefold()
    want = 100_000 if needle or args.member else limit
    raw = slack.paged("conversations.list", "channels", want, limit=200, exclude_archived="true", types=args.types)
    out = []
    for ch in raw:
        if needle and needle not in str(ch.get("name") or "").casefold():
            continue
        if args.member and not (ch.get("is_member") or ch.get("is_im")):
            continue
        kind = ("im" if ch.get("is_im") else "mpim" if ch.get("is_mpim")
                else "private" if ch.get("is_private") else "public")
        out.append({"id": ch.get("id"), "name": ch.get("name"), "type": kind, "member": ch.get("is_member"),
                    "members": ch.get("num_members"), "user": ch.get("user"),
                    "topic": (ch.get("topic") or {}).get("value") or None,
                    "purpose": (ch.get("purpose") or {}).get("value") or None})
        if len(out) >= limit:
            break
    return {"count": len(out), "channels": out}


def op_history(slack: Slack, args: argparse.Namespace) -> Any:
    limit = check_limit(args.limit)
    channel = resolve_channel(slack, args.channel)
    raw = slack.paged("conversations.history", "messages", limit, channel=channel, limit=min(limit, 200),
                      oldest=oldest(args.since))
    names = None if args.no_names else slack
    out = [message(m, names) for m in raw
           if args.include_activity or m.get("subtype") not in ACTIVITY_SUBTYPES][:limit]
    return {"channel": channel, "count": len(out), "order": "newest first", "messages": out}


def op_thread(slack: Slack, args: argparse.Namespace) -> Any:
    limit = check_limit(args.limit)
    channel = resolve_channel(slack, args.channel)
    raw = slack.paged("conversations.replies", "messages", limit, channel=channel,
                      ts=check_ts(args.ts, "TS"), limit=min(limit, 200))
    names = None if args.no_names else slack
    out = [message(m, names) for m in raw][:limit]
    return {"channel": channel, "threadTs": args.ts, "count": len(out), "order": "oldest first", "messages": out}


def op_search(slack: Slack, args: argparse.Namespace) -> Any:
    limit = check_limit(args.limit, 100)
    data = slack.call("search.messages", query=args.query, count=limit, sort=args.sort, sort_dir="desc",
                      highlight="false")
    block = data.get("messages") if isinstance(data.get("messages"), dict) else {}
    matches = []
    for m in block.get("matches") or []:
        if not isinstance(m, dict):
            continue
        channel = m.get("channel") if isinstance(m.get("channel"), dict) else {}
        matches.append({"channel": channel.get("id"), "channelName": channel.get("name"), "ts": m.get("ts"),
                        "user": m.get("user"), "userName": m.get("username"),
                        "text": readable(str(m.get("text") or ""), None), "permalink": m.get("permalink")})
    total = (block.get("paging") or {}).get("total") if isinstance(block.get("paging"), dict) else block.get("total")
    return {"query": args.query, "count": len(matches), "total": total, "matches": matches[:limit]}


def op_send(slack: Slack, args: argparse.Namespace) -> Any:
    text = args.message
    if args.message_file is not None:
        if text is not None:
            raise SkillError("USAGE_ERROR", "give --message or --message-file, not both", "")
        try:
            text = sys.stdin.read() if args.message_file == "-" else Path(args.message_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise SkillError("USAGE_ERROR", f"cannot read {args.message_file}: {exc.strerror}", "check the path") from None
    if not text or not text.strip():
        raise SkillError("USAGE_ERROR", "the message is empty", "pass --message TEXT")
    channel = resolve_channel(slack, args.channel)
    data = slack.call("chat.postMessage", channel=channel, text=text,
                      thread_ts=check_ts(args.thread, "--thread") if args.thread else None)
    return {"sent": True, "channel": data.get("channel") or channel, "ts": data.get("ts"), "threadTs": args.thread}


def op_react(slack: Slack, args: argparse.Namespace) -> Any:
    channel = resolve_channel(slack, args.channel)
    name = args.emoji.strip().strip(":")
    if not re.fullmatch(r"[a-z0-9_+'-]+(::skin-tone-\d)?", name):
        raise SkillError("USAGE_ERROR", f"not an emoji name: {args.emoji!r}", "e.g. thumbsup, white_check_mark")
    method = "reactions.remove" if args.remove else "reactions.add"
    try:
        slack.call(method, channel=channel, timestamp=check_ts(args.ts, "TS"), name=name)
    except SlackError as err:
        if err.slack_error not in ("already_reacted", "no_reaction"):
            raise
        return {"ok": True, "changed": False, "reaction": name, "removed": args.remove}
    return {"ok": True, "changed": True, "reaction": name, "removed": args.remove, "channel": channel, "ts": args.ts}


def op_users(slack: Slack, args: argparse.Namespace) -> Any:
    limit = check_limit(args.limit)
    needle = args.query.strip().casefold()
    users = slack.paged("users.list", "members", 100_000, limit=200)
    found = [user_summary(u) for u in users if not u.get("deleted") and _user_matches(u, needle)]
    return {"query": args.query, "count": min(len(found), limit), "users": found[:limit]}


# -- command line ------------------------------------------------------------------------------------
OPERATIONS = {"whoami": op_whoami, "channels": op_channels, "history": op_history, "thread": op_thread,
              "search": op_search, "send": op_send, "react": op_react, "users": op_users}


def build_parser() -> argparse.ArgumentParser:
    common = ArgumentParser(add_help=False)
    common.add_argument("--provider", default=os.environ.get("SLACK_PROVIDER") or SLACK_PROVIDER,
                        help="sig provider for Slack (default app-slack; env SLACK_PROVIDER)")
    common.add_argument("--base-url", default=None,
                        help="Web API root (default $SLACK_API_BASE_URL or https://slack.com/api)")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    parser = ArgumentParser(prog="slack.py", description="Slack through the Web API and sig.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, helptext: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=helptext, description=helptext, parents=[common])

    add("whoami", "the signed-in user and workspace (a quick login check)")
    p = add("channels", "channels this account can see")
    p.add_argument("--types", default="public_channel,private_channel",
                   help="any of public_channel,private_channel,mpim,im (default public_channel,private_channel)")
    p.add_argument("--query", help="only channels whose name contains this")
    p.add_argument("--member", action="store_true", help="only channels the person is a member of")
    p.add_argument("--limit", type=int, default=100, help=f"max channels, 1..{MAX_LIMIT} (default 100)")
    p = add("history", "recent messages of a channel or DM, newest first")
    p.add_argument("channel", help="#name, @user, an e-mail, or a channel id")
    p.add_argument("--since", help="30m, 2h, 1d, 1w, or a date (default: no bound)")
    p.add_argument("--limit", type=int, default=50, help=f"max messages, 1..{MAX_LIMIT} (default 50)")
    p.add_argument("--include-activity", action="store_true", help="keep joins, leaves and topic changes")
    p.add_argument("--no-names", action="store_true", help="do not look up user names")
    p = add("thread", "a thread: its first message and the replies")
    p.add_argument("channel", help="#name, @user, an e-mail, or a channel id")
    p.add_argument("ts", help="the thread's ts (from history)")
    p.add_argument("--limit", type=int, default=100, help=f"max messages, 1..{MAX_LIMIT} (default 100)")
    p.add_argument("--no-names", action="store_true", help="do not look up user names")
    p = add("search", "search messages (Slack syntax: in:#chan from:@user before:/after:/on:DATE)")
    p.add_argument("query")
    p.add_argument("--sort", choices=("score", "timestamp"), default="timestamp", help="default timestamp")
    p.add_argument("--limit", type=int, default=20, help="max matches, 1..100 (default 20)")
    p = add("send", "post a message (or a thread reply with --thread)")
    p.add_argument("channel", help="#name, @user, an e-mail, or a channel id")
    p.add_argument("--message", help="the text (Slack mrkdwn)")
    p.add_argument("--message-file", help="read the text from a file ('-' = stdin)")
    p.add_argument("--thread", help="the ts of the thread to reply in")
    p = add("react", "add (or --remove) an emoji reaction")
    p.add_argument("channel", help="#name, @user, an e-mail, or a channel id")
    p.add_argument("ts", help="the message's ts")
    p.add_argument("emoji", help="name without colons, e.g. thumbsup")
    p.add_argument("--remove", action="store_true", help="remove the reaction instead")
    p = add("users", "find users by handle, name or e-mail")
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=10, help=f"max users, 1..{MAX_LIMIT} (default 10)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def action() -> Any:
        slack = Slack(SigClient(args.provider, args.timeout), api_base(args.base_url))
        return OPERATIONS[args.command](slack, args)

    return run_main(action)


if __name__ == "__main__":
    sys.exit(main())
