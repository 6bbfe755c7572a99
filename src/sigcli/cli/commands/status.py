"""`sig status [provider]`: which credentials are stored, valid, and until when."""

from __future__ import annotations

from ...core.duration import format_expiry
from ...core.errors import ErrorCode, SigError, usage_error
from ..app import App
from ..args import Args
from ..common import resolve_existing

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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


def run(args: Args, app: App) -> int:
    from ..output import choose_format, render

    if len(args.positionals) > 1:
        raise usage_error("status takes at most one provider", "usage: sig status [provider]")
    fmt = choose_format(args.value("format"))
    target = args.positionals[0] if args.positionals else args.value("provider")
    watch = app.config.watch.get("providers") or {}
    if target:
        provider = resolve_existing(app, target)
        status = app.auth.status(provider)
        app.out(render(status, fmt, [_row(status, watch)]))
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
