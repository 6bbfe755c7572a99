"""`sig run --sandbox`: put the pieces together for one run (plan), then run it (execute).

The plan is everything decided before a process starts: the filesystem view, bubblewrap's argv, the
child's environment (placeholders, no secret), and the profile the proxy will apply. Nothing in it
holds a credential value: the placeholders map to (provider, key), and the proxy, outside, looks the
values up itself.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..config.load import Config
    from ..core.model import Credential, Provider
    from .settings import Settings
    from .view import View


class Plan:
    """Everything decided before a process starts (no credential value in it)."""

    __slots__ = ("argv", "env", "left_out", "profile", "view")

    def __init__(self, argv: list[str], env: dict[str, str], profile: dict[str, object], view: View,
                 left_out: list[str]) -> None:
        self.argv = argv
        self.env = env
        self.profile = profile
        self.view = view
        self.left_out = left_out  # variables of the caller's environment that held a credential value


def sig_paths(config: Config) -> list[str]:
    """sig's own data, wherever it is: SIG_HOME, ~/.sig as well, the credentials folder and the browser
    profile (both may be configured elsewhere)."""
    from ..config import paths

    out = [paths.sig_home(), os.path.join(paths.user_home(), ".sig"), config.credentials_dir]
    browser_dir = config.browser.get("browserDataDir")
    if isinstance(browser_dir, str) and browser_dir.strip():
        out.append(paths.expand_path(browser_dir))
    return out


def plan(config: Config, bwrap: str, command: list[str], settings: Settings,
         chosen: list[tuple[Provider, Credential]], env_options: list[tuple[str, Provider, str]],
         proxy_folder: str, user_token: str | None, environ: dict[str, str] | None = None,
         secrets: Iterable[str] = ()) -> Plan:
    """The run's view, bubblewrap argv, child environment (placeholders, no secret) and proxy profile."""
    from ..config import paths
    from ..proxy.daemon import bundle_path
    from ..proxy.noproxy import no_proxy
    from . import bwrap as bw
    from . import env as sandbox_env
    from .placeholders import child_variables
    from .settings import profile
    from .view import PRIVATE_DIRS, Request, build_view, under

    environ = dict(os.environ if environ is None else environ)
    shim = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim.py")
    python = os.path.realpath(sys.executable)
    files = [(bundle_path(), sandbox_env.BUNDLE), (os.path.join(proxy_folder, "ca.crt"), sandbox_env.CA)]
    request = Request(cwd=os.getcwd(), home=paths.user_home(), sig_paths=sig_paths(config), hide=settings.hide,
                      show=settings.show, allow_write=settings.allow_write, files=files,
                      needed=[python, sys.base_prefix, sys.prefix, _package_root(), shim])
    view = build_view(request)
    _check_command_shows(command, view, environ)
    variables, table = child_variables(chosen, env_options)
    domains = [d for p in config.providers.values() for d in p.domains]
    bypass, _dropped = no_proxy({}, domains)  # the user's own NO_PROXY would lead nowhere inside
    tmpdir = environ.get("TMPDIR", "")
    tmpdir_ok = bool(tmpdir) and any(under(os.path.realpath(tmpdir), w) for w in (view.cwd, *view.writable))
    env, left_out = sandbox_env.sandbox_env(environ, no_proxy=bypass, user_token=user_token,
                                            placeholders=variables, tmpdir_ok=tmpdir_ok, secrets=secrets)
    inner = [python, "-I", "-S", shim, str(sandbox_env.PROXY_PORT), *command]
    from .launch import SECCOMP_FD

    argv = bw.argv(view, inner, bwrap=bwrap, seccomp_fd=SECCOMP_FD,
                   is_symlink={d: os.path.islink(d) for d in PRIVATE_DIRS})
    providers = [p.id for p, _c in chosen] if chosen else None
    name = f"run-{os.getpid()}-{os.urandom(3).hex()}"
    return Plan(argv, env, profile(name, settings, providers, table), view, left_out)


def _package_root() -> str:
    """The folder sig's own package is installed in (site-packages, or a PYTHONPATH entry): `sig` inside
    the sandbox runs from it, so it must show there even when it lives under /tmp."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _check_command_shows(command: list[str], view: View, environ: dict[str, str]) -> None:
    """A program the sandbox would not show (under /tmp, which is private inside, or under a hidden path)
    is refused here with the reason, instead of a bare "command not found" from inside."""
    import shutil

    from ..core.errors import ErrorCode, SigError
    from .view import under, visible

    if not command:
        return
    name = command[0]
    found = (os.path.join(os.getcwd(), name) if "/" in name
             else shutil.which(name, path=environ.get("PATH", os.defpath)))
    if not found or not os.path.exists(found):
        return  # not there outside either: the usual "command not found" says it
    real = os.path.realpath(found)
    bound = [inside for _host, inside in view.files]
    for h in (*view.hidden_dirs, *view.hidden_files):
        if under(real, h):
            raise SigError(ErrorCode.USAGE_ERROR, f"{name} is inside a hidden path ({h}), so the sandbox "
                           "cannot run it", "install or copy the program elsewhere")
    if not visible(real, view) and not any(under(real, b) for b in bound):
        where = next((d for d in view.private if under(real, d)), os.path.dirname(real))
        raise SigError(ErrorCode.USAGE_ERROR, f"{name} is under {where}, which the sandbox replaces with an "
                       "empty private folder", "move it into the working directory, or give its folder with "
                       "--allow-write")


def execute(run_plan: Plan, proxy_folder: str, user_token: str | None) -> int:
    """Run it: the proxy must be running (its sandbox socket answers), else nothing starts."""
    from . import control, launch
    from .seccomp import program

    filt = program()
    sock = control.connect(proxy_folder)  # before anything starts: no proxy, no run
    try:
        return launch.run(run_plan.argv, run_plan.env, filt,
                          lambda listener: control.register(sock, user_token, run_plan.profile, listener))
    finally:
        sock.close()
