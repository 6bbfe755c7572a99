"""The daemon process itself (`sig proxy serve`, started detached by `sig proxy start`).

Logging: the detached daemon writes proxy.log itself, rotated by size (logfile.py). By default it writes
what happened at start, errors, and routine notes at most once a minute per origin (an answer masked,
credentials not added because of the port); every request gets a line only with `sig --verbose proxy
start` (or `--foreground --verbose`). The audit log records each request sig added credentials to either
way.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False

if TYPE_CHECKING:
    import ssl

_sink: list[object] = []  # the LogFile the detached daemon writes to (else stderr)


def _log(line: str) -> None:
    from ..core.text import printable  # request lines and upstream errors: shown, never obeyed by a terminal

    text = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {printable(line, one_line=True)}\n"
    if _sink:
        _sink[0].write(text)  # type: ignore[attr-defined]
        return
    sys.stderr.write(text)
    sys.stderr.flush()


def _use_log_file() -> None:
    """When stderr is proxy.log (the detached daemon), write it through a LogFile that rotates it."""
    from . import daemon
    from .logfile import LogFile

    path = daemon.log_path()
    try:
        mine, log = os.fstat(2), os.stat(path)
    except OSError:
        return
    if (mine.st_dev, mine.st_ino) == (log.st_dev, log.st_ino):
        _sink[:] = [LogFile(path, stderr=True)]


def _warm_tls(ca: object) -> None:
    """One TLS handshake in memory between a leaf of ours and a client trusting the CA, so the first real
    connection does not pay for the handshake code paths being loaded."""
    import ssl

    try:
        server_ctx = ca.server_context("localhost")  # type: ignore[attr-defined]
        client_ctx = ssl.create_default_context(cafile=ca.cert_path)  # type: ignore[attr-defined]
        s_in, s_out, c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
        server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
        client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
        for _ in range(10):  # a handshake takes two or three flights
            done = 0
            for side, out, peer_in in ((client, c_out, s_in), (server, s_out, c_in)):
                try:
                    side.do_handshake()
                    done += 1
                except ssl.SSLWantReadError:
                    pass
                data = out.read()
                if data:
                    peer_in.write(data)
            if done == 2:
                break
    except Exception as exc:  # best effort: a failure here only costs the first request its warm-up
        _log(f"TLS warm-up skipped: {type(exc).__name__}")


def _entry_port(entry_url: str, host: str) -> int:
    from ..core.hosts import split_url

    scheme, entry_host, port = split_url(entry_url) if entry_url else ("", "", None)
    return port if entry_host == host and scheme == "https" and port else 443


def _warm(policy: object, ca: object) -> None:
    """What the first request would otherwise pay for: system roots for upstream TLS (~30 ms), each
    provider's credential (once per provider), leaves for the configured exact hosts, the policy's
    caches for them."""
    from ..core.errors import SigError
    from ..net.tls import client_context

    client_context([])
    import sigcli.core.apply
    import sigcli.core.secret_forms  # noqa: F401

    policy.warm()  # type: ignore[attr-defined]
    # the redaction of a first answer: brotli (Accept-Encoding) and the matcher load on first use (~10 ms)
    from . import redaction

    redaction.brotli_available()
    redaction.Detector().mask_message((b"sig-warm-up-form",), b"HTTP/1.1 200 OK\r\n\r\n", b"sig-warm-up-form")
    for provider in policy.config().providers.values():  # type: ignore[attr-defined]
        if provider.get("caFile"):
            try:
                client_context([str(provider.get("caFile"))])
            except Exception as exc:
                _log(f"could not load caFile of {provider.id}: {type(exc).__name__}")
        for domain in provider.domains:
            if "*" in domain:
                continue
            try:
                ca.server_context(domain)  # type: ignore[attr-defined]
                entry_port = _entry_port(provider.entry_url, domain)
                if policy.intercept(domain, entry_port):  # type: ignore[attr-defined]
                    policy.additions("https", domain, entry_port)  # type: ignore[attr-defined]
            except SigError:  # warming is best effort; the credential's error was logged by warm()
                pass
            except Exception as exc:
                _log(f"could not prepare {domain}: {type(exc).__name__}")


def unix_socket_path() -> str | None:
    """$SIG_HOME/proxy/proxy.sock, unless the path is too long for a Unix socket (108 bytes)."""
    from . import daemon

    path = os.path.join(daemon.folder(), "proxy.sock")
    return path if len(path.encode()) < 104 else None


def serve(port: int, no_auth: bool = False, verbose: bool = False) -> int:
    """Run the proxy daemon in this process until SIGTERM, SIGINT or SIGHUP: log file, CA, listeners, the
    sandbox door and the watch loop; returns the exit code."""
    import signal
    import threading

    from ..config import paths
    from . import audit_events, daemon
    from .ca import CertificateAuthority
    from .routing import ConfigPolicy
    from .server import ProxyServer

    _use_log_file()
    ca = CertificateAuthority.load_or_create(daemon.folder())
    policy = ConfigPolicy(_log)
    policy.config()
    _warm(policy, ca)
    _warm_tls(ca)
    secret = None if no_auth else daemon.token(create=True)
    injections = audit_events.from_environment(paths.audit_path(), _log)
    server = ProxyServer(policy, ca.server_context, host="127.0.0.1", port=port, token=secret,
                         upstream_context=_client_context, log=_log,
                         on_injected=injections, on_blocked=injections.blocked if injections else None,
                         log_requests=verbose, unix_path=unix_socket_path(),
                         profiles_folder=os.path.join(daemon.folder(), "profiles"))
    stop = threading.Event()
    from ..watch.loop import make_loop

    loop_thread = threading.Thread(target=make_loop(_log, _log if verbose else None).run, args=(stop,),
                                   daemon=True, name="watch")
    try:
        try:
            bound = server.open()
        except OSError as exc:  # a taken port (EADDRINUSE), a privileged one: named, with the fix
            from .ports import bind_error

            raise bind_error(port, exc) from None
        from .adopt import SandboxDoor

        door = SandboxDoor(server, daemon.folder(), secret, _log)
        try:
            door.open()
        except OSError as exc:  # the proxy still serves; only `sig run --sandbox` cannot use it
            _log(f"sandbox socket not opened ({exc.strerror or type(exc).__name__}): sig run --sandbox will say so")
        daemon.write_state(bound)
        _log(f"proxy listening on 127.0.0.1:{bound} (pid {os.getpid()}, auth {'off' if no_auth else 'on'}, "
             f"{'every request logged' if verbose else 'requests not logged: sig --verbose proxy start logs them'})")
        loop_thread.start()
        done = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda *_: done.set())
        while not done.is_set() and not server.wait(0):
            done.wait(1.0)
        _log("stopping")
        door.close()
        server.shutdown()
    finally:
        stop.set()
        if injections is not None:
            injections.close()  # the events still queued (SIGTERM from `sig proxy stop` included)
        daemon.clear_state()
    return 0


def _client_context(cafiles: list[str]) -> ssl.SSLContext:
    from ..net.tls import client_context

    return client_context(cafiles)
