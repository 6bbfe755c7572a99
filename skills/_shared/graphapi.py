"""Microsoft Graph calls through sig: base URL, paging, and Graph's error answers as skill errors.

Shared by the outlook and msteams skills (their scripts/graphapi.py links here; install.sh copies it in).
Standard library only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlsplit

from sigreq import EXIT_GENERAL, SigClient, SkillError, api_url, auth_required

DEFAULT_GRAPH_BASE = "https://graph.microsoft.com/v1.0"
GRAPH_PROVIDER = "ms-graph"
MAX_PAGES = 50  # a bound on @odata.nextLink hops, whatever the server says


def graph_base(flag: str | None) -> str:
    """--base-url, else $GRAPH_BASE_URL, else the real Graph endpoint; no trailing slash."""
    text = (flag or os.environ.get("GRAPH_BASE_URL") or DEFAULT_GRAPH_BASE).strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise SkillError("USAGE_ERROR", f"not a Graph base URL: {text}",
                         f"e.g. --base-url {DEFAULT_GRAPH_BASE}")
    return text


TIME = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$")


def utc_time(value: str, flag: str) -> str:
    """YYYY-MM-DD or an ISO time (local time when it has no offset) as UTC "YYYY-MM-DDTHH:MM:SSZ"."""
    text = value.strip()
    if not TIME.match(text):
        raise SkillError("USAGE_ERROR", f"{flag} takes a date or ISO time: {value!r}", f"e.g. {flag} 2026-04-01")
    moment = datetime.fromisoformat(text.replace("Z", "+00:00") if "T" in text else text + "T00:00:00")
    if moment.tzinfo is None:
        moment = moment.astimezone()
    # timezone.utc, not datetime.UTC: the agent's own Python may be older than 3.11.
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017


def segment(value: str) -> str:
    """One path segment (ids hold '/', '+' and '=')."""
    return quote(value, safe="")


def odata_string(value: str) -> str:
    """A string literal for $filter."""
    return "'" + value.replace("'", "''") + "'"


def search_phrase(value: str) -> str:
    """A $search value: the whole query in double quotes, inner quotes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def graph_error(status: int, data: Any, provider: str) -> SkillError:
    """Graph's {"error": {"code", "message"}} as a skill error; 401 means a person must log in again."""
    code, message = "", ""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        code = str(data["error"].get("code") or "")
        message = str(data["error"].get("message") or "")
    detail = f"{code}: {message}" if code and message else (message or code)
    if status == 401:
        return auth_required(provider, detail or "Microsoft Graph answered 401: the token is missing or expired")
    if status == 403:
        return SkillError("FORBIDDEN", detail or "Microsoft Graph answered 403",
                          "the token lacks a permission this call needs (e.g. Mail.Send): use a draft instead, "
                          "or tell the person which permission is missing")
    if status == 404:
        return SkillError("NOT_FOUND", detail or "not found", "check the id (list or search first)")
    if status == 400:
        return SkillError("BAD_REQUEST", detail or "Microsoft Graph answered 400", "check the arguments")
    return SkillError(f"HTTP_{status}", detail or f"Microsoft Graph answered {status}", "", EXIT_GENERAL)


class Graph:
    def __init__(self, client: SigClient, base: str) -> None:
        self.client = client
        self.base = base

    def url(self, path: str) -> str:
        return api_url(self.base, path, "Graph")

    def call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json_body: Any = None,
             headers: Mapping[str, str] | None = None) -> Any:
        response = self.client.request(method, self.url(path), params=params, json_body=json_body,
                                        headers=headers)
        data = response.json() if response.text.strip() else None
        if not response.ok:
            raise graph_error(response.status, data, self.client.provider)
        return data

    def get(self, path: str, params: Mapping[str, Any] | None = None,
            headers: Mapping[str, str] | None = None) -> Any:
        return self.call("GET", path, params=params, headers=headers)

    def collect(self, path: str, params: Mapping[str, Any] | None, limit: int,
                headers: Mapping[str, str] | None = None) -> tuple[list[dict[str, Any]], bool]:
        """Up to `limit` items of a collection, following @odata.nextLink; (items, more available)."""
        items: list[dict[str, Any]] = []
        page = self.get(path, params, headers)
        for _ in range(MAX_PAGES):
            if not isinstance(page, dict) or not isinstance(page.get("value"), list):
                raise SkillError("API_ERROR", "the answer has no value list", "check --base-url")
            items += [v for v in page["value"] if isinstance(v, dict)]
            link = page.get("@odata.nextLink")
            if len(items) >= limit or not isinstance(link, str) or not link:
                return items[:limit], len(items) > limit or bool(link)
            page = self.get(link, None, headers)
        return items[:limit], True


def person(value: Any) -> str | None:
    """"Name <address>" of a Graph recipient / emailAddress."""
    if not isinstance(value, dict):
        return None
    address = value.get("emailAddress") if isinstance(value.get("emailAddress"), dict) else value
    name = str(address.get("name") or "").strip()
    mail = str(address.get("address") or "").strip()
    if name and mail and name != mail:
        return f"{name} <{mail}>"
    return mail or name or None
