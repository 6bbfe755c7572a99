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


def _interval(text: str) -> int:
    ms = parse_duration_ms(text)
    if ms is None:
        raise usage_error(f'Invalid interval "{text}": use e.g. 30s, 5m, 1h', "a number followed by s, m, h or d")
    if ms < 1000:
        raise usage_error(f'Invalid interval "{text}": the shortest is 1s', "use e.g. 30s, 5m, 1h")
    return ms


def _watch_section(doc: Any) -> Any:
    """doc["watch"], created block-style as {interval: 5m, providers: {}} when absent."""
    from ruamel.yaml.comments import CommentedMap

    from ...config.edit import to_block

    watch = doc.get("watch")
    if not isinstance(watch, dict):
        watch = to_block({"interval": "5m", "providers": {}})
        doc["watch"] = watch
    elif isinstance(watch, CommentedMap):
        watch.fa.set_block_style()
    providers = watch.get("providers")
    if not isinstance(providers, dict):
        providers = to_block({})
        watch["providers"] = providers
    elif isinstance(providers, CommentedMap):
        providers.fa.set_block_style()
    return watch


def _no_extra(rest: list[str], sub: str) -> None:
    if rest:
        raise usage_error(f"unexpected argument {rest[0]!r}", f"usage: sig watch {sub} (see `sig watch --help`)")


def _add(args: Args, app: App, rest: list[str]) -> int:
    from ...config.edit import edit_config, to_block

    if len(rest) != 1:
        raise usage_error("watch add needs one provider", "usage: sig watch add <provider> [--auto-sync <remote>]")
    provider = resolve_existing(app, rest[0])
    remotes: list[str] = []
    for remote in args.values("auto-sync"):
        if remote not in app.config.remotes:
            raise SigError(ErrorCode.REMOTE_NOT_FOUND, f'no remote named "{remote}"',
                           "run `sig remote list` to see the remotes, `sig remote add` to add one")
        if remote not in remotes:
            remotes.append(remote)
    pid = provider.id

    def change(doc: Any) -> bool:
        providers = _watch_section(doc)["providers"]
        existed = pid in providers
        providers[pid] = to_block({"autoSync": remotes}) if remotes else None
        return existed

    existed = edit_config(change)
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


def _remove(app: App, rest: list[str]) -> int:
    from ...config.edit import edit_config

    if len(rest) != 1:
        raise usage_error("watch remove needs one provider", "usage: sig watch remove <provider>")
    target = rest[0]
    try:
        resolved = app.config.resolve(target)
    except SigError:
        resolved = None
    candidates = [target] + ([resolved.id] if resolved is not None and resolved.id != target else [])

    def change(doc: Any) -> str:
        watch = doc.get("watch")
        providers = watch.get("providers") if isinstance(watch, dict) else None
        for key in candidates:
            if isinstance(providers, dict) and key in providers:
                del providers[key]
                return key
        raise SigError(ErrorCode.GENERAL_ERROR, f'"{target}" is not in the watch list', "run `sig watch list`")

    removed = edit_config(change)
    app.say(f'Removed "{removed}" from the watch list.')
    return 0


def _list(args: Args, app: App, rest: list[str]) -> int:
    from ...core.duration import format_expiry
    from ..output import choose_format, render

    _no_extra(rest, "list")
    fmt = choose_format(args.value("format"), ("json", "table"))
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


def _set_interval(app: App, rest: list[str]) -> int:
    from ...config.edit import edit_config

    if len(rest) != 1:
        raise usage_error("watch set-interval needs one duration", "usage: sig watch set-interval <duration>")
    text = rest[0].strip()
    _interval(text)

    def change(doc: Any) -> None:
        _watch_section(doc)["interval"] = text

    edit_config(change)
    app.say(f"Watch interval set to {text}.")
    return 0


def _start(args: Args, app: App, rest: list[str]) -> int:
    import time

    from ...watch.loop import format_duration, interval_ms_of, make_loop

    _no_extra(rest, "start")
    override = _interval(args.value("interval") or "") if args.given("interval") else None
    config = app.config  # a config that does not load stops us here, before the loop
    fmt = args.value("format")

    def log(message: str) -> None:
        app.say(f"[sig watch {time.strftime('%H:%M:%S')}] {message}")

    loop = make_loop(log, app.log if app.verbose else None, override)
    watched = list(config.watch.get("providers") or {})
    every = format_duration((override or interval_ms_of(config)) / 1000)
    if not watched:
        log("the watch list is empty: add providers with `sig watch add <provider>`")
    if args.flag("once"):
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
    if not args.positionals:
        import sys

        sys.stderr.write(USAGE)
        return 1
    sub, rest = args.positionals[0], args.positionals[1:]
    sub = {"rm": "remove", "ls": "list"}.get(sub, sub)
    if sub not in ("add", "remove", "list", "set-interval", "start"):
        raise usage_error(f'unknown watch subcommand "{sub}"', "use add, remove, list, set-interval or start")
    for flag, allowed in _FLAG_SUBS.items():
        if args.given(flag) and sub not in allowed:
            raise usage_error(f"--{flag} does not go with `sig watch {sub}`",
                              f"it is for `sig watch {allowed[0]}`; see `sig watch --help`")
    if sub == "add":
        return _add(args, app, rest)
    if sub == "remove":
        return _remove(app, rest)
    if sub == "list":
        return _list(args, app, rest)
    if sub == "set-interval":
        return _set_interval(app, rest)
    return _start(args, app, rest)
