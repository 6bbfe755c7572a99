"""`sig remove <provider...>`: credentials and (unless --keep-config) config and watch entries."""

from __future__ import annotations

import sys

from ...core.errors import ErrorCode, SigError, usage_error
from ..app import App
from ..args import Args

FLAGS = {"force": "bool", "keep-config": "bool", "format": "value"}

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...core.model import Provider


class RemoveOptions:
    """`sig remove`'s providers and flags, typed."""

    def __init__(self, args: Args) -> None:
        if not args.positionals:
            raise usage_error("name at least one provider", "usage: sig remove <provider> [...] [--force]")
        self.targets = args.positionals
        self.force = args.flag("force")
        self.keep_config = args.flag("keep-config")


def run(args: Args, app: App) -> int:
    """Remove the credentials and (unless --keep-config) the config entries, after a yes."""
    opts = RemoveOptions(args)
    resolved: list[Provider] = []
    unknown = []
    for target in opts.targets:
        provider = app.config.resolve(target)
        if provider is None:
            unknown.append(target)
        elif provider.id not in [p.id for p in resolved]:
            resolved.append(provider)
    if unknown:
        raise SigError(ErrorCode.PROVIDER_NOT_FOUND, f"unknown provider(s): {', '.join(unknown)}",
                       "nothing was removed; run `sig providers` to list providers")
    ids = [p.id for p in resolved]
    if not opts.force:
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
            if not opts.keep_config:
                _remove_entry(provider.id)
            app.audit("provider_remove", "success", provider.id)
        except SigError as err:
            app.audit("provider_remove", "failure", provider.id, {"error": err.message})
            failures.append(f"{provider.id}: {err.message}")
    if failures:
        raise SigError(ErrorCode.GENERAL_ERROR, "failed to remove: " + "; ".join(failures), "run `sig doctor`")
    what = "credential(s) of" if opts.keep_config else ""
    app.say(f"Removed {what} {len(ids)} provider(s): {', '.join(ids)}.".replace("  ", " "))
    return 0


def _remove_entry(provider_id: str) -> None:
    from ...config.edit import edit_config, remove_provider

    edit_config(lambda doc: remove_provider(doc, provider_id))
