"""Start, find and stop a Chromium-family browser process. No CDP protocol logic lives here.

Every browser sig starts gets ``--remote-debugging-pipe``: it speaks CDP on its fds 3 and 4, two pipes
only sig holds, so no other local process can reach it (a DevTools TCP port, even on loopback, lets any
local user read every cookie while a login runs). The shared visible window other logins join is such a
browser too: a relay process owns its pipe and lets other sig processes in through a 0600 Unix socket
(relay.py, shared.py); its state, ``<profile>/.cdp-state.json``, is guarded by an fcntl lock because
Chrome allows one running instance per profile directory. Either way the browser runs in its own
process group, so that its helper processes can be stopped together.
"""

from __future__ import annotations

import os
import signal
import socket
import time

from ..core.errors import ErrorCode, SigError
from .protocol import LaunchOptions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO, Any, TypeAlias, TypeVar

    Process: TypeAlias = "SpawnedProcess"  # a browser this process started
    T = TypeVar("T")

STATE_FILE = ".cdp-state.json"
LOCK_FILE = ".cdp-state.lock"
# Chromium's own profile lock: a symlink whose target is "<hostname>-<pid>".
SINGLETON_LOCK = "SingletonLock"

INSTALL_HINT = ("install Chromium (apt-get install chromium) or Chrome, or set browser.execPath in "
                "~/.sig/config.yaml; run sig doctor")
IN_USE_HINT = "close that browser, or set browser.browserDataDir to another folder"

_POLL_S = 0.05  # readiness poll interval: Chromium answers after ~0.4 s, so poll often
_REQUEST_TIMEOUT_S = 1.0  # per readiness probe

# Browsers this process spawned, by pid, so that pid_alive() and terminate_pid() reap our own children.
_SPAWNED: dict[int, Process] = {}
_STDERR: dict[int, IO[bytes]] = {}


# -- process basics -------------------------------------------------------------------------------


# A quiet, first-run-free browser; shared with the Playwright adapter.
QUIET_ARGS = (
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Keep the cookie encryption key in the profile, not in the desktop keyring (no prompt, no hang).
    "--password-store=basic",
)


def chrome_args(options: LaunchOptions) -> list[str]:
    """The command-line flags (without the executable). Deliberately no --enable-automation.

    CDP goes over the fd 3/4 pipes (spawn_piped): no TCP listener at all.
    """
    args = [
        "--remote-debugging-pipe",  # NUL-terminated JSON (the default, not CBOR)
        # The pipe alone makes Chromium flag every page as automated (navigator.webdriver); sig drives
        # nothing on the page (the user logs in), and sites that refuse automated browsers would refuse
        # the user.
        "--disable-blink-features=AutomationControlled",
        f"--user-data-dir={options.user_data_dir}",
        *QUIET_ARGS,
        "--use-mock-keychain",
    ]
    if options.headless:
        args += ["--headless=new", "--disable-gpu"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to start as root with its sandbox on
    if options.proxy is not None:
        # Chromium sends loopback hosts around a proxy by default; networkProxy means every request.
        # Only scheme://host:port: the user name and password are answered over CDP when the proxy
        # asks (Fetch.authRequired), never put where /proc/<pid>/cmdline shows them to everyone.
        args += [f"--proxy-server={options.proxy.server}", "--proxy-bypass-list=<-loopback>"]
    args += list(options.extra_args)
    # The adapter opens the real URL itself, in a tab it owns and watches from the first request.
    args.append("about:blank")
    return args


def ensure_profile_dir(path: str) -> None:
    """Create the profile folder 0700 when missing (it holds cookies); an existing one keeps its mode."""
    if os.path.isdir(path):
        return
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)  # makedirs' mode is filtered by the umask
    except OSError as exc:
        raise SigError(
            ErrorCode.BROWSER_LAUNCH_ERROR,
            f"cannot create the browser profile folder {path}: {exc.strerror}",
            "check the permissions of its parent folder, or set browser.browserDataDir to another folder",
        ) from None


