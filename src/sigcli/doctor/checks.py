"""`sig doctor`'s checks: each looks at one part of the installation and says what to do when it fails.

`run_checks()` returns the results; the command (cli/commands/doctor.py) only renders them. A check never
raises: what goes wrong is its result.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from typing import Any

from ..config import paths
from ..core.errors import SigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..config.load import Config


class Report:
    """The results: {"check", "ok", "detail", "hint" (a failure's fix), "note" (informational)} each."""

    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []

    @property
    def failures(self) -> list[dict[str, Any]]:
        """The checks that failed."""
        return [c for c in self.checks if not c["ok"]]

    def ok(self, label: str, detail: str = "") -> None:
        """A check that passed."""
        self.checks.append({"check": label, "ok": True, "detail": detail})

    def fail(self, label: str, hint: str, detail: str = "") -> None:
        """A check that failed, with its fix."""
        self.checks.append({"check": label, "ok": False, "detail": detail, "hint": hint})

    def note(self, label: str, detail: str) -> None:
        """Information that is not a failure."""
        self.checks.append({"check": label, "ok": True, "detail": detail, "note": True})


def _mode(path: str) -> int | None:
    try:
        return stat.S_IMODE(os.lstat(path).st_mode)
    except OSError:
        return None


def _check_dir(report: Report, label: str, path: str) -> None:
    mode = _mode(path)
    if mode is None:
        report.fail(label, f"create it: mkdir -p -m 700 {path}  (or run `sig init`)", path)
    elif not os.access(path, os.W_OK | os.X_OK):
        report.fail(label, f"make it writable: chmod u+rwx {path}", f"{path} is not writable")
    elif mode & 0o077:
        report.fail(label, f"restrict it: chmod 700 {path}", f"{path} is readable by others ({oct(mode)})")
    else:
        report.ok(label, path)


def _check_browser(report: Report, config: Config) -> None:
    from ..core.strategies import spec

    needs = [p.id for p in config.providers.values() if getattr(spec(p.strategy), "needs_browser", False)]
    exec_path = config.browser.get("execPath") or ""
    if config.mode == "browserless":
        report.ok("Browser", "not used (mode: browserless)")
        return
    if not exec_path:
        from ..browser.locate import detect_browser

        exec_path = detect_browser(config.browser.get("channel"))
    if not exec_path:
        if needs:
            report.fail("Browser", "install Chromium (apt-get install chromium) or Chrome, or set "
                        "browser.execPath; or log in with --token-stdin/--cookie-stdin instead",
                        f"none found, needed by {', '.join(needs)}")
        else:
            report.note("Browser", "none found (only needed for browser logins)")
        return
    if not os.access(exec_path, os.X_OK):
        report.fail("Browser", f"fix browser.execPath in {paths.config_path()}", f"{exec_path} is not executable")
        return
    started, detail = _start_headless(exec_path)
    if started:
        report.ok("Browser", f"{exec_path} ({detail}; started headless and answered over CDP)")
    else:
        report.fail("Browser", "reinstall the browser or point browser.execPath at a working one",
                    f"{exec_path} did not start: {detail}")


def _start_headless(exec_path: str) -> tuple[bool, str]:
    """Really start the browser (headless, a throw-away profile, CDP over its pipe) and ask it something."""
    import tempfile

    from ..browser.cdp import CdpAdapter
    from ..browser.protocol import LaunchOptions
    from ..core.errors import SigError

    with tempfile.TemporaryDirectory(prefix="sig-doctor-") as profile:
        options = LaunchOptions(executable=exec_path, user_data_dir=profile, url="about:blank",
                                headless=True, timeout_s=20.0)
        try:
            session = CdpAdapter().launch(options)
        except SigError as err:
            return False, err.message
        try:
            version = session.browser_version()
        finally:
            session.close()
    return True, version or "running"


def run_checks() -> Report:
    """Every check, in the order a person reads them: Python, folders, config, key, credentials, browser,
    Playwright, clock, the proxy's CA and state."""
    report = Report()
    report.ok("Python", sys.version.split()[0])
    home = paths.sig_home()
    _check_dir(report, "sig folder", home)
    config = _check_config(report)
    if config is not None:
        _check_dir(report, "Credentials folder", config.credentials_dir)
    _check_key(report)
    if config is not None:
        _check_store(report, config)
        _check_browser(report, config)
    _check_playwright(report)
    _check_sandbox(report)
    _check_clock(report)
    _check_proxy(report, os.path.join(home, "proxy"))
    return report


def _check_sandbox(report: Report) -> None:
    """`run --sandbox` needs bubblewrap and user namespaces: really start one. An optional feature, so a
    missing sandbox is a note with its fix, not a failure."""
    from ..sandbox.detect import probe

    works, detail = probe()
    if works:
        report.ok("Sandbox (run --sandbox)", detail)
    else:
        report.note("Sandbox (run --sandbox)", f"not available: {detail}")


def _check_config(report: Report) -> Config | None:
    """Parsed afresh (not the cache), so every problem in the file is listed."""
    config_file = paths.config_path()
    if not os.path.exists(config_file):
        report.fail("Config file", "run `sig init`", f"{config_file} not found")
        return None
    try:
        from ..config.load import parse_config

        with open(config_file, encoding="utf-8") as fh:
            config = parse_config(fh.read(), config_file)
    except SigError as err:
        report.fail("Config is valid", err.hint or "fix the config", err.message)
        return None
    except (OSError, UnicodeDecodeError) as exc:
        report.fail("Config is valid", f"check {config_file}", str(exc))
        return None
    report.ok("Config is valid", f"{config_file}, {len(config.providers)} provider(s)")
    for warning in config.warnings:
        report.note("Config warning", warning)
    return config


def _check_key(report: Report) -> None:
    from ..store.keyfile import load_key

    key_file = paths.key_path()
    try:
        key = load_key(key_file)
    except SigError as err:
        report.fail("Encryption key", err.hint, err.message)
        return
    if key is None:
        report.fail("Encryption key", "run `sig init` to create it (or restore it from a backup)",
                    f"{key_file} not found")
        return
    mode = _mode(key_file) or 0
    if mode & 0o077:
        report.fail("Encryption key", f"chmod 400 {key_file}", f"readable by others ({oct(mode)})")
    else:
        report.ok("Encryption key", f"{key_file} (AES-256-GCM, 32 bytes)")


def _check_store(report: Report, config: Config) -> None:
    from ..config.load import open_store

    store = open_store(config)
    try:
        entries = store.list()
        bad = [(stem, err) for stem, _c, err in entries if err is not None]
        if bad:
            for stem, problem in bad:
                report.fail(f"Credential {stem}", problem.hint, problem.message)
        else:
            expired = [c.provider_id for _s, c, _e in entries if c is not None and c.provider_id in
                       config.providers and not c.is_valid(config.providers[c.provider_id].ttl_ms)]
            detail = f"{len(entries)} stored, all readable"
            if expired:
                detail += f"; not valid now: {', '.join(expired)}"
            report.ok("Stored credentials", detail)
        stale = [n for n in os.listdir(config.credentials_dir) if n.endswith(".lock.lock")] \
            if os.path.isdir(config.credentials_dir) else []
        if stale:
            report.fail("Stale locks", f"remove them: rm -r {config.credentials_dir}/*.lock.lock",
                        ", ".join(stale))
    except SigError as err:
        report.fail("Stored credentials", err.hint, err.message)


def _check_playwright(report: Report) -> None:
    import importlib.util

    if importlib.util.find_spec("playwright") is not None:
        report.ok("Playwright", "installed (optional)")
    else:
        report.note("Playwright", "not installed (optional; sig drives Chrome over CDP itself)")


def _check_clock(report: Report) -> None:
    if time.time() < 1_704_067_200:  # 2024-01-01
        report.fail("Clock", "set the system clock (expiry checks depend on it)", time.ctime())
    else:
        report.ok("Clock", time.strftime("%Y-%m-%d %H:%M:%S %Z"))


def _check_proxy(report: Report, proxy_dir: str) -> None:
    """Only when the proxy was used here (its CA exists); a stale state file is cleaned up as it is read."""
    if not (os.path.exists(os.path.join(proxy_dir, "ca.crt")) or os.path.exists(os.path.join(proxy_dir, "ca.key"))):
        return
    try:
        from ..proxy.ca import CertificateAuthority

        ca = CertificateAuthority.load_or_create(proxy_dir)
        from cryptography import x509

        try:
            ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            report.ok("Proxy CA", f"{ca.cert_path} (SHA-256 {ca.fingerprint_sha256()[:23]}…)")
        except x509.ExtensionNotFound:
            report.note("Proxy CA", f"{ca.cert_path} was made by the original sigcli and lacks a Subject Key "
                        "Identifier: strict TLS clients (Python 3.13+) reject it. To replace it, stop the "
                        "proxy, move ca.crt and ca.key away, start it again and re-trust the new CA")
    except SigError as err:
        report.fail("Proxy CA", err.hint, err.message)
    from ..proxy import daemon

    if os.path.exists(daemon.state_path()) and daemon.read_state() is None:
        report.note("Proxy", "removed a stale state file left by a proxy that was killed")
