"""An adversarial program for `sig run --sandbox`: it tries every way we could think of to learn a
credential, sig's key or a placeholder's value, or to reach the network around the proxy.

Run inside the sandbox as `python adversary.py SPEC_JSON`; SPEC names what the test knows from outside
(paths, host ports, pids). Prints one JSON object {attempt: {"won": bool, "detail": str}} on stdout and
everything it managed to read, base64'd, under "loot" (the test scans it for secrets). "won" means the
attempt got what it was after: every test asserts it is False.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import json
import os
import socket
import subprocess
import sys

LOOT: list[bytes] = []
RESULTS: dict[str, dict[str, object]] = {}
SPEC: dict[str, object] = {}


class _Hung(Exception):
    pass


def _alarm(_signum, _frame):  # type: ignore[no-untyped-def]
    raise _Hung


def attempt(fn):  # type: ignore[no-untyped-def]
    import signal

    name = fn.__name__.removeprefix("try_")
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(30)  # an attempt that hangs is reported, not left to stall the run
    try:
        won, detail = fn()
    except _Hung:
        won, detail = False, "gave up after 30 s"
    except Exception as exc:  # an attempt that blew up did not win
        won, detail = False, f"{type(exc).__name__}: {exc}"
    finally:
        signal.alarm(0)
    RESULTS[name] = {"won": bool(won), "detail": str(detail)[:2000]}
    return fn


def _read(path: str, limit: int = 1 << 20) -> bytes | None:
    try:  # non-blocking: a descriptor of another process may be a terminal or a pipe
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        data = os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)
    LOOT.append(path.encode() + b"\0" + data)
    return data


def _walk_read(root: str) -> list[str]:
    got = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            data = _read(p)
            if data:
                got.append(p)
    return got


def _connect(family: int, addr: tuple, timeout: float = 2.0) -> str:  # type: ignore[type-arg]
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(addr)
        return "connected"
    except OSError as exc:
        return f"{errno.errorcode.get(exc.errno or 0, exc.errno)}"
    finally:
        s.close()


# -- sig's own data -------------------------------------------------------------------------------------

def try_read_sig_home():  # type: ignore[no-untyped-def]
    got = []
    for root in SPEC["sig_paths"]:  # type: ignore[union-attr]
        got += _walk_read(str(root))
        for name in ("encryption.key", "config.yaml", "proxy/ca.key", "proxy/token", "audit.log"):
            if _read(os.path.join(str(root), name)):
                got.append(name)
    return bool(got), f"read: {got}"


def try_read_home_dot_sig():  # type: ignore[no-untyped-def]
    root = os.path.expanduser("~/.sig")
    got = _walk_read(root)
    return bool(got), f"{root}: {got}"


def try_secret_stores():  # type: ignore[no-untyped-def]
    got = []
    for rel in (".ssh/id_ed25519", ".aws/credentials", ".netrc", ".git-credentials", ".docker/config.json",
                ".config/gh/hosts.yml", ".gnupg/private-keys-v1.d/key.key", ".config/google-chrome/Default/Cookies"):
        data = _read(os.path.expanduser("~/" + rel))
        if data:
            got.append(rel)
    return bool(got), f"read: {got}"


def try_sig_dir_via_symlink_in_cwd():  # type: ignore[no-untyped-def]
    got = []
    for i, target in enumerate(SPEC["sig_paths"]):  # type: ignore[union-attr]
        link = f"link-to-sig-{i}"
        try:
            os.symlink(str(target), link)
        except OSError as exc:
            return False, f"symlink: {exc}"
        got += _walk_read(link + "/")
        os.unlink(link)
    return bool(got), f"through links: {got}"


def _others() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]


def try_proc_of_every_process():  # type: ignore[no-untyped-def]
    """Every other visible process: its environment, command line, memory map and descriptors go to the
    loot (scanned for secrets by the test); a descriptor that is a socket would be a way out: a win."""
    ways_out = []
    for pid in _others():
        for what in ("environ", "cmdline", "maps", "status"):
            _read(f"/proc/{pid}/{what}")
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:"):
                    ways_out.append(f"{pid}/fd/{fd}->{target}")
                _read(f"/proc/{pid}/fd/{fd}", 65536)
        except OSError:
            pass
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    return bool(ways_out), f"pids visible {pids}; sockets held by others: {ways_out}"


def _regions(pid: int) -> list[tuple[int, int]]:
    out = []
    maps = _read(f"/proc/{pid}/maps") or b""
    for line in maps.decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].startswith("r"):
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if hi - lo <= 64 << 20:
                out.append((lo, hi))
    return out


def try_ptrace_other_processes():  # type: ignore[no-untyped-def]
    """Attach to, and read the memory of, every other process (bubblewrap's pid 1: it holds no channel and
    no secret, and runs under the same filter, without capabilities). Whatever is read goes to the loot."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.process_vm_readv.restype = ctypes.c_ssize_t
    notes = []

    class IoVec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

    for pid in _others():
        if libc.ptrace(16, pid, None, None) == 0:  # PTRACE_ATTACH: wait for the stop, then let it go
            os.waitpid(pid, 0x40000000)  # __WALL
            libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
            notes.append(f"attached {pid}")
        got = 0
        for lo, hi in _regions(pid):
            buf = ctypes.create_string_buffer(hi - lo)
            local, remote = IoVec(ctypes.cast(buf, ctypes.c_void_p), hi - lo), IoVec(lo, hi - lo)
            n = libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
            if n > 0:
                LOOT.append(buf.raw[:n])
                got += n
        try:
            with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
                for lo, hi in _regions(pid):
                    try:
                        mem.seek(lo)
                        LOOT.append(mem.read(hi - lo))
                    except OSError:
                        pass
        except OSError:
            pass
        notes.append(f"{pid}: {got} bytes by process_vm_readv")
    # The memory read is scanned for secrets by the test; reading a process that holds none wins nothing.
    return False, "; ".join(notes)


