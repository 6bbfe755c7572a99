"""A placeholder in a request's URL path (`/bot<placeholder>/getMe`) is swapped for the real value on its
way upstream only: the proxy log and the audit hook name the path as the client sent it, never with the
real value in it (fast path and h11 path alike)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_proxy_profiles import PLACEHOLDER, RUN_TOKEN, SECRET, Policy, Rig, _tunnel

from sigcli.net.tls import client_context
from sigcli.proxy.profiles import Profile
from sigcli.proxy.server import ProxyServer

pytestmark = pytest.mark.timeout(60)


class AuditRig(Rig):
    """test_proxy_profiles' rig, with every request logged and the injection hook recorded."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.server.shutdown()
        self.injected: list[tuple[Any, ...]] = []
        self.server = ProxyServer(Policy(str(self.echo.ca_path)), self.server._server_context, token="user-token",
                                  upstream_context=client_context, log=self.logs.append, log_requests=True,
                                  on_injected=lambda *a: self.injected.append(a))
        self.port = self.server.open()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[AuditRig]:
    r = AuditRig(tmp_path)
    try:
        yield r
    finally:
        r.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["fast", "h11"])
def test_a_placeholder_in_the_path_never_reaches_log_or_audit(rig: AuditRig, chunked: bool) -> None:
    rig.server.add_token(RUN_TOKEN, Profile("run-p", placeholders={PLACEHOLDER.encode(): ("openai", "token")}))
    conn = _tunnel(rig, "localhost", rig.echo.port, RUN_TOKEN)
    try:
        headers = {"Transfer-Encoding": "chunked"} if chunked else {}
        conn.request("POST", f"/bot{PLACEHOLDER}/getMe", body=iter([b"{}"]) if chunked else b"{}",
                     headers=headers, encode_chunked=chunked)
        resp = conn.getresponse()
        answer = resp.read()
    finally:
        conn.close()
    assert resp.status == 200, answer
    assert rig.echo.requests[-1]["path"] == f"/bot{SECRET}/getMe"  # swapped on the way upstream
    assert SECRET.encode() not in answer
    assert rig.injected, "the request was injected"
    for event in rig.injected:
        assert SECRET.encode() not in event[3] and PLACEHOLDER.encode() in event[3]
    assert any(PLACEHOLDER in line for line in rig.logs), "the request's log line names its path"
    assert all(SECRET not in line for line in rig.logs)
