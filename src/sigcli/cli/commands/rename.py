"""`sig rename <old> <new>`: config entry (comments kept), stored credential and watch entry."""

from __future__ import annotations

from ...core.errors import ErrorCode, SigError, usage_error
from ...core.hosts import valid_provider_id
from ...core.model import Credential
from ..app import App
from ..args import Args
from ..common import resolve_existing

FLAGS: dict[str, str] = {"format": "value"}


class RenameOptions:
    """`sig rename`'s two ids, checked."""

    def __init__(self, args: Args) -> None:
        if len(args.positionals) != 2:
            raise usage_error("rename needs the old and the new id", "usage: sig rename <old> <new>")
        self.old, self.new = args.positionals
        if not valid_provider_id(self.new):
            raise usage_error(f'"{self.new}" is not a valid provider id',
                              "use letters, digits, '.', '_' and '-', starting with a letter or digit")


def run(args: Args, app: App) -> int:
    """Move the credential, then the config entry (comments kept), then remove the old file."""
    opts = RenameOptions(args)
    new = opts.new
    provider = resolve_existing(app, opts.old)
    old = provider.id
    if new == old:
        app.say(f'"{old}" already has that id.')
        return 0
    if new in app.config.providers:
        raise SigError(ErrorCode.CONFIG_ERROR, f'a provider "{new}" already exists',
                       f"pick another id, or remove it first: sig remove {new}")
    store = app.store
    credential = store.read(old)
    if credential is not None:
        # New file first, then the config, then the old file: a crash in between loses nothing.
        moved = Credential(new, credential.strategy, credential.values, credential.updated_at,
                           credential.expires_at, credential.oauth2, credential.extra)
        store.write(moved)
    from ...config.edit import edit_config, rename_provider

    try:
        edit_config(lambda doc: rename_provider(doc, old, new))
    except SigError:
        if credential is not None:
            store.delete(new)
        raise
    if credential is not None:
        store.delete(old)
    app.audit("provider_rename", "success", new, {"oldId": old})
    app.say(f'Renamed "{old}" → "{new}".')
    return 0
