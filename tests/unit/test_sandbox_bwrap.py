"""The bubblewrap command line is built from a View without reading the machine: the exact argv."""

from __future__ import annotations

from sigcli.sandbox import bwrap
from sigcli.sandbox.view import View


def test_exact_argv_for_a_full_view() -> None:
    view = View(
        cwd="/home/u/proj",
        writable=("/home/u/.cache/pip",),
        read_only=("/home/u/proj/.git/hooks", "/home/u/proj/.git/config"),
        hidden_dirs=("/home/u/.sig", "/home/u/.ssh"),
        hidden_files=("/home/u/.netrc",),
        files=(("/home/u/.sig/proxy/bundle.pem", "/run/sig/ca-bundle.pem"),),
    )
    argv = bwrap.argv(view, ["/usr/bin/python3", "-I", "-S", "/x/shim.py", "3128", "curl", "-s"],
                      bwrap="/usr/bin/bwrap", seccomp_fd=4, is_symlink={"/var/run": True})
    assert argv == [
        "/usr/bin/bwrap",
        "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
        "--unshare-cgroup-try",
        "--disable-userns", "--cap-drop", "ALL", "--new-session", "--die-with-parent",
        "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
        "--tmpfs", "/tmp", "--tmpfs", "/var/tmp", "--tmpfs", "/run",
        "--ro-bind", "/home/u/.sig/proxy/bundle.pem", "/run/sig/ca-bundle.pem",
        "--bind", "/home/u/proj", "/home/u/proj",
        "--bind", "/home/u/.cache/pip", "/home/u/.cache/pip",
        "--ro-bind", "/home/u/proj/.git/hooks", "/home/u/proj/.git/hooks",
        "--ro-bind", "/home/u/proj/.git/config", "/home/u/proj/.git/config",
        "--tmpfs", "/home/u/.sig", "--remount-ro", "/home/u/.sig",
        "--tmpfs", "/home/u/.ssh", "--remount-ro", "/home/u/.ssh",
        "--ro-bind", "/dev/null", "/home/u/.netrc",
        "--chdir", "/home/u/proj",
        "--seccomp", "4",
        "--", "/usr/bin/python3", "-I", "-S", "/x/shim.py", "3128", "curl", "-s",
    ]


def test_minimal_view_and_a_real_var_run() -> None:
    argv = bwrap.argv(View(cwd="/srv/p"), ["/bin/true"], is_symlink={"/var/run": False})
    assert argv[0] == "bwrap"
    assert argv[argv.index("--tmpfs", argv.index("/var/tmp")) + 1] == "/run"
    assert "/var/run" in argv  # a real folder (not the usual symlink) gets its own tmpfs
    assert "--seccomp" not in argv and "--info-fd" not in argv
    assert argv[argv.index("--chdir") + 1] == "/srv/p"
    assert argv[argv.index("--") + 1:] == ["/bin/true"]


def test_hidden_paths_come_after_every_bind() -> None:
    """A bind placed after a hiding mount would show the hidden folder again: hiding is last."""
    view = View(cwd="/home/u", writable=("/home/u/.config",), hidden_dirs=("/home/u/.config/gh",),
                read_only=("/home/u/.bashrc",))
    argv = bwrap.argv(view, ["/bin/true"])
    last_bind = max(i for i, a in enumerate(argv) if a in ("--bind", "--ro-bind") and argv[i + 1] != "/dev/null")
    assert argv.index("/home/u/.config/gh") > last_bind


def test_capabilities_dropped_and_no_further_namespaces() -> None:
    """As root bubblewrap keeps every capability unless told: a root sandbox could unmount the hiding."""
    argv = bwrap.argv(View(cwd="/p"), ["/bin/true"])
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert "--disable-userns" in argv and "--unshare-user" in argv
    assert "--new-session" in argv and "--die-with-parent" in argv
    assert "--share-net" not in argv and "--unshare-net" in argv
