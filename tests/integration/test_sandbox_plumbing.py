"""`sig run --sandbox` plumbing with the real proxy (`sig proxy start`): the run's profile reaches the proxy
and ends with the run (also when sig run is killed), failures never run the command, exit codes and
signals pass through, sig inside says plainly what it cannot do. Real bubblewrap, as root and as nobody.
Requests through the proxy are tested in test_sandbox_proxy.py."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.sandbox_rig import SandboxUser, require_bwrap

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["root", "nobody"])
def user(request: pytest.FixtureRequest) -> Iterator[SandboxUser]:
    require_bwrap()
    u = SandboxUser(unprivileged=request.param == "nobody")
    try:
        u.sig("init", "--yes", "--remote", check=0)
        u.sig("proxy", "trust", check=0)  # the CA the sandbox's clients trust (public part bound in)
        yield u
    finally:
        u.close()


@pytest.fixture
def proxy(user: SandboxUser) -> Iterator[Path]:
    """The real proxy, started as the user would; yields its log file."""
    user.sig("proxy", "start", "--port", "0", check=0)
    try:
        yield user.sig_home / "proxy" / "proxy.log"
    finally:
        user.sig("proxy", "stop")


def _run_names(log: Path) -> list[tuple[str, str]]:
    """(run name, what the log says) for each sandbox line of the proxy's log."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if " sandbox: run-" in line:
            rest = line.split(" sandbox: ", 1)[1]
            out.append((rest.split()[0], rest.split(" ", 1)[1]))
    return out


