"""Node.js through `sig proxy`: fetch() with NODE_USE_ENV_PROXY=1 where the machine's Node supports it
(22.21+/24+), and on any Node the https module over a CONNECT tunnel trusting NODE_EXTRA_CA_CERTS."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from conftest import PROXY_TOKEN as TOKEN
from harness.servers import ServerHandle
from harness.sigproc import Sig

NODE = shutil.which("node")
pytestmark = [pytest.mark.skipif(NODE is None, reason="node is not installed"), pytest.mark.timeout(90)]


def _node_version() -> tuple[int, int]:
    out = subprocess.run([NODE or "node", "--version"], capture_output=True, text=True, timeout=30).stdout
    major, minor, *_ = (out.strip().lstrip("v") + ".0.0").split(".")
    return int(major), int(minor)


def _supports_env_proxy() -> bool:
    major, minor = _node_version()
    return major >= 24 or (major == 22 and minor >= 21)


def test_node_fetch_with_env_proxy(proxied: tuple[Sig, dict[str, str]], https_echo: ServerHandle) -> None:
    if not _supports_env_proxy():
        pytest.skip(f"this Node ({'.'.join(map(str, _node_version()))}) has no NODE_USE_ENV_PROXY (22.21+/24+)")
    sig, env = proxied
    assert env.get("NODE_USE_ENV_PROXY") == "1"
    script = f"fetch('{https_echo.url}/node-fetch').then(r => r.json()).then(j => console.log(JSON.stringify(j)))"
    out = subprocess.run([NODE or "node", "-e", script], env={**sig.env, **env}, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["headers"]["authorization"] == "Bearer ****"  # the echo is redacted
    assert https_echo.requests[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"


NODE_CONNECT = r"""
const http = require('http'), tls = require('tls');
const proxy = new URL(process.env.HTTPS_PROXY), target = new URL(process.argv[1]);
const auth = 'Basic ' + Buffer.from(decodeURIComponent(proxy.username) + ':' +
                                    decodeURIComponent(proxy.password)).toString('base64');
const req = http.request({host: proxy.hostname, port: proxy.port, method: 'CONNECT',
                          path: `${target.hostname}:${target.port}`, headers: {'Proxy-Authorization': auth}});
req.on('connect', (res, socket) => {
  if (res.statusCode !== 200) { console.error('CONNECT', res.statusCode); process.exit(2); }
  // No `ca` option: the certificate must be trusted through NODE_EXTRA_CA_CERTS, as for any Node client.
  const s = tls.connect({socket, servername: target.hostname}, () => {
    s.write(`GET ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\nConnection: close\r\n\r\n`);
  });
  let data = '';
  s.on('data', d => data += d);
  s.on('end', () => { console.log(data.split('\r\n\r\n').slice(1).join('\r\n\r\n')); });
  s.on('error', e => { console.error(e.message); process.exit(3); });
});
req.on('error', e => { console.error(e.message); process.exit(4); });
req.end();
"""


def test_node_https_through_the_proxy_trusts_sig_ca(proxied: tuple[Sig, dict[str, str]],
                                                     https_echo: ServerHandle) -> None:
    sig, env = proxied
    assert env["NODE_EXTRA_CA_CERTS"]
    out = subprocess.run([NODE or "node", "-e", NODE_CONNECT, f"{https_echo.url}/node-https"],
                         env={**sig.env, **env}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    body = out.stdout.strip()
    body = body[body.index("{"):body.rindex("}") + 1]  # chunked framing, if any, around the JSON
    seen = json.loads(body)
    assert seen["headers"]["authorization"] == "Bearer ****"  # the echo is redacted
    assert https_echo.requests[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert https_echo.requests[-1]["path"] == "/node-https"
