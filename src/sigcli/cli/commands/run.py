"""`sig run [provider...] -- cmd`: run a command with SIG_<PROVIDER>_* variables; its output is redacted."""

from __future__ import annotations

import os

from ...core.errors import ErrorCode, SigError, usage_error
from ..app import App
from ..args import Args

FLAGS = {"expand-cookies": "bool", "mount": "value", "mount-format": "value", "mount-force": "bool",
         "command": "value", "no-redaction": "bool", "proxy": "bool", "format": "value", "env": "multi",
         "sandbox": "bool", "allow-write": "multi", "hide": "multi", "allow-host": "multi", "allow-tcp": "multi",
         "deny-other-hosts": "bool"}
SANDBOX_FLAGS = ("allow-write", "hide", "allow-host", "allow-tcp", "deny-other-hosts")
USAGE = "sig run [provider[,provider]...] [--env NAME=P.key]... [--mount PATH] -- <command> [args...]" \
        "   (or --command 'shell string')"

# Why a provider is skipped quietly when no provider is named: not logged in (or no longer), which is normal
# for some of "every configured provider". Anything else (an unreadable file, …) gets a warning line.
_NOT_LOGGED_IN = (ErrorCode.CREDENTIAL_NOT_FOUND, ErrorCode.CREDENTIAL_EXPIRED, ErrorCode.REFRESH_FAILED)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...config.load import Config
    from ...core.model import Credential, Provider


class RunOptions:
    """`sig run`'s providers, command and flags, typed."""

    __slots__ = ("allow_hosts", "allow_tcp", "allow_write", "command", "deny_other_hosts", "env", "expand_cookies",
                 "format", "hide", "mount", "mount_force", "mount_format", "mount_format_given", "positionals",
                 "proxy", "raw", "rest", "sandbox", "sandbox_flags")

    def __init__(self, args: Args) -> None:
        self.positionals = args.positionals
        self.rest = args.rest  # after `--`; None when there is no `--`
        self.command = args.value("command")
        self.proxy = args.flag("proxy")
        self.mount = args.value("mount")
        self.mount_format = args.value("mount-format") or "env"
        self.mount_format_given = args.given("mount-format")
        self.mount_force = args.flag("mount-force")
        self.env = args.values("env")
        self.expand_cookies = args.flag("expand-cookies")
        self.raw = args.flag("no-redaction")
        self.format = args.value("format")
        self.sandbox = args.flag("sandbox")
        self.allow_write = args.values("allow-write")
        self.hide = args.values("hide")
        self.allow_hosts = args.values("allow-host")
        self.allow_tcp = args.values("allow-tcp")
        self.deny_other_hosts = args.flag("deny-other-hosts")
        self.sandbox_flags = [f"--{f}" for f in SANDBOX_FLAGS if args.given(f)]
        if self.sandbox_flags and not self.sandbox:
            flag = self.sandbox_flags[0]
            raise usage_error(f"{flag} works with --sandbox only", f"e.g. sig run --sandbox {flag} … -- cmd")


def _command(opts: RunOptions) -> list[str]:
    shell_line = opts.command
    rest = opts.rest or []
    if shell_line is not None:
        if rest:
            raise usage_error("give either --command or a command after --, not both", f"usage: {USAGE}")
        shell = os.environ.get("SHELL") or "/bin/sh"
        return [shell, "-c", shell_line]
    if not rest:
        raise usage_error("no command given", f"usage: {USAGE}")
    return rest


def _providers(config: Config, targets: list[str]) -> list[Provider]:
    """The providers named on the command line: ids, names or URLs, each also as `a,b` (README "`sig run`")."""
    from ...config.load import provider_not_found

    chosen: list[Provider] = []
    for target in targets:
        whole = config.get(target) or config.resolve(target)
        names = [target] if whole is not None or "," not in target else [
            t.strip() for t in target.split(",") if t.strip()]
        for name in names:
            provider = whole or config.get(name) or config.resolve(name)
            if provider is None:
                raise provider_not_found(name)
            if provider not in chosen:
                chosen.append(provider)
    return chosen


def _named(app: App, config: Config, targets: list[str],
           env_options: list[tuple[str, Provider, str]]) -> list[tuple[Provider, Credential]]:
    """The providers named on the command line, then those only --env names, each with its credential
    (exit 3 when one is missing or expired)."""
    wanted = _providers(config, targets)
    wanted += [p for _n, p, _k in env_options if p not in wanted]
    return [(provider, app.auth.credential(provider)) for provider in wanted]