def _wait_ended(log: Path, timeout: float = 10) -> list[tuple[str, str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = _run_names(log)
        if runs and runs[-1][1] == "ended":
            return runs
        time.sleep(0.05)
    return _run_names(log)


def test_the_run_is_registered_and_ends(user: SandboxUser, proxy: Path) -> None:
    r = user.sig("run", "--sandbox", "--deny-other-hosts", "--", "true", cwd=user.mkdir("proj"))
    assert r.returncode == 0, r.stderr
    runs = _wait_ended(proxy)
    assert [what.split(" (")[0] for _n, what in runs] == ["started", "ended"]
    assert "other hosts: refuse" in runs[0][1] and "providers: all" in runs[0][1]


def test_placeholders_for_named_providers(user: SandboxUser, proxy: Path) -> None:
    token = "tok-PLACEHOLDER-REAL-77aa88bb"
    user.sig("login", "https://api.example.test", "--token-stdin", "--as", "api", input=token, check=0)
    r = user.sig("run", "--sandbox", "api", "--env", "OPENAI_API_KEY=api.token", "--", "env", cwd=user.mkdir("proj"))
    assert r.returncode == 0, r.stderr
    assert token not in r.stdout + r.stderr
    env = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    placeholder = env["SIG_API_TOKEN"]
    assert placeholder.startswith("sig-ph-") and env["OPENAI_API_KEY"] == placeholder
    assert env["SIG_API_AUTH_HEADER"] == f"Bearer {placeholder}"
    assert env["SIG_SANDBOX"] == "1" and "SIG_HOME" not in env
    assert "providers: api," in _wait_ended(proxy)[0][1]
    again = user.sig("run", "--sandbox", "api", "--", "env", cwd=user.mkdir("proj"))
    assert placeholder not in again.stdout  # a new one every run


def test_no_proxy_no_run(user: SandboxUser) -> None:
    project = user.mkdir("proj")
    r = user.sig("run", "--sandbox", "--", "touch", "ran", cwd=project)
    assert r.returncode == 1
    assert "the proxy is not running" in r.stderr and "sig proxy start" in r.stderr
    assert not (project / "ran").exists()


def test_without_bubblewrap_the_command_never_runs(user: SandboxUser, proxy: Path, tmp_path: Path
                                                    ) -> None:
    project = user.mkdir("proj")
    empty = user.mkdir("empty-bin")
    r = user.sig("run", "--sandbox", "--", "/usr/bin/touch", "ran", cwd=project, env={"PATH": str(empty)})
    assert r.returncode == 1
    assert "needs bubblewrap" in r.stderr and "apt-get install bubblewrap" in r.stderr
    assert "was not run" in r.stderr and not (project / "ran").exists()
    assert _run_names(proxy) == []


def test_broken_bubblewrap_the_command_never_runs(user: SandboxUser, proxy: Path) -> None:
    """A bwrap that fails (as with user namespaces off) ends in an error naming the fix, never a plain run."""
    fake = user.mkdir("fake-bin")
    (fake / "bwrap").write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    (fake / "bwrap").chmod(0o755)
    user.own(fake / "bwrap")
    project = user.mkdir("proj")
    r = user.sig("run", "--sandbox", "--", "/usr/bin/touch", "ran", cwd=project,
                 env={"PATH": f"{fake}:/usr/bin:/bin"})
    assert r.returncode == 1, r.stderr
    assert "the sandbox cannot start here" in r.stderr and "user namespaces" in r.stderr
    assert "Traceback" not in r.stderr and not (project / "ran").exists()


@pytest.mark.parametrize(("command", "code"), [(["sh", "-c", "exit 7"], 7), (["no-such-command-x"], 127),
                                               (["sh", "-c", "kill -TERM $$"], 143)])
def test_exit_status_passes_through(user: SandboxUser, proxy: Path, command: list[str], code: int
                                    ) -> None:
    r = user.sig("run", "--sandbox", "--", *command, cwd=user.mkdir("proj"))
    assert r.returncode == code, r.stderr
    if code == 127:
        assert "command not found: no-such-command-x" in r.stderr


def test_command_option(user: SandboxUser, proxy: Path) -> None:
    r = user.sig("run", "--sandbox", "--command", "echo $((6*7)) $SIG_SANDBOX", cwd=user.mkdir("proj"),
                 env={"SHELL": "/bin/sh"})
    assert r.returncode == 0 and r.stdout == "42 1\n", r.stderr


def test_signals_reach_the_command(user: SandboxUser, proxy: Path) -> None:
    """SIGTERM to sig run reaches the command (which cleans up and exits on its own terms)."""
    project = user.mkdir("proj")
    script = "trap 'echo cleaned > cleaned; exit 3' TERM; echo ready > ready; while :; do sleep 0.1; done"
    proc = user.popen("run", "--sandbox", "--", "sh", "-c", script, cwd=project)
    deadline = time.monotonic() + 30
    while not (project / "ready").exists() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    assert (project / "cleaned").read_text() == "cleaned\n"


def test_killed_sig_run_ends_the_sandbox(user: SandboxUser, proxy: Path) -> None:
    project = user.mkdir("proj")
    proc = user.popen("run", "--sandbox", "--", "sh", "-c", "echo $$ > pid; exec sleep 60", cwd=project)
    deadline = time.monotonic() + 30
    while not (project / "pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.communicate(timeout=10)
    assert _wait_ended(proxy)[-1][1] == "ended"  # the kernel closed the control connection: the run ends
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = subprocess.run(["pgrep", "-f", "exec sleep 60"], capture_output=True).stdout.split()
        if not alive:
            break
        time.sleep(0.1)
    assert not alive, "the sandboxed command outlived sig run"


def test_sandbox_flags_need_sandbox(user: SandboxUser) -> None:
    r = user.sig("run", "--hide", "x", "--", "true")
    assert r.returncode == 1 and "--hide works with --sandbox only" in r.stderr
    r = user.sig("run", "--sandbox", "--mount", "f", "--", "true")
    assert r.returncode == 1 and "does not go with --sandbox" in r.stderr


def test_sig_get_and_run_inside_say_plainly(user: SandboxUser, proxy: Path) -> None:
    user.sig("login", "https://api.example.test", "--token-stdin", "--as", "api", input="tok-INSIDE-12345678",
             check=0)
    sdk = f"{user.python} -c \"from sigcli import SigClient; SigClient().get_headers('api')\"; echo sdk=$?"
    r = user.sig("run", "--sandbox", "--", "sh", "-c",
                 f"sig get api; echo get=$?; sig run api -- env; echo run=$?; {sdk}", cwd=user.home)
    assert "credential values are not available inside the sandbox (sig get)" in r.stderr
    assert "(sig run)" in r.stderr and "get=1" in r.stdout and "run=1" in r.stdout
    assert "inside the sandbox (sdk: SigClient)" in r.stderr and "sdk=1" in r.stdout
    assert "tok-INSIDE-12345678" not in r.stdout + r.stderr


def test_doctor_reports_the_sandbox(user: SandboxUser) -> None:
    r = user.sig("doctor", "--format", "json")
    checks = {c["check"]: c for c in __import__("json").loads(r.stdout)["checks"]}
    assert checks["Sandbox (run --sandbox)"]["ok"] is True
    assert "namespaces and seccomp work" in checks["Sandbox (run --sandbox)"]["detail"]
    empty = user.mkdir("empty-bin")
    r = user.sig("doctor", "--format", "json", env={"PATH": str(empty)})
    checks = {c["check"]: c for c in __import__("json").loads(r.stdout)["checks"]}
    assert "not available" in checks["Sandbox (run --sandbox)"]["detail"]
    assert "apt-get install bubblewrap" in checks["Sandbox (run --sandbox)"]["detail"]


def test_sig_request_inside_goes_through_the_proxy(user: SandboxUser, proxy: Path) -> None:
    r = user.sig("run", "--sandbox", "--", "sig", "request", "http://example.invalid/inside?q=1", "--format", "body",
                 cwd=user.home)  # (nobody's `sig` is in ~/bin, under /tmp: visible from the home folder only)
    # the proxy answered (no route to example.test here: 502 from the proxy, not a failure inside)
    assert "sig proxy" in r.stdout or "sig proxy" in r.stderr, r.stdout + r.stderr


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _wait_state(pid: int, states: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    state = _state(pid)
    while state not in states and time.monotonic() < deadline:
        time.sleep(0.02)
        state = _state(pid)
    return state


def test_ctrl_z_stops_the_command_with_sig(user: SandboxUser, proxy: Path) -> None:
    """SIGTSTP (Ctrl-Z) stops sig run and the command with it; SIGCONT (fg) continues both."""
    seconds = f"30.{os.getpid()}{time.monotonic_ns() % 100000}"  # a command line no other process has
    project = user.mkdir("proj")
    proc = user.popen("run", "--sandbox", "--", "sh", "-c", f"exec sleep {seconds}", cwd=project)
    deadline = time.monotonic() + 30
    found: list[bytes] = []
    while not found and time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-xf", f"sleep {seconds}"], capture_output=True).stdout.split()
        time.sleep(0.05)
    assert found, "the command did not start"
    command = int(found[0])
    try:
        proc.send_signal(signal.SIGTSTP)
        assert _wait_state(proc.pid, "T") == "T"
        assert _wait_state(command, "T") == "T"
        proc.send_signal(signal.SIGCONT)
        assert _wait_state(command, "SR") in "SR"
        assert _wait_state(proc.pid, "SR") in "SR"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def test_a_program_under_tmp_is_refused_with_the_reason(user: SandboxUser, proxy: Path) -> None:
    """/tmp is a fresh private folder inside: a program that lives there outside would be "not found"
    inside; sig says why before anything starts, and the working directory still works."""
    outside = Path(tempfile.mkdtemp(prefix="sig-prog-"))
    try:
        prog = outside / "tool"
        prog.write_text("#!/bin/sh\necho ran\n")
        prog.chmod(0o755)
        user.own(outside, prog)
        os.chmod(outside, 0o755)
        proc = user.sig("run", "--sandbox", "--", str(prog))
        assert proc.returncode == 1, proc.stderr  # a usage error
        assert "which the sandbox replaces with an empty private folder" in proc.stderr
        assert "ran" not in proc.stdout
        assert not _run_names(proxy), "nothing started"
        inside = user.write("tool", prog.read_text(), 0o755)
        ok = user.sig("run", "--sandbox", "--", str(inside))
        assert ok.returncode == 0 and ok.stdout.strip() == "ran", ok.stderr
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def test_sig_inside_runs_from_its_install_even_under_tmp(user: SandboxUser, proxy: Path) -> None:
    """sig's own package folder is shown read-only inside (wherever it is installed), so `sig` inside the
    sandbox works even from a checkout or virtualenv under /tmp, and cannot be written to."""
    import sigcli

    package = Path(sigcli.__file__).resolve().parent
    probe = user.write("probe.py", "import os, sys\n"
                       f"p = {str(package / '__init__.py')!r}\n"
                       "print(os.path.exists(p), os.access(p, os.W_OK))\n", 0o644)
    proc = user.sig("run", "--sandbox", "--", user.python, str(probe))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "False"]
