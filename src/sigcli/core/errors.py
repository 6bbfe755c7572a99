"""One error type for the whole tool: a code, a message and a hint that says what to run next."""

from __future__ import annotations


class ErrorCode:
    """Error codes (README "Exit codes"). Plain strings so they serialise as themselves."""

    GENERAL_ERROR = "GENERAL_ERROR"
    USAGE_ERROR = "USAGE_ERROR"
    PROVIDER_NOT_FOUND = "PROVIDER_NOT_FOUND"
    CREDENTIAL_NOT_FOUND = "CREDENTIAL_NOT_FOUND"
    CREDENTIAL_EXPIRED = "CREDENTIAL_EXPIRED"
    CREDENTIAL_TYPE_MISMATCH = "CREDENTIAL_TYPE_MISMATCH"
    REFRESH_FAILED = "REFRESH_FAILED"
    BROWSER_LAUNCH_ERROR = "BROWSER_LAUNCH_ERROR"
    BROWSER_TIMEOUT = "BROWSER_TIMEOUT"
    BROWSER_UNAVAILABLE = "BROWSER_UNAVAILABLE"
    CONFIG_ERROR = "CONFIG_ERROR"
    STORAGE_ERROR = "STORAGE_ERROR"
    MANUAL_SETUP_REQUIRED = "MANUAL_SETUP_REQUIRED"
    REMOTE_NOT_FOUND = "REMOTE_NOT_FOUND"
    SYNC_CONFLICT = "SYNC_CONFLICT"
    SYNC_ERROR = "SYNC_ERROR"
    NOT_AVAILABLE = "NOT_AVAILABLE"
    COMMAND_NOT_FOUND = "COMMAND_NOT_FOUND"


# Exit codes (README "Exit codes"): 0 ok, 1 general, 2 provider not found, 3 credential not found, 4 remote not found.
EXIT_OK = 0
EXIT_GENERAL = 1
EXIT_PROVIDER_NOT_FOUND = 2
EXIT_CREDENTIAL_NOT_FOUND = 3
EXIT_REMOTE_NOT_FOUND = 4

_EXIT_BY_CODE = {
    ErrorCode.PROVIDER_NOT_FOUND: EXIT_PROVIDER_NOT_FOUND,
    ErrorCode.CREDENTIAL_NOT_FOUND: EXIT_CREDENTIAL_NOT_FOUND,
    # An expired credential that cannot be renewed needs the same fix as a missing one: sig login.
    ErrorCode.CREDENTIAL_EXPIRED: EXIT_CREDENTIAL_NOT_FOUND,
    # REFRESH_FAILED surfaces only when the stored credential is expired and renewing it failed (a
    # still-valid one is used as it is): it is that same case. Both have the same fix, "sig login".
    ErrorCode.REFRESH_FAILED: EXIT_CREDENTIAL_NOT_FOUND,
    ErrorCode.REMOTE_NOT_FOUND: EXIT_REMOTE_NOT_FOUND,
}


def exit_code_for(code: str) -> int:
    """The exit code of an error code (README "Exit codes")."""
    return _EXIT_BY_CODE.get(code, EXIT_GENERAL)


class SigError(Exception):
    """An expected failure. Its text never holds a secret: callers build it from names, not values."""

    def __init__(self, code: str, message: str, hint: str = "", exit_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self._exit_status = exit_status  # a child's status `sig run` passes on (e.g. 127), else by code

    @property
    def exit_code(self) -> int:
        """The process exit code for this error."""
        return self._exit_status if self._exit_status is not None else exit_code_for(self.code)

    def to_dict(self) -> dict[str, str]:
        """{code, message, hint}, as `--format json` prints an error."""
        return {"code": self.code, "message": self.message, "hint": self.hint}


def usage_error(message: str, hint: str = "") -> SigError:
    """A USAGE_ERROR with its hint."""
    return SigError(ErrorCode.USAGE_ERROR, message, hint)
