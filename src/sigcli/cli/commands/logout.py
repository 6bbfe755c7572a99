"""`sig logout [provider]`: clear one credential, or all of them. The config stays."""

from __future__ import annotations

from ...core.errors import usage_error
from ..app import App
from ..args import Args
from ..common import resolve_existing

FLAGS: dict[str, str] = {"format": "value"}


def run(args: Args, app: App) -> int:
    if len(args.positionals) > 1:
        raise usage_error("logout takes at most one provider", "usage: sig logout [provider]")
    store = app.store
    if args.positionals:
        provider = resolve_existing(app, args.positionals[0])
        credential = None
        try:
            credential = store.read(provider.id)
        except Exception:
            credential = None
        if credential is not None and credential.oauth2:
            store.clear_values(provider.id)  # keep the client credentials so sig can log in again
        else:
            store.delete(provider.id)
        app.audit("logout", "success", provider.id)
        app.say(f'Credentials cleared for "{provider.id}".')
        return 0
    count = 0
    for stem, credential, _err in store.list():
        if credential is not None and credential.oauth2:
            store.clear_values(credential.provider_id)
        else:
            store.delete(stem)  # by file name: also removes files that cannot be read
        count += 1
    app.audit("logout", "success", None, {"scope": "all"})
    app.say(f"All credentials cleared ({count}).")
    return 0
