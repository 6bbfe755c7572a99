"""`sig providers`: the configured providers; `--presets`: the validation presets for public sites."""

from __future__ import annotations

from ...core.errors import usage_error
from ..app import App
from ..args import Args

FLAGS = {"format": "value", "presets": "bool"}


class ProvidersOptions:
    """`sig providers`'s flags, typed."""

    def __init__(self, args: Args) -> None:
        from ..output import choose_format

        if args.positionals:
            raise usage_error(f"unexpected argument {args.positionals[0]!r}",
                              "usage: sig providers [--presets] [--format F]")
        self.format = choose_format(args.value("format"))
        self.presets = args.flag("presets")


def run(args: Args, app: App) -> int:
    """The configured providers and whether each is logged in (or, with --presets, the presets)."""
    from ..output import render

    opts = ProvidersOptions(args)
    fmt = opts.format
    if opts.presets:
        from ...config.presets import listing

        presets = listing()
        table = [{"id": r["id"], "name": r["name"], "domains": ", ".join(r["domains"]),
                  "validateUrl": r["validateUrl"]} for r in presets]
        app.out(render(presets, fmt, table))
        return 0
    rows = []
    from ...sandbox.inside import in_sandbox

    if in_sandbox():  # sig's data is not here: names and validity from the proxy
        from ...sandbox.status import statuses

        rows = [{k: s.get(k) for k in ("id", "name", "strategy", "configured", "valid")} for s in statuses()]
    else:
        for provider in app.config.providers.values():
            s = app.auth.status(provider)
            rows.append({"id": provider.id, "name": provider.name, "strategy": provider.strategy,
                         "configured": s["configured"], "valid": s["valid"]})
    if fmt == "table":
        if not rows:
            app.say("No providers configured. Add one with: sig login <url>")
            return 0
        table = [{"id": r["id"], "name": r["name"], "strategy": r["strategy"],
                  "status": "authenticated" if r["valid"] else "not authenticated"} for r in rows]
        app.out(render(rows, fmt, table))
        return 0
    app.out(render(rows, fmt))
    return 0
