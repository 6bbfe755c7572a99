"""Validation presets for public sites (README "Configuration", "Validation presets").

On a public site the home page answers 200 whether or not you are logged in, so a provider made from its
URL would take any visitor's tracking cookies for a login. A preset names a page that only a logged-in
session can open (anything else: a redirect, 401 or 403), so `sig login https://www.reddit.com` waits for a
real login. Auto-provisioning copies the preset into the new provider; the user can edit it afterwards.
"""

from __future__ import annotations

from typing import Any

# The public bearer token of X's own web client: the same for every visitor, shipped in x.com's scripts.
# X's API refuses cookie sessions without it, so the validation request needs it too. Not a user secret.
_X_WEB_BEARER = ("Bearer AAAAAAAAAAAAAAAAAAAAANRILgAAAAAAnNwIzUejRCOuH5E6I8xnZz4puTs%3D1Zv7ttfk8LF81IUq16cHjhLT"
                 "vJu4FA33AGWWjCpTnA")

PRESETS: dict[str, dict[str, Any]] = {
    "google": {
        "name": "Google",
        "domains": ["myaccount.google.com", "accounts.google.com", "www.google.com", "google.com"],
        # Redirects to the sign-in page (or the signed-out /intro page) without a session.
        "validateUrl": "https://myaccount.google.com/",
    },
    "x": {
        "name": "X (Twitter)",
        "domains": ["x.com", "twitter.com"],
        "validateUrl": "https://x.com/i/api/2/notifications/all.json?count=1",
        # The API also wants the ct0 cookie echoed as x-csrf-token (README "Configuration").
        "extract": [{"from": "cookies", "as": "ct0", "match": "ct0"}],
        "apply": [{"in": "header", "name": "x-csrf-token", "value": "${ct0}"},
                  {"in": "header", "name": "authorization", "value": _X_WEB_BEARER}],
    },
    "reddit": {
        "name": "Reddit",
        "domains": ["www.reddit.com", "reddit.com"],
        "validateUrl": "https://www.reddit.com/prefs/friends",
    },
    "youtube": {
        "name": "YouTube",
        "domains": ["www.youtube.com", "youtube.com"],
        "validateUrl": "https://www.youtube.com/account",
    },
    "v2ex": {
        "name": "V2EX",
        "domains": ["www.v2ex.com", "v2ex.com"],
        "validateUrl": "https://www.v2ex.com/settings",
    },
    "zhihu": {
        "name": "Zhihu",
        "domains": ["www.zhihu.com", "zhihu.com"],
        # 401 without a session; with one, the account as JSON.
        "validateUrl": "https://www.zhihu.com/api/v4/me",
        "validateRule": "res.status === 200 && res.body.id !== undefined",
    },
}


def preset_for(host: str) -> tuple[str, dict[str, Any]] | None:
    """(preset id, preset) whose domains include `host` (a canonical host name), else None."""
    for preset_id, preset in PRESETS.items():
        if host in preset["domains"]:
            return preset_id, preset
    return None


def listing() -> list[dict[str, Any]]:
    """The presets as rows for `sig providers --presets`."""
    rows = []
    for preset_id, preset in PRESETS.items():
        row: dict[str, Any] = {"id": preset_id, "name": preset["name"], "domains": list(preset["domains"]),
                               "validateUrl": preset["validateUrl"]}
        if preset.get("validateRule"):
            row["validateRule"] = preset["validateRule"]
        rows.append(row)
    return rows
