"""The proxy daemon's lifecycle: state files, start (detached, ready check), stop, and the client env.

Files under $SIG_HOME/proxy (0700): state.json {pid, port} while running, token (0600: the per-user proxy
password), proxy.log (rotated by size: proxy.log.1..3), ca.crt/ca.key, bundle.pem (system roots + sig's CA,
for clients that replace roots), proxy.sock (0600: the same proxy on a Unix socket, while running),
profiles/ (extra tokens with their client profiles: profiles.py).
"""

from __future__ import annotations

import os

from ..config import paths
from ..core.errors import ErrorCode, SigError
from ..core.jsonio import dumps, loads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

DEFAULT_PORT = 7891
_TOKEN_CHARS = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._~-")


def folder() -> str:
    """$SIG_HOME/proxy: the daemon's state, token, CA, logs and profiles."""
    return os.path.join(paths.sig_home(), "proxy")


def state_path() -> str:
    """The running daemon's {pid, port} file (read_state checks it is still true)."""
    return os.path.join(folder(), "state.json")


def log_path() -> str:
    """The daemon's log (rotated by logfile.py)."""
    return os.path.join(folder(), "proxy.log")


def token(create: bool = False) -> str | None:
    """The user's proxy token (hex); when there is none, a new one with `create`, else None. SigError when
    the file holds something that could not go into a proxy URL."""
    from ..store.files import atomic_write, ensure_dir, read_file

    path = os.path.join(folder(), "token")
    raw = read_file(path)
    if raw:
        value = raw.strip()
        # sig writes hex; anything else (non-ASCII, ':' '@' '/' or spaces) would break the proxy URL
        if not value or not all(c in _TOKEN_CHARS for c in value):
            raise SigError(ErrorCode.STORAGE_ERROR, f"the proxy token file {path} is damaged",
                           f"run `sig proxy stop`, remove {path}, then `sig proxy start` (it makes a new one)")
        return value.decode("ascii")
    if not create:
        return None
    ensure_dir(folder())
    fresh = os.urandom(24).hex()
    atomic_write(path, fresh.encode("ascii"))
    return fresh


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _parse_state(raw: bytes) -> tuple[int, int] | None:
    """(pid, port) from state.json, or None when it is not what a daemon writes. `stop` signals that pid:
    0 would signal sig's own process group and -1 every process the user may signal, so only a pid that
    names one process other than init (2 … 2**31-1) counts, with a port in 1-65535 (a bigger one made
    the connect test raise OverflowError)."""
    try:
        state = loads(raw)
    except ValueError:
        return None
    if not isinstance(state, dict):
        return None
    pid, port = state.get("pid"), state.get("port")
    if not isinstance(pid, int) or isinstance(pid, bool) or not 1 < pid < 2**31:
        return None
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        return None
    return pid, port


def read_state() -> dict[str, int] | None:
    """The running daemon's {pid, port}; a stale or damaged file (crash, SIGKILL) is removed."""
    from ..store.files import read_file

    raw = read_file(state_path())
    if raw is None:
        return None
    state = _parse_state(raw)
    if state is not None and state[0] != os.getpid() and _alive(state[0]) and _answers(state[1]):
        return {"pid": state[0], "port": state[1]}
    try:
        os.unlink(state_path())
    except FileNotFoundError:
        pass
    return None


def write_state(port: int) -> None:
    """Record this process as the running daemon on `port`."""
    from ..store.files import atomic_write

    atomic_write(state_path(), dumps({"pid": os.getpid(), "port": port}).encode("ascii"))


def clear_state() -> None:
    """Remove state.json when it names this process (a newer daemon's file is left alone)."""
    try:
        with open(state_path(), "rb") as fh:
            state = _parse_state(fh.read())
        if state is None or state[0] != os.getpid():
            return
        os.unlink(state_path())
    except OSError:
        pass