def _runnable(executable: str) -> str:
    """The absolute path of the browser executable, or the launch error that says how to fix it."""
    import shutil

    if executable and os.sep not in executable:
        executable = shutil.which(executable) or executable  # a bare name such as "chromium"
    if not executable or not os.path.isfile(executable) or not os.access(executable, os.X_OK):
        raise SigError(ErrorCode.BROWSER_LAUNCH_ERROR,
                       f"no runnable browser at {executable or '(not set)'}", INSTALL_HINT)
    return executable


def _stderr_file() -> IO[bytes] | None:
    import tempfile

    try:
        # Unlinked at once; kept open for as long as the browser runs, read for launch error tails.
        return tempfile.TemporaryFile(prefix="sig-browser-")
    except OSError:
        return None


class SpawnedProcess:
    """The part of subprocess.Popen sig uses (pid, args, returncode, poll, wait), for a child started
    with os.posix_spawn: Popen cannot put a pipe on the child's fds 3 and 4 (pass_fds keeps numbers)."""

    def __init__(self, pid: int, args: list[str]) -> None:
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit status once the child has exited (and reap it), else None."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                # Reaped elsewhere (SIGCHLD ignored, say): gone, status unknown. Popen says 0 too.
                self.returncode = 0
            else:
                if pid == self.pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Like Popen.wait: the exit status, or subprocess.TimeoutExpired after `timeout` seconds."""
        import subprocess

        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while True:
            code = self.poll()
            if code is not None:
                return code
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
                delay = min(delay * 2, left, 0.05)
            else:
                delay = min(delay * 2, 0.05)
            time.sleep(delay)


def _fd_above(fd: int, lowest: int) -> int:
    """A close-on-exec duplicate of `fd` numbered `lowest` or more (the original is closed)."""
    import fcntl

    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, lowest)
    finally:
        os.close(fd)


def _inheritable_fds(keep: set[int]) -> list[int]:
    """Our open fds above stderr that a child would inherit (PEP 446 makes most fds close-on-exec;
    this finds the ones something marked inheritable), except `keep`."""
    found = []
    for listing in ("/proc/self/fd", "/dev/fd"):
        try:
            names = os.listdir(listing)
        except OSError:
            continue
        for name in names:
            if not name.isdigit() or int(name) <= 2 or int(name) in keep:
                continue
            try:
                if os.get_inheritable(int(name)):
                    found.append(int(name))
            except OSError:
                pass  # the listing's own fd, or closed meanwhile
        break
    return found


def spawn_piped(executable: str, args: list[str]) -> tuple[SpawnedProcess, int, int]:
    """Start the browser with CDP pipes on its fds 3 (it reads) and 4 (it writes), in its own session.

    (process, read fd, write fd): the parent's ends, non-inheritable and owned by the caller. The child
    gets stdin/stdout on /dev/null, stderr on the tail-capture file, fds 3 and 4, and nothing else.
    posix_spawn renumbers the fds inside the child; doing it in the parent (dup2 onto 3 and 4, then
    restore) would hand our fds 3 and 4 to whatever another thread is doing with them meanwhile.
    """
    executable = _runnable(executable)
    err = _stderr_file()
    opened: list[int] = []  # every fd of ours to close on the way out
    parent_read = parent_write = -1
    try:
        child_read, parent_write = os.pipe()  # we write commands; the browser reads them on its fd 3
        opened += [child_read, parent_write]
        parent_read, child_write = os.pipe()  # the browser writes on its fd 4; we read
        opened += [parent_read, child_write]
        # Above 4, so that the dup2s onto 2, 3 and 4 below cannot overwrite one another's source
        # (and dup2(fd, fd) would keep close-on-exec on some libcs).
        opened.remove(child_read)
        child_read = _fd_above(child_read, 5)
        opened.append(child_read)
        opened.remove(child_write)
        child_write = _fd_above(child_write, 5)
        opened.append(child_write)
        actions: list[tuple[Any, ...]] = []
        if err is not None:
            err_fd = _fd_above(os.dup(err.fileno()), 5)
            opened.append(err_fd)
            actions.append((os.POSIX_SPAWN_DUP2, err_fd, 2))
        else:
            actions.append((os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0))
        actions += [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_DUP2, child_read, 3),
            (os.POSIX_SPAWN_DUP2, child_write, 4),
        ]
        # No other inherited fds (Popen's close_fds). Closing a fd that closed meanwhile is harmless.
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds({3, 4})]
        argv = [executable, *args]
        # Python ignores SIGPIPE and SIGXFSZ; an ignored signal stays ignored across exec (Popen's
        # restore_signals puts them back too).
        sigdef = [getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, name)]
        try:
            pid = os.posix_spawn(executable, argv, os.environ, file_actions=actions, setsid=True,
                                 setsigdef=sigdef)
        except NotImplementedError:  # no POSIX_SPAWN_SETSID (macOS): a process group of its own
            pid = os.posix_spawn(executable, argv, os.environ, file_actions=actions, setpgroup=0,
                                 setsigdef=sigdef)
    except BaseException as exc:
        for fd in opened:
            os.close(fd)
        if err is not None:
            err.close()
        if isinstance(exc, OSError):
            raise SigError(ErrorCode.BROWSER_LAUNCH_ERROR, f"cannot start the browser {executable}: "
                           f"{exc.strerror}", INSTALL_HINT) from None
        raise
    # The child has its copies: ours must go, or the browser's exit would never read as EOF.
    for fd in opened:
        if fd not in (parent_read, parent_write):
            os.close(fd)
    proc = SpawnedProcess(pid, argv)
    _SPAWNED[pid] = proc
    if err is not None:
        _STDERR[pid] = err
    return proc, parent_read, parent_write


def stderr_tail(proc: Process, lines: int = 3) -> str:
    """The last meaningful stderr lines of a browser we spawned (for launch errors; no page has loaded)."""
    fh = _STDERR.get(proc.pid)
    if fh is None:
        return ""
    try:
        fh.seek(max(0, fh.seek(0, os.SEEK_END) - 4096))
        text = fh.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""
    # Debian's wrapper script prints a harmless "[: ...: unexpected operator"; drop it.
    kept = [ln.strip() for ln in text.splitlines() if ln.strip() and "unexpected operator" not in ln]
    return " | ".join(kept[-lines:])[-600:]


def _forget(pid: int) -> None:
    _SPAWNED.pop(pid, None)
    fh = _STDERR.pop(pid, None)
    if fh is not None:
        try:
            fh.close()
        except OSError:
            pass


def pid_alive(pid: int) -> bool:
    """True when `pid` runs (a zombie, i.e. exited but not reaped, counts as gone)."""
    if pid <= 0:
        return False
    proc = _SPAWNED.get(pid)
    if proc is not None:
        return proc.poll() is None  # our own child: poll() also reaps it
    from ..store.files import process_exists

    if not process_exists(pid):
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return stat[stat.rfind(b")") + 2:][:1] != b"Z"
    except OSError:
        return True  # no /proc (macOS): kill(0) is all we have


def _signal_group(pid: int, sig: int) -> None:
    if pid <= 1:
        return  # never kill(-1) / kill(0): that would signal every process we may signal
    # Our browsers lead their own process group; fall back to the single pid if that is not so.
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
            return
    except OSError:
        pass
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _killpg_quiet(pgid: int, sig: int) -> None:
    if pgid <= 1:
        return
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass


def terminate(proc: Process, grace_s: float = 3.0) -> None:
    """SIGTERM the browser's process group, wait up to grace_s, SIGKILL the group, reap. Never raises."""
    import subprocess

    pgid = proc.pid  # start_new_session: the group id is the browser's pid
    # Signal the group even when the leader has exited: its helpers may linger for a second or two.
    _killpg_quiet(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=max(0.0, grace_s))
    except subprocess.TimeoutExpired:
        pass
    except OSError:
        pass
    _killpg_quiet(pgid, signal.SIGKILL)
    try:
        proc.wait(timeout=2.0)
    except (subprocess.TimeoutExpired, OSError):
        pass
    _forget(proc.pid)