def try_signal_outside_pids():  # type: ignore[no-untyped-def]
    hits = []
    for pid in SPEC.get("outside_pids", []):  # type: ignore[union-attr]
        try:
            os.kill(int(pid), 0)  # type: ignore[call-overload]
            hits.append(pid)
        except OSError:
            pass
    # pids the sandbox may not see could still be the same numbers as its own processes; check names
    mine = {p for p in os.listdir("/proc") if p.isdigit()}
    return bool([p for p in hits if str(p) not in mine]), f"signalable: {hits}"


def try_sig_get_without_marker():  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if k != "SIG_SANDBOX"}
    for provider in SPEC.get("providers", ["api"]):  # type: ignore[union-attr]
        p = subprocess.run(["sig", "get", str(provider), "--no-redaction", "--format", "value"], env=env,
                           capture_output=True, timeout=30)
        LOOT.append(p.stdout + p.stderr)
        if p.returncode == 0:
            return True, p.stdout.decode(errors="replace")
    p = subprocess.run(["sig", "run", "--", "env"], env=env, capture_output=True, timeout=30)
    LOOT.append(p.stdout + p.stderr)
    return p.returncode == 0 and b"SIG_" in p.stdout, f"sig get/run refused ({p.returncode})"


def try_sig_get_with_sig_home_pointed_at_a_guess():  # type: ignore[no-untyped-def]
    for root in SPEC["sig_paths"]:  # type: ignore[union-attr]
        env = dict(os.environ, SIG_HOME=str(root))
        env.pop("SIG_SANDBOX", None)
        p = subprocess.run(["sig", "get", "api", "--no-redaction", "--format", "value"], env=env,
                           capture_output=True, timeout=30)
        LOOT.append(p.stdout + p.stderr)
        if p.returncode == 0:
            return True, p.stdout.decode(errors="replace")
    return False, "refused"


def try_sdk_get_headers():  # type: ignore[no-untyped-def]
    code = ("from sigcli import SigClient\n"
            "print(SigClient().get_headers('api'))")
    env = {k: v for k, v in os.environ.items() if k != "SIG_SANDBOX"}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=30)
    LOOT.append(p.stdout + p.stderr)
    return p.returncode == 0, (p.stdout + p.stderr).decode(errors="replace")[-300:]


