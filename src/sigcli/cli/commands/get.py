"""`sig get <provider|url>`: the headers a provider adds, redacted unless asked otherwise."""

from __future__ import annotations

import sys

from ...config.load import provider_not_found
from ...core.errors import ErrorCode, SigError, usage_error
from ...core.jsonio import dumps
from ..app import App
from ..args import Args
from ..common import one_positional

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FLAGS = {"format": "value", "no-redaction": "bool"}
FORMATS = ("json", "header", "value")
USAGE = "sig get <provider|url> [--format json|header|value] [--no-redaction]"


class GetOptions:
    """`sig get`'s argument and flags, typed."""

    __slots__ = ("format", "raw", "target")

    def __init__(self, args: Args) -> None:
        self.target = one_positional(args.positionals, USAGE)
        self.format = args.value("format") or "json"
        if self.format not in FORMATS:
            raise usage_error(f'unknown format "{self.format}"', f"use one of: {', '.join(FORMATS)}")
        self.raw = args.flag("no-redaction")


def run(args: Args, app: App) -> int:
    """Resolve the provider, read its credential (renewed if due), print the headers its rules make."""
    opts = GetOptions(args)
    target, fmt, raw = opts.target, opts.format, opts.raw
    from ...sandbox.inside import in_sandbox

    if in_sandbox():
        from ...sandbox.inside import values_unavailable

        raise values_unavailable("sig get")
    provider = app.config.resolve(target)
    if provider is None:
        app.audit("credential_access", "failure", None, {"target": target, "error": "provider not found"})
        raise provider_not_found(target)
    if raw:
        from ..guard import require_person

        require_person(app, "get --no-redaction", [provider.id])
    try:
        credential = app.auth.credential(provider)
    except SigError as err:
        app.audit("credential_access", "failure", provider.id, {"error": err.message})
        raise
    from ...core.apply import apply_rules

    values = credential.revealed()
    headers = apply_rules(provider.apply, values).headers
    app.audit("credential_access", "success", provider.id, {"redacted": not raw})
    if not headers:
        raise SigError(
            ErrorCode.CREDENTIAL_NOT_FOUND,
            f'the apply rules of "{provider.id}" produce no header',
            f"add an apply rule with `in: header` to providers.{provider.id} in the config",
        )
    if raw:
        sys.stderr.write("Warning: printing raw credential values; do not hand them to untrusted programs.\n")
    else:
        from ...core.secret_forms import redact_text, secret_forms

        forms = secret_forms(values)
        headers = {k: redact_text(v, forms) for k, v in headers.items()}
    if fmt == "header":
        app.out("\n".join(f"{k}: {v}" for k, v in headers.items()))
    elif fmt == "value":
        app.out(next(iter(headers.values())))
    else:
        out: dict[str, Any] = {"provider": provider.id, "headers": headers}
        if raw and credential.oauth2 and credential.oauth2.get("clientId"):
            out["oauth2"] = {"clientId": credential.oauth2["clientId"].reveal()}
        app.out(dumps(out, indent=2))
    return 0
