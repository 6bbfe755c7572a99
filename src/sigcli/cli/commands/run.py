"""`sig run [provider...] -- cmd`: run a command with SIG_<PROVIDER>_* variables; its output is redacted."""

from __future__ import annotations

import os

from ...core.errors import ErrorCode, SigError, usage_error
from ..app import App
from ..args import Args

FLAGS = {"expand-cookies": "bool", "mount": "value", "mount-format": "value", "mount-force": "bool",
         "command": "value", "no-redaction": "bool", "proxy": "bool", "format": "value"}
USAGE = "sig run [provider...] [--mount PATH] -- <command> [args...]   (or --command 'shell string')"


def _command(args: Args) -> list[str]:
    shell_line = args.value("command")
    rest = args.rest or []
    if shell_line is not None:
        if rest:
            raise usage_error("give either --command or a command after --, not both", f"usage: {USAGE}")
        shell = os.environ.get("SHELL") or "/bin/sh"
        return [shell, "-c", shell_line]
    if not rest:
        raise usage_error("no command given", f"usage: {USAGE}")
    return rest


def run(args: Args, app: App) -> int:
    from ...config import paths

    if args.flag("proxy"):
        return _run_through_proxy(args, app)
    if args.rest is None and args.value("command") is None and args.positionals:
        raise usage_error("put -- between the providers and the command",
                          f"e.g. sig run {args.positionals[0]} -- {' '.join(args.positionals[1:]) or 'env'}")
    argv = _command(args)
    fmt = args.value("mount-format") or "env"
    from ...inject.mount import FORMATS

    if fmt not in FORMATS:
        raise usage_error(f'unknown mount format "{fmt}"', f"use one of: {', '.join(FORMATS)}")
    if args.given("mount-format") and not args.given("mount"):
        raise usage_error("--mount-format needs --mount PATH", "")
    config = app.config
    explicit = bool(args.positionals)
    chosen = []
    if explicit:
        for target in args.positionals:
            provider = config.get(target) or config.resolve(target)
            if provider is None:
                from ..common import provider_not_found

                raise provider_not_found(target)
            chosen.append((provider, app.auth.credential(provider)))  # exit 3 when missing/expired
    else:
        for provider in config.providers.values():
            try:
                chosen.append((provider, app.auth.credential(provider)))
            except SigError as err:
                app.log(f"{provider.id}: skipped ({err.code})")
        if not chosen:
            raise SigError(ErrorCode.CREDENTIAL_NOT_FOUND, "no provider has a valid credential",
                           "log in first: sig login <url>   (sig status shows what is stored)")
    from ...inject.env import provider_env
    from ...inject.redact import secret_forms

    injected: dict[str, str] = {}
    secrets: list[str] = []
    for provider, credential in chosen:
        pvars = provider_env(provider, credential, args.flag("expand-cookies"))
        injected.update(pvars)
        values = credential.revealed()
        secrets += secret_forms(values)  # covers the derived variables too (they embed these values)
    from ...inject.mount import MountFile, render, sweep_stale

    for path in sweep_stale(paths.sig_home()):
        app.warn(f"removed {path}, left behind by a sig run that did not finish")
    mount = None
    if args.value("mount"):
        mount = MountFile(args.value("mount") or "", paths.sig_home(), force=args.flag("mount-force"))
        mount.write(render(injected, fmt))
    env = dict(os.environ)
    env.update(injected)
    ids = [p.id for p, _c in chosen]
    app.audit("run", "success", None, {"providers": ids, "command": os.path.basename(argv[0]),
                                       "providerCount": len(ids)})
    redact = not args.flag("no-redaction")
    if not redact:
        app.warn("output redaction is off; the command's output may show credential values")
    from ...inject.child import exit_status_note, run_child

    code, masks = run_child(argv, env, secrets, redact=redact,
                            on_exit=mount.remove if mount is not None else None)
    if masks:
        app.log(f"redacted {masks} credential value(s) from the output")
    if code > 128:
        app.log(f"command ended with status {code}{exit_status_note(code)}")
    return code


def _run_through_proxy(args: Args, app: App) -> int:
    """The child gets the proxy URL and CA settings, and no secret at all: the proxy adds credentials."""
    from ...proxy import daemon

    if args.value("mount") or args.flag("expand-cookies"):
        raise usage_error("--mount and --expand-cookies hand out secrets; --proxy does not", "drop one of them")
    argv = _command(args)
    state = daemon.read_state()
    if state is None:
        raise SigError(ErrorCode.GENERAL_ERROR, "the proxy is not running", "start it first: sig proxy start")
    if args.positionals:
        app.say("Note: with --proxy every configured provider is available through the proxy; "
                "the provider names are not needed.")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIG_") or k in ("SIG_HOME",)}
    env.update(daemon.client_env(state))
    app.audit("run", "success", None, {"providers": [], "command": os.path.basename(argv[0]),
                                       "providerCount": 0, "proxy": True})
    from ...inject.child import run_child

    code, _masks = run_child(argv, env, [], redact=False)
    return code
