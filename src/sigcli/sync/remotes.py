"""SSH remotes: parsing `host` / `user@host` / `ssh://user@host:port/path`, validation, and the config entry."""

from __future__ import annotations

from ..core.errors import ErrorCode, SigError, usage_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]")
_USER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


class Remote:
    """An SSH remote: host, user, port, sig folder, key."""

    def __init__(self, name: str, host: str, user: str | None = None, port: int | None = None,
                 path: str | None = None, ssh_key: str | None = None) -> None:
        self.name, self.host, self.user, self.port, self.path, self.ssh_key = name, host, user, port, path, ssh_key

    @property
    def base(self) -> str:
        """The sig folder on the remote (default ~/.sig)."""
        return self.path or "~/.sig"

    def describe(self) -> str:
        """user@host:port, for messages."""
        who = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{who}{self.host}{port}"

    def to_config(self) -> dict[str, Any]:
        """The remote's config entry."""
        out: dict[str, Any] = {"type": "ssh", "host": self.host}
        if self.user:
            out["user"] = self.user
        if self.port:
            out["port"] = self.port
        if self.path:
            out["path"] = self.path
        if self.ssh_key:
            out["sshKey"] = self.ssh_key
        return out

    @classmethod
    def from_config(cls, name: str, entry: dict[str, Any]) -> Remote:
        """A Remote from its config entry."""
        port = entry.get("port")
        return cls(name, str(entry.get("host") or ""), entry.get("user") or None,
                   int(port) if isinstance(port, int) or (isinstance(port, str) and port.isdigit()) else None,
                   entry.get("path") or None, entry.get("sshKey") or None)


def check_host(host: str) -> str:
    """The host, or a usage error for one ssh could take as an option."""
    if not host or host.startswith("-") or not set(host) <= _HOST_CHARS:
        raise usage_error(f'"{host}" is not a host name', "use a host name or address, e.g. ci.example.com")
    return host


def check_user(user: str) -> str:
    """The user name, or a usage error for one ssh could take as an option."""
    if not user or user.startswith("-") or not set(user) <= _USER_CHARS:
        raise usage_error(f'"{user}" is not a user name', "use letters, digits, '.', '_' and '-'")
    return user


def check_path(path: str) -> str:
    """The remote folder, or a usage error for one a shell could misread."""
    if not path or any(c in path for c in "\0\n\r") or path.startswith("-"):
        raise usage_error(f'"{path}" is not a usable remote path', "give the folder of sig on the remote, e.g. ~/.sig")
    return path


def parse_target(name: str, target: str, user: str | None, port: str | None, path: str | None,
                 ssh_key: str | None) -> Remote:
    """`host`, `user@host`, or `ssh://user@host[:port][/path]`; explicit options win over the URL's parts."""
    t_user = t_port = t_path = None
    host = target
    if target.startswith("ssh://"):
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(target)
        try:
            t_port = parts.port
        except ValueError:
            raise usage_error(f'"{target}" has an invalid port', "e.g. ssh://deploy@ci.example.com:2222/path") from None
        host = parts.hostname or ""
        t_user = unquote(parts.username) if parts.username else None
        t_path = unquote(parts.path) if parts.path not in ("", "/") else None
        if t_path and t_path.startswith("/~"):
            t_path = t_path[1:]  # ssh://host/~/x means ~/x on the remote
    elif "@" in target:
        t_user, _, host = target.rpartition("@")
    final_port = None
    if port is not None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise usage_error(f'"{port}" is not a port number', "e.g. --port 2222")
        final_port = int(port)
    elif t_port:
        final_port = t_port
    final_user = user or t_user
    final_path = path or t_path
    return Remote(name, check_host(host), check_user(final_user) if final_user else None, final_port,
                  check_path(final_path) if final_path else None, ssh_key)


def get_remote(remotes: dict[str, Any], name: str | None) -> Remote:
    """The remote named (or the only one when none is named); REMOTE_NOT_FOUND or USAGE_ERROR otherwise."""
    if not remotes:
        raise SigError(ErrorCode.REMOTE_NOT_FOUND, "no remotes are configured",
                       "add one: sig remote add <name> <host|ssh://user@host[:port][/path]>")
    if name is None:
        if len(remotes) > 1:
            raise SigError(ErrorCode.USAGE_ERROR, f"several remotes are configured ({', '.join(remotes)})",
                           "name the one to use, e.g. sig sync push " + next(iter(remotes)))
        name = next(iter(remotes))
    if name not in remotes:
        raise SigError(ErrorCode.REMOTE_NOT_FOUND, f'no remote named "{name}"', "run `sig remote list`")
    return Remote.from_config(name, remotes[name])
