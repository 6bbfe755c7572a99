"""`sig proxy start` on a taken port names the port, who holds it and the fix; `sig proxy env` and
`sig run --proxy` extend the user's NO_PROXY instead of wiping it (and leave out what would bypass sig)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest

from conftest import PROXY_TOKEN as TOKEN
from harness.servers import ServerHandle
from harness.sigproc import Sig

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def taken_port() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0))
    yield sock
    sock.close()


def test_taken_port_is_named_with_its_holder_and_the_fix(sig_init: Sig, taken_port: socket.socket) -> None:
    port = taken_port.getsockname()[1]
    r = sig_init("proxy", "start", "--port", str(port), check=1)
    assert f"port {port} on 127.0.0.1 is already in use" in r.err
    assert f"(pid {os.getpid()})" in r.err  # this test process holds it
    assert "--port N" in r.err and "0 picks a free one" in r.err
    assert "internal error" not in r.err and "Hint: Hint" not in r.err
    assert sig_init("proxy", "status", "--format", "json", check=1).json() == {"running": False}
    # the same in the foreground (the daemon's own bind)
    r = sig_init("proxy", "start", "--port", str(port), "--foreground", check=1, timeout=60)
    assert f"port {port} on 127.0.0.1 is already in use" in r.err and "internal error" not in r.err


def test_proxy_env_extends_no_proxy(proxied: tuple[Sig, dict[str, str]]) -> None:
    sig, _env = proxied
    # the provider "echo" is for 127.0.0.1: an entry covering it would send its requests around sig
    env = sig("proxy", "env", "--format", "json", env={"NO_PROXY": "build.internal, .corp.test,127.0.0.0/8",
                                                         "no_proxy": "build.internal,wiki.local"}, check=0)
    value = env.json()["NO_PROXY"]
    assert value.split(",") == ["build.internal", ".corp.test", "wiki.local", "localhost", "::1"]
    assert env.json()["no_proxy"] == value
    assert "left out 127.0.0.0/8" in env.err
    plain = sig("proxy", "env", env={"NO_PROXY": None, "no_proxy": None}, check=0)
    assert "export NO_PROXY='localhost,::1'" in plain.out  # loopback added, 127.0.0.1 (a provider) not


def test_run_proxy_keeps_the_users_no_proxy(proxied: tuple[Sig, dict[str, str]]) -> None:
    sig, _env = proxied
    r = sig("run", "--proxy", "--", "sh", "-c", 'printf "%s|%s" "$NO_PROXY" "$no_proxy"',
            env={"NO_PROXY": "registry.internal,127.0.0.1"}, check=0)
    assert r.out == "registry.internal,localhost,::1|registry.internal,localhost,::1"
    assert "left out 127.0.0.1" in r.err


def test_curl_still_gets_credentials_when_no_proxy_named_the_provider(proxied: tuple[Sig, dict[str, str]],
                                                                      https_echo: ServerHandle) -> None:
    sig, _env = proxied
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    r = sig("run", "--proxy", "--", "curl", "-sS", f"{https_echo.url}/via", env={"NO_PROXY": "127.0.0.1"},
            check=0, timeout=60)
    assert '"authorization": "Bearer ****"' in r.out  # went through the proxy (and came back redacted)
    assert https_echo.requests[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"
    # without sig's correction curl would have gone around the proxy: no credential at all
    direct = subprocess.run(["curl", "-sS", "--cacert", https_echo.ca_path, f"{https_echo.url}/direct"],
                            env={**sig.env, "HTTPS_PROXY": _env["HTTPS_PROXY"], "NO_PROXY": "127.0.0.1"},
                            capture_output=True, text=True, timeout=60)
    assert direct.returncode == 0 and "authorization" not in https_echo.requests[-1]["headers"]
