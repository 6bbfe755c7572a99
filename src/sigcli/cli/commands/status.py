"""`sig status [provider]` (alias `sig whoami`): which credentials are stored, valid, until when, and for
a named provider the account behind its credential."""

from __future__ import annotations

from ...core.duration import format_expiry
from ...core.errors import ErrorCode, SigError, usage_error
from ..app import App
from ..args import Args
from ..common import resolve_existing

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ...core.model import Provider

FLAGS = {"format": "value", "provider": "value"}


def _row(status: dict[str, Any], watch: dict[str, Any]) -> dict[str, Any]:
    mark = "✓" if status["valid"] else ("✗" if status["configured"] else "—")
    spec = watch.get(status["id"], "absent")
    sync = ", ".join((spec or {}).get("autoSync") or []) if spec != "absent" else ""
    return {
        "id": status["id"],
        "strategy": status["strategy"],
        "status": mark,
        "expires": format_expiry(status["expiresInMinutes"]) if "expiresInMinutes" in status else "-",
        "watch": "✓" if spec != "absent" else "-",
        "sync": sync or "-",
    }


def _identity(app: App, provider: Provider, status: dict[str, Any]) -> dict[str, Any] | None:
    """The account behind the stored credential, when it can be told (see inject/identity.py)."""
    if not status["configured"]:
        return None
    from ...inject.identity import local_identity, remote_identity, userinfo_url

    if status["valid"] and userinfo_url(provider) is not None:
        from ..._version import __version__

        found = remote_identity(app.config, app.auth, provider, f"sig/{__version__}", app.log)
        if found is not None:
            return found
    try:
        credential = app.auth.stored(provider)
    except SigError:
        return None
    return local_identity(credential) if credential is not None else None


class StatusOptions:
    """`sig status`'s argument and flags, typed."""

    __slots__ = ("format", "target")

    def __init__(self, args: Args) -> None:
        from ..output import choose_format

        if len(args.positionals) > 1:
            raise usage_error("status takes at most one provider", "usage: sig status [provider]")
        self.format = choose_format(args.value("format"))
        self.target = args.positionals[0] if args.positionals else args.value("provider")


def run(args: Args, app: App) -> int:
    """One provider's status (and the account behind it), or every provider's."""
    from ..output import render

    opts = StatusOptions(args)
    fmt, target = opts.format, opts.target
    from ...sandbox.inside import in_sandbox

    if in_sandbox():
        return _in_sandbox(app, fmt, target)
    watch = app.config.watch.get("providers") or {}
    if target:
        provider = resolve_existing(app, target)
        status = app.auth.status(provider)
        identity = _identity(app, provider, status)
        row = _row(status, watch)
        if identity is not None:
            status["identity"] = identity
            row["account"] = identity["account"] + (" (claimed)" if identity["claimed"] else "")
        app.out(render(status, fmt, [row]))
        if not status["configured"]:
            err = status.get("error")
            if err:
                raise SigError(ErrorCode.STORAGE_ERROR, err, f"run: sig login {provider.login_target()}")
            return 3
        return 0
    statuses = [app.auth.status(p) for p in app.config.providers.values()]
    if fmt == "table" and not statuses:
        app.say("No providers configured. Add one with: sig login <url>")
        return 0
    app.out(render(statuses, fmt, [_row(s, watch) for s in statuses]))
    for s in statuses:
        if s.get("error"):
            app.warn(f'{s["id"]}: {s["error"]}')
    return 0


def _in_sandbox(app: App, fmt: str, target: str | None) -> int:
    """Inside `sig run --sandbox`: names and validity from the proxy (sig's data is not here)."""
    from ...sandbox.status import statuses
    from ..output import render

    found = statuses()
    if target:
        found = [s for s in found if target in (s["id"], s.get("name"))]
        if not found:
            from ...config.load import provider_not_found

            raise provider_not_found(target)
        app.out(render(found[0], fmt, [_row(found[0], {})]))
        return 0 if found[0]["configured"] else 3
    app.out(render(found, fmt, [_row(s, {}) for s in found]))
    return 0
