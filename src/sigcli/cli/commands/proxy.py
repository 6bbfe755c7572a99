"""`sig proxy start|stop|status|trust|env`: the local proxy that adds credentials in flight."""

from __future__ import annotations

import os

from ...core.errors import ErrorCode, SigError, usage_error
from ..app import App
from ..args import Args

FLAGS = {"port": "value", "format": "value", "no-auth": "bool", "foreground": "bool"}
USAGE = "sig proxy start [--port N] [--foreground] | stop | status | trust | env   (`sig proxy --port N` = start)"
START_FLAGS = ("port", "no-auth", "foreground")


class ProxyOptions:
    """`sig proxy`'s subcommand and flags, typed (the port is checked when a subcommand needs it)."""

    def __init__(self, args: Args) -> None:
        sub = args.positionals[0] if args.positionals else ""
        if not sub and any(args.given(f) for f in START_FLAGS):
            sub = "start"  # `sig proxy --port 8080` means start (README "Commands")
        if sub not in ("start", "stop", "status", "trust", "env", "serve") or len(args.positionals) > 1:
            raise usage_error("say start, stop, status, trust or env", f"usage: {USAGE}")
        self.sub = sub
        self.port = args.value("port")
        self.no_auth = args.flag("no-auth")
        self.foreground = args.flag("foreground")
        self.format = args.value("format")


def _port(opts: ProxyOptions) -> int:
    from ...proxy.daemon import DEFAULT_PORT

    raw = opts.port
    if raw is None:
        return DEFAULT_PORT
    if not raw.isdigit() or int(raw) > 65535:
        raise usage_error(f'"{raw}" is not a port number', "e.g. --port 7891 (0 picks a free port)")
    return int(raw)


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def run(args: Args, app: App) -> int:
    """Start, stop, show or explain the proxy daemon (proxy/daemon.py); `serve` is the daemon itself."""
    from ...proxy import daemon

    opts = ProxyOptions(args)
    sub = opts.sub
    app.config  # noqa: B018 - the proxy needs a valid config; fail early with its message
    if sub == "serve":
        from ...proxy.serve import serve

        return serve(_port(opts), no_auth=opts.no_auth, verbose=app.verbose)
    if sub == "start":
        if opts.no_auth:
            app.warn("--no-auth: any local program (of any user) can use your credentials through the proxy")
        if opts.foreground:
            return _foreground(app, _port(opts), opts.no_auth)
        running, started = daemon.start(_port(opts), opts.no_auth, verbose=app.verbose)
        app.audit("proxy_start", "success", None, {"port": running["port"]})
        app.say(f"Proxy {'started' if started else 'already running'} on 127.0.0.1:{running['port']} "
                f"(pid {running['pid']}). Use it with: eval \"$(sig proxy env)\"")
        _print_status(app, running, opts.format)
        return 0
    if sub == "stop":
        pid = daemon.stop()
        if pid is None:
            app.say("The proxy is not running.")
            return 0
        app.audit("proxy_stop", "success", None, {"pid": pid})
        app.say(f"Proxy stopped (pid {pid}).")
        return 0
    state = daemon.read_state()
    if sub == "status":
        if state is None:
            if opts.format == "json":
                from ..output import to_json

                app.out(to_json({"running": False}))
            else:
                app.say("The proxy is not running. Start it with: sig proxy start")
            return 1
        _print_status(app, state, opts.format)
        return 0
    if sub == "trust":
        from ...proxy.ca import CertificateAuthority

        ca = CertificateAuthority.load_or_create(daemon.folder())
        if opts.format == "json":
            from ..output import to_json

            app.out(to_json({"caFile": ca.cert_path, "sha256": ca.fingerprint_sha256()}))
            return 0
        app.out(ca.cert_path)
        app.say(f"SHA-256 fingerprint: {ca.fingerprint_sha256()}\n"
                "Prefer per-program trust: programs started with `eval \"$(sig proxy env)\"` or "
                "`sig run --proxy` trust this CA already, and no other program does.\n"
                "Trusting it system-wide means any program of any user on this machine that uses the system "
                "store accepts every certificate this CA signs, for any site (it is limited to TLS server "
                "certificates, not to your providers' domains). Its key is "
                f"{ca.key_path} (0600): whoever can read it (a program running as you, root, a backup) could "
                "impersonate any https site to those programs.\n"
                "If you still want it system-wide:\n"
                f"  Debian/Ubuntu: sudo cp {ca.cert_path} /usr/local/share/ca-certificates/sig-proxy.crt && "
                "sudo update-ca-certificates\n"
                f"  macOS: sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain "
                f"{ca.cert_path}\n"
                "To undo: sudo rm /usr/local/share/ca-certificates/sig-proxy.crt && sudo update-ca-certificates "
                f"--fresh (macOS: sudo security remove-trusted-cert -d {ca.cert_path})")
        return 0
    # env
    if state is None:
        raise SigError(ErrorCode.GENERAL_ERROR, "the proxy is not running", "start it first: sig proxy start")
    env = client_env(app, state)
    if opts.format == "json":
        from ..output import to_json

        app.out(to_json(env))
    else:
        app.out("\n".join(f"export {k}={_shell_quote(v)}" for k, v in env.items()))
    return 0


def client_env(app: App, state: dict[str, int]) -> dict[str, str]:
    """The proxy settings for a client (`proxy env`, `run --proxy`): the user's NO_PROXY is extended, and
    an entry of it that covers a provider's host is left out, with a warning saying so."""
    from ...proxy import daemon

    domains = [d for p in app.config.providers.values() for d in p.domains]
    env, dropped = daemon.client_env(state, os.environ, domains)
    if dropped:
        app.warn(f"NO_PROXY: left out {', '.join(dropped)}: they cover hosts of your providers, whose "
                 "requests must go through the proxy to get credentials")
    return env


def _foreground(app: App, port: int, no_auth: bool) -> int:
    """Serve in this process until Ctrl-C / SIGTERM (for a supervisor, or a program that starts the
    proxy as its child and kills it when done); log lines go to stderr."""
    from ...proxy import daemon

    running = daemon.read_state()
    if running is not None:
        raise SigError(ErrorCode.GENERAL_ERROR, f"the proxy is already running (pid {running['pid']}, port "
                       f"{running['port']})", "stop it first: sig proxy stop")
    from ...proxy.serve import serve

    app.audit("proxy_start", "success", None, {"port": port, "foreground": True})
    return serve(port, no_auth=no_auth, verbose=app.verbose)


def _print_status(app: App, state: dict[str, int], fmt: str | None) -> None:
    from ...proxy import daemon

    config = app.config
    info = {"running": True, "pid": state["pid"], "port": state["port"],
            "proxyUrl": f"http://sig:****@127.0.0.1:{state['port']}" if daemon.token() else
            f"http://127.0.0.1:{state['port']}",
            "caFile": os.path.join(daemon.folder(), "ca.crt"), "log": daemon.log_path(),
            "providers": [p.id for p in config.providers.values()],
            "watch": list((config.watch.get("providers") or {}).keys()), "remotes": list(config.remotes)}
    from ..output import to_json

    if fmt == "json" or not os.isatty(1):
        app.out(to_json(info))
    else:
        app.out("\n".join(f"{k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in info.items()))