def terminate_pid(pid: int, grace_s: float = 3.0) -> None:
    """terminate() for a browser another process spawned (a shared one). Never raises."""
    proc = _SPAWNED.get(pid)
    if proc is not None:
        terminate(proc, grace_s)
        return
    if not pid_alive(pid):
        return  # gone already; its pid may soon belong to someone else, so signal nothing
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + max(0.0, grace_s)
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)


def wait_exit(pid: int, timeout_s: float) -> bool:
    """Wait (bounded) for a browser to exit on its own, e.g. after Browser.close. True when it did."""
    proc = _SPAWNED.get(pid)
    if proc is not None:
        import subprocess

        try:
            proc.wait(timeout=max(0.0, timeout_s))
            return True
        except (subprocess.TimeoutExpired, OSError):
            return proc.poll() is not None
    deadline = time.monotonic() + max(0.0, timeout_s)
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


# -- profile lock and CDP discovery -----------------------------------------------------------------


def profile_lock_owner(user_data_dir: str) -> int | None:
    """The pid of a live browser on this host holding the profile (Chromium's SingletonLock), else None."""
    try:
        target = os.readlink(os.path.join(user_data_dir, SINGLETON_LOCK))
    except OSError:
        return None
    host, _, pid_text = target.rpartition("-")
    if not pid_text.isdigit() or host != socket.gethostname():
        return None  # another host's lock: let the browser itself decide
    pid = int(pid_text)
    if pid == os.getpid() or not pid_alive(pid):
        return None  # a stale lock left by a crash; Chromium clears it itself
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read().lower()
    except OSError:
        return pid  # cannot look (no /proc, or not ours): trust the lock
    if not any(name in cmdline for name in (b"chrom", b"edge", b"brave", b"vivaldi", b"opera")):
        return None  # the pid was reused by an unrelated program: the lock is stale
    return pid


