"""`sig doctor`: check the installation; every failure comes with its fix. Exit 1 if any check fails."""

from __future__ import annotations

import os
import stat
import sys
import time
from typing import Any

from ...config import paths
from ...core.errors import SigError
from ..app import App
from ..args import Args

FLAGS = {"format": "value"}


class Report:
    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []

    def ok(self, label: str, detail: str = "") -> None:
        self.checks.append({"check": label, "ok": True, "detail": detail})

    def fail(self, label: str, hint: str, detail: str = "") -> None:
        self.checks.append({"check": label, "ok": False, "detail": detail, "hint": hint})

    def note(self, label: str, detail: str) -> None:
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


def _check_browser(report: Report, app: App, config: Any) -> None:
    needs = [p.id for p in config.providers.values() if p.strategy == "browser"]
    exec_path = config.browser.get("execPath") or ""
    if config.mode == "browserless":
        report.ok("Browser", "not used (mode: browserless)")
        return
    if not exec_path:
        from ...browser.locate import detect_browser

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

    from ...browser.cdp import CdpAdapter
    from ...browser.protocol import LaunchOptions
    from ...core.errors import SigError

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


def _check_sandbox(report: Report) -> None:
    """`run --sandbox` needs bubblewrap and user namespaces: really start one (an optional feature, so a
    missing sandbox is a note with its fix, not a failure)."""
    from ...sandbox.detect import probe

    works, detail = probe()
    if works:
        report.ok("Sandbox (run --sandbox)", detail)
    else:
        report.note("Sandbox (run --sandbox)", f"not available: {detail}")


def run(args: Args, app: App) -> int:
    report = Report()
    report.ok("Python", sys.version.split()[0])
    home = paths.sig_home()
    _check_dir(report, "sig folder", home)
    config = None
    config_file = paths.config_path()
    if not os.path.exists(config_file):
        report.fail("Config file", "run `sig init`", f"{config_file} not found")
    else:
        try:
            from ...config.load import parse_config

            with open(config_file, encoding="utf-8") as fh:
                config = parse_config(fh.read(), config_file)
            report.ok("Config is valid", f"{config_file}, {len(config.providers)} provider(s)")
            for warning in config.warnings:
                report.note("Config warning", warning)
        except SigError as err:
            report.fail("Config is valid", err.hint or "fix the config", err.message)
        except (OSError, UnicodeDecodeError) as exc:
            report.fail("Config is valid", f"check {config_file}", str(exc))
    if config is not None:
        _check_dir(report, "Credentials folder", config.credentials_dir)
    key_file = paths.key_path()
    from ...store.keyfile import load_key

    try:
        key = load_key(key_file)
        if key is None:
            report.fail("Encryption key", "run `sig init` to create it (or restore it from a backup)",
                        f"{key_file} not found")
        else:
            mode = _mode(key_file) or 0
            if mode & 0o077:
                report.fail("Encryption key", f"chmod 400 {key_file}", f"readable by others ({oct(mode)})")
            else:
                report.ok("Encryption key", f"{key_file} (AES-256-GCM, 32 bytes)")
    except SigError as err:
        key = None
        report.fail("Encryption key", err.hint, err.message)
    if config is not None:
        from ...store.credentials import CredentialStore

        store = CredentialStore(config.credentials_dir, key_file)
        try:
            entries = store.list()
            bad = [(stem, err) for stem, _c, err in entries if err is not None]
            if bad:
                for stem, err in bad:
                    report.fail(f"Credential {stem}", err.hint, err.message)
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
        _check_browser(report, app, config)
    import importlib.util

    if importlib.util.find_spec("playwright") is not None:
        report.ok("Playwright", "installed (optional)")
    else:
        report.note("Playwright", "not installed (optional; sig drives Chrome over CDP itself)")
    _check_sandbox(report)
    if time.time() < 1_704_067_200:  # 2024-01-01
        report.fail("Clock", "set the system clock (expiry checks depend on it)", time.ctime())
    else:
        report.ok("Clock", time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    proxy_dir = os.path.join(home, "proxy")
    if os.path.exists(os.path.join(proxy_dir, "ca.crt")) or os.path.exists(os.path.join(proxy_dir, "ca.key")):
        try:
            from ...proxy.ca import CertificateAuthority

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
        from ...proxy import daemon

        stale = os.path.exists(daemon.state_path()) and daemon.read_state() is None
        if stale:
            report.note("Proxy", "removed a stale state file left by a proxy that was killed")
    failures = [c for c in report.checks if not c["ok"]]
    if args.value("format") == "json":
        from ..output import to_json

        app.out(to_json({"ok": not failures, "checks": report.checks}))
    else:
        app.out(_text(report.checks, failures))
    return 1 if failures else 0


def _text(checks: list[dict[str, Any]], failures: list[dict[str, Any]]) -> str:
    """The report for a person, on stdout (`sig doctor | less` shows it, as `gh` does): control characters
    shown escaped, glyphs in ASCII where the terminal's encoding lacks them."""
    from ...core.text import printable
    from ..streams import for_stdout

    lines = []
    for c in checks:
        mark = "·" if c.get("note") else ("✓" if c["ok"] else "✗")
        detail = str(c.get("detail") or "")
        if "\n" in detail:
            lines.append(f"  {mark} {c['check']}")
            lines.extend(f"      {line.strip()}" for line in detail.splitlines())
        else:
            lines.append(f"  {mark} {c['check']}" + (f" ({detail})" if detail else ""))
        if not c["ok"]:
            lines.append(f"    → {c['hint']}")
    lines.append("")
    lines.append("All checks passed." if not failures else
                 f"{len(failures)} issue{'s' if len(failures) != 1 else ''} found.")
    return "\n".join(for_stdout(printable(line)) for line in lines)

