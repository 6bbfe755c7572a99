"""`sig login <url|provider>`: obtain a credential, store it sealed, add the provider when it is new."""

from __future__ import annotations

import os
import sys
from typing import Any

from ...config.load import provider_not_found
from ...core import strategies
from ...core.errors import ErrorCode, SigError, usage_error
from ...core.hosts import valid_provider_id
from ...core.model import Provider
from ...core.secret import Secret
from ..app import App
from ..args import Args
from ..common import one_positional

FLAGS = {
    "as": "value", "strategy": "value", "mode": "value", "force": "bool", "format": "value",
    "token": "value", "token-stdin": "bool", "token-env": "value",
    "cookie": "value", "cookie-stdin": "bool",
    "username": "value", "password": "value", "password-stdin": "bool",
    "header-name": "value", "header-prefix": "value", "network-proxy": "value", "cdp-url": "value",
    "token-url": "value", "client-id": "value", "client-secret": "value", "client-secret-stdin": "bool",
    "scope": "value", "grant": "value", "auth-url": "value", "device-url": "value",
    "adopt-unsealed": "bool",
}
MODES = ("auto", "headless", "cdp", "visible")
OAUTH_FLAGS = {"token-url": "tokenUrl", "client-id": "clientId", "scope": "scope", "grant": "grant",
               "auth-url": "authUrl", "device-url": "deviceUrl"}


def _open_browser(url: str) -> bool:
    """Open a browser only where one can show up (a desktop session, not SSH); the URL is printed anyway."""
    if os.environ.get("SSH_CONNECTION") or os.environ.get("SIG_NO_BROWSER"):
        return False
    if sys.platform != "darwin" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    import webbrowser

    try:
        return bool(webbrowser.open(url, new=1))
    except webbrowser.Error:
        return False


USAGE = "sig login <url|provider> [--as id] [--token-stdin | --cookie-stdin | --username U --password-stdin]"
# A credential value ends up in child environments (`sig run`: SIG_<ID>_TOKEN, _AUTH_HEADER, …), where
# Linux caps one "NAME=value" string at 128 KiB (MAX_ARG_STRLEN), and in HTTP headers, which servers
# cap far lower. 64 KiB per value leaves room for the derived forms (base64 grows by a third).
MAX_VALUE_BYTES = 64 * 1024
_NOT_UTF8_HINT = "pass the {what} as UTF-8 text (convert it first, e.g. with iconv)"
_ARGV_WARNING = "{what} in the command line is visible to other processes and shell history; prefer {better}"


def _checked_text(value: str, what: str, source: str, header: bool = False) -> str:
    """`value` if it is text sig can store and send; else a usage error saying what is wrong (never the value).
    `header`: it is sent verbatim in an HTTP header, which carries Latin-1 only."""
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise usage_error(f"the {what} {source} is not valid UTF-8 text", _NOT_UTF8_HINT.format(what=what)) from None
    if size > MAX_VALUE_BYTES:
        raise usage_error(f"the {what} {source} is {size} bytes; sig takes at most {MAX_VALUE_BYTES // 1024} KiB "
                          "per value", f"pass only the {what}")
    if header:
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise usage_error(f"the {what} {source} has characters outside Latin-1, which an HTTP header "
                              "cannot carry", f"pass only the {what}: tokens and cookies are ASCII text "
                              "(percent-encode anything else)") from None
    return value


def _read_stdin(what: str, header: bool = False) -> str:
    if sys.stdin.isatty():
        sys.stderr.write(f"Paste the {what}, then press Enter and Ctrl-D:\n")
    # Bytes, read up to just past the limit: a runaway pipe is refused without holding it all in memory.
    data = sys.stdin.buffer.read(MAX_VALUE_BYTES + 3)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise usage_error(f"the {what} on standard input is not valid UTF-8 text",
                          _NOT_UTF8_HINT.format(what=what)) from None
    value = text.rstrip("\r\n")
    if len(data) > MAX_VALUE_BYTES + 2:
        raise usage_error(f"the {what} on standard input is larger than {MAX_VALUE_BYTES // 1024} KiB, the most "
                          "sig takes per value", f"pass only the {what}")
    if not value.strip():
        raise usage_error(f"no {what} on standard input", f"pipe it in, e.g. printf %s \"$X\" | {USAGE}")
    return _checked_text(value, what, "on standard input", header)