def profile_in_use_error(user_data_dir: str, pid: int) -> SigError:
    """BROWSER_LAUNCH_ERROR for a profile another browser holds, with what to do."""
    return SigError(
        ErrorCode.BROWSER_LAUNCH_ERROR,
        f"the browser profile {user_data_dir} is in use by another browser (pid {pid})",
        IN_USE_HINT,
    )


def check_profile_free(user_data_dir: str) -> None:
    """Fail early, with the fix, when a running browser holds the profile (Chromium would just exit)."""
    pid = profile_lock_owner(user_data_dir)
    if pid is not None:
        raise profile_in_use_error(user_data_dir, pid)


def _user_data_dir_of(proc: Process) -> str:
    for arg in proc.args:
        if isinstance(arg, str) and arg.startswith("--user-data-dir="):
            return arg.split("=", 1)[1]
    return ""


def wait_ready(proc: Process, probe: Callable[[float], T | None], timeout_s: float, what: str) -> T:
    """Call `probe(budget_s)` until it returns something other than None; that. The browser exiting
    first, or `timeout_s` passing, raises the launch error that says why (`what` did not happen)."""
    deadline = time.monotonic() + max(0.5, timeout_s)
    while True:
        code = proc.poll()
        if code is not None:
            udd = _user_data_dir_of(proc)
            holder = profile_lock_owner(udd) if udd else None
            if holder is not None:
                raise profile_in_use_error(udd, holder)
            tail = stderr_tail(proc)
            raise SigError(
                ErrorCode.BROWSER_LAUNCH_ERROR,
                f"the browser exited during start-up (status {code})" + (f": {tail}" if tail else ""),
                "run sig doctor; if another browser uses the same profile, close it or set "
                "browser.browserDataDir to another folder",
            )
        result = probe(min(_REQUEST_TIMEOUT_S, max(0.1, deadline - time.monotonic())))
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            tail = stderr_tail(proc)
            if "non-default data directory" in tail:
                # Chrome 136+ will not be remote-controlled on its own default profile folder.
                raise SigError(
                    ErrorCode.BROWSER_LAUNCH_ERROR,
                    f"the browser refuses remote debugging on profile {_user_data_dir_of(proc)}",
                    "set browser.browserDataDir to a folder of its own (not the browser's default profile)",
                )
            raise SigError(
                ErrorCode.BROWSER_TIMEOUT,
                f"the browser did not {what} within {timeout_s:.0f}s (its start-up budget)"
                + (f": {tail}" if tail else ""),
                "the machine may be very busy, or the browser hangs at start: retry; run sig doctor",
            )
        time.sleep(_POLL_S)


