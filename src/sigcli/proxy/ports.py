"""Why the proxy cannot listen on a port, and who holds it (for the error a user sees)."""

from __future__ import annotations

import errno
import os

from ..core.errors import ErrorCode, SigError

MAX_PROCESSES = 4096  # bound on the /proc walk (it runs only on the error path)


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on `port` (any local address, IPv4 and IPv6), from /proc/net."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii", errors="replace") as fh:
                next(fh, None)
                for line in fh:
                    fields = line.split()
                    if len(fields) < 10 or fields[3] != "0A":  # 0A = LISTEN
                        continue
                    local_port = fields[1].rpartition(":")[2]
                    if int(local_port, 16) == port:
                        inodes.add(fields[9])
        except (OSError, ValueError):
            continue
    return inodes


def holder(port: int) -> tuple[int, str] | None:
    """(pid, process name) of a process of this user listening on `port`, when /proc tells cheaply.
    The name is /proc/PID/comm (no arguments: another program's command line may hold secrets)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()][:MAX_PROCESSES]
    except OSError:
        return None
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # another user's process, or gone
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") in targets:
                    with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as fh:
                        return int(pid), fh.read().strip()
            except OSError:
                continue
    return None


def bind_error(port: int, exc: OSError) -> SigError:
    """The error for a failed bind of 127.0.0.1:`port`: what happened, who holds it, what to do."""
    if exc.errno == errno.EADDRINUSE:
        found = holder(port)
        by = f" by {found[1]} (pid {found[0]})" if found else ""
        hint = "start it on another port: sig proxy start --port N (0 picks a free one)"
        if found:
            hint += f", or stop pid {found[0]} if it is an old proxy you no longer need"
        return SigError(ErrorCode.GENERAL_ERROR, f"port {port} on 127.0.0.1 is already in use{by}", hint)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return SigError(ErrorCode.GENERAL_ERROR, f"not allowed to listen on port {port} on 127.0.0.1",
                        "use a port above 1023: sig proxy start --port N (0 picks a free one)")
    return SigError(ErrorCode.GENERAL_ERROR,
                    f"cannot listen on 127.0.0.1:{port} ({exc.strerror or type(exc).__name__})",
                    "try another port: sig proxy start --port N (0 picks a free one)")


def check_free(port: int) -> None:
    """SigError (bind_error) when 127.0.0.1:`port` cannot be listened on now. Port 0 always can."""
    import socket

    if port == 0:
        return
    try:
        probe = socket.create_server(("127.0.0.1", port))  # the same options as the proxy's own listener
    except OSError as exc:
        raise bind_error(port, exc) from None
    probe.close()
