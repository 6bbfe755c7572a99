"""`sig remote add|remove|list`: SSH remotes kept in config.yaml (comments kept)."""

from __future__ import annotations

from ...core.errors import ErrorCode, SigError, usage_error
from ...core.hosts import valid_provider_id
from ..app import App
from ..args import Args

FLAGS = {"user": "value", "ssh-key": "value", "path": "value", "port": "value", "format": "value"}
USAGE = "sig remote add <name> <host|ssh://user@host[:port][/path]> | remove <name> | list"


class RemoteOptions:
    """`sig remote`'s subcommand, arguments and flags, typed."""

    def __init__(self, args: Args) -> None:
        self.sub = args.positionals[0] if args.positionals else "list"
        self.rest = args.positionals[1:]
        self.user, self.port, self.path = args.value("user"), args.value("port"), args.value("path")
        self.ssh_key = args.value("ssh-key")
        self.format = args.value("format")


def run(args: Args, app: App) -> int:
    """Add, remove or list the SSH remotes in config.yaml."""
    from ...config.edit import edit_config, ensure_map, to_block
    from ...sync.remotes import Remote, parse_target

    opts = RemoteOptions(args)
    sub, rest = opts.sub, opts.rest
    if sub == "add":
        if len(rest) != 2:
            raise usage_error("remote add needs a name and a host", f"usage: {USAGE}")
        name, target = rest
        if not valid_provider_id(name):
            raise usage_error(f'"{name}" is not a valid remote name', "use letters, digits, '.', '_' and '-'")
        remote = parse_target(name, target, opts.user, opts.port, opts.path, opts.ssh_key)

        def add(doc: object) -> None:
            ensure_map(doc, "remotes")[name] = to_block(remote.to_config())

        edit_config(add)
        app.say(f'Remote "{name}" added ({remote.describe()}{":" + remote.base if remote.path else ""}).')
        return 0
    if sub == "remove":
        if len(rest) != 1:
            raise usage_error("remote remove needs a name", f"usage: {USAGE}")
        name = rest[0]
        if name not in app.config.remotes:
            from ...core.suggest import suggest

            close = suggest(name, list(app.config.remotes))
            raise SigError(ErrorCode.REMOTE_NOT_FOUND, f'no remote named "{name}"',
                           f'did you mean "{close}"?' if close else "run `sig remote list`")

        def remove(doc: object) -> None:
            remotes = doc.get("remotes")  # type: ignore[attr-defined]
            if isinstance(remotes, dict):
                remotes.pop(name, None)
            watch = doc.get("watch")  # type: ignore[attr-defined]
            wp = watch.get("providers") if isinstance(watch, dict) else None
            for spec in (wp or {}).values():
                if isinstance(spec, dict) and isinstance(spec.get("autoSync"), list) and name in spec["autoSync"]:
                    spec["autoSync"].remove(name)

        edit_config(remove)
        from ...sync import trust

        trust.forget(name)  # a remote added later under this name starts trusted with nothing
        app.say(f'Remote "{name}" removed.')
        return 0
    if sub == "list":
        if rest:
            raise usage_error(f"unexpected argument {rest[0]!r}", f"usage: {USAGE}")
        from ..output import choose_format, render

        fmt = choose_format(opts.format, ("json", "table"))
        rows = []
        for name, entry in app.config.remotes.items():
            r = Remote.from_config(name, entry)
            rows.append({"name": name, "type": "ssh", "host": r.host, "user": r.user, "port": r.port,
                         "path": r.base, "sshKey": r.ssh_key})
        if fmt == "table":
            if not rows:
                app.say('No remotes configured. Add one with: sig remote add <name> <host>')
                return 0
            app.out(render(rows, "table", [{"name": x["name"], "host": x["host"], "user": x["user"] or "-",
                                              "port": x["port"] or 22, "path": x["path"]} for x in rows]))
        else:
            app.out(render(rows, "json"))
        return 0
    from ..args import unknown_word

    raise unknown_word("subcommand", sub, ("add", "remove", "list"), f"usage: {USAGE}", "`sig remote {}`")
