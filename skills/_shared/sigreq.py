"""HTTP requests through `sig request`, so a skill's script never holds a credential.

Each call runs `sig request URL --format json --provider ID ...`: sig adds the provider's credential
(headers, query or body fields its config names), sends the request, redacts its own secrets from the
answer and prints {status, statusText, headers, body}. This module only parses that envelope.

One file for every skill that talks to an API (outlook, msteams, slack, jira-issues): each skill's
scripts/sigreq.py links here, and install.sh copies it into every installed skill, so an installed skill
stands alone.
Standard library only.

Exit codes follow sig's own: 0 ok, 1 error, 2 no provider configured, 3 a person must log in.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

EXIT_GENERAL = 1
EXIT_PROVIDER_NOT_FOUND = 2
EXIT_AUTH_REQUIRED = 3

# sig's error codes that mean "a person must log in again" (sig itself exits 3 for these or 1 for refresh).
LOGIN_CODES = ("CREDENTIAL_NOT_FOUND", "CREDENTIAL_EXPIRED", "REFRESH_FAILED")
RETRY_AFTER_CAP_S = 30.0  # a 429 is retried once when the API asks for at most this long a pause
DEFAULT_RETRY_AFTER_S = 2.0


class SkillError(Exception):
    """A failure reported as JSON: {"error": code, "message", "hint"?, "sigCode"?} and an exit code."""

    def __init__(self, code: str, message: str, hint: str = "", exit_code: int = EXIT_GENERAL,
                 sig_code: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.exit_code = exit_code
        self.sig_code = sig_code

    def to_dict(self) -> dict[str, str]:
        out = {"error": self.code, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        if self.sig_code:
            out["sigCode"] = self.sig_code
        return out


def login_hint(provider: str) -> str:
    return (f"if the provider logs in with a browser, run `sig login {provider} --mode headless --force` "
            f"(no window: it reuses the browser session); otherwise, or if that fails, ask the person to "
            f"run `sig login {provider}` in their own terminal")


def auth_required(provider: str, message: str) -> SkillError:
    return SkillError("AUTH_REQUIRED", message, login_hint(provider), EXIT_AUTH_REQUIRED)


def sig_error(code: str, message: str, hint: str, provider: str) -> SkillError:
    """A sig error as the skill reports it, keeping sig's exit-code meaning (2: provider, 3: log in)."""
    if code == "PROVIDER_NOT_FOUND":
        return SkillError("PROVIDER_NOT_FOUND", message or f'sig has no provider "{provider}"',
                          f'add the "{provider}" provider to sig\'s config (see SKILL.md, "Setup"), '
                          "then check with `sig providers`", EXIT_PROVIDER_NOT_FOUND, code)
    if code in LOGIN_CODES:
        return SkillError("AUTH_REQUIRED", message, login_hint(provider), EXIT_AUTH_REQUIRED, code)
    return SkillError("SIG_ERROR", message or "sig request failed", hint, EXIT_GENERAL, code or "GENERAL_ERROR")


class Response:
    """What the API answered, as sig relayed it (secrets already replaced by ****)."""

    def __init__(self, status: int, headers: Mapping[str, str], text: str) -> None:
        self.status = status
        self.headers = {str(k).lower(): str(v) for k, v in headers.items()}
        self.text = text

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        if not self.text.strip():
            return None
        try:
            return json.loads(self.text)
        except ValueError:
            raise SkillError("API_ERROR", f"the answer (HTTP {self.status}) is not JSON",
                             "an expired session often gets a login page instead of the API: log in again "
                             "(see SKILL.md)") from None


def find_sig() -> str | None:
    return os.environ.get("SIG_BIN") or shutil.which("sig")


def with_query(url: str, params: Mapping[str, Any] | None) -> str:
    """`url` plus `params` (None values left out), percent-encoded the way REST APIs expect ($ kept)."""
    pairs = [(k, str(v)) for k, v in (params or {}).items() if v is not None]
    if not pairs:
        return url
    return url + ("&" if urlsplit(url).query else "?") + urlencode(pairs, quote_via=quote, safe="$,:")


def api_url(base: str, path_or_link: str, api: str) -> str:
    """`base` + a path; or a whole link the API sent (its next page, say), used only when it has base's
    scheme and host: a link to anywhere else is refused, never requested."""
    if not path_or_link.startswith(("https://", "http://")):
        return base + path_or_link
    parts, home = urlsplit(path_or_link), urlsplit(base)
    if (parts.scheme, parts.netloc.lower()) != (home.scheme, home.netloc.lower()):
        raise SkillError("API_ERROR", f"{api} sent a link to another host ({parts.netloc})",
                         "report this; the link is not followed")
    return path_or_link


