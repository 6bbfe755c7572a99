"""`sig login <url|provider>`: obtain a credential, store it sealed, add the provider when it is new."""

from __future__ import annotations

import os
import sys
from typing import Any

from ...core.errors import ErrorCode, SigError, usage_error
from ...core.hosts import looks_like_url, valid_provider_id
from ...core.model import STRATEGIES, Credential, Provider
from ...core.secret import Secret
from ..app import App
from ..args import Args
from ..common import one_positional, provider_not_found

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


def _material(args: Args, app: App) -> dict[str, Any]:
    """Collect the secrets given on the command line, stdin or env. Refuse ambiguous combinations."""
    stdin_users = [f for f in ("token-stdin", "cookie-stdin", "password-stdin", "client-secret-stdin")
                   if args.flag(f)]
    if len(stdin_users) > 1:
        raise usage_error(f"only one option can read standard input (got --{' and --'.join(stdin_users)})",
                          "pass the others with their --x-env or --x form")
    kinds = []
    if any(args.given(f) for f in ("token", "token-stdin", "token-env")):
        kinds.append("--token")
    if any(args.given(f) for f in ("cookie", "cookie-stdin")):
        kinds.append("--cookie")
    if any(args.given(f) for f in ("username", "password", "password-stdin")):
        kinds.append("--username/--password")
    if len(kinds) > 1:
        raise usage_error(f"{' and '.join(kinds)} cannot be combined: a login stores one kind of credential",
                          "pick one (run `sig login --help`)")
    out: dict[str, Any] = {}
    token_forms = [f for f in ("token", "token-stdin", "token-env") if args.given(f)]
    if len(token_forms) > 1:
        raise usage_error("give the token once (--token, --token-stdin or --token-env)", "")
    if args.given("token"):
        app.warn(_ARGV_WARNING.format(what="a token", better="--token-stdin or --token-env VAR"))
        out["token"] = Secret(_checked_text(args.value("token") or "", "token", "given with --token", True))
    elif args.flag("token-stdin"):
        out["token"] = Secret(_read_stdin("token", header=True))
    elif args.given("token-env"):
        var = args.value("token-env") or ""
        value = os.environ.get(var)
        if not value:
            raise usage_error(f"the environment variable {var} is not set or empty", f"export {var}=… first")
        out["token"] = Secret(_checked_text(value, "token", f"in ${var}", True))
    if args.given("cookie") and args.flag("cookie-stdin"):
        raise usage_error("give the cookie once (--cookie or --cookie-stdin)", "")
    if args.given("cookie"):
        app.warn(_ARGV_WARNING.format(what="a cookie", better="--cookie-stdin"))
        out["cookie"] = Secret(_checked_text(args.value("cookie") or "", "cookie", "given with --cookie", True))
    elif args.flag("cookie-stdin"):
        out["cookie"] = Secret(_read_stdin("cookie", header=True))
    if args.given("password") and args.flag("password-stdin"):
        raise usage_error("give the password once (--password or --password-stdin)", "")
    if args.given("password"):
        app.warn(_ARGV_WARNING.format(what="a password", better="--password-stdin"))
        out["password"] = Secret(_checked_text(args.value("password") or "", "password", "given with --password"))
    elif args.flag("password-stdin"):
        out["password"] = Secret(_read_stdin("password"))
    if args.given("username"):
        out["username"] = _checked_text(args.value("username") or "", "user name", "given with --username")
    if "username" in out and "password" in out:
        together = len(out["username"].encode()) + len(out["password"].reveal().encode()) + 1
        if together > MAX_VALUE_BYTES:  # they are also stored joined, as the Basic header's value
            raise usage_error(f"the user name and password are {together} bytes together; sig takes at most "
                              f"{MAX_VALUE_BYTES // 1024} KiB", "check that they hold only what they should")
    return out


def _check_other_values(args: Args, app: App) -> None:
    """The remaining text options: valid UTF-8, within the size limit; warn about a proxy password in argv."""
    for flag in ("as", "header-name", "header-prefix", "network-proxy", *OAUTH_FLAGS):
        value = args.value(flag)
        if value is not None:
            _checked_text(value, f"--{flag} value", "given", header=flag in ("header-name", "header-prefix"))
    proxy = args.value("network-proxy")
    if proxy:
        from urllib.parse import urlsplit

        try:
            has_password = urlsplit(proxy if "://" in proxy else "http://" + proxy).password is not None
        except ValueError:
            has_password = False
        if has_password:
            app.warn(_ARGV_WARNING.format(what="a proxy password", better="networkProxy in config.yaml"))


def _kind_of(material: dict[str, Any]) -> str | None:
    if "token" in material:
        return "api-token"
    if "cookie" in material:
        return "cookie"
    if "username" in material or "password" in material:
        return "basic"
    return None


