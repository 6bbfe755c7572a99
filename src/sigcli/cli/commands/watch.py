"""`sig watch add|remove|list|set-interval|start`: the watch list in config.yaml and the refresh loop."""

from __future__ import annotations

from ...core.duration import parse_duration_ms
from ...core.errors import ErrorCode, SigError, usage_error
from ..app import App
from ..args import Args
from ..common import resolve_existing

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FLAGS = {"auto-sync": "multi", "format": "value", "once": "bool", "interval": "value"}
USAGE = """\
Usage: sig watch <subcommand>

Subcommands:
  add <provider> [--auto-sync <remote>]...   Keep a provider's credential fresh (push it to remotes)
  remove <provider>                          Stop watching a provider
  list [--format json|table]                 Show the watch list and each credential's state
  set-interval <duration>                    How often the loop checks (e.g. 30s, 5m, 1h)
  start [--once] [--interval <duration>]     Run the loop in the foreground (Ctrl-C stops it)
"""
STOP_GRACE_S = 15.0
_FLAG_SUBS = {"auto-sync": ("add",), "once": ("start",), "interval": ("start",)}  # --format: any (errors as JSON)
SUBCOMMANDS = ("add", "remove", "list", "set-interval", "start")


class WatchOptions:
    """`sig watch`'s subcommand, its arguments and flags, typed."""

    def __init__(self, args: Args) -> None:
        sub = args.positionals[0] if args.positionals else ""
        self.sub = {"rm": "remove", "ls": "list"}.get(sub, sub)
        self.rest = args.positionals[1:]
        self.auto_sync = args.values("auto-sync")
        self.format = args.value("format")
        self.once = args.flag("once")
        self.interval = args.value("interval")
        if self.sub not in SUBCOMMANDS:
            raise usage_error(f'unknown watch subcommand "{self.sub}"', "use add, remove, list, set-interval or start")
        for flag, allowed in _FLAG_SUBS.items():
            if args.given(flag) and self.sub not in allowed:
                raise usage_error(f"--{flag} does not go with `sig watch {self.sub}`",
                                  f"it is for `sig watch {allowed[0]}`; see `sig watch --help`")


def _interval(text: str) -> int:
    ms = parse_duration_ms(text)
    if ms is None:
        raise usage_error(f'Invalid interval "{text}": use e.g. 30s, 5m, 1h', "a number followed by s, m, h or d")
    if ms < 1000:
        raise usage_error(f'Invalid interval "{text}": the shortest is 1s', "use e.g. 30s, 5m, 1h")
    return ms


def _no_extra(rest: list[str], sub: str) -> None:
    if rest:
        raise usage_error(f"unexpected argument {rest[0]!r}", f"usage: sig watch {sub} (see `sig watch --help`)")


def _add(opts: WatchOptions, app: App) -> int:
    from ...config import watchlist

    if len(opts.rest) != 1:
        raise usage_error("watch add needs one provider", "usage: sig watch add <provider> [--auto-sync <remote>]")
    provider = resolve_existing(app, opts.rest[0])
    remotes: list[str] = []
    for remote in opts.auto_sync:
        if remote not in app.config.remotes:
            raise SigError(ErrorCode.REMOTE_NOT_FOUND, f'no remote named "{remote}"',
                           "run `sig remote list` to see the remotes, `sig remote add` to add one")
        if remote not in remotes:
            remotes.append(remote)
    pid = provider.id
    existed = watchlist.add(pid, remotes)
    sync = f" (auto-sync: {', '.join(remotes)})" if remotes else ""
    if existed:
        app.say(f'Updated "{pid}" in the watch list{sync}.')
    else:
        app.say(f'Added "{pid}" to the watch list{sync}.')
    try:
        status = app.auth.status(provider)
    except SigError:
        status = {"configured": True}
    if not status.get("configured"):
        app.say(f"Note: no credential is stored for \"{pid}\" yet: run sig login {provider.login_target()}")
    return 0


def _remove(opts: WatchOptions, app: App) -> int:
    from ...config import watchlist

    if len(opts.rest) != 1:
        raise usage_error("watch remove needs one provider", "usage: sig watch remove <provider>")
    target = opts.rest[0]
    try:
        resolved = app.config.resolve(target)
    except SigError:
        resolved = None
    candidates = [target] + ([resolved.id] if resolved is not None and resolved.id != target else [])
    removed = watchlist.remove(target, candidates)
    app.say(f'Removed "{removed}" from the watch list.')
    return 0


