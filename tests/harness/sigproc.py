"""Run the installed `sig` command as a subprocess with an isolated SIG_HOME and HOME."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# tests/harness/sigproc.py -> the project root is two levels above tests/.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SRC_DIR = PROJECT_ROOT / "src"

# Removed from the child's environment so the host's agent or proxy settings never leak into a test.
SCRUBBED_ENV = (
    # Agent markers (sigcli.cli.guard.AGENT_MARKERS): tests run as a person would unless they set one.
    "SIG_AGENT",
    "CLAUDECODE",
    "CLAUDE_CODE",
    "CLAUDE_CODE_ENTRYPOINT",
    "CODEX_SANDBOX",
    "CODEX_SANDBOX_NETWORK_DISABLED",
    "CURSOR_AGENT",
    "GEMINI_CLI",
    "AIDER",
    "OPENHANDS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
)

POPEN_KILL_TIMEOUT_S = 5.0


def sig_command() -> list[str]:
    """The argv prefix that runs `sig`: the installed script, else ``python -m sigcli``."""
    # Look next to the running interpreter first (an un-activated venv), then on PATH.
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("sig", path=search)
    if found:
        return [found]
    return [sys.executable, "-m", "sigcli"]


def _needs_src_on_path(cmd: Sequence[str]) -> bool:
    return list(cmd[1:3]) == ["-m", "sigcli"] and importlib.util.find_spec("sigcli") is None


@dataclass
class Result:
    """Outcome of one `sig` run."""

    args: list[str]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout parsed as JSON."""
        try:
            return json.loads(self.out)
        except json.JSONDecodeError as exc:
            raise AssertionError(
                f"sig {self.args!r} stdout is not JSON ({exc}):\n{self.out}\n--- stderr ---\n{self.err}"
            ) from exc

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


class Sig:
    """Runs `sig` with SIG_HOME=``home`` and HOME=``user_home`` (both temp dirs), NO_COLOR=1,
    and SIG_AGENT / *_PROXY variables removed. Every run's stderr is kept in ``stderr_log``."""

    def __init__(self, home: Path, user_home: Path, cmd: Sequence[str] | None = None) -> None:
        self.home = Path(home)
        self.user_home = Path(user_home)
        self.user_home.mkdir(parents=True, exist_ok=True)
        self.cmd: list[str] = list(cmd) if cmd is not None else sig_command()
        self.stderr_log: list[str] = []
        self.results: list[Result] = []
        self._procs: list[subprocess.Popen[str]] = []

        env = dict(os.environ)
        for name in SCRUBBED_ENV:
            env.pop(name, None)
        env["SIG_HOME"] = str(self.home)
        env["HOME"] = str(self.user_home)
        env["NO_COLOR"] = "1"
        env["PYTHONIOENCODING"] = "utf-8"
        if _needs_src_on_path(self.cmd):
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC_DIR), env.get("PYTHONPATH", "")) if p)
        self.env: dict[str, str] = env

    def _env(self, extra: Mapping[str, str | None] | None) -> dict[str, str]:
        env = dict(self.env)
        for name, value in (extra or {}).items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def argv(self, *args: str) -> list[str]:
        return [*self.cmd, *map(str, args)]

    def add_providers(self, entries: str) -> None:
        """Write provider entries (YAML as it goes under `providers:`, indented two spaces) into the
        config `sig init` wrote."""
        cfg = self.home / "config.yaml"
        text = cfg.read_text()
        assert "providers: {}\n" in text, "add_providers needs the config as `sig init` writes it"
        cfg.write_text(text.replace("providers: {}\n", "providers:\n" + entries))

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        env: Mapping[str, str | None] | None = None,
        timeout: float = 30,
        check: int | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> Result:
        """Run ``sig *args``. ``env`` entries are merged into the environment (None removes one).
        With ``check`` set, assert the exit code equals it."""
        argv = self.argv(*args)
        try:
            proc = subprocess.run(
                argv,
                input=input,
                env=self._env(env),
                cwd=cwd if cwd is not None else self.user_home,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                timeout=timeout,
                stdin=None if input is not None else subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            err = _text(exc.stderr)
            self.stderr_log.append(err)
            raise AssertionError(
                f"sig {list(args)!r} timed out after {timeout}s\n--- stdout ---\n{_text(exc.stdout)}"
                f"\n--- stderr ---\n{err}"
            ) from exc
        result = Result(args=[str(a) for a in args], code=proc.returncode, out=proc.stdout, err=proc.stderr)
        self.stderr_log.append(result.err)
        self.results.append(result)
        if check is not None and result.code != check:
            raise AssertionError(
                f"sig {result.args!r} exited {result.code}, expected {check}\n"
                f"--- stdout ---\n{result.out}\n--- stderr ---\n{result.err}"
            )
        return result

    def popen(
        self, *args: str, env: Mapping[str, str | None] | None = None, **kw: Any
    ) -> subprocess.Popen[str]:
        """Start ``sig *args`` with pipes for stdin/stdout/stderr (text mode). Extra keyword arguments
        go to Popen. Processes still running at ``close()`` are killed."""
        options: dict[str, Any] = {
            "stdin": subprocess.PIPE,
            "stdout": subprocess.PIPE,
            "stderr": subprocess.PIPE,
            "text": True,
            "encoding": "utf-8",
            "errors": "replace",
            "cwd": self.user_home,
        }
        options.update(kw)
        proc: subprocess.Popen[str] = subprocess.Popen(self.argv(*args), env=self._env(env), **options)
        self._procs.append(proc)
        return proc

    def finish(self, proc: subprocess.Popen[str], input: str | None = None, timeout: float = 30) -> Result:
        """Wait for a ``popen`` process and turn it into a Result (its stderr goes to ``stderr_log``)."""
        if proc in self._procs:
            self._procs.remove(proc)
        try:
            out, err = proc.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate(timeout=POPEN_KILL_TIMEOUT_S)
            self.stderr_log.append(_text(err))
            raise AssertionError(f"sig {proc.args!r} did not finish within {timeout}s") from None
        args = [str(a) for a in proc.args[len(self.cmd) :]] if isinstance(proc.args, list) else []
        result = Result(args=args, code=proc.returncode, out=_text(out), err=_text(err))
        self.stderr_log.append(result.err)
        self.results.append(result)
        return result

    @property
    def all_stderr(self) -> str:
        return "\n".join(self.stderr_log)

    def assert_no_secret(self, *secrets: str) -> None:
        """Assert none of ``secrets`` appears in any stderr captured so far."""
        text = self.all_stderr
        leaked = [s for s in secrets if s and s in text]
        assert not leaked, f"secret(s) {leaked!r} found in captured stderr"

    def close(self) -> None:
        """Kill any ``popen`` process that is still running."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            try:
                _, err = proc.communicate(timeout=POPEN_KILL_TIMEOUT_S)
            except (subprocess.TimeoutExpired, ValueError, OSError):
                continue
            if err:
                self.stderr_log.append(_text(err))
        self._procs.clear()

    def __repr__(self) -> str:
        return f"Sig(home={str(self.home)!r}, cmd={self.cmd!r})"


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return data
