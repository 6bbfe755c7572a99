"""Shared fixtures: isolated `sig` runners, loopback echo servers, upstream interop fixtures."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).resolve().parent
# Make `harness` importable whatever pytest's import mode is.
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from harness import sshd  # noqa: E402
from harness.servers import ServerHandle, start_http_echo, start_https_echo  # noqa: E402
from harness.sigproc import Sig  # noqa: E402

# Files written by the upstream TypeScript sig 1.6.14 (fake values), copied into the repository.
FIXTURES_DIR = TESTS_DIR / "fixtures" / "upstream"


@pytest.fixture(scope="module")
def upstream() -> Iterator[Any]:
    """A scripted HTTPS upstream on 127.0.0.1 (harness/proxyrig.ScriptedUpstream), one per test module: the
    proxy tests' remote API. A module that needs another kind of upstream defines its own `upstream`."""
    from harness.proxyrig import ScriptedUpstream

    server = ScriptedUpstream()
    try:
        yield server
    finally:
        server.close()


def _make_sig(tmp_path: Path) -> Sig:
    user_home = tmp_path / "home"
    return Sig(home=user_home / ".sig", user_home=user_home)


@pytest.fixture
def sig(tmp_path: Path) -> Iterator[Sig]:
    """A `sig` runner with a fresh, not yet initialised SIG_HOME (``tmp_path/home/.sig``, absent)."""
    runner = _make_sig(tmp_path)
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture
def sig_init(sig: Sig) -> Sig:
    """Like ``sig`` but after a successful ``sig init --yes``."""
    sig("init", "--yes", check=0)
    return sig


@pytest.fixture(scope="module")
def ssh_server() -> Iterator[sshd.SshServer]:
    """A real OpenSSH server on 127.0.0.1 (harness/sshd.py), one per test module; skipped without sshd."""
    if not sshd.available():
        pytest.skip("OpenSSH server not installed (apt-get install openssh-server)")
    with sshd.SshServer() as server:
        yield server


@pytest.fixture
def http_echo() -> Iterator[ServerHandle]:
    handle = start_http_echo()
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
def https_echo() -> Iterator[ServerHandle]:
    handle = start_https_echo()
    try:
        yield handle
    finally:
        handle.close()


# The API token behind the `proxied` fixture's provider (tests assert it arrives upstream, never in env).
PROXY_TOKEN = "tok-PROXY-c0ffee99"


@pytest.fixture
def proxied(sig_init: Sig, https_echo: ServerHandle) -> Iterator[tuple[Sig, dict[str, str]]]:
    """A running `sig proxy` (any free port) whose provider "echo" covers ``https_echo`` with an API
    token; yields the runner and the client environment `sig proxy env` prints."""
    sig_init("login", https_echo.url, "--token-stdin", "--as", "echo", input=PROXY_TOKEN, check=0)
    cfg = sig_init.home / "config.yaml"
    cfg.write_text(cfg.read_text().replace("    strategy: api-token\n",
                                           f"    strategy: api-token\n    caFile: {https_echo.ca_path}\n", 1))
    sig_init("proxy", "start", "--port", "0", check=0)
    env = sig_init("proxy", "env", "--format", "json", check=0).json()
    try:
        yield sig_init, env
    finally:
        sig_init("proxy", "stop", check=None)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The upstream (TypeScript sig 1.6.14) interop fixtures; skips when they are not present."""
    if not FIXTURES_DIR.is_dir():
        pytest.skip(f"upstream interop fixtures not found at {FIXTURES_DIR}")
    return FIXTURES_DIR


def _make_owner_writable(root: Path) -> None:
    os.chmod(root, 0o700)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o700)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o600)


@pytest.fixture
def upstream_sig_home(tmp_path: Path, fixtures_dir: Path) -> Iterator[Sig]:
    """A `sig` runner whose SIG_HOME is a writable copy of the upstream ``sig-home/.sig``."""
    src = fixtures_dir / "sig-home" / ".sig"
    if not src.is_dir():
        pytest.skip(f"upstream sig home not found at {src}")
    runner = _make_sig(tmp_path)
    shutil.copytree(src, runner.home, symlinks=True)
    _make_owner_writable(runner.home)
    key = runner.home / "encryption.key"
    if key.exists():
        os.chmod(key, 0o400)
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture
def running() -> Iterator[Any]:
    """A proxy event loop on its own thread (harness/loop_rig.py), closed after the test."""
    from harness.loop_rig import Running

    r = Running()
    try:
        yield r
    finally:
        r.close()