def _choose_provider(app: App, target: str, new_id: str | None, strategy: str) -> tuple[dict[str, Any], bool]:
    """(provider data, whether it must be written to the config)."""
    from ...config.provision import provision

    config = app.config
    if new_id is not None and new_id in config.providers:
        return dict(config.providers[new_id].data), False
    found = config.resolve(target)
    if found is not None:
        if new_id is None or new_id == found.id:
            return dict(found.data), False
        if looks_like_url(target) and _origin(target) != _origin(found.entry_url or target):
            # Same host, another scheme or port: a provider of its own for the URL given. A copy would
            # keep the other one's entryUrl, and its credential could never be sent to this URL.
            data = provision(target, set(config.providers), strategy)
            data["id"] = new_id
            return data, True
        data = dict(found.data)  # a copy of an existing provider under a new id
        data["id"] = new_id
        if data.get("name") == found.id:
            data["name"] = new_id
        return data, True
    if not looks_like_url(target):
        raise provider_not_found(target)
    data = provision(target, set(config.providers), strategy)
    if new_id is not None:
        data["id"] = new_id
    return data, True


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with the scheme's default port filled in, as injection compares them."""
    from ...core.hosts import split_url

    scheme, host, port = split_url(url)
    scheme = scheme or "https"
    return scheme, host, port if port is not None else (443 if scheme == "https" else 80)


def _fit_strategy(notes: list[str], data: dict[str, Any], kind: str | None, explicit: str | None,
                  header_name: str | None, header_prefix: str | None) -> bool:
    """Make the provider's strategy and apply rules fit what the user supplied. True when changed."""
    from ...config.schema import default_apply
    from ...core.apply import referenced_keys

    changed = False
    wanted = explicit or data.get("strategy", "browser")
    if kind is not None and explicit is None and wanted != "prompt" and wanted != kind:
        wanted = kind
    if wanted != data.get("strategy"):
        if not data.get("autoProvisioned"):
            notes.append(f'Note: provider "{data["id"]}" now uses strategy "{wanted}" (was "{data.get("strategy")}").')
        data["strategy"] = wanted
        changed = True
    if wanted == "api-token":
        for key, value in (("headerName", header_name), ("headerPrefix", header_prefix)):
            if value is not None and data.get(key) != value:
                data[key] = value
                changed = True
    keys = {"api-token": {"token"}, "cookie": {"cookie"}, "basic": {"username", "password", "basic_auth"},
            "oauth2": {"access_token"}}.get(wanted)
    rules_fit = keys is None or (data.get("apply") and referenced_keys(data["apply"]) <= keys)
    if changed or not rules_fit:
        fresh = default_apply(wanted, data)
        if data.get("apply") != fresh and (not rules_fit or header_name is not None or header_prefix is not None):
            data["apply"] = fresh
            changed = True
        if wanted in ("api-token", "basic", "cookie") and data.get("extract") and not rules_fit:
            data.pop("extract", None)
    return changed


def _persist(app: App, data: dict[str, Any]) -> None:
    from ...config.edit import edit_config, provider_entry, set_provider

    entry = provider_entry(data)
    edit_config(lambda doc: set_provider(doc, data["id"], entry))


