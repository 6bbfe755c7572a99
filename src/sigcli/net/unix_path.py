"""Unix socket addresses for paths of any length.

A socket address holds at most 107 bytes of path; sig's folders (SIG_HOME anywhere, test folders deep
under /tmp) can be longer. A longer path is reached through the folder's descriptor instead:
/proc/self/fd/N/name resolves to the same file for connect() and bind().
"""

from __future__ import annotations

import os

SUN_PATH_MAX = 107  # sockaddr_un.sun_path holds 108 bytes with the NUL


def short_path(path: str) -> tuple[str, int | None]:
    """(an address connect()/bind() accepts for `path`, the folder's descriptor to close afterwards or None)."""
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        return path, None
    folder_fd = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{folder_fd}/{os.path.basename(path)}", folder_fd
