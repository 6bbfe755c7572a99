"""Can this machine run the sandbox? Linux, bubblewrap on PATH, and user namespaces it may use.

`find_bwrap()` is what `sig run --sandbox` checks before anything starts (a missing bwrap is an error
with the install command, never a run without the sandbox). `probe()` really starts a sandbox with the
options sig uses (`sig doctor`, and after a failed start to say why); its answer is never stored: each
process asks again.
"""

from __future__ import annotations

import os
import shutil
import sys

from ..core.errors import ErrorCode, SigError

INSTALL_HINT = ("install bubblewrap: sudo apt-get install bubblewrap (Fedora: sudo dnf install bubblewrap; "
                "Arch: sudo pacman -S bubblewrap)")
USERNS_HINT = ("allow unprivileged user namespaces: sudo sysctl -w kernel.unprivileged_userns_clone=1 "
               "(Debian) or user.max_user_namespaces=15000; on Ubuntu 24.04+ AppArmor blocks them for "
               "unconfined programs: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or add "
               "an AppArmor profile for bwrap")
NOT_RUN = "; the command was not run"


def find_bwrap() -> str:
    """bubblewrap's path, or a SigError saying how to get it."""
    if not sys.platform.startswith("linux"):
        raise SigError(ErrorCode.NOT_AVAILABLE,
                       f"--sandbox needs Linux (bubblewrap and namespaces); this is {sys.platform}" + NOT_RUN,
                       "run sig inside a Linux VM or container; without the sandbox a program can read "
                       "what you can read")
    path = shutil.which("bwrap")
    if path is None:
        raise SigError(ErrorCode.NOT_AVAILABLE, "--sandbox needs bubblewrap (bwrap), which is not installed"
                       + NOT_RUN, INSTALL_HINT)
    return path


def probe(bwrap: str | None = None, timeout: float = 10.0) -> tuple[bool, str]:
    """(works, why not / what works): a trivial sandbox with every namespace and the seccomp filter."""
    import subprocess

    try:
        exe = bwrap or find_bwrap()
    except SigError as err:
        return False, f"{err.message} ({err.hint})"
    from .seccomp import program

    try:
        filt = program()
    except SigError as err:
        return False, err.message
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, filt)
        os.close(write_end)
        write_end = -1
        argv = [exe, "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                "--disable-userns", "--cap-drop", "ALL", "--new-session", "--die-with-parent",
                "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                "--seccomp", str(read_end), "--", "true"]
        proc = subprocess.run(argv, pass_fds=[read_end], stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"bubblewrap did not run: {exc}"
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    if proc.returncode == 0:
        return True, f"{exe}: namespaces and seccomp work"
    said = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    reason = said[-1] if said else f"exit status {proc.returncode}"
    return False, f"bubblewrap failed: {reason} ({USERNS_HINT})"


def unavailable(reason: str) -> SigError:
    """The error for a sandbox that cannot start here (the command is never run without it)."""
    return SigError(ErrorCode.NOT_AVAILABLE, f"the sandbox cannot start here: {reason}" + NOT_RUN,
                    "run `sig doctor` for details")