class LoginOptions:
    """`sig login`'s flags, typed. Parsing checks what needs no I/O, in the order errors are reported;
    secrets (--token-stdin, --token-env, …) are read later by `_material`."""

    def __init__(self, args: Args) -> None:
        self.target = _checked_text(one_positional(args.positionals, USAGE), "URL or provider", "given")
        self.strategy = args.value("strategy")
        if self.strategy is not None and self.strategy not in strategies.NAMES:
            raise usage_error(f'unknown strategy "{self.strategy}"', f"use one of: {', '.join(strategies.NAMES)}")
        self.mode = args.value("mode")
        if self.mode is not None and self.mode not in MODES:
            raise usage_error(f'unknown mode "{self.mode}"', f"use one of: {', '.join(MODES)}")
        if args.value("format") not in (None, "json"):
            raise usage_error("login prints JSON only", "drop --format or use --format json")
        self.adopt_unsealed = args.flag("adopt-unsealed")
        self.given = list(args.flags)  # flag names in the order given
        self.new_id = args.value("as")
        self.force = args.flag("force")
        self.token, self.token_stdin, self.token_env = args.value("token"), args.flag("token-stdin"), \
            args.value("token-env")
        self.cookie, self.cookie_stdin = args.value("cookie"), args.flag("cookie-stdin")
        self.username, self.password = args.value("username"), args.value("password")
        self.password_stdin = args.flag("password-stdin")
        self.client_secret, self.client_secret_stdin = args.value("client-secret"), args.flag("client-secret-stdin")
        self.header_name, self.header_prefix = args.value("header-name"), args.value("header-prefix")
        self.network_proxy, self.cdp_url = args.value("network-proxy"), args.value("cdp-url")
        # OAuth2 settings given on the command line, by their config names (tokenUrl, clientId, …).
        self.oauth: dict[str, str] = {}
        for flag, key in OAUTH_FLAGS.items():
            value = args.value(flag)
            if value is not None:
                self.oauth[key] = value

    def check_new_id(self) -> None:
        """Usage error for an --as that is not a valid provider id."""
        if self.new_id is not None and not valid_provider_id(self.new_id):
            raise usage_error(f'"{self.new_id}" is not a valid provider id',
                              "use letters, digits, '.', '_' and '-', starting with a letter or digit")

    @property
    def reads_stdin(self) -> bool:
        """A secret comes on standard input: nothing else may be asked there."""
        return self.token_stdin or self.cookie_stdin or self.password_stdin or self.client_secret_stdin


def _material(opts: LoginOptions, app: App) -> dict[str, Any]:
    """Collect the secrets given on the command line, stdin or env. Refuse ambiguous combinations."""
    stdin_users = [flag for flag, on in (("token-stdin", opts.token_stdin), ("cookie-stdin", opts.cookie_stdin),
                                         ("password-stdin", opts.password_stdin),
                                         ("client-secret-stdin", opts.client_secret_stdin)) if on]
    if len(stdin_users) > 1:
        raise usage_error(f"only one option can read standard input (got --{' and --'.join(stdin_users)})",
                          "pass the others with their --x-env or --x form")
    token_forms = [f for f, on in (("token", opts.token is not None), ("token-stdin", opts.token_stdin),
                                   ("token-env", opts.token_env is not None)) if on]
    kinds = []
    if token_forms:
        kinds.append("--token")
    if opts.cookie is not None or opts.cookie_stdin:
        kinds.append("--cookie")
    if opts.username is not None or opts.password is not None or opts.password_stdin:
        kinds.append("--username/--password")
    if len(kinds) > 1:
        raise usage_error(f"{' and '.join(kinds)} cannot be combined: a login stores one kind of credential",
                          "pick one (run `sig login --help`)")
    out: dict[str, Any] = {}
    if len(token_forms) > 1:
        raise usage_error("give the token once (--token, --token-stdin or --token-env)", "")
    if opts.token is not None:
        app.warn(_ARGV_WARNING.format(what="a token", better="--token-stdin or --token-env VAR"))
        out["token"] = Secret(_checked_text(opts.token, "token", "given with --token", True))
    elif opts.token_stdin:
        out["token"] = Secret(_read_stdin("token", header=True))
    elif opts.token_env is not None:
        var = opts.token_env
        value = os.environ.get(var)
        if not value:
            raise usage_error(f"the environment variable {var} is not set or empty", f"export {var}=… first")
        out["token"] = Secret(_checked_text(value, "token", f"in ${var}", True))
    if opts.cookie is not None and opts.cookie_stdin:
        raise usage_error("give the cookie once (--cookie or --cookie-stdin)", "")
    if opts.cookie is not None:
        app.warn(_ARGV_WARNING.format(what="a cookie", better="--cookie-stdin"))
        out["cookie"] = Secret(_checked_text(opts.cookie, "cookie", "given with --cookie", True))
    elif opts.cookie_stdin:
        out["cookie"] = Secret(_read_stdin("cookie", header=True))
    if opts.password is not None and opts.password_stdin:
        raise usage_error("give the password once (--password or --password-stdin)", "")
    if opts.password is not None:
        app.warn(_ARGV_WARNING.format(what="a password", better="--password-stdin"))
        out["password"] = Secret(_checked_text(opts.password, "password", "given with --password"))
    elif opts.password_stdin:
        out["password"] = Secret(_read_stdin("password"))
    if opts.username is not None:
        out["username"] = _checked_text(opts.username, "user name", "given with --username")
    if "username" in out and "password" in out:
        together = len(out["username"].encode()) + len(out["password"].reveal().encode()) + 1
        if together > MAX_VALUE_BYTES:  # they are also stored joined, as the Basic header's value
            raise usage_error(f"the user name and password are {together} bytes together; sig takes at most "
                              f"{MAX_VALUE_BYTES // 1024} KiB", "check that they hold only what they should")
    return out