def start(port: int, no_auth: bool, timeout: float = 15.0, verbose: bool = False) -> tuple[dict[str, int], bool]:
    """(state, started_now). Returns the running daemon's state when there is one. `verbose`: the daemon
    logs every request (proxy.log is rotated by size either way: logfile.py)."""
    import subprocess
    import sys
    import time

    from ..store.files import ensure_dir
    from .ports import check_free

    running = read_state()
    if running is not None:
        return running, False
    check_free(port)  # a taken port is named (with who holds it) before a daemon is even started
    ensure_dir(folder())
    token(create=True)
    from .logfile import rotate_if_big

    rotate_if_big(log_path())  # before the start, so this start's lines are read back from proxy.log
    log = os.open(log_path(), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    log_start = os.fstat(log).st_size
    argv = [sys.executable, "-m", "sigcli", *(["--verbose"] if verbose else []), "proxy", "serve", "--port",
            str(port)]
    if no_auth:
        argv.append("--no-auth")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                close_fds=True, env=dict(os.environ))
    finally:
        os.close(log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state()
        if state is not None and state["pid"] == proc.pid:
            return state, True
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        proc.terminate()
    raise _start_failure(log_start, port)


def _start_failure(log_start: int, port: int) -> SigError:
    """The daemon's own `Error:`/`Hint:` lines of this start (written to its log), as the error."""
    try:
        with open(log_path(), "rb") as fh:
            fh.seek(log_start)
            lines = fh.read(64 * 1024).decode("utf-8", "replace").splitlines()
    except OSError:
        lines = []
    message = hint = ""
    for line in lines:
        if line.startswith("Error: "):
            message, hint = line[len("Error: "):], ""
        elif line.startswith("Hint: ") and message:
            hint = line[len("Hint: "):]
    if not message:
        tail = [line for line in lines if line.strip()][-1:]
        message = tail[0] if tail else "it exited without saying why"
    where = f"the proxy's log: {log_path()}"
    return SigError(ErrorCode.GENERAL_ERROR, f"the proxy did not start: {message}",
                    f"{hint}; see {where}" if hint else f"see {where}; if port {port} is taken, use --port N "
                    "(0 picks a free one)")


def stop(timeout: float = 10.0) -> int | None:
    """Stop the daemon; the pid it had, or None when none was running."""
    import signal
    import time

    state = read_state()
    if state is None:
        return None
    pid = state["pid"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    try:
        os.unlink(state_path())
    except FileNotFoundError:
        pass
    return pid


def bundle_path() -> str:
    """System roots + sig's CA in one file, for clients that take a single CA file (requests, curl, git)."""
    import ssl

    from ..store.files import atomic_write

    ca = os.path.join(folder(), "ca.crt")
    with open(ca, "rb") as fh:
        ours = fh.read()
    system = b""
    paths_ = ssl.get_default_verify_paths()
    for candidate in (paths_.cafile, paths_.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and os.path.isfile(candidate):
            with open(candidate, "rb") as fh:
                system = fh.read()
            break
    path = os.path.join(folder(), "bundle.pem")
    data = system.rstrip(b"\n") + b"\n" + ours
    try:
        with open(path, "rb") as fh:
            if fh.read() == data:
                return path
    except OSError:
        pass
    atomic_write(path, data, mode=0o644)
    return path


def client_env(state: dict[str, int], environ: Mapping[str, str] | None = None,
               domains: Iterable[str] = ()) -> tuple[dict[str, str], list[str]]:
    """(what a client needs to use the proxy, the user's NO_PROXY entries left out): proxy URL (with the
    per-user token), CA settings, and NO_PROXY extended (the user's entries from `environ` kept, loopback
    added; entries covering a provider's `domains` left out, or those hosts would get no credentials).
    No secret of any provider is in here; the token only lets this user's programs use the proxy."""
    from .noproxy import no_proxy

    bypass, dropped = no_proxy(os.environ if environ is None else environ, domains)
    secret = token()
    auth = f"sig:{secret}@" if secret else ""
    url = f"http://{auth}127.0.0.1:{state['port']}"
    bundle = bundle_path()
    ca = os.path.join(folder(), "ca.crt")
    return {
        "HTTP_PROXY": url, "HTTPS_PROXY": url, "http_proxy": url, "https_proxy": url,
        "NO_PROXY": bypass, "no_proxy": bypass,
        "SSL_CERT_FILE": bundle, "REQUESTS_CA_BUNDLE": bundle, "CURL_CA_BUNDLE": bundle, "GIT_SSL_CAINFO": bundle,
        "NODE_EXTRA_CA_CERTS": ca, "NODE_USE_ENV_PROXY": "1",
    }, dropped