def start_browser_piped(options: LaunchOptions) -> tuple[SpawnedProcess, int, int]:
    """Profile folder, lock check, spawn with CDP pipes: (proc, read fd, write fd). The caller waits for
    the browser to answer (wait_ready, with a CDP probe) and owns the fds and the process from here."""
    ensure_profile_dir(options.user_data_dir)
    check_profile_free(options.user_data_dir)
    return spawn_piped(options.executable, chrome_args(options))


# -- the shared visible browser (.cdp-state.json, written by its relay) -----------------------------


def state_lock_path(user_data_dir: str) -> str:
    """The lock file that serialises starts on a profile."""
    return os.path.join(user_data_dir, LOCK_FILE)


class StateLock:
    """The per-profile lock around starting, joining and closing the shared browser (store.files.file_lock,
    bounded wait); a timeout is reported as a browser problem with its own fix."""

    def __init__(self, user_data_dir: str, timeout_s: float) -> None:
        from ..store.files import file_lock

        self.path = state_lock_path(user_data_dir)
        self.timeout_s = timeout_s
        self._lock = file_lock(self.path, timeout_s)

    def __enter__(self) -> None:
        try:
            self._lock.__enter__()
        except SigError:
            raise SigError(
                ErrorCode.BROWSER_TIMEOUT,
                f"timed out after {self.timeout_s:.0f}s waiting for the shared browser lock {self.path}",
                "another sig login is starting or closing the browser of this profile; retry in a moment",
            ) from None

    def __exit__(self, *exc: object) -> None:
        self._lock.__exit__(*exc)


def read_state(user_data_dir: str) -> dict[str, Any] | None:
    """The shared-browser state ({"pid": browser, "relayPid", "socket", "createdAt"}), or None when
    missing or unreadable (a broken file counts as none)."""
    import json

    from ..store.files import read_file

    try:
        raw = read_file(os.path.join(user_data_dir, STATE_FILE))
    except SigError:
        return None
    if raw is None:
        return None
    try:
        state = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: thousands of nested brackets
        return None
    # The pids are signalled later: only numbers that name one process (a bool is an int to Python, and
    # a pid beyond 2**31-1 made os.kill raise OverflowError).
    if not isinstance(state, dict) or not _one_pid(state.get("pid")):
        return None
    if "relayPid" in state and not _one_pid(state["relayPid"]):
        return None
    return state


def _one_pid(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 < value < 2**31


def write_state(user_data_dir: str, state: dict[str, Any]) -> None:
    """Record the running shared browser of a profile (pid, relay socket), atomically."""
    import json

    from ..store.files import atomic_write

    atomic_write(os.path.join(user_data_dir, STATE_FILE), json.dumps(state).encode())


def remove_state(user_data_dir: str) -> None:
    """Forget the profile's running browser (no error when there is none)."""
    try:
        os.unlink(os.path.join(user_data_dir, STATE_FILE))
    except OSError:
        pass
