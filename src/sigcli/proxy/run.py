"""The daemon process itself (`sig proxy serve`, started detached by `sig proxy start`)."""

from __future__ import annotations

import os
import sys
import time


def _log(line: str) -> None:
    from ..core.text import printable  # request lines and upstream errors: shown, never obeyed by a terminal

    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {printable(line, one_line=True)}\n")
    sys.stderr.flush()


def _entry_port(entry_url: str, host: str) -> int:
    from ..core.hosts import split_url

    scheme, entry_host, port = split_url(entry_url) if entry_url else ("", "", None)
    return port if entry_host == host and scheme == "https" and port else 443


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


def serve(port: int, no_auth: bool = False, verbose: bool = False) -> int:
    import asyncio
    import signal
    import threading

    from ..config import paths
    from ..net.tls import client_context
    from . import audit, daemon
    from .ca import CertificateAuthority
    from .routing import ConfigPolicy
    from .server import ProxyServer

    ca = CertificateAuthority.load_or_create(daemon.folder())
    policy = ConfigPolicy(_log)
    policy.config()
    # Warm what the first request would otherwise pay for: system roots for upstream TLS (~30 ms), the
    # leaf machinery, and leaves for the configured exact hosts.
    client_context([])
    import sigcli.core.apply
    import sigcli.core.secret_forms  # noqa: F401
    for provider in policy.config().providers.values():
        try:  # also loads the store, the key and libcrypto once, off the first request's path
            policy._auth.credential(provider)  # type: ignore[union-attr]
        except Exception as exc:  # a missing credential is reported when a request needs it
            _log(f"{provider.id}: {getattr(exc, 'code', type(exc).__name__)} at start")
        if provider.get("caFile"):
            try:
                client_context([str(provider.get("caFile"))])
            except Exception as exc:
                _log(f"could not load caFile of {provider.id}: {type(exc).__name__}")
        for domain in provider.domains:
            if "*" not in domain:
                try:
                    ca.server_context(domain)
                    entry_port = _entry_port(provider.entry_url, domain)
                    if policy.intercept(domain, entry_port):  # fills the per-host caches of the policy
                        policy.additions("https", domain, entry_port)
                except Exception as exc:  # warming is best effort
                    _log(f"could not prepare {domain}: {type(exc).__name__}")
    _warm_tls(ca)
    secret = None if no_auth else daemon.token(create=True)
    injections = audit.from_environment(paths.audit_path(), _log)
    server = ProxyServer(policy, ca.server_context, host="127.0.0.1", port=port, token=secret,
                         upstream_context=client_context, log=_log, on_injected=injections)
    stop = threading.Event()
    from ..watch.loop import make_loop

    loop_thread = threading.Thread(target=make_loop(_log, _log if verbose else None).run, args=(stop,),
                                   daemon=True, name="watch")

    async def main() -> None:
        try:
            bound = await server.start()
        except OSError as exc:  # a taken port (EADDRINUSE), a privileged one: named, with the fix
            from .ports import bind_error

            raise bind_error(port, exc) from None
        daemon.write_state(bound)
        _log(f"proxy listening on 127.0.0.1:{bound} (pid {os.getpid()}, auth {'off' if no_auth else 'on'})")
        loop_thread.start()
        done = asyncio.Event()
        aio = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            aio.add_signal_handler(signum, done.set)
        serving = asyncio.create_task(server.serve_forever())
        await done.wait()
        _log("stopping")
        serving.cancel()
        await server.close()

    try:
        asyncio.run(main())
    finally:
        stop.set()
        if injections is not None:
            injections.close()  # the events still queued (SIGTERM from `sig proxy stop` included)
        daemon.clear_state()
    return 0
