"""The agent guard: the one gate every raw secret value passes before sig prints it.

One rule for every command that can show a value in clear (`get --no-redaction`, `run --no-redaction`,
`request --no-redaction`, and later the vault's `secrets get/download`): when an AI agent runs sig, raw
output needs a person to say yes out of band, on the controlling terminal (/dev/tty), which the agent
cannot type into. There is no flag or variable that skips the question: an agent can pass any flag and
set any variable, so such a switch would be a bypass, not a confirmation.

What this stops is an agent asking for a value by accident or by habit (skills written for the original
tell agents to run `sig get --no-redaction`). It does not stop a program that works around sig (unsets the
markers, reads SIG_HOME); only running it in a sandbox does.
"""

from __future__ import annotations

import os

from ..core.errors import ErrorCode, SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .app import App

# Variables agents set in the shells they run commands in. SIG_AGENT=1 lets any other agent opt in.
AGENT_MARKERS = (
    "SIG_AGENT", "CLAUDECODE", "CLAUDE_CODE", "CLAUDE_CODE_ENTRYPOINT", "CODEX_SANDBOX",
    "CODEX_SANDBOX_NETWORK_DISABLED", "CURSOR_AGENT", "GEMINI_CLI", "AIDER", "OPENHANDS",
)
# How long the question waits for a person before it counts as "no".
CONFIRM_TIMEOUT_S = 60.0
AUDIT_ACTION = "raw_access"


def agent_markers(environ: Mapping[str, str] | None = None) -> list[str]:
    """The agent markers set (to anything but "", "0") in `environ` (default: this process's)."""
    env = os.environ if environ is None else environ
    return [m for m in AGENT_MARKERS if env.get(m) not in (None, "", "0")]


def agent_detected(environ: Mapping[str, str] | None = None) -> bool:
    """Whether an AI agent's marker variable is set."""
    return bool(agent_markers(environ))


def require_person(app: App, command: str, providers: Sequence[str] = (), target: str | None = None) -> None:
    """Return when raw values may be printed for `command` (e.g. "run --no-redaction"); raise otherwise.

    Without an agent marker this returns at once. Under an agent it asks on /dev/tty and returns only on a
    "y"/"yes" typed there; no terminal, another answer or CONFIRM_TIMEOUT_S of silence refuse (exit 1).
    Each decision taken under an agent is written to the audit log (names only, never a value).
    """
    markers = agent_markers()
    if not markers:
        return
    what = ", ".join(f'"{p}"' for p in providers) or (target or "the credentials")
    question = (f"\nsig: a program run by an AI agent ({markers[0]} is set) asks to print the raw secret values "
                f"of {what} (sig {command}).\nAllow it? Type y and Enter to allow [y/N, "
                f"{int(CONFIRM_TIMEOUT_S)} s]: ")
    verdict = _ask_terminal(question, CONFIRM_TIMEOUT_S)
    meta: dict[str, object] = {"command": command, "agentMarkers": markers, "providers": list(providers)}
    if target is not None:
        meta["target"] = target
    if verdict == "yes":
        app.audit(AUDIT_ACTION, "success", _first(providers), {**meta, "approvedBy": "terminal"})
        app.say("sig: allowed by the person at the terminal.")
        return
    app.audit(AUDIT_ACTION, "failure", _first(providers), {**meta, "refused": verdict})
    why = {"no-terminal": "no person could be asked (no terminal)", "timeout": "nobody answered in time",
           "no": "the person at the terminal said no"}[verdict]
    raise SigError(
        ErrorCode.GENERAL_ERROR,
        f"raw secret values are not printed for an AI agent without a person's yes at the terminal: {why}",
        "let the credential be used without showing it: `sig run P -- cmd` (output redacted), "
        "`sig request URL` or `sig proxy start`; or run the command yourself in a terminal",
    )


def ask_person(question: str, timeout: float = CONFIRM_TIMEOUT_S) -> str:
    """The guard's question on the controlling terminal, for other changes that need a person's yes under
    an agent (e.g. `sig config set` of where a credential may go): "yes", "no", "timeout", "no-terminal"."""
    return _ask_terminal(question, timeout)


def _first(providers: Sequence[str]) -> str | None:
    return providers[0] if len(providers) == 1 else None


def _ask_terminal(question: str, timeout: float) -> str:
    """"yes", "no", "timeout" or "no-terminal". Reads the controlling terminal, never stdin (which the
    agent may feed), and drops whatever was typed before the question appeared."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return "no-terminal"
    try:
        try:
            import termios

            termios.tcflush(fd, termios.TCIFLUSH)
        except (ImportError, OSError):
            pass
        os.write(fd, question.encode("utf-8", "replace"))
        answer = _read_line(fd, timeout)
        if answer is None:
            os.write(fd, b"\n")
            return "timeout"
        return "yes" if answer.strip().lower() in ("y", "yes") else "no"
    except OSError:
        return "no-terminal"
    finally:
        os.close(fd)


def _read_line(fd: int, timeout: float) -> str | None:
    """One line from the terminal, None on timeout. Works whether the terminal is in line mode or (under
    a full-screen program such as an agent's UI) in raw mode, where keys arrive one by one."""
    import select
    import time

    deadline = time.monotonic() + timeout
    data = b""
    while len(data) < 256:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _w, _x = select.select([fd], [], [], left)
        if not ready:
            return None
        chunk = os.read(fd, 64)
        if not chunk:
            break
        data += chunk
        if b"\n" in chunk or b"\r" in chunk:
            break
    return data.replace(b"\r", b"\n").split(b"\n")[0].decode("utf-8", "replace")
