"""Open or join the shared visible browser window of a profile, through its relay's Unix socket.

Concurrent visible logins on one profile share one window, because Chrome runs one instance per profile
folder. The window is a ``--remote-debugging-pipe`` browser like every other sig starts; a relay process
(relay.py) owns that pipe and lets sig processes in through ``<profile>/.sig-cdp/cdp.sock`` (socket 0600,
folder 0700, and the relay checks the peer's uid), so no other local user can reach it.

Lifetime -- the same as when the window listened on a port:
* The first visible login starts the relay (its own process and session, so the login's Ctrl-C does
  not reach it), which starts the browser and waits for sig processes to connect.
* Every login on the profile is one connection; it opens its own tab. A login that ends (done,
  failed, Ctrl-C, or killed) disconnects, and the relay closes that login's tabs.
* When the last login has disconnected, the relay closes the browser (Browser.close flushes its
  cookies), removes the socket and exits; that last login waits for it, so a login started right after
  finds the profile free. The window therefore outlives the login that opened it exactly as long as
  other logins still use it, and never outlives the last one.
* Joining and closing are serialised by ``<profile>/.cdp-state.lock``: a login that connects while the
  relay is deciding to close keeps the window open.
* If the relay dies, its pipe closes and Chromium exits with it: no browser is left reachable.
"""

from __future__ import annotations

import json
import os
import time

from ..core.errors import ErrorCode, SigError
from .launch import (
    StateLock,
    ensure_profile_dir,
    pid_alive,
    profile_lock_owner,
    read_state,
    remove_state,
    terminate_pid,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    import subprocess
    from typing import Any

    from .protocol import LaunchOptions

SOCKET_DIR = ".sig-cdp"
SOCKET_NAME = "cdp.sock"
HELLO = "Relay.hello"  # the relay's first message to every connection (not a CDP method)
RELAY_MODULE = "sigcli.browser.relay"
_CONNECT_TIMEOUT_S = 5.0
_HELLO_TIMEOUT_S = 10.0
_HELLO_MAX = 64 * 1024
_BUSY_HINT = "finish or cancel the other sig login, or close that browser window, then retry"

# Relay processes this process started: reaped (never waited for) so that none stays a zombie.
_RELAYS: list[subprocess.Popen[bytes]] = []


def socket_dir(user_data_dir: str) -> str:
    """The private folder of the shared window's relay socket for a profile."""
    return os.path.join(user_data_dir, SOCKET_DIR)


def socket_path(user_data_dir: str) -> str:
    """The relay's Unix socket for a profile."""
    return os.path.join(socket_dir(user_data_dir), SOCKET_NAME)


def private_dir(path: str, create: bool) -> None:
    """Make sure `path` is a folder only we can enter: created 0700, or an existing real folder of ours
    (tightened to 0700). The socket's own mode is not enough on every system; the folder's is."""
    import stat

    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise SigError(ErrorCode.BROWSER_LAUNCH_ERROR, f"cannot create {path}: {exc.strerror}",
                           "check the permissions of the browser profile folder (browser.browserDataDir)") from None
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise SigError(ErrorCode.BROWSER_LAUNCH_ERROR,
                       f"{path} is not a folder of yours (a symbolic link, a file or another user's)",
                       "remove it; sig creates it again at the next visible login")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)


def unix_address(path: str) -> tuple[str, int | None]:
    """An address bind() and connect() accept for `path`, and a fd to close afterwards (or None).

    sun_path holds about 107 bytes; a deeper path is reached through /proc/self/fd/<its folder>.
    """
    if len(os.fsencode(path)) < 100 or not hasattr(os, "O_PATH") or not os.path.isdir("/proc/self/fd"):
        return path, None
    fd = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY)
    return f"/proc/self/fd/{fd}/{os.path.basename(path)}", fd


def connect(path: str, timeout_s: float) -> socket.socket:
    """A connected Unix socket to `path` (OSError as connect() raises it)."""
    import socket

    address, fd = unix_address(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout_s)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    finally:
        if fd is not None:
            os.close(fd)
    return sock


def read_hello(sock: socket.socket, timeout_s: float) -> dict[str, Any] | None:
    """The relay's hello, read without taking any byte that follows it; None if none came in time."""
    import socket

    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            peek = sock.recv(_HELLO_MAX, socket.MSG_PEEK)
        except (TimeoutError, BlockingIOError):
            return None
        except OSError:
            return None
        if not peek:
            return None  # the relay hung up: it is closing
        end = peek.find(b"\0")
        if end >= 0:
            sock.recv(end + 1)  # exactly the hello and its NUL
            try:
                msg = json.loads(peek[:end])
            except ValueError:
                return None
            if not isinstance(msg, dict) or msg.get("method") != HELLO:
                return None
            params = msg.get("params")
            return params if isinstance(params, dict) else {}
        if len(peek) >= _HELLO_MAX:
            return None
        time.sleep(0.01)  # part of the hello is there; MSG_PEEK would return at once again


def _reap() -> None:
    for proc in list(_RELAYS):
        if proc.poll() is not None:
            _RELAYS.remove(proc)


