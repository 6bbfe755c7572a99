"""Where sig keeps things. SIG_HOME replaces ~/.sig for everything, including "~/.sig/..." paths in config."""

from __future__ import annotations

import os


def user_home() -> str:
    """$HOME (the user's home folder)."""
    return os.environ.get("HOME") or os.path.expanduser("~")


def sig_home() -> str:
    """$SIG_HOME, else ~/.sig."""
    override = os.environ.get("SIG_HOME")
    if override:
        return os.path.abspath(os.path.expanduser(override))
    return os.path.join(user_home(), ".sig")


def config_path() -> str:
    """SIG_HOME/config.yaml."""
    return os.path.join(sig_home(), "config.yaml")


def key_path() -> str:
    """SIG_HOME/encryption.key."""
    return os.path.join(sig_home(), "encryption.key")


def audit_path() -> str:
    """SIG_HOME/audit.log."""
    return os.path.join(sig_home(), "audit.log")


def cache_dir() -> str:
    """SIG_HOME/cache (the parsed config's cache)."""
    return os.path.join(sig_home(), "cache")


def expand_path(path: str) -> str:
    """Expand a bare "~", "~/" or "~\\" (not "~user"); "~/.sig" means SIG_HOME when that is set."""
    p = path.strip()
    if p == "~/.sig" or p.startswith(("~/.sig/", "~\\.sig\\")):
        return os.path.join(sig_home(), p[7:]) if len(p) > 6 else sig_home()
    if p == "~":
        return user_home()
    if p.startswith(("~/", "~\\")):
        return os.path.join(user_home(), p[2:])
    return p


def display_path(path: str) -> str:
    """A path as the user should read it: the home prefix shown as "~"."""
    home = user_home()
    if home and (path == home or path.startswith(home.rstrip("/") + "/")):
        return "~" + path[len(home.rstrip("/")) :]
    return path
