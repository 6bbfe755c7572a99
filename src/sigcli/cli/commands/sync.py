"""`sig sync push|pull [remote]`: copy credentials (and provider config) to or from a remote over SSH."""

from __future__ import annotations

from ...core.errors import ErrorCode, SigError, usage_error
from ..app import App
from ..args import Args

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...sync.engine import Changes

FLAGS = {"provider": "multi", "force": "bool", "format": "value"}
USAGE = "sig sync push|pull [remote] [--provider id]... [--force]"


class SyncOptions:
    """`sig sync`'s direction, remote and flags, typed."""

    def __init__(self, args: Args) -> None:
        if args.positionals and args.positionals[0] not in ("push", "pull"):
            from ..args import unknown_word

            raise unknown_word("sync direction", args.positionals[0], ("push", "pull"), f"usage: {USAGE}",
                               "`sig sync {}`")
        if not args.positionals or len(args.positionals) > 2:
            raise usage_error("say push or pull (and optionally the remote)", f"usage: {USAGE}")
        self.direction = args.positionals[0]
        self.remote = args.positionals[1] if len(args.positionals) > 1 else None
        self.providers = args.values("provider")
        self.force = args.flag("force")


def run(args: Args, app: App) -> int:
    """Push or pull over SSH (sync/engine.py); a pull that changes destinations asks a person first."""
    from ...sync import engine
    from ...sync.remotes import get_remote

    opts = SyncOptions(args)
    direction = opts.direction
    remote = get_remote(app.config.remotes, opts.remote)
    ids = []
    for spec in opts.providers:
        for name in (n.strip() for n in spec.split(",") if n.strip()):
            provider = app.config.resolve(name)
            ids.append(provider.id if provider is not None else name)
    app.say(f'{"Pushing credentials to" if direction == "push" else "Pulling credentials from"} '
            f'"{remote.name}" ({remote.describe()})...')
    action = "sync_push" if direction == "push" else "sync_pull"
    try:
        if direction == "push":
            result = engine.push(app.config, app.store, remote, ids or None, opts.force, app.log)
        else:
            result = engine.pull(app.config, app.store, remote, ids or None, opts.force, app.log,
                                 lambda changes: _confirm(app, changes))
    except SigError as err:
        app.audit(action, "failure", None, {"remote": remote.name, "host": remote.describe(), "error": err.message})
        _ssh_words(app, err)
        raise
    moved = result.get("pushed" if direction == "push" else "pulled", [])
    app.audit(action, "failure" if result["errors"] else "success", None, {
        "remote": remote.name, "host": remote.describe(), "synced": moved,
        "skipped": [s["provider"] for s in result["skipped"]], "errors": len(result["errors"])})
    from ..output import to_json

    app.out(to_json(result))
    if moved:
        app.say(f"Synced: {', '.join(moved)}")
    for e in result["errors"]:
        app.say(f"Error ({e['provider']}): {e['error']}")
    if result["configSynced"].get("providers"):
        app.say(f"Config: {', '.join(result['configSynced']['providers'])}")
    if result.get("notExchanged"):
        names = result["notExchanged"]
        app.say(f'Not pulled (never pushed to or pulled by name from "{remote.name}"): {", ".join(names)}. '
                f"Take one by name: sig sync pull {remote.name} --provider {names[0]}")
    if result.get("refused"):
        what = "; ".join(f"{r['provider']} ({', '.join(r['fields'])})" for r in result["refused"])
        if _interactive():
            app.say(f"Kept as they are here (nothing of them was pulled): {what}")
        else:
            raise SigError(ErrorCode.SYNC_CONFLICT,
                           f'not pulled: the remote "{remote.name}" changes where these providers\' credentials '
                           f"may go: {what}",
                           f"review and accept it at a terminal: sig sync pull {remote.name} (it shows the "
                           "changes and asks); or make the change in your own config first")
    if result["skipped"]:
        lines = "; ".join(f"{s['provider']} (local {s['local']}, remote {s['remote']})" for s in result["skipped"])
        raise SigError(ErrorCode.SYNC_CONFLICT,
                       f"not overwritten because the {'remote' if direction == 'push' else 'local'} copy is newer: "
                       f"{lines}", f"run `sig sync {direction} {remote.name} --force` to overwrite it")
    if result["errors"]:
        raise SigError(ErrorCode.SYNC_ERROR, f"{len(result['errors'])} provider(s) could not be synced",
                       "see the lines above")
    return 0


def _ssh_words(app: App, err: SigError) -> None:
    """With --verbose: what ssh itself said (sig's message above names the cause in its own words)."""
    output = getattr(err, "ssh_output", None)
    if not app.verbose or output is None:
        return
    lines = output.strip().splitlines() or ["(nothing on stderr)"]
    app.log(f"ssh exited with status {getattr(err, 'ssh_status', '?')}; its stderr:")
    for line in lines[-20:]:
        app.log(f"  ssh: {line}")  # app.log shows control characters escaped


def _interactive() -> bool:
    """A person can answer: a terminal on both ends, and no agent driving sig."""
    import sys

    from ..guard import agent_detected

    return sys.stdin.isatty() and sys.stderr.isatty() and not agent_detected()


def _confirm(app: App, changes: Changes) -> bool:
    """Show what a pull would change about where credentials may go; yes only from a person at a terminal."""
    from ...sync.destinations import show

    if not _interactive():
        return False
    remote = changes.remote
    app.say(f'The remote "{remote.name}" ({remote.describe()}) changes where these credentials may go:')
    for pid, diff in changes.providers.items():
        app.say(f"  {pid}:")
        for field, ours, theirs in diff:
            app.say(f"    {field}")
            app.say(f"      here:   {show(ours)}")
            app.say(f"      remote: {show(theirs)}")
    answer = app.ask("Take these changes (and those providers' credentials) from the remote? [y/N]", False)
    return (answer or "").strip().lower() in ("y", "yes")