def _last_json_error(stderr: str) -> dict[str, Any] | None:
    for line in reversed(stderr.splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return data["error"]
    return None


class SigClient:
    """Sends requests as one sig provider. `sleep` is injectable so tests need not wait out a 429."""

    def __init__(self, provider: str, timeout: float = 30.0, sig_bin: str | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.provider = provider
        self.timeout = timeout
        self.sig_bin = sig_bin or find_sig()
        self.sleep = sleep

    def argv(self, method: str, url: str, headers: Mapping[str, str], has_body: bool) -> list[str]:
        if not self.sig_bin:
            raise SkillError("SIG_NOT_FOUND", "the sig command was not found",
                             "install sig (see its README), or set SIG_BIN to its path")
        argv = [self.sig_bin, "request", url, "--format", "json", "--method", method,
                "--provider", self.provider, "--timeout", f"{self.timeout:g}"]
        for name, value in headers.items():
            argv += ["--header", f"{name}: {value}"]
        if has_body:
            argv += ["--body", "-"]  # the body goes through stdin: no length limit, not in the process list
        return argv

    def request(self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
                json_body: Any = None, form: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None) -> Response:
        sent = {"Accept": "application/json", **(headers or {})}
        body: bytes | None = None
        if json_body is not None:
            sent["Content-Type"] = "application/json"
            body = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
        elif form is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
            body = urlencode([(k, str(v)) for k, v in form.items() if v is not None]).encode("utf-8")
        full = with_query(url, params)
        response = self._once(method.upper(), full, sent, body)
        if response.status == 429:
            wait = _retry_after(response.headers.get("retry-after"))
            if wait is None:
                raise SkillError("RATE_LIMITED", "the API is rate-limiting these requests",
                                 f"wait {response.headers.get('retry-after') or 'a minute'} seconds, then retry")
            self.sleep(wait)
            response = self._once(method.upper(), full, sent, body)
            if response.status == 429:
                raise SkillError("RATE_LIMITED", "the API is still rate-limiting after one retry",
                                 "wait a minute, then retry")
        return response

    def _once(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> Response:
        argv = self.argv(method, url, headers, body is not None)
        try:
            proc = subprocess.run(argv, input=body if body is not None else b"", capture_output=True,
                                  check=False, timeout=self.timeout + 30)
        except FileNotFoundError:
            raise SkillError("SIG_NOT_FOUND", f"cannot run {self.sig_bin}",
                             "install sig, or set SIG_BIN to its path") from None
        except subprocess.TimeoutExpired:
            raise SkillError("TIMEOUT", f"sig request did not finish in {self.timeout + 30:g}s",
                             "retry; if it keeps happening, check the network") from None
        return parse_result(proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"),
                            proc.returncode, lambda code, message, hint: sig_error(code, message, hint, self.provider))


def parse_result(stdout: str, stderr: str, returncode: int,
                 error: Callable[[str, str, str], SkillError]) -> Response:
    """What `sig request --format json` printed, as the Response it relayed. When it relayed none: the
    error sig reported as JSON on stderr, made by `error(code, message, hint)`, else a SIG_ERROR."""
    try:
        envelope = json.loads(stdout) if stdout.strip() else None
    except ValueError:
        envelope = None
    if isinstance(envelope, dict) and isinstance(envelope.get("status"), int):
        raw = envelope.get("body")
        text = raw if isinstance(raw, str) else json.dumps(raw)
        head = envelope.get("headers")
        return Response(envelope["status"], head if isinstance(head, dict) else {}, text)
    err = _last_json_error(stderr)
    if err is not None:
        raise error(str(err.get("code") or ""), str(err.get("message") or ""), str(err.get("hint") or ""))
    raise SkillError("SIG_ERROR", (stderr.strip() or f"sig exited with {returncode}")[:500],
                     "run the same `sig request` yourself to see what is wrong")


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait before the one retry; None when the API asks for longer than we are willing to wait."""
    if value is None or not value.strip():
        return DEFAULT_RETRY_AFTER_S
    try:
        seconds = float(value.strip())
    except ValueError:
        return DEFAULT_RETRY_AFTER_S  # an HTTP date: not worth parsing for one retry
    if seconds < 0:
        return DEFAULT_RETRY_AFTER_S
    return seconds if seconds <= RETRY_AFTER_CAP_S else None


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage error as JSON with exit 1 (argparse's own 2 means "no provider" here)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        emit(EXIT_GENERAL, SkillError("USAGE_ERROR", message, f"run `{self.prog} --help`").to_dict())
        sys.exit(EXIT_GENERAL)


def emit(code: int, result: Any) -> int:
    json.dump(result, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return code


def run_main(action: Callable[[], Any]) -> int:
    """Run `action`, print its JSON result (or the error) and return the exit code."""
    try:
        return emit(0, action())
    except SkillError as err:
        return emit(err.exit_code, err.to_dict())
