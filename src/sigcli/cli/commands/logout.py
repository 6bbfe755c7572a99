"""`sig logout [provider]`: clear one credential, or all of them (asked on a terminal, `--all --force` off
one). The config stays."""

from __future__ import annotations

import sys

from ...core.errors import usage_error
from ..app import App
from ..args import Args
from ..common import resolve_existing

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...core.model import Credential

FLAGS: dict[str, str] = {"all": "bool", "force": "bool", "format": "value"}
SHOWN = 20  # names listed in the question; the rest are counted


class LogoutOptions:
    """`sig logout`'s provider (or --all) and flags, typed."""

    def __init__(self, args: Args) -> None:
        if len(args.positionals) > 1:
            raise usage_error("logout takes at most one provider",
                              "usage: sig logout <provider>, or sig logout --all to clear every credential")
        self.target = args.positionals[0] if args.positionals else None
        self.all = args.flag("all")
        self.force = args.flag("force")
        if self.target is not None and self.all:
            raise usage_error("--all clears every credential: name no provider with it",
                              f"run `sig logout {self.target}` or `sig logout --all`")


def run(args: Args, app: App) -> int:
    """Clear one credential (OAuth2 client credentials are kept), or all of them after a yes."""
    opts = LogoutOptions(args)
    if opts.target is not None:
        return _logout_one(app, opts.target)
    return _logout_all(app, opts)


def _logout_one(app: App, target: str) -> int:
    store = app.store
    provider = resolve_existing(app, target)
    try:
        credential = store.read(provider.id)
    except Exception:
        credential = None
    if credential is not None and credential.oauth2:
        store.clear_values(provider.id)  # keep the client credentials so sig can log in again
    else:
        store.delete(provider.id)
    app.audit("logout", "success", provider.id)
    app.say(f'Credentials cleared for "{provider.id}".')
    return 0


def _logout_all(app: App, opts: LogoutOptions) -> int:
    store = app.store
    # What there is to clear: readable credentials holding a session, and unreadable files (by file name).
    # OAuth2 files already cleared keep only the client's own credentials: nothing to ask about.
    pending = [(stem, credential) for stem, credential, _err in store.list() if _holds_session(credential)]
    if not pending:
        app.say("No stored credentials: nothing to clear.")
        return 0
    names = [credential.provider_id if credential is not None else stem for stem, credential in pending]
    listing = ", ".join(names[:SHOWN]) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
    what = f"{len(names)} stored credential{'s' if len(names) != 1 else ''} ({listing})"
    if not (opts.all and opts.force):
        if not sys.stdin.isatty():
            raise usage_error(
                f"`sig logout{' --all' if opts.all else ''}` clears all {what}, and cannot ask for "
                "confirmation "
                "(standard input is not a terminal); nothing was cleared",
                "clear one: `sig logout <provider>`; clear them all: `sig logout --all --force`",
            )
        answer = app.ask(f"Clear {what}? The config stays. [y/N]", False)
        if (answer or "").strip().lower() not in ("y", "yes"):
            app.say("Aborted: nothing was cleared.")
            return 0
    for stem, credential in pending:  # exactly what was confirmed, even if files appeared since
        if credential is not None and credential.oauth2:
            store.clear_values(credential.provider_id)
        else:
            store.delete(stem)  # by file name: also removes files that cannot be read
    app.audit("logout", "success", None, {"scope": "all"})
    app.say(f"Cleared {what}.")
    return 0


def _holds_session(credential: Credential | None) -> bool:
    if credential is None:
        return True  # unreadable: removed by file name
    return bool(credential.values) or bool((credential.oauth2 or {}).get("refreshToken"))
