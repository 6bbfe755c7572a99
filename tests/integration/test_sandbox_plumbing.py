"""`sig run --sandbox` plumbing against a STAND-IN of the proxy's sandbox socket (harness/sandbox_standin.py):
the listening socket leaves the sandbox and is served outside, the run's profile is sent, the run's end
closes everything, failures never run the command, exit codes and signals pass through. Real bubblewrap,
as root and as nobody. The real proxy's side is tested in test_sandbox_proxy.py."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.sandbox_rig import SandboxUser, require_bwrap
from harness.sandbox_standin import StandInProxy

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
def standin(user: SandboxUser) -> Iterator[StandInProxy]:
    s = StandInProxy(user.sig_home / "proxy", owner=user.uid if user.unprivileged else None)
    try:
        yield s
    finally:
        s.close()


def test_requests_reach_the_proxy_through_the_passed_socket(user: SandboxUser, standin: StandInProxy) -> None:
    project = user.mkdir("proj")
    r = user.sig("run", "--sandbox", "--", "curl", "-s", "-m", "5", "http://example.test/hello", cwd=project)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "stand-in saw: GET http://example.test/hello HTTP/1.1\n"
    assert standin.seen == ["GET http://example.test/hello HTTP/1.1"]
    profile = standin.profiles[0]
    assert profile["kind"] == "sandbox" and profile["otherHosts"] == "mitm" and profile["providers"] is None
    assert profile["placeholders"] == {} and profile["name"].startswith("run-")
    assert standin.closed.wait(10)  # the run's end closed its control connection


def test_profile_follows_flags_and_config(user: SandboxUser, standin: StandInProxy) -> None:
    cfg = user.sig_home / "config.yaml"
    cfg.write_text(cfg.read_text() + "sandbox:\n  allowHosts: [pypi.org]\n  allowTcp: ['db.internal:5432']\n")
    r = user.sig("run", "--sandbox", "--allow-host", "*.pythonhosted.org", "--allow-tcp", "cache:6379", "--",
                 "true", cwd=user.mkdir("proj"))
    assert r.returncode == 0, r.stderr
    p = standin.profiles[0]
    assert p["otherHosts"] == "refuse" and p["allowHosts"] == ["pypi.org", "*.pythonhosted.org"]
    assert p["tcp"] == ["db.internal:5432", "cache:6379"]


def test_placeholders_for_named_providers(user: SandboxUser, standin: StandInProxy) -> None:
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
    p = standin.profiles[0]
    assert p["providers"] == ["api"] and p["placeholders"] == {placeholder: ["api", "token"]}
    again = user.sig("run", "--sandbox", "api", "--", "env", cwd=user.mkdir("proj"))
    assert placeholder not in again.stdout  # a new one every run


def test_no_proxy_no_run(user: SandboxUser) -> None:
    project = user.mkdir("proj")
    r = user.sig("run", "--sandbox", "--", "touch", "ran", cwd=project)
    assert r.returncode == 1
    assert "the proxy is not running" in r.stderr and "sig proxy start" in r.stderr
    assert not (project / "ran").exists()


def test_refused_by_the_proxy_no_run(user: SandboxUser) -> None:
    s = StandInProxy(user.sig_home / "proxy", refuse="profile rejected",
                     owner=user.uid if user.unprivileged else None)
    try:
        project = user.mkdir("proj")
        r = user.sig("run", "--sandbox", "--", "touch", "ran", cwd=project)
        assert r.returncode == 1 and "profile rejected" in r.stderr
        assert not (project / "ran").exists()
    finally:
        s.close()


def test_without_bubblewrap_the_command_never_runs(user: SandboxUser, standin: StandInProxy, tmp_path: Path
                                                    ) -> None:
    project = user.mkdir("proj")
    empty = user.mkdir("empty-bin")
    r = user.sig("run", "--sandbox", "--", "/usr/bin/touch", "ran", cwd=project, env={"PATH": str(empty)})
    assert r.returncode == 1
    assert "needs bubblewrap" in r.stderr and "apt-get install bubblewrap" in r.stderr
    assert "was not run" in r.stderr and not (project / "ran").exists()
    assert standin.profiles == []


def test_broken_bubblewrap_the_command_never_runs(user: SandboxUser, standin: StandInProxy) -> None:
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
def test_exit_status_passes_through(user: SandboxUser, standin: StandInProxy, command: list[str], code: int
                                    ) -> None:
    r = user.sig("run", "--sandbox", "--", *command, cwd=user.mkdir("proj"))
    assert r.returncode == code, r.stderr
    if code == 127:
        assert "command not found: no-such-command-x" in r.stderr


def test_command_option(user: SandboxUser, standin: StandInProxy) -> None:
    r = user.sig("run", "--sandbox", "--command", "echo $((6*7)) $SIG_SANDBOX", cwd=user.mkdir("proj"),
                 env={"SHELL": "/bin/sh"})
    assert r.returncode == 0 and r.stdout == "42 1\n", r.stderr


def test_signals_reach_the_command(user: SandboxUser, standin: StandInProxy) -> None:
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


def test_killed_sig_run_ends_the_sandbox(user: SandboxUser, standin: StandInProxy) -> None:
    project = user.mkdir("proj")
    proc = user.popen("run", "--sandbox", "--", "sh", "-c", "echo $$ > pid; exec sleep 60", cwd=project)
    deadline = time.monotonic() + 30
    while not (project / "pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.communicate(timeout=10)
    assert standin.closed.wait(10)  # the kernel closed the control connection: the proxy ends the run
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


def test_sig_get_and_run_inside_say_plainly(user: SandboxUser, standin: StandInProxy) -> None:
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


def test_sig_request_inside_goes_through_the_proxy(user: SandboxUser, standin: StandInProxy) -> None:
    r = user.sig("run", "--sandbox", "--", "sig", "request", "http://example.test/inside?q=1", "--format", "body",
                 cwd=user.home)  # (nobody's `sig` is in ~/bin, under /tmp: visible from the home folder only)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "stand-in saw: GET http://example.test/inside?q=1 HTTP/1.1\n"
