"""`sig remove <provider...>`: credentials and (unless --keep-config) config and watch entries."""

from __future__ import annotations

import sys

from ...core.errors import ErrorCode, SigError, usage_error
from ..app import App
from ..args import Args

FLAGS = {"force": "bool", "keep-config": "bool", "format": "value"}


def run(args: Args, app: App) -> int:
    if not args.positionals:
        raise usage_error("name at least one provider", "usage: sig remove <provider> [...] [--force]")
    resolved = []
    unknown = []
    for target in args.positionals:
        provider = app.config.resolve(target)
        if provider is None:
            unknown.append(target)
        elif provider.id not in [p.id for p in resolved]:
            resolved.append(provider)
    if unknown:
        raise SigError(ErrorCode.PROVIDER_NOT_FOUND, f"unknown provider(s): {', '.join(unknown)}",
                       "nothing was removed; run `sig providers` to list providers")
    ids = [p.id for p in resolved]
    if not args.flag("force"):
        if not sys.stdin.isatty():
            raise usage_error("cannot ask for confirmation (standard input is not a terminal)",
                              f"run `sig remove {' '.join(ids)} --force`")
        answer = app.ask(f"Remove {len(ids)} provider(s)? {', '.join(ids)} [y/N]", False)
        if (answer or "").strip().lower() not in ("y", "yes"):
            app.say("Aborted.")
            return 0
    failures = []
    for provider in resolved:
        try:
            app.store.delete(provider.id)
            if not args.flag("keep-config"):
                from ...config.edit import edit_config, remove_provider

                edit_config(lambda doc, pid=provider.id: remove_provider(doc, pid))
            app.audit("provider_remove", "success", provider.id)
        except SigError as err:
            app.audit("provider_remove", "failure", provider.id, {"error": err.message})
            failures.append(f"{provider.id}: {err.message}")
    if failures:
        raise SigError(ErrorCode.GENERAL_ERROR, "failed to remove: " + "; ".join(failures), "run `sig doctor`")
    what = "credential(s) of" if args.flag("keep-config") else ""
    app.say(f"Removed {what} {len(ids)} provider(s): {', '.join(ids)}.".replace("  ", " "))
    return 0
