"""The bubblewrap command line for a View. Pure: the same View and descriptors give the same argv.

Order matters to bubblewrap (each mount lands on what the earlier ones built):
1. namespaces and process settings: a user namespace in which no further one can be made, no
   capabilities (as root too: bubblewrap keeps them for root unless told), own PID/IPC/network/UTS
   (and cgroup, where the kernel has it) namespaces, a new session (TIOCSTI into the user's terminal
   needs it to be the caller's controlling terminal: after setsid it is not), killed with its parent;
2. the machine read-only, a minimal /dev, the sandbox's own /proc, private /tmp, /var/tmp and /run;
3. files bound in (the proxy's public CA certificate), then the writable places;
4. read-only paths inside the writable places, then the hidden paths last, so nothing bound earlier
   can show them again.
"""

from __future__ import annotations

from .view import View, under

NAMESPACES = ("--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
              "--unshare-cgroup-try")
PROCESS = ("--disable-userns", "--cap-drop", "ALL", "--new-session", "--die-with-parent")


def _private_dirs(view: View, is_symlink: dict[str, bool]) -> list[str]:
    out: list[str] = []
    for d in view.private:
        if is_symlink.get(d):
            continue  # /var/run -> /run: the link leads into the private /run already
        if any(under(d, p) for p in out):
            continue
        out += ["--tmpfs", d]
    return out


def argv(
    view: View,
    command: list[str],
    *,
    bwrap: str = "bwrap",
    seccomp_fd: int | None = None,
    info_fd: int | None = None,
    is_symlink: dict[str, bool] | None = None,
) -> list[str]:
    """bubblewrap's argv running `command` (absolute path first) in `view`. `is_symlink` says which of
    the private dirs are symlinks on this machine (the one fact about it the builder needs)."""
    out = [bwrap, *NAMESPACES, *PROCESS]
    out += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    out += _private_dirs(view, is_symlink or {})
    for host_path, inside in view.files:
        out += ["--ro-bind", host_path, inside]
    for place in (view.cwd, *view.writable):
        out += ["--bind", place, place]
    for path in view.read_only:
        out += ["--ro-bind", path, path]
    for path in view.hidden_dirs:
        out += ["--tmpfs", path, "--remount-ro", path]
    for path in view.hidden_files:
        out += ["--ro-bind", "/dev/null", path]
    out += ["--chdir", view.cwd]
    if seccomp_fd is not None:
        out += ["--seccomp", str(seccomp_fd)]
    if info_fd is not None:
        out += ["--info-fd", str(info_fd)]
    out += ["--", *command]
    return out
