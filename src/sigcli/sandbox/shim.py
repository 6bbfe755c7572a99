"""The first program inside the sandbox: it opens the proxy's door there, hands it out, then becomes
the user's command.

Run by bubblewrap as `python3 -I -S shim.py PORT COMMAND [ARGS...]` with one inherited descriptor, 3:
an AF_UNIX socketpair whose other end `sig run --sandbox` holds outside. Steps:
1. listen on 127.0.0.1:PORT inside the sandbox's own network namespace (bubblewrap brought `lo` up);
2. send that listening socket out over fd 3 (SCM_RIGHTS; the kernel also tells the other end this
   process's pid as seen outside: SCM_CREDENTIALS), and close it here. From then on sig's proxy, outside,
   accepts the connections made to it: no process inside relays a byte, and nothing inside holds a way out;
3. wait for one byte: b"G" when the proxy took the socket for this run's profile, anything else (or
   the other end going away) ends the run before the command starts;
4. close every descriptor above 2 and exec the command (PATH is searched; 127 when it is not found,
   126 when it cannot be run, as a shell would).

Standard library only, no sigcli imports (it runs with -I -S, in a few milliseconds). Under the
sandbox's seccomp filter: socket(AF_INET) is allowed, and fd 3 is used through `socket(fileno=3)`,
which makes no socket() call.
"""

import array
import os
import socket
import sys

CHANNEL_FD = 3


def _fail(message: str, code: int) -> None:
    try:
        os.write(2, f"sig: {message}\n".encode("utf-8", "replace"))
    finally:
        os._exit(code)


def main() -> None:
    """Open the port, hand it out, wait for go, become the command."""
    if len(sys.argv) < 3 or not sys.argv[1].isdigit():
        _fail("the sandbox starter needs PORT COMMAND", 125)
    port, command = int(sys.argv[1]), sys.argv[2:]
    channel = socket.socket(fileno=CHANNEL_FD)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", port))
        listener.listen(socket.SOMAXCONN)
    except OSError as exc:
        _fail(f"the sandbox could not open its proxy port {port}: {exc.strerror}", 125)
    channel.sendmsg([b"L"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [listener.fileno()]))])
    listener.close()
    try:
        answer = channel.recv(1)
    except OSError:
        answer = b""
    channel.close()
    if answer != b"G":
        _fail("the proxy did not take the sandbox's connection; the command was not started", 125)
    os.closerange(3, os.sysconf("SC_OPEN_MAX") if os.sysconf("SC_OPEN_MAX") > 0 else 65536)
    try:
        os.execvp(command[0], command)
    except FileNotFoundError:
        _fail(f"command not found: {command[0]}", 127)
    except OSError as exc:
        _fail(f"cannot run {command[0]}: {exc.strerror}", 126)


if __name__ == "__main__":
    main()
