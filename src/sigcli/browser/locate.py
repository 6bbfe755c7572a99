"""Find the Chrome / Edge / Chromium binary a login drives. No browser is ever downloaded."""

from __future__ import annotations

import os
import sys

from ..core.errors import ErrorCode, SigError

CHANNELS = {
    "chrome": ("google-chrome", "google-chrome-stable", "chrome"),
    "msedge": ("microsoft-edge", "microsoft-edge-stable", "msedge"),
    "chromium": ("chromium", "chromium-browser"),
}
MAC_PATHS = {
    "chrome": "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    "msedge": "/Applications/Microsoft Edge.app/Contents/MacOS/Microsoft Edge",
    "chromium": "/Applications/Chromium.app/Contents/MacOS/Chromium",
}
INSTALL_HINT = ("install Chromium (Debian/Ubuntu: apt-get install chromium) or Chrome, or set browser.execPath "
                "in ~/.sig/config.yaml; without a browser use sig login URL --token-stdin | --cookie-stdin, "
                "or sig sync pull")


def detect_browser(channel: str | None = None) -> str:
    """Path of an installed Chrome, Edge or Chromium (preferred channel first), or ""."""
    import shutil

    order = [channel] if channel in CHANNELS else []
    order += [c for c in ("chrome", "msedge", "chromium") if c not in order]
    for name in order:
        if sys.platform == "darwin" and os.path.exists(MAC_PATHS[name]):
            return MAC_PATHS[name]
        for binary in CHANNELS[name]:
            found = shutil.which(binary)
            if found:
                return found
    for fixed in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/snap/bin/chromium"):
        if os.access(fixed, os.X_OK):
            return fixed
    return ""


def resolve_executable(browser: dict[str, object]) -> str:
    """browser.execPath when set (it must work), else the channel's browser, else any installed one."""
    configured = str(browser.get("execPath") or "")
    if configured:
        path = os.path.expanduser(configured)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise SigError(ErrorCode.BROWSER_LAUNCH_ERROR,
                           f"browser.execPath {configured} is not an executable file",
                           "point browser.execPath at Chrome/Chromium/Edge, or remove it to let sig look")
        return path
    found = detect_browser(str(browser.get("channel") or "") or None)
    if not found:
        raise SigError(ErrorCode.BROWSER_LAUNCH_ERROR, "no Chrome, Edge or Chromium found on this machine",
                       INSTALL_HINT)
    return found


def has_display() -> bool:
    """Can a visible window show up here? (macOS and Windows always; elsewhere X11 or Wayland.)"""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
