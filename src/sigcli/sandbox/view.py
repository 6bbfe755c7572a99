"""What the sandboxed program sees of the filesystem: the `View`, worked out from the machine.

The whole filesystem read-only; the working directory (and `--allow-write` paths) read-write; a private
/tmp, /var/tmp and /run (the user's runtime directory, D-Bus, Docker's and other daemons' sockets, and
/run/secrets live there); sig's home and the well-known secret stores replaced by an empty read-only
folder (a file: by an empty one). A hidden path is hidden under every name the machine gives it: its
real path (a symlink is followed) and every other mount of the same filesystem that shows it (a bind
mount of /home elsewhere would otherwise show it again).

Inside the writable places, files that would run code outside the sandbox later stay read-only: shell
start-up files, `~/.local/bin`, git's hooks and config of the working directory (a hook or a
`core.fsmonitor` line written by the program would run the next time the user runs git).

Everything here reads the machine (realpath, stat, /proc/self/mountinfo); `bwrap.py` turns the View
into arguments without reading anything.
"""

from __future__ import annotations

import os

from ..core.errors import ErrorCode, SigError

# The secret stores hidden by default (README "Agent sandbox" lists them; `sandbox.show` keeps one visible).
SECRET_STORES = (
    "~/.ssh", "~/.gnupg", "~/.aws", "~/.azure", "~/.config/gcloud", "~/.kube", "~/.docker/config.json",
    "~/.config/gh", "~/.config/hub", "~/.netrc", "~/.git-credentials", "~/.config/git/credentials",
    "~/.npmrc", "~/.yarnrc.yml", "~/.pypirc", "~/.cargo/credentials", "~/.cargo/credentials.toml",
    "~/.gem/credentials", "~/.terraform.d/credentials.tfrc.json", "~/.vault-token", "~/.password-store",
    "~/.local/share/keyrings", "~/.config/op", "~/.op",
    # browser profiles: cookies and saved passwords
    "~/.config/google-chrome", "~/.config/google-chrome-beta", "~/.config/chromium", "~/.config/BraveSoftware",
    "~/.config/microsoft-edge", "~/.config/vivaldi", "~/.config/opera", "~/.mozilla", "~/snap/chromium",
    "~/snap/firefox", "~/.var/app/org.mozilla.firefox", "~/.var/app/org.chromium.Chromium",
    "~/.var/app/com.google.Chrome",
)
# Fresh, private tmpfs: nothing of the machine's shows there (sockets, other programs' temp files).
PRIVATE_DIRS = ("/tmp", "/var/tmp", "/run", "/var/run")
# Replaced by bubblewrap itself (a minimal /dev, the sandbox's own /proc).
SYSTEM_DIRS = ("/dev", "/proc")
# Relative to HOME: read by a shell or put on PATH outside the sandbox; kept read-only when HOME is writable.
HOME_STARTUP = (
    ".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile", ".zshrc", ".zshenv", ".zprofile",
    ".zlogin", ".zlogout", ".config/fish", ".config/nushell", ".gitconfig", ".config/git", ".inputrc",
    ".pam_environment", ".config/environment.d", ".config/autostart", ".config/systemd", ".xprofile",
    ".xinitrc", ".xsession", ".local/bin", "bin", ".ssh/rc",
)
# Relative to each writable folder: run by git (hooks, `core.fsmonitor`, `core.sshCommand` …).
REPO_STARTUP = (".git/hooks", ".git/config")
CERT_DIR = "/run/sig"  # where the proxy's CA files appear inside (public certificates only)


class View:
    """The filesystem as the sandbox shows it (a plain class: dataclasses cost ~14 ms to import)."""

    __slots__ = ("cwd", "files", "hidden_dirs", "hidden_files", "notes", "private", "read_only", "writable")

    def __init__(self, cwd: str, writable: tuple[str, ...] = (), read_only: tuple[str, ...] = (),
                 hidden_dirs: tuple[str, ...] = (), hidden_files: tuple[str, ...] = (),
                 files: tuple[tuple[str, str], ...] = (), private: tuple[str, ...] = PRIVATE_DIRS,
                 notes: tuple[str, ...] = ()) -> None:
        self.cwd = cwd
        self.writable = writable  # read-write besides cwd (real paths)
        self.read_only = read_only  # inside a writable place, kept read-only
        self.hidden_dirs = hidden_dirs  # an empty read-only folder laid over each
        self.hidden_files = hidden_files  # /dev/null laid over each
        self.files = files  # (host path, path inside), read-only
        self.private = private  # fresh tmpfs
        self.notes = notes  # what the user should know (printed as warnings)