def _env_options(config: Config, specs: list[str]) -> list[tuple[str, Provider, str]]:
    """`--env NAME=P.key` → (NAME, provider P, key). P is the longest configured id before a dot."""
    from ...core.envtemplate import env_name_problem

    out = []
    for spec in specs:
        name, eq, ref = spec.partition("=")
        if not eq or not ref:
            raise usage_error(f'--env "{spec}" is not NAME=PROVIDER.KEY', "e.g. --env DATABASE_URL=db.password")
        problem = env_name_problem(name)
        if problem:
            raise usage_error(f"--env: {problem}", "e.g. --env DATABASE_URL=db.password")
        splits = [i for i, c in enumerate(ref) if c == "."]
        found = [(p, ref[i + 1 :]) for i in reversed(splits)
                 if (p := config.get(ref[:i])) is not None and ref[i + 1 :]]
        if not found:
            from ...config.load import provider_not_found

            if not splits:
                raise usage_error(f'--env {name}={ref}: say which value, as PROVIDER.KEY',
                                  f"e.g. --env {name}={ref}.token (sig run {ref} -- env lists the keys)")
            raise provider_not_found(ref[: splits[0]])
        out.append((name, *found[0]))
    return out


def run(args: Args, app: App) -> int:
    """Choose the providers, build the variables (and the mount file), run the child with its output
    redacted (inject/child.py)."""
    from ...config import paths

    opts = RunOptions(args)
    if opts.sandbox:
        return _run_sandboxed(opts, app)
    from ...sandbox.inside import in_sandbox

    if in_sandbox():
        from ...sandbox.inside import values_unavailable

        raise values_unavailable("sig run")
    if opts.proxy:
        return _run_through_proxy(opts, app)
    if opts.rest is None and opts.command is None and opts.positionals:
        raise usage_error("put -- between the providers and the command",
                          f"e.g. sig run {opts.positionals[0]} -- {' '.join(opts.positionals[1:]) or 'env'}")
    argv = _command(opts)
    fmt = opts.mount_format
    from ...inject.mount import FORMATS

    if fmt not in FORMATS:
        raise usage_error(f'unknown mount format "{fmt}"', f"use one of: {', '.join(FORMATS)}")
    if opts.mount_format_given and opts.mount is None:
        raise usage_error("--mount-format needs --mount PATH", "")
    config = app.config
    env_options = _env_options(config, opts.env)
    if opts.positionals:
        chosen = _named(app, config, opts.positionals, env_options)
    else:
        chosen = []
        for provider in config.providers.values():
            try:
                chosen.append((provider, app.auth.credential(provider)))
            except SigError as err:
                if any(p is provider for _n, p, _k in env_options):
                    raise  # named by --env: its credential is needed
                app.log(f"{provider.id}: skipped ({err.code})")
                if err.code not in _NOT_LOGGED_IN:
                    # e.g. a damaged or unsealed credential file: the user would otherwise never learn why
                    # the provider's variables are missing. The code only: messages may name files.
                    app.warn(f'skipped "{provider.id}": its credential cannot be used ({err.code}); '
                             f"see why with: sig get {provider.id}")
        if not chosen:
            raise SigError(ErrorCode.CREDENTIAL_NOT_FOUND, "no provider has a valid credential",
                           "log in first: sig login <url>   (sig status shows what is stored)")
    ids = [p.id for p, _c in chosen]
    redact = not opts.raw
    if not redact:
        from ..guard import require_person

        require_person(app, "run --no-redaction", ids)  # before any value reaches the child or a file
    injected, secrets = _variables(app, chosen, env_options, opts.expand_cookies)
    from ...inject.mount import MountFile, render, sweep_stale

    for path in sweep_stale(paths.sig_home()):
        app.warn(f"removed {path}, left behind by a sig run that did not finish")
    mount = None
    if opts.mount:
        mount = MountFile(opts.mount, paths.sig_home(), force=opts.mount_force)
        mount.write(render(injected, fmt))
    env = dict(os.environ)
    env.update(injected)
    app.audit("run", "success", None, {"providers": ids, "command": os.path.basename(argv[0]),
                                       "providerCount": len(ids)})
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


def _variables(app: App, chosen: list[tuple[Provider, Credential]], env_options: list[tuple[str, Provider, str]],
               expand_cookies: bool) -> tuple[dict[str, str], list[str]]:
    """(every variable the child gets, every string the redactor masks): SIG_<P>_* of each provider, then
    the app-named ones (config `env:` maps, then --env, which wins)."""
    from ...core.model import IDENTIFIER_KEYS
    from ...core.secret_forms import secret_forms
    from ...inject.env import app_env, provider_env, template_values

    injected: dict[str, str] = {}
    secrets: list[str] = []
    named: dict[str, str] = {}  # app variable -> provider whose env: map set it
    chosen_by_option = {name for name, _p, _k in env_options}
    for provider, credential in chosen:
        injected.update(provider_env(provider, credential, expand_cookies))
        secrets += secret_forms(credential.revealed())  # covers the derived variables too (they embed these)
        extra, secret_names, missing = app_env(provider, credential)
        for name in extra:
            if name in named and name not in chosen_by_option:
                raise SigError(ErrorCode.CONFIG_ERROR,
                               f'{name} is set by the env maps of both "{named[name]}" and "{provider.id}"',
                               f"rename it in one of them, or choose with --env {name}=PROVIDER.KEY")
            named[name] = provider.id
        for name, key in missing:
            app.warn(f'{name} (env of "{provider.id}"): the credential has no value "{key}"; it is left empty')
        injected.update(extra)
        secrets += secret_forms({name: extra[name] for name in secret_names})
    credentials = {p.id: c for p, c in chosen}
    for name, provider, key in env_options:
        value = template_values(provider, credentials[provider.id]).get(key)
        if value is None:
            raise SigError(ErrorCode.CREDENTIAL_NOT_FOUND,
                           f'--env {name}: the credential of "{provider.id}" has no value "{key}"',
                           f"see the names with: sig run {provider.id} -- env   (SIG_<P>_<KEY> are the keys)")
        injected[name] = value
        if key not in IDENTIFIER_KEYS:
            secrets += secret_forms({name: value})
    return injected, secrets