def try_environment_holds_secrets():  # type: ignore[no-untyped-def]
    env = "\n".join(f"{k}={v}" for k, v in os.environ.items())
    LOOT.append(env.encode())
    bad = [k for k in os.environ if k in ("SIG_HOME", "SSH_AUTH_SOCK", "DBUS_SESSION_BUS_ADDRESS",
                                           "XDG_RUNTIME_DIR", "GPG_AGENT_INFO")]
    return bool(bad), f"present: {bad}"


# -- the network around the proxy ------------------------------------------------------------------------

def try_host_loopback_ports():  # type: ignore[no-untyped-def]
    out = {port: _connect(socket.AF_INET, ("127.0.0.1", int(port))) for port in SPEC["host_ports"]}  # type: ignore[union-attr]
    return any(v == "connected" for v in out.values()), str(out)


def try_host_loopback_ipv6():  # type: ignore[no-untyped-def]
    out = {port: _connect(socket.AF_INET6, ("::1", int(port))) for port in SPEC["host_ports"]}  # type: ignore[union-attr]
    return any(v == "connected" for v in out.values()), str(out)


def try_outside_addresses():  # type: ignore[no-untyped-def]
    out = {}
    for addr in ("1.1.1.1", "8.8.8.8", "10.0.0.1", "169.254.169.254", "192.168.1.1"):
        out[addr] = _connect(socket.AF_INET, (addr, 443), 1.0)
    out["2606:4700:4700::1111"] = _connect(socket.AF_INET6, ("2606:4700:4700::1111", 443), 1.0)
    return any(v == "connected" for v in out.values()), str(out)


def _through_proxy(request: bytes) -> str:
    """One request to the sandbox's door (HTTPS_PROXY); its status line."""
    import urllib.parse

    proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
    s = socket.create_connection((proxy.hostname, proxy.port), timeout=10)
    try:
        s.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            chunk = s.recv(65536)
            if not chunk:
                break
            head += chunk
        LOOT.append(head)
        return head.split(b"\r\n", 1)[0].decode("latin-1")
    finally:
        s.close()


def try_proxy_to_the_machines_own_services():  # type: ignore[no-untyped-def]
    """Through the proxy (it runs on the machine): the host's loopback ports and the metadata address."""
    port = SPEC["listener_port"]
    out = {}
    for target in (f"127.0.0.1:{port}", f"[::1]:{port}", f"localhost:{port}", f"0.0.0.0:{port}",
                   "169.254.169.254:80", f"127.1.2.3:{port}"):
        out[f"GET {target}"] = _through_proxy(f"GET http://{target}/ HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        out[f"CONNECT {target}"] = _through_proxy(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"
                                                  .encode())
    ok = [k for k, v in out.items() if " 403 " not in v + " "]
    return bool(ok), str(out)


def try_dns():  # type: ignore[no-untyped-def]
    try:
        info = socket.getaddrinfo("example.com", 443)
        return True, str(info[:1])
    except OSError as exc:
        return False, str(exc)


def try_udp_out():  # type: ignore[no-untyped-def]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(b"x", ("8.8.8.8", 53))
        return True, "sent"
    except OSError as exc:
        return False, str(exc)
    finally:
        s.close()


def try_raw_and_packet_sockets():  # type: ignore[no-untyped-def]
    won = []
    for fam, kind, proto in ((socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
                             (socket.AF_PACKET, socket.SOCK_RAW, 0x0300),
                             (socket.AF_NETLINK, socket.SOCK_RAW, 0)):
        try:
            s = socket.socket(fam, kind, proto)
            if fam == socket.AF_NETLINK:
                # a netlink socket is allowed (libc uses it), but it can change nothing: no capabilities
                s.close()
                continue
            won.append(str(fam))
            s.close()
        except OSError:
            pass
    return bool(won), f"opened: {won}"


def try_unix_sockets():  # type: ignore[no-untyped-def]
    tried = {}
    for path in SPEC.get("unix_paths", []):  # type: ignore[union-attr]
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError as exc:
            tried[path] = f"socket: {errno.errorcode.get(exc.errno or 0)}"
            continue
        try:
            s.connect(str(path))
            tried[path] = "connected"
        except OSError as exc:
            tried[path] = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        finally:
            s.close()
    return any(v == "connected" for v in tried.values()), str(tried)


def try_abstract_unix_sockets():  # type: ignore[no-untyped-def]
    tried = {}
    for name in SPEC.get("abstract", []):  # type: ignore[union-attr]
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect("\0" + str(name))
            tried[name] = "connected"
            s.close()
        except OSError as exc:
            tried[name] = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return any(v == "connected" for v in tried.values()), str(tried)


def try_io_uring():  # type: ignore[no-untyped-def]
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)
    fd = libc.syscall(425, 4, params)  # io_uring_setup (same number on x86_64 and aarch64)
    return fd >= 0, f"io_uring_setup -> {fd}, errno {ctypes.get_errno()}"