def _client_secret(opts: LoginOptions, app: App) -> Secret | None:
    if opts.client_secret is not None:
        app.warn(_ARGV_WARNING.format(what="a client secret", better="--client-secret-stdin"))
        return Secret(_checked_text(opts.client_secret, "client secret", "given with --client-secret"))
    if opts.client_secret_stdin:
        return Secret(_read_stdin("client secret"))
    return None


def _check_other_values(opts: LoginOptions, app: App) -> None:
    """The remaining text options: valid UTF-8, within the size limit; warn about a proxy password in argv."""
    others = {"as": opts.new_id, "header-name": opts.header_name, "header-prefix": opts.header_prefix,
              "network-proxy": opts.network_proxy,
              **{flag: opts.oauth.get(key) for flag, key in OAUTH_FLAGS.items()}}
    for flag, value in others.items():
        if value is not None:
            _checked_text(value, f"--{flag} value", "given", header=flag in ("header-name", "header-prefix"))
    proxy = opts.network_proxy
    if proxy:
        from urllib.parse import urlsplit

        try:
            has_password = urlsplit(proxy if "://" in proxy else "http://" + proxy).password is not None
        except ValueError:
            has_password = False
        if has_password:
            app.warn(_ARGV_WARNING.format(what="a proxy password", better="networkProxy in config.yaml"))


def run(args: Args, app: App) -> int:
    """Parse, plan (auth/login.py), log in, save, report."""
    from ...auth import login as planner

    opts = LoginOptions(args)
    if opts.adopt_unsealed:
        others = [f"--{f}" for f in opts.given if f not in ("adopt-unsealed", "format", "verbose")]
        if others:
            raise usage_error(f"--adopt-unsealed takes no other options (got {', '.join(others)})",
                              f"run: sig login {opts.target} --adopt-unsealed")
        return _adopt(app, opts.target)
    opts.check_new_id()
    material = _material(opts, app)
    kind = strategies.implied_by(material)
    oauth = dict(opts.oauth)
    client_secret = _client_secret(opts, app)
    planner.normalise_grant(oauth)
    explicit = planner.choose_strategy(opts.strategy, kind, bool(oauth) or client_secret is not None)
    _check_other_values(opts, app)
    login = planner.plan(app.config, opts.target, new_id=opts.new_id, explicit=explicit, kind=kind,
                         header_name=opts.header_name, header_prefix=opts.header_prefix, oauth=oauth,
                         overrides={"networkProxy": opts.network_proxy or "", "loginMode": opts.mode or ""})
    provider = login.provider
    if kind is None and not oauth and client_secret is None and not opts.force \
            and planner.already_logged_in(app.auth, login):
        app.say(f'Already logged in to "{provider.name}" (use --force to log in again).')
        return _report(app, provider)
    browserless = app.config.mode == "browserless"
    planner.check_browser(login, browserless)
    from ...auth.base import LoginContext

    ctx = LoginContext(
        token=material.get("token"), cookie=material.get("cookie"), username=material.get("username"),
        password=material.get("password"), ask=None if opts.reads_stdin else app.ask,
        mode=opts.mode, network_proxy=opts.network_proxy, log=app.log,
        notify=app.say, open_url=_open_browser, oauth2=oauth, client_secret=client_secret,
        browser=(dict(app.config.browser, **({"cdpUrl": opts.cdp_url} if opts.cdp_url else {}))
                 if not browserless else None),
        waiting=app.waiting,
        previous=planner.stored_quietly(app.auth, login),
    )
    if not sys.stdin.isatty() and provider.strategy == strategies.OAUTH2:
        ctx.ask = None  # the paste-the-redirect fallback is for a person at a terminal
    try:
        planner.log_in(app.store, login, ctx)
        if login.is_new:
            app.log(f'added provider "{provider.id}" for {provider.entry_url or opts.target}')
    except SigError as err:
        app.audit("login", "failure", provider.id, {"error": err.message})
        raise
    app.audit("login", "success", provider.id, {"strategy": provider.strategy})
    for note in login.notes:
        app.say(note)
    app.say(f'Logged in to "{provider.name}" as provider "{provider.id}".')
    return _report(app, provider)


def _adopt(app: App, target: str) -> int:
    """`--adopt-unsealed`: seal the provider's plain-JSON credential file, which the user vouches for."""
    provider = app.config.resolve(target)
    if provider is None:
        raise provider_not_found(target)
    if app.store.adopt_unsealed(provider.id) is None:
        raise SigError(ErrorCode.CREDENTIAL_NOT_FOUND, f'no credential file for "{provider.id}" to seal',
                       f"run: sig login {provider.login_target()}")
    app.audit("login", "success", provider.id, {"strategy": provider.strategy, "adopted": True})
    app.say(f'Sealed the credential file of "{provider.id}".')
    return _report(app, provider)


def _report(app: App, provider: Provider) -> int:
    from ..output import to_json

    status = app.auth.status(provider)
    out: dict[str, Any] = {"provider": provider.id, "strategy": provider.strategy}
    if status.get("expiresAt"):
        out["expiresAt"] = status["expiresAt"]
    app.out(to_json(out))
    return 0
