"""The machine's own addresses a sandboxed run may not reach through the proxy (proxy/local_guard.py)."""

from __future__ import annotations

import pytest

from sigcli.proxy.local_guard import is_local_address, resolves_local
from sigcli.proxy.profiles import profile_from_json


@pytest.mark.parametrize("address", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "0.0.0.0", "::", "169.254.169.254",
                                     "fe80::1", "fe80::1%eth0", "::ffff:127.0.0.1", "::ffff:169.254.1.1",
                                     "localhost", "LOCALHOST", "app.localhost"])
def test_local(address: str) -> None:
    assert is_local_address(address)


@pytest.mark.parametrize("address", ["10.0.0.1", "192.168.1.1", "8.8.8.8", "2606:4700::1111", "example.com",
                                     "127.0.0.1.nip.io", "localhost.evil.test", ""])
def test_not_local(address: str) -> None:
    assert not is_local_address(address)


def test_names_are_resolved() -> None:
    assert resolves_local("localhost", 80)
    assert not resolves_local("name.invalid", 80)  # does not resolve: the connection fails on its own


def test_sandbox_profiles_are_marked() -> None:
    assert profile_from_json({"name": "run-1", "sandbox": True}).sandbox
    assert not profile_from_json({"name": "file-profile"}).sandbox
    assert not profile_from_json({"name": "x", "sandbox": "yes"}).sandbox  # only true itself