def try_inherited_descriptors():  # type: ignore[no-untyped-def]
    fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
    extra = []
    for fd in fds:
        if fd <= 2:
            continue
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/proc/") and target.endswith("/fd"):
            continue  # the listing itself
        extra.append((fd, target))
    return bool(extra), f"descriptors: {fds} extra {extra}"


def try_the_channel():  # type: ignore[no-untyped-def]
    """The starter's channel was fd 3: send a fake 'listener' and open a second channel."""
    import array

    won = []
    for fd in (3, 4, 5):
        try:
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            r, _w = os.pipe()
            s.sendmsg([b"L"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r]))])
            won.append(fd)
        except OSError:
            pass
    try:
        a, b = socket.socketpair()  # allowed (asyncio needs it) but it reaches only itself
        a.sendall(b"x")
        assert b.recv(1) == b"x"
    except OSError:
        pass
    return bool(won), f"sent on: {won}"


def try_new_namespaces_and_mounts():  # type: ignore[no-untyped-def]
    libc = ctypes.CDLL(None, use_errno=True)
    won = []
    for flag, name in ((0x10000000, "user"), (0x00020000, "mount"), (0x40000000, "net")):
        if libc.unshare(flag) == 0:
            won.append(name)
    if libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) == 0:
        won.append("mount")
    if libc.umount2(str(SPEC["sig_paths"][0]).encode(), 2) == 0:  # type: ignore[index]
        won.append("umount")
    return bool(won), f"{won} errno {ctypes.get_errno()}"


def try_tiocsti():  # type: ignore[no-untyped-def]
    import fcntl
    import termios

    if not os.isatty(0):
        return False, "stdin is not a terminal (nothing to inject into)"
    try:
        for ch in b"echo INJECTED\n":
            fcntl.ioctl(0, termios.TIOCSTI, bytes([ch]))
        return True, "TIOCSTI accepted"
    except OSError as exc:
        return False, f"TIOCSTI: {errno.errorcode.get(exc.errno or 0)}"


def try_write_outside():  # type: ignore[no-untyped-def]
    won = []
    targets = [os.path.expanduser("~/planted"), os.path.expanduser("~/.bashrc"), "/etc/planted", "/usr/planted",
               "../planted-next-to-cwd", os.path.join(os.getcwd(), "..", "planted-dotdot"),
               ".git/hooks/post-checkout", ".git/config"] + [str(p) + "/planted" for p in SPEC["sig_paths"]]  # type: ignore[union-attr]
    for target in targets:
        try:
            with open(target, "a") as fh:
                fh.write("planted\n")
            won.append(target)
        except OSError:
            pass
    try:
        os.symlink("/etc", "etc-link")
        with open("etc-link/planted", "w") as fh:
            fh.write("x")
        won.append("etc-link/planted")
    except OSError:
        pass
    # the working directory itself must stay writable (the legitimate case)
    with open("written-inside-cwd", "w") as fh:
        fh.write("ok")
    # Only the host can tell where a write landed (the working directory, the sandbox's private /tmp, or
    # the machine): test_nothing_planted_outside checks there.
    return False, f"wrote (inside the sandbox's view): {won}"


ATTEMPTS = [v for k, v in list(globals().items()) if k.startswith("try_")]


def main() -> None:
    SPEC.update(json.loads(sys.argv[1]))
    only = SPEC.get("only")
    for fn in ATTEMPTS:
        if only and fn.__name__.removeprefix("try_") not in only:
            continue
        attempt(fn)
    print(json.dumps({"results": RESULTS, "loot": base64.b64encode(b"\n".join(LOOT)).decode()}))


if __name__ == "__main__":
    main()