def run(args: Args, app: App) -> int:
    target = _checked_text(one_positional(args.positionals, USAGE), "URL or provider", "given")
    explicit = args.value("strategy")
    if explicit is not None and explicit not in STRATEGIES:
        raise usage_error(f'unknown strategy "{explicit}"', f"use one of: {', '.join(STRATEGIES)}")
    mode = args.value("mode")
    if mode is not None and mode not in MODES:
        raise usage_error(f'unknown mode "{mode}"', f"use one of: {', '.join(MODES)}")
    if args.value("format") not in (None, "json"):
        raise usage_error("login prints JSON only", "drop --format or use --format json")
    if args.flag("adopt-unsealed"):
        others = [f"--{f}" for f in args.flags if f not in ("adopt-unsealed", "format", "verbose")]
        if others:
            raise usage_error(f"--adopt-unsealed takes no other options (got {', '.join(others)})",
                              f"run: sig login {target} --adopt-unsealed")
        return _adopt(app, target)
    new_id = args.value("as")
    if new_id is not None and not valid_provider_id(new_id):
        raise usage_error(f'"{new_id}" is not a valid provider id',
                          "use letters, digits, '.', '_' and '-', starting with a letter or digit")
    material = _material(args, app)
    kind = _kind_of(material)
    oauth_cli = {key: args.value(flag) for flag, key in OAUTH_FLAGS.items() if args.value(flag) is not None}
    client_secret = None
    if args.given("client-secret"):
        app.warn(_ARGV_WARNING.format(what="a client secret", better="--client-secret-stdin"))
        client_secret = Secret(_checked_text(args.value("client-secret") or "", "client secret",
                                             "given with --client-secret"))
    elif args.flag("client-secret-stdin"):
        client_secret = Secret(_read_stdin("client secret"))
    if oauth_cli.get("grant") == "urn:ietf:params:oauth:grant-type:device_code":
        oauth_cli["grant"] = "device_code"
    if oauth_cli.get("grant") not in (None, "client_credentials", "authorization_code", "device_code"):
        raise usage_error(f'unknown grant "{oauth_cli["grant"]}"',
                          "use client_credentials, authorization_code or device_code")
    if (oauth_cli or client_secret is not None) and explicit is None and kind is None:
        explicit = "oauth2"
    if (oauth_cli or client_secret is not None) and explicit not in (None, "oauth2"):
        raise usage_error("OAuth2 options (--token-url, --client-id, …) need --strategy oauth2", "")
    if explicit in ("api-token", "cookie", "basic") and kind not in (None, explicit):
        raise usage_error(f'--strategy {explicit} does not match the credential given ({kind})', "")
    _check_other_values(args, app)
    data, is_new = _choose_provider(app, target, new_id, explicit or kind or "browser")
    notes: list[str] = []  # said once the login succeeded: a failed login changes nothing
    changed = _fit_strategy(notes, data, kind, explicit, args.value("header-name"), args.value("header-prefix"))
    if data.get("strategy") == "oauth2" and (oauth_cli or is_new):
        merged = dict(data.get("oauth2") or {})
        for key, value in oauth_cli.items():
            if key == "scope":
                merged["scopes"] = value.split()
            else:
                merged[key] = value
        if merged != (data.get("oauth2") or {}):
            data["oauth2"] = merged
            changed = True
        if is_new:
            data.pop("extract", None)
    # --mode and --network-proxy change this run only, for new and existing providers alike: they are
    # never written to the config (a provider keeps a mode or a proxy only when its entry says
    # loginMode/networkProxy). What this run uses is a copy of the entry that `data` (what may be saved)
    # never sees.
    run_data = dict(data)
    for flag, key in (("network-proxy", "networkProxy"), ("mode", "loginMode")):
        if args.value(flag):
            run_data[key] = args.value(flag)
    provider = Provider(run_data)
    if kind is None and not oauth_cli and client_secret is None and not args.flag("force"):
        stored = None
        try:
            stored = app.auth.stored(provider) if not is_new else None
        except SigError:
            stored = None
        if stored is not None and stored.is_valid(provider.ttl_ms):
            app.say(f'Already logged in to "{provider.name}" (use --force to log in again).')
            return _report(app, provider)
    if provider.strategy == "browser" and app.config.mode == "browserless":
        raise SigError(
            ErrorCode.BROWSER_UNAVAILABLE,
            f'provider "{provider.id}" logs in with a browser, and this machine is set up without one',
            f"use `sig sync pull` from a machine with a browser, or log in without one: sig login "
            f"{provider.login_target()} --token-stdin | --cookie-stdin | --username U --password-stdin",
        )
    from ...auth.base import LoginContext
    from ...auth.strategies import strategy_for

    ctx = LoginContext(
        token=material.get("token"), cookie=material.get("cookie"), username=material.get("username"),
        password=material.get("password"),
        ask=None if any(args.flag(f) for f in ("token-stdin", "cookie-stdin", "password-stdin",
                                               "client-secret-stdin")) else app.ask,
        mode=mode, network_proxy=args.value("network-proxy"), log=app.log,
        notify=app.say, open_url=_open_browser, oauth2=oauth_cli, client_secret=client_secret,
        browser=(dict(app.config.browser, **({"cdpUrl": args.value("cdp-url")} if args.value("cdp-url") else {}))
                 if app.config.mode != "browserless" else None),
        waiting=app.waiting,
        previous=None if is_new else _stored_quietly(app, provider),
    )
    if not sys.stdin.isatty() and provider.strategy == "oauth2":
        ctx.ask = None  # the paste-the-redirect fallback is for a person at a terminal
    try:
        credential = strategy_for(provider.strategy).authenticate(provider, ctx)
        # The credential and the provider's config entry are saved together or not at all: the config is
        # written while the credential's lock is held, and a failure puts the previous file back. (Config
        # first would leave a provider whose login failed, or rules that do not fit the stored credential.)
        app.store.write(credential, then=(lambda: _persist(app, data)) if is_new or changed else None)
        if is_new:
            app.log(f'added provider "{provider.id}" for {provider.entry_url or target}')
    except SigError as err:
        app.audit("login", "failure", provider.id, {"error": err.message})
        raise
    app.audit("login", "success", provider.id, {"strategy": provider.strategy})
    for note in notes:
        app.say(note)
    app.say(f'Logged in to "{provider.name}" as provider "{provider.id}".')
    return _report(app, provider)


def _stored_quietly(app: App, provider: Provider) -> Credential | None:
    """The provider's stored credential (a browser login restores its kept session cookies), or None when
    there is none or it cannot be read (the login then starts afresh)."""
    try:
        return app.auth.stored(provider)
    except SigError:
        return None


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