def _run_through_proxy(opts: RunOptions, app: App) -> int:
    """The child gets the proxy URL and CA settings, and no secret at all: the proxy adds credentials."""
    from ...proxy import daemon

    if opts.mount or opts.expand_cookies or opts.env:
        raise usage_error("--mount, --env and --expand-cookies hand out secrets; --proxy does not",
                          "drop one of them")
    argv = _command(opts)
    state = daemon.read_state()
    if state is None:
        raise SigError(ErrorCode.GENERAL_ERROR, "the proxy is not running", "start it first: sig proxy start")
    if opts.positionals:
        app.say("Note: with --proxy every configured provider is available through the proxy; "
                "the provider names are not needed.")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIG_") or k in ("SIG_HOME",)}
    from .proxy import client_env

    env.update(client_env(app, state))
    app.audit("run", "success", None, {"providers": [], "command": os.path.basename(argv[0]),
                                       "providerCount": 0, "proxy": True})
    from ...inject.child import run_child

    code, _masks = run_child(argv, env, [], redact=False)
    return code


def _stored_secret_forms(app: App) -> list[str]:
    """Every stored credential value, in the forms it takes on the wire: no variable of the caller's that
    holds one (a sandbox started inside a plain `sig run`) may reach the sandbox."""
    from ...core.secret_forms import secret_forms

    forms: list[str] = []
    for provider in app.config.providers.values():
        try:
            credential = app.store.read(provider.id)
        except SigError:
            continue
        if credential is not None:
            forms += secret_forms(credential.revealed())
    return forms


def _run_sandboxed(opts: RunOptions, app: App) -> int:
    """`run --sandbox`: the command runs under bubblewrap where sig's data and the user's secret stores are
    not, reaching the network only through the proxy; named providers' variables hold placeholders."""
    from ...sandbox.inside import in_sandbox

    if in_sandbox():
        raise SigError(ErrorCode.NOT_AVAILABLE, "this is already inside sig's sandbox",
                       "run the command directly: it is sandboxed already")
    for flag, given, why in (("proxy", opts.proxy, "--sandbox always goes through the proxy"),
                             ("mount", opts.mount is not None, "--mount writes secret values to a file"),
                             ("no-redaction", opts.raw, "the sandbox holds no value to redact"),
                             ("expand-cookies", opts.expand_cookies, "placeholders stand for whole values")):
        if given:
            raise usage_error(f"--{flag} does not go with --sandbox: {why}", "drop one of them")
    from ...sandbox.detect import find_bwrap

    bwrap = find_bwrap()  # before anything else: no bubblewrap, no run (never a run without it)
    argv = _command(opts)
    config = app.config
    env_options = _env_options(config, opts.env)
    chosen = _named(app, config, opts.positionals, env_options)
    from ...proxy import daemon
    from ...sandbox import runner
    from ...sandbox.settings import merge

    settings = merge(config.data.get("sandbox"), hide=opts.hide, allow_write=opts.allow_write,
                     allow_hosts=opts.allow_hosts, allow_tcp=opts.allow_tcp, deny_other_hosts=opts.deny_other_hosts)
    token = daemon.token()
    folder = daemon.folder()
    if not os.path.exists(os.path.join(folder, "ca.crt")):
        from ...sandbox.control import not_running

        raise not_running()
    plan = runner.plan(config, bwrap, argv, settings, chosen, env_options, folder, token,
                       secrets=_stored_secret_forms(app))
    for note in plan.view.notes:
        app.warn(note)
    if plan.left_out:
        app.warn(f"not passed into the sandbox (they hold a stored credential value): {', '.join(plan.left_out)}")
    ids = [p.id for p, _c in chosen]
    app.log(f"sandbox: {len(plan.view.hidden_dirs) + len(plan.view.hidden_files)} path(s) hidden, writable: "
            f"{', '.join((plan.view.cwd, *plan.view.writable))}; other hosts: {settings.other_hosts}")
    app.audit("run", "success", None, {"providers": ids, "command": os.path.basename(argv[0]),
                                       "providerCount": len(ids), "sandbox": True})
    code = runner.execute(plan, folder, token)
    if code > 128:
        from ...inject.child import exit_status_note

        app.log(f"command ended with status {code}{exit_status_note(code)}")
    return code