def _join(user_data_dir: str) -> tuple[socket.socket, dict[str, Any]] | None:
    """Connect to the profile's relay and read its hello; None when no relay serves there."""
    path = socket_path(user_data_dir)
    if not os.path.lexists(path):
        return None
    private_dir(socket_dir(user_data_dir), create=False)
    try:
        sock = connect(path, _CONNECT_TIMEOUT_S)
    except (ConnectionRefusedError, FileNotFoundError):
        return None  # a socket file left behind by a relay that died
    except TimeoutError:
        raise SigError(ErrorCode.BROWSER_LAUNCH_ERROR,
                       f"the shared browser window of profile {user_data_dir} does not answer",
                       _BUSY_HINT) from None
    except OSError as exc:
        raise SigError(ErrorCode.BROWSER_LAUNCH_ERROR,
                       f"cannot reach the shared browser window of profile {user_data_dir}: {exc.strerror}",
                       "remove the folder " + socket_dir(user_data_dir) + " and retry") from None
    hello = read_hello(sock, _HELLO_TIMEOUT_S)
    if hello is None:
        sock.close()
        state = read_state(user_data_dir) or {}
        relay = state.get("relayPid")
        if isinstance(relay, int) and pid_alive(relay):
            raise SigError(ErrorCode.BROWSER_LAUNCH_ERROR,
                           f"the shared browser window of profile {user_data_dir} does not answer", _BUSY_HINT)
        return None
    return sock, hello


def _clear_stale(user_data_dir: str) -> None:
    """Nobody serves the socket: its relay is gone. Remove what it left (and, should its browser still
    hold the profile, stop it: no sig process can reach it any more)."""
    state = read_state(user_data_dir)
    try:
        os.unlink(socket_path(user_data_dir))
    except OSError:
        pass
    if state is not None:
        pid = state["pid"]
        if pid_alive(pid) and profile_lock_owner(user_data_dir) == pid:
            terminate_pid(pid, grace_s=1.0)
    remove_state(user_data_dir)


def _relay_config(options: LaunchOptions) -> dict[str, Any]:
    # No secret in here: a proxy's user name and password stay with each login, which answers the
    # proxy's challenge for its own tab.
    return {"executable": options.executable, "userDataDir": options.user_data_dir,
            "headless": options.headless, "proxyServer": options.proxy.server if options.proxy else None,
            "timeoutS": options.timeout_s, "extraArgs": list(options.extra_args)}


def _read_line(stream: Any, timeout_s: float) -> bytes:
    import select

    deadline = time.monotonic() + timeout_s
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([stream], [], [], left)
        if not ready:
            break
        chunk = os.read(stream.fileno(), 4096)
        if not chunk:
            break
        data += chunk
    return data


def _stop_relay(proc: subprocess.Popen[bytes]) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)  # the relay closes its browser on SIGTERM
    except OSError:
        pass


def _start_relay(options: LaunchOptions) -> None:
    """Start the relay and wait (bounded) until its browser answers and its socket listens."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryFile(prefix="sig-relay-") as err:
        try:
            proc = subprocess.Popen([sys.executable, "-m", RELAY_MODULE], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=err, start_new_session=True,
                                    close_fds=True, cwd="/")
        except OSError as exc:
            raise SigError(ErrorCode.BROWSER_LAUNCH_ERROR,
                           f"cannot start the shared browser relay: {exc.strerror}",
                           "run sig doctor; or log in with --mode headless") from None
        _RELAYS.append(proc)
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(_relay_config(options)).encode() + b"\n")
            proc.stdin.close()
            line = _read_line(proc.stdout, options.timeout_s + 15.0)
            proc.stdout.close()
        except BaseException:
            _stop_relay(proc)  # Ctrl-C while the window starts: it must not linger
            raise
        try:
            answer = json.loads(line) if line else None
        except ValueError:
            answer = None
        if isinstance(answer, dict) and answer.get("ok") is True:
            return
        _stop_relay(proc)
        if isinstance(answer, dict) and isinstance(answer.get("message"), str):
            raise SigError(str(answer.get("code") or ErrorCode.BROWSER_LAUNCH_ERROR), answer["message"],
                           str(answer.get("hint") or ""))
        err.seek(0)
        tail = " | ".join(ln.strip() for ln in err.read()[-600:].decode("utf-8", "replace").splitlines()
                          if ln.strip())[-300:]
        raise SigError(ErrorCode.BROWSER_LAUNCH_ERROR,
                       "the shared browser window did not start" + (f": {tail}" if tail else ""),
                       "run sig doctor; or log in with --mode headless")


def join_shared(options: LaunchOptions) -> tuple[socket.socket, dict[str, Any], bool]:
    """A connection to the profile's shared window, started when none runs: (socket, hello, started).

    `started` is True when this call started the window (its start tab may then be used).
    """
    udd = options.user_data_dir
    ensure_profile_dir(udd)
    _reap()
    # Whoever holds the lock may be starting a browser (timeout_s) or closing one (a few seconds).
    with StateLock(udd, options.timeout_s + 15.0):
        joined = _join(udd)
        started = False
        if joined is None:
            _clear_stale(udd)
            private_dir(socket_dir(udd), create=True)
            _start_relay(options)
            started = True
            joined = _join(udd)
            if joined is None:
                raise SigError(ErrorCode.BROWSER_LAUNCH_ERROR,
                               "the shared browser window started but does not let sig in", _BUSY_HINT)
    sock, hello = joined
    wanted = options.proxy.server if options.proxy else None
    if not started and hello.get("proxyServer") != wanted:
        sock.close()
        raise SigError(ErrorCode.BROWSER_LAUNCH_ERROR,
                       f"the browser window another sig login opened on profile {udd} uses another "
                       "networkProxy than this login needs", _BUSY_HINT)
    return sock, hello, started