def under(path: str, root: str) -> bool:
    """`path` is `root` or inside it (both absolute and normalised)."""
    return path == root or root == "/" or path.startswith(root.rstrip("/") + "/")


def visible(path: str, view: View) -> bool:
    """Whether `path` (real) shows in the sandbox at all (before hiding): private and system dirs show
    nothing of the machine, except what is bound into them."""
    if any(under(path, w) for w in (view.cwd, *view.writable)):
        return True
    return not any(under(path, d) for d in (*view.private, *SYSTEM_DIRS))


def _real(path: str) -> str:
    return os.path.realpath(path)


def _expand(path: str, home: str, cwd: str = "") -> str:
    """`~/x` under `home`, `~/.sig/x` under SIG_HOME (as everywhere in sig), relative to `cwd` otherwise."""
    from ..config.paths import expand_path

    p = path.strip()
    if p.startswith("~/") and not p.startswith("~/.sig") and home:
        return os.path.normpath(os.path.join(home, p[2:]))
    return os.path.normpath(os.path.join(cwd or os.getcwd(), expand_path(p)))


# -- the mount table ------------------------------------------------------------------------------------

def _unescape(field_: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo."""
    if "\\" not in field_:
        return field_
    out, i = [], 0
    while i < len(field_):
        if field_[i] == "\\" and i + 4 <= len(field_) and field_[i + 1:i + 4].isdigit():
            out.append(chr(int(field_[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field_[i])
            i += 1
    return "".join(out)


def read_mounts(path: str = "/proc/self/mountinfo") -> list[tuple[str, str, str]]:
    """(device, root inside the filesystem, mount point) of every mount, in table order."""
    mounts = []
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 5:
                    mounts.append((parts[2], _unescape(parts[3]), _unescape(parts[4])))
    except OSError:
        pass
    return mounts


def aliases(path: str, mounts: list[tuple[str, str, str]]) -> list[str]:
    """Other names of `path` (real) through other mounts of its filesystem: e.g. /home bind-mounted at
    /mnt/home shows /home/u/.sig again as /mnt/home/u/.sig. Pure (the table is given)."""
    own = None
    for mount in mounts:  # the last mount covering the path is the one that shows it
        if under(path, mount[2]):
            own = mount if own is None or len(mount[2]) >= len(own[2]) else own
    if own is None:
        return []
    device, root, point = own
    rel = path[len(point.rstrip("/")):] if point != "/" else path
    inside = (root.rstrip("/") + rel) or "/"
    out = []
    for dev2, root2, point2 in mounts:
        if dev2 != device or point2 == point:
            continue
        if under(inside, root2):  # this mount shows a folder holding the path
            tail = inside[len(root2.rstrip("/")):] if root2 != "/" else inside
            out.append(os.path.normpath(point2.rstrip("/") + tail) if point2 != "/" else tail)
        elif under(root2, inside):  # this mount shows something inside the path: all of it hidden
            out.append(point2)
    return [p for p in dict.fromkeys(out) if p != path]


# -- building the view ----------------------------------------------------------------------------------

class Request:
    """What the user asked for (flags and the `sandbox:` config section, already merged)."""

    def __init__(self, cwd: str, home: str, sig_paths: list[str], hide: list[str] | None = None,
                 show: list[str] | None = None, allow_write: list[str] | None = None,
                 files: list[tuple[str, str]] | None = None, needed: list[str] | None = None) -> None:
        self.cwd = cwd
        self.home = home
        self.sig_paths = sig_paths  # SIG_HOME, ~/.sig, credentials dir, browser profile: never visible
        self.hide = hide or []
        self.show = show or []  # built-in secret stores to leave visible
        self.allow_write = allow_write or []
        self.files = files or []  # (host path, path inside)
        self.needed = needed or []  # must be readable inside (the interpreter, the starter)


def build_view(req: Request, mounts: list[tuple[str, str, str]] | None = None,
               private: tuple[str, ...] = PRIVATE_DIRS) -> View:
    """The View for `req`, or a SigError naming what cannot be done (never a weaker sandbox). `mounts`:
    the mount table (default: this process's); `private`: the folders replaced by a fresh tmpfs."""
    home = _real(req.home) if req.home else ""
    cwd = _real(req.cwd)
    notes: list[str] = []
    sig_paths = [_expand(p, home) for p in req.sig_paths if p]
    shown = {_expand(p, home) for p in req.show}
    for p in shown & set(sig_paths):
        raise SigError(ErrorCode.CONFIG_ERROR, f"sandbox.show cannot make {p} visible: it is sig's own data",
                       "remove it from sandbox.show")
    stores = [_expand(p, home) for p in SECRET_STORES if _expand(p, home) not in shown]
    wanted_hidden = sig_paths + stores + [_expand(p, home, req.cwd) for p in req.hide]
    # The real path: a symlink to a hidden folder (or a folder reached through a symlinked parent) then
    # leads to the empty folder laid over it.
    hidden: list[str] = []
    for p in wanted_hidden:
        real = _real(p)
        if real not in hidden and os.path.exists(real):
            hidden.append(real)
    table = read_mounts() if mounts is None else mounts
    for p in list(hidden):
        hidden += [a for a in aliases(p, table) if a not in hidden and os.path.exists(a)]
    never = [_real(p) for p in sig_paths] + [p for p in sig_paths]
    if cwd == "/":
        raise SigError(ErrorCode.USAGE_ERROR, "the sandbox would make the whole filesystem writable (the working "
                       "directory is /)", "cd into the project folder first")
    writable: list[str] = []
    for raw in req.allow_write:
        p = _expand(raw, home, req.cwd)
        if not os.path.exists(p):
            raise SigError(ErrorCode.USAGE_ERROR, f"--allow-write {raw}: no such file or folder",
                           f"create it first (mkdir -p {p})")
        real = _real(p)
        if real == "/":
            raise SigError(ErrorCode.USAGE_ERROR, "--allow-write / would make everything writable",
                           "name the folders the program needs to write")
        if real not in writable and real != cwd:
            writable.append(real)
    for place, what in [(cwd, "the working directory"), *[(w, f"--allow-write {w}") for w in writable]]:
        for h in hidden:
            if under(place, h):
                if any(under(place, n) for n in never):
                    raise SigError(ErrorCode.USAGE_ERROR, f"{what} is inside sig's own data ({h})",
                                   "run the sandbox from a project folder")
                raise SigError(ErrorCode.USAGE_ERROR, f"{what} is inside a hidden path ({h})",
                               "run it from another folder, or leave that path visible: remove it from "
                               "--hide / sandbox.hide, or add a built-in secret store to sandbox.show")
    places = [cwd, *writable]
    read_only: list[str] = []
    explicit = set(writable)
    if home and any(under(home, w) for w in places):
        notes.append(f"the program can write to your home folder ({home}); shell start-up files, ~/.local/bin "
                     "and ~/.gitconfig stay read-only, but prefer running it from a project folder")
        read_only += [os.path.join(home, rel) for rel in HOME_STARTUP]
    for w in places:
        if os.path.isdir(w):
            read_only += [os.path.join(w, rel) for rel in REPO_STARTUP]
    read_only = [p for p in dict.fromkeys(read_only)
                 if os.path.lexists(p) and p not in explicit and not any(under(p, h) for h in hidden)]
    view = View(cwd=cwd, writable=tuple(writable), read_only=tuple(read_only), files=tuple(req.files),
                private=private, notes=tuple(notes))
    for need in req.needed:
        real = _real(need)
        if any(under(real, h) for h in hidden):
            raise SigError(ErrorCode.USAGE_ERROR, f"{real} is needed inside the sandbox but is hidden",
                           "install sig outside the hidden paths")
    extra = [(n, n) for n in dict.fromkeys(_real(n) for n in req.needed) if not visible(n, view)]
    bound = [inside for _host, inside in (*req.files, *extra)]
    hidden_dirs: list[str] = []
    hidden_files: list[str] = []
    for h in hidden:
        if not visible(h, view) and not any(under(h, b) for b in bound):
            continue  # under the private /tmp and not bound in: not there anyway
        if any(h != other and under(h, other) and os.path.isdir(other) for other in hidden):
            continue  # inside another hidden folder, which is empty already
        (hidden_dirs if os.path.isdir(h) else hidden_files).append(h)
    return View(cwd=cwd, writable=tuple(writable), read_only=tuple(read_only),
                hidden_dirs=tuple(hidden_dirs), hidden_files=tuple(hidden_files),
                files=tuple(req.files) + tuple(extra), private=private, notes=tuple(notes))