def _list(opts: WatchOptions, app: App) -> int:
    from ...core.duration import format_expiry
    from ..output import choose_format, render

    _no_extra(opts.rest, "list")
    fmt = choose_format(opts.format, ("json", "table"))
    config = app.config
    watch = config.watch
    interval = str(watch.get("interval") or "5m")
    rows: list[dict[str, Any]] = []
    table: list[dict[str, Any]] = []
    for key, spec in (watch.get("providers") or {}).items():
        auto = list((spec or {}).get("autoSync") or [])
        row: dict[str, Any] = {"id": key, "interval": interval, "autoSync": auto}
        provider = config.get(key) or config.resolve(key)
        if provider is None:
            row.update(configured=False, valid=False, error="not a configured provider")
        else:
            status = app.auth.status(provider)
            if provider.id != key:
                row["provider"] = provider.id
            for name in ("configured", "valid", "renewable", "expiresAt", "expiresInMinutes", "error"):
                if name in status:
                    row[name] = status[name]
        rows.append(row)
        mark = "✓" if row["valid"] else ("✗" if row["configured"] else "—")
        table.append({
            "id": key,
            "interval": interval,
            "auto-sync": ", ".join(auto) or "-",
            "status": mark if "error" not in row else "!",
            "expires": format_expiry(row["expiresInMinutes"]) if "expiresInMinutes" in row else "-",
        })
    if fmt == "table" and not rows:
        app.say("No providers are watched. Add one with: sig watch add <provider>")
        return 0
    app.out(render(rows, fmt, table))
    return 0


def _set_interval(opts: WatchOptions, app: App) -> int:
    from ...config import watchlist

    if len(opts.rest) != 1:
        raise usage_error("watch set-interval needs one duration", "usage: sig watch set-interval <duration>")
    text = opts.rest[0].strip()
    _interval(text)
    watchlist.set_interval(text)
    app.say(f"Watch interval set to {text}.")
    return 0


def _start(opts: WatchOptions, app: App) -> int:
    import time

    from ...watch.loop import format_duration, interval_ms_of, make_loop

    _no_extra(opts.rest, "start")
    override = _interval(opts.interval) if opts.interval is not None else None
    config = app.config  # a config that does not load stops us here, before the loop
    fmt = opts.format

    def log(message: str) -> None:
        app.say(f"[sig watch {time.strftime('%H:%M:%S')}] {message}")

    loop = make_loop(log, app.log if app.verbose else None, override, auth_for=app.auth_for)
    watched = list(config.watch.get("providers") or {})
    every = format_duration((override or interval_ms_of(config)) / 1000)
    if not watched:
        log("the watch list is empty: add providers with `sig watch add <provider>`")
    if opts.once:
        from ..output import choose_format, render

        fmt = choose_format(fmt, ("json", "table"))
        results = loop.run_once()
        table = [{"provider": r["provider"], "action": r["action"], "detail": r["detail"],
                  "sync": ", ".join(f"{k}: {v}" for k, v in (r.get("sync") or {}).items()) or "-"}
                 for r in results]
        if results or fmt == "json":
            app.out(render(results, fmt, table))
        return 0
    banner = f"watching {len(watched)} provider(s) every {every}; Ctrl-C stops" if watched else None
    return _run_foreground(loop, log, banner)


def _run_foreground(loop: Any, log: Any, banner: str | None) -> int:
    """The loop in a worker thread; SIGINT/SIGTERM set the stop event (a second one exits at once)."""
    import os
    import signal
    import threading

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set():
            os._exit(128 + signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    if banner:
        log(banner)  # after the handlers: whoever waits for this line may signal us right away
    worker = threading.Thread(target=loop.run, args=(stop,), name="sig-watch", daemon=True)
    worker.start()
    try:
        while worker.is_alive() and not stop.is_set():
            worker.join(0.5)
        stop.set()
        worker.join(STOP_GRACE_S)
        if worker.is_alive():
            log(f"stopping without waiting longer than {int(STOP_GRACE_S)}s for the current step")
        else:
            log("stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def run(args: Args, app: App) -> int:
    """Dispatch to the subcommand; the watch list's edits are config/watchlist.py, the loop watch/loop.py."""
    if not args.positionals:
        import sys

        sys.stderr.write(USAGE)
        return 1
    opts = WatchOptions(args)
    if opts.sub == "add":
        return _add(opts, app)
    if opts.sub == "remove":
        return _remove(opts, app)
    if opts.sub == "list":
        return _list(opts, app)
    if opts.sub == "set-interval":
        return _set_interval(opts, app)
    return _start(opts, app)
