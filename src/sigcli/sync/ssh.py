"""The transport: the system OpenSSH client (the user's ~/.ssh/config, agent and known_hosts apply).

The remote side needs only `sh`, `tar`, `mkdir`, `mv`, `chmod` and `mktemp`. One SSH connection per sync:
later commands reuse it through a ControlMaster socket in a private temp folder.
"""

from __future__ import annotations

import os
import shlex

from ..core.errors import ErrorCode, SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .remotes import Remote

EMPTY_TAR = "dd if=/dev/zero bs=1024 count=2 2>/dev/null"


class SshError(SigError):
    """A failed ssh run. The message explains it in sig's words; `ssh_output` keeps what ssh itself wrote
    on stderr (the last lines, at most 4 KiB), which the CLI shows with --verbose."""

    def __init__(self, code: str, message: str, hint: str, ssh_output: str, exit_status: int) -> None:
        super().__init__(code, message, hint)
        self.ssh_output = ssh_output[-4096:]
        self.ssh_status = exit_status


def base_expr(path: str) -> str:
    """A shell expression for the remote folder; "~" and "~/x" expand on the remote, the rest is quoted."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


READ_SCRIPT = """set -u
base={base}
if [ ! -d "$base" ]; then {empty}; exit 0; fi
cd "$base" || exit 3
set --
[ -f encryption.key ] && set -- "$@" encryption.key
[ -f config.yaml ] && set -- "$@" config.yaml
for f in credentials/*.json; do [ -f "$f" ] && set -- "$@" "$f"; done
if [ $# -eq 0 ]; then {empty}; else tar -cf - -- "$@"; fi
"""

# Everything lands in a temp folder inside the destination first; only a complete transfer is moved into
# place (rename within one filesystem), so a dropped connection or a full disk leaves nothing half-written.
WRITE_SCRIPT = """set -eu
base={base}
umask 077
mkdir -p "$base/credentials"
chmod 700 "$base" "$base/credentials" 2>/dev/null || true
tmp=$(mktemp -d "$base/.sig-sync.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
tar -xf - -C "$tmp"
if [ -f "$tmp/encryption.key" ]; then
  if [ -f "$base/encryption.key" ]; then echo "SIG-SYNC-KEY-EXISTS" >&2; exit 5; fi
  chmod 400 "$tmp/encryption.key"
  mv "$tmp/encryption.key" "$base/encryption.key"
fi
if [ -d "$tmp/credentials" ]; then
  for f in "$tmp"/credentials/*.json; do
    [ -e "$f" ] || continue
    chmod 600 "$f"
    mv -f "$f" "$base/credentials/"
  done
fi
if [ -f "$tmp/config.yaml" ]; then chmod 600 "$tmp/config.yaml"; mv -f "$tmp/config.yaml" "$base/config.yaml"; fi
echo SIG-SYNC-OK
"""


class Connection:
    """ssh invocations to one remote, sharing a master connection; close() ends it."""

    def __init__(self, remote: Remote, timeout: float = 60.0) -> None:
        import tempfile

        self.remote = remote
        self.timeout = timeout
        self._dir = tempfile.mkdtemp(prefix="sig-ssh-")
        self._used = False

    def argv(self, command: str) -> list[str]:
        """The ssh command line that runs `command` on the remote."""
        r = self.remote
        args = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=10",
                "-o", "ControlMaster=auto", "-o", f"ControlPath={self._dir}/cm", "-o", "ControlPersist=60",
                "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3"]
        # ssh finds ~/.ssh through the password database, not $HOME; use $HOME's files when they differ
        # (sig's SIG_HOME/HOME conventions, containers, tests).
        from ..config.paths import user_home

        ssh_dir = os.path.join(user_home(), ".ssh")
        if os.path.realpath(ssh_dir) != os.path.realpath(os.path.expanduser("~" + _login_name() + "/.ssh")):
            args += ["-o", f"UserKnownHostsFile={os.path.join(ssh_dir, 'known_hosts')}"]
            if os.path.exists(os.path.join(ssh_dir, "config")):
                args += ["-F", os.path.join(ssh_dir, "config")]
        if r.port:
            args += ["-p", str(r.port)]
        if r.ssh_key:
            args += ["-i", os.path.expanduser(r.ssh_key), "-o", "IdentitiesOnly=yes"]
        if r.user:
            args += ["-l", r.user]
        return [*args, "--", r.host, "sh -c " + shlex.quote(command)]

    def run(self, script: str, stdin: bytes = b"") -> bytes:
        """Run a shell script on the remote; its stdout, or SYNC_ERROR."""
        import subprocess

        self._used = True
        try:
            proc = subprocess.run(self.argv(script), input=stdin, capture_output=True, timeout=self.timeout)
        except FileNotFoundError:
            raise SigError(ErrorCode.SYNC_ERROR, "the ssh command is not installed",
                           "install the OpenSSH client (apt-get install openssh-client)") from None
        except subprocess.TimeoutExpired:
            raise SigError(ErrorCode.SYNC_ERROR, f"{self.remote.describe()} did not finish within "
                           f"{self.timeout:g}s", "check the connection and try again") from None
        if proc.returncode != 0:
            raise _explain(self.remote, proc.returncode, proc.stderr.decode("utf-8", "replace"))
        return proc.stdout

    def close(self) -> None:
        """Close the shared SSH connection."""
        import shutil
        import subprocess

        if self._used:
            try:
                subprocess.run(["ssh", "-o", f"ControlPath={self._dir}/cm", "-O", "exit", "--", self.remote.host],
                               capture_output=True, timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self._dir, ignore_errors=True)


def _login_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return ""


def _explain(remote: Remote, code: int, stderr: str) -> SshError:
    where = remote.describe()
    low = stderr.lower()

    def error(kind: str, message: str, hint: str) -> SshError:
        return SshError(kind, message, hint, stderr, code)

    if "remote host identification has changed" in low or "host key verification failed" in low:
        return error(ErrorCode.SYNC_ERROR, f"the SSH host key of {where} does not match known_hosts",
                     "if the server was really reinstalled, remove the old key with "
                     f"`ssh-keygen -R {remote.host}`; otherwise do not connect. Nothing was written")
    if "connection refused" in low or "timed out" in low or "no route to host" in low or \
            "could not resolve" in low or "connection closed" in low or "connection reset" in low:
        return error(ErrorCode.SYNC_ERROR, f"cannot reach {where} over SSH", "check that the machine is up "
                     "and that `ssh` to it works from this shell (run with --verbose to see ssh's own words)")
    if "permission denied (publickey" in low or "permission denied (" in low:
        return error(ErrorCode.SYNC_ERROR, f"SSH login to {where} was refused",
                     "check the user (--user), the key (--ssh-key) and the remote's authorized_keys "
                     "(run with --verbose to see ssh's own words)")
    if "sig-sync-key-exists" in low:
        return error(ErrorCode.SYNC_CONFLICT, f"an encryption key appeared on {where} during the sync",
                     "run the sync again")
    from ..core.text import printable

    # The remote's stderr is the remote's text: one line, its control characters shown, not obeyed.
    detail = stderr.strip().split("\n")[-1] if stderr.strip() else f"exit status {code}"
    detail = printable(detail[:300], one_line=True)
    return error(ErrorCode.SYNC_ERROR, f"the remote command on {where} failed: {detail}",
                 "check the remote path, free disk space and permissions there")
