"""Run `sig` for the sandbox tests as root or as an unprivileged user (`nobody`, via setpriv).

A `SandboxUser` owns a fresh top folder under /tmp (not under root's 0700 pytest folder, so `nobody` can
use it) with HOME=top/home and SIG_HOME=top/home/.sig — sig's data inside the home folder, as on a real
machine — and a `sig` on PATH that works inside the sandbox too (for nobody: a small wrapper in
top/home/bin running the system Python on the installed package, as tests/reliability does).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

NOBODY = 65534
SYSTEM_PYTHON = f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"
SIG_MAIN = "import sys; sys.argv[0] = 'sig'; from sigcli.__main__ import main; main()"


def bwrap_works() -> str | None:
    """None when bubblewrap can run a sandbox here, else why not (the tests skip with it)."""
    if not sys.platform.startswith("linux"):
        return "the sandbox is Linux-only"
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    from sigcli.sandbox.detect import probe

    works, why = probe()
    return None if works else why


def require_bwrap() -> None:
    why = bwrap_works()
    if why:
        pytest.skip(f"cannot run the sandbox here: {why}")


def _site_packages() -> str:
    import sigcli

    return str(Path(sigcli.__file__).resolve().parents[1])


class SandboxUser:
    def __init__(self, unprivileged: bool = False) -> None:
        self.unprivileged = unprivileged
        if unprivileged and (os.geteuid() != 0 or not shutil.which("setpriv") or not os.access(SYSTEM_PYTHON, os.X_OK)):
            pytest.skip(f"running as nobody needs root, setpriv and {SYSTEM_PYTHON}")
        self.top = Path(tempfile.mkdtemp(prefix="sig-sbx-"))
        self.home = self.top / "home"
        self.sig_home = self.home / ".sig"
        self.bin = self.home / "bin"
        self.bin.mkdir(parents=True)
        env = {k: v for k, v in os.environ.items()
               if not k.upper().endswith("_PROXY") and not k.startswith("SIG_") and k not in
               ("CLAUDECODE", "CLAUDE_CODE", "CLAUDE_CODE_ENTRYPOINT", "CODEX_SANDBOX", "CURSOR_AGENT")}
        env.update(HOME=str(self.home), SIG_HOME=str(self.sig_home), NO_COLOR="1", PYTHONIOENCODING="utf-8",
                   PYTHONDONTWRITEBYTECODE="1")
        if unprivileged:
            site = _site_packages()
            wrapper = self.bin / "sig"
            wrapper.write_text(f'#!/bin/sh\nexec {SYSTEM_PYTHON} -c "{SIG_MAIN}" "$@"\n')
            wrapper.chmod(0o755)
            self.python = SYSTEM_PYTHON
            self.prefix = [shutil.which("setpriv") or "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
            env.update(PYTHONPATH=site, PATH=f"{self.bin}:/usr/bin:/bin", USER="nobody", LOGNAME="nobody")
            for path in (self.top, self.home, self.bin):
                os.chown(path, NOBODY, NOBODY)
        else:
            venv_bin = Path(sys.executable).parent
            self.python = str(venv_bin / "python")
            self.prefix = []
            env["PATH"] = f"{venv_bin}:{env.get('PATH', '/usr/bin:/bin')}"
        self.env = env
        self._procs: list[subprocess.Popen[str]] = []

    @property
    def uid(self) -> int:
        return NOBODY if self.unprivileged else os.geteuid()

    def own(self, *paths: Path) -> None:
        """Hand files made by the test (as root) to the user."""
        if self.unprivileged:
            for p in paths:
                os.chown(p, NOBODY, NOBODY)

    def mkdir(self, rel: str) -> Path:
        path = self.home / rel
        path.mkdir(parents=True, exist_ok=True)
        for parent in [path, *path.parents]:
            if parent == self.home:
                break
            self.own(parent)
        return path

    def write(self, rel: str, text: str, mode: int = 0o600) -> Path:
        path = self.home / rel
        self.mkdir(str(Path(rel).parent)) if str(Path(rel).parent) != "." else None
        path.write_text(text)
        path.chmod(mode)
        self.own(path)
        return path

    def argv(self, *args: str) -> list[str]:
        if self.unprivileged:
            return [*self.prefix, self.python, "-c", SIG_MAIN, *args]
        return [str(Path(sys.executable).parent / "sig"), *args]

    def command(self, *argv: str) -> list[str]:
        """Any command as this user (prefix only)."""
        return [*self.prefix, *argv]

    def sig(self, *args: str, cwd: Path | None = None, input: str | None = None,
            env: dict[str, str | None] | None = None, timeout: float = 60, check: int | None = None,
            **kw: Any) -> subprocess.CompletedProcess[str]:
        run_env = dict(self.env)
        for k, v in (env or {}).items():
            if v is None:
                run_env.pop(k, None)
            else:
                run_env[k] = v
        proc = subprocess.run(self.argv(*args), cwd=cwd or self.home, env=run_env, input=input, text=True,
                              capture_output=True, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL, **kw)
        if check is not None:
            assert proc.returncode == check, (f"sig {args} -> {proc.returncode}\n--- out ---\n{proc.stdout}"
                                              f"\n--- err ---\n{proc.stderr}")
        return proc

    def popen(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
              **kw: Any) -> subprocess.Popen[str]:
        options: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE,
                                   "stderr": subprocess.PIPE, "text": True}
        options.update(kw)
        proc = subprocess.Popen(self.argv(*args), cwd=cwd or self.home, env={**self.env, **(env or {})},
                                **options)
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.communicate(timeout=5)
            except Exception:
                pass
        try:
            self.sig("proxy", "stop", timeout=30)
        except Exception:
            pass
        shutil.rmtree(self.top, ignore_errors=True)


class OtherHost:
    """An HTTPS echo on 127.0.0.2 (another loopback address: "another host" for the proxy, which no
    provider covers), recording what it received. Its CA is `ca_path`."""

    def __init__(self, address: str = "127.0.0.2") -> None:
        import ssl
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import trustme

        self.ca = trustme.CA()
        self.folder = Path(tempfile.mkdtemp(prefix="sig-other-ca-"))
        self.folder.chmod(0o755)
        self.ca_path = str(self.folder / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_path)
        os.chmod(self.ca_path, 0o644)
        self.seen: list[dict[str, Any]] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _echo(self) -> None:
                import json

                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                record = {"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                          "body": body.decode("utf-8", "replace")}
                seen.append(record)
                payload = json.dumps(record).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _echo

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((address, 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert(address).configure_cert(ctx)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.address = address
        self.port = int(self.server.server_address[1])
        self.url = f"https://{address}:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.folder, ignore_errors=True)


TOKEN = "tok-SANDBOX-0123456789abcdef"


class ProxiedSandbox:
    """A SandboxUser with provider "api" (API token TOKEN) for an HTTPS echo upstream on 127.0.0.1, another
    host on 127.0.0.2 (trusted by the proxy through SSL_CERT_FILE, no provider), and the real proxy
    started (`sig proxy start --port 0`)."""

    def __init__(self, unprivileged: bool = False) -> None:
        from harness.servers import start_https_echo

        require_bwrap()
        self.user = SandboxUser(unprivileged)
        self.upstream = start_https_echo()
        self.other = OtherHost()
        try:
            u = self.user
            u.sig("init", "--yes", "--remote", check=0)
            ca = u.write("certs/upstream-ca.pem", Path(self.upstream.ca_path or "").read_text(), 0o644)
            u.sig("login", self.upstream.url, "--token-stdin", "--as", "api", input=TOKEN, check=0)
            cfg = u.sig_home / "config.yaml"
            cfg.write_text(cfg.read_text().replace("    strategy: api-token\n",
                                                   f"    strategy: api-token\n    caFile: {ca}\n", 1))
            import ssl

            system = Path(ssl.get_default_verify_paths().openssl_cafile or "/etc/ssl/certs/ca-certificates.crt")
            roots = system.read_text() if system.is_file() else ""
            self.bundle = u.write("certs/proxy-roots.pem", roots + Path(self.other.ca_path).read_text(), 0o644)
            u.sig("proxy", "start", "--port", "0", env={"SSL_CERT_FILE": str(self.bundle)}, check=0)
            self.proxy_port = json.loads(u.sig("proxy", "status", "--format", "json", check=0).stdout)["port"]
        except BaseException:
            self.close()
            raise

    def run(self, *args: str, cwd: Path | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
        """`sig run --sandbox ARGS` (from the home folder unless `cwd`)."""
        return self.user.sig("run", "--sandbox", *args, cwd=cwd or self.user.home, **kw)

    def audit(self) -> list[dict[str, Any]]:
        path = self.user.sig_home / "audit.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def proxy_log(self) -> str:
        path = self.user.sig_home / "proxy" / "proxy.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        self.user.close()
        self.upstream.close()
        self.other.close()
