"""The loopback echo servers behave as the harness promises (standard library clients only)."""

from __future__ import annotations

import http.client
import json
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from harness.servers import ServerHandle, start_http_echo


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _open(
    req: urllib.request.Request | str, context: ssl.SSLContext | None = None
) -> tuple[int, Any, dict[str, Any]]:
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return resp.status, resp.headers, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, json.loads(exc.read())


def test_get_echoes_header_and_query(http_echo: ServerHandle) -> None:
    req = urllib.request.Request(http_echo.url + "/some/path?a=1&b=x&b=y", headers={"X-Test": "hello"})
    status, headers, echo = _open(req)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert echo["method"] == "GET"
    assert echo["path"] == "/some/path"
    assert echo["query"] == {"a": "1", "b": ["x", "y"]}
    assert echo["headers"]["x-test"] == "hello"
    assert echo["headers"]["host"] == f"127.0.0.1:{http_echo.port}"
    assert echo["body"] == ""
    assert http_echo.requests == [echo]


def test_post_body_is_echoed(http_echo: ServerHandle) -> None:
    body = '{"hello": "wörld"}'
    req = urllib.request.Request(
        http_echo.url + "/submit",
        data=body.encode("utf-8"),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    status, _, echo = _open(req)
    assert status == 200
    assert echo["method"] == "POST"
    assert echo["body"] == body
    assert echo["headers"]["content-type"] == "application/json"
    assert http_echo.requests[-1]["body"] == body


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_other_methods_are_echoed(http_echo: ServerHandle, method: str) -> None:
    req = urllib.request.Request(http_echo.url + "/x", data=b"payload", method=method)
    status, _, echo = _open(req)
    assert (status, echo["method"], echo["body"]) == (200, method, "payload")


def test_head_has_length_but_no_body(http_echo: ServerHandle) -> None:
    conn = http.client.HTTPConnection(http_echo.host, http_echo.port, timeout=10)
    try:
        conn.request("HEAD", "/h")
        resp = conn.getresponse()
        assert resp.status == 200
        assert int(resp.headers["Content-Length"]) > 0
        assert resp.read() == b""
    finally:
        conn.close()
    assert http_echo.requests[-1]["method"] == "HEAD"


def test_chunked_body_and_keep_alive(http_echo: ServerHandle) -> None:
    conn = http.client.HTTPConnection(http_echo.host, http_echo.port, timeout=10)
    try:
        conn.request("POST", "/chunked", body=iter([b"abc", b"def"]), encode_chunked=True)
        first = conn.getresponse()
        first_echo = json.loads(first.read())
        assert first_echo["body"] == "abcdef"
        assert first_echo["headers"]["transfer-encoding"] == "chunked"
        # Same connection again: the server keeps it alive and frames by Content-Length.
        conn.request("GET", "/again")
        second = conn.getresponse()
        assert json.loads(second.read())["path"] == "/again"
    finally:
        conn.close()
    assert [r["path"] for r in http_echo.requests] == ["/chunked", "/again"]


def test_status_code(http_echo: ServerHandle) -> None:
    status, _, echo = _open(http_echo.url + "/status/418")
    assert status == 418
    assert echo["path"] == "/status/418"


def test_redirect_location(http_echo: ServerHandle) -> None:
    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(http_echo.url + "/redirect?to=/landed&code=307", timeout=10)
    with info.value as err:
        assert err.code == 307
        assert err.headers["Location"] == "/landed"


def test_two_set_cookie_headers(http_echo: ServerHandle) -> None:
    with urllib.request.urlopen(http_echo.url + "/set-cookie", timeout=10) as resp:
        cookies = resp.headers.get_all("Set-Cookie")
    assert cookies is not None
    assert len(cookies) == 2
    assert cookies[0].startswith("session=abc123")
    assert cookies[1].startswith("theme=dark")


def test_slow_waits(http_echo: ServerHandle) -> None:
    start = time.monotonic()
    status, _, echo = _open(http_echo.url + "/slow?ms=200")
    assert status == 200
    assert echo["query"] == {"ms": "200"}
    assert time.monotonic() - start >= 0.19


def test_https_verifies_with_ca(https_echo: ServerHandle) -> None:
    assert https_echo.url.startswith("https://127.0.0.1:")
    assert https_echo.ca_path is not None
    ctx = ssl.create_default_context(cafile=https_echo.ca_path)
    req = urllib.request.Request(https_echo.url + "/secure?q=1", headers={"X-Tls": "yes"})
    status, _, echo = _open(req, context=ctx)
    assert status == 200
    assert echo["query"] == {"q": "1"}
    assert echo["headers"]["x-tls"] == "yes"
    # "localhost" is on the certificate too.
    status, _, _ = _open(f"https://localhost:{https_echo.port}/", context=ctx)
    assert status == 200


def test_https_fails_without_ca(https_echo: ServerHandle) -> None:
    ctx = ssl.create_default_context()
    with pytest.raises(urllib.error.URLError) as info:
        urllib.request.urlopen(https_echo.url + "/", timeout=10, context=ctx)
    assert isinstance(info.value.reason, ssl.SSLError)
    # The failed handshake did not break the server.
    status, _, _ = _open(https_echo.url + "/", context=https_echo.client_ssl_context())
    assert status == 200
    assert [r["path"] for r in https_echo.requests] == ["/"]


def test_close_with_open_keep_alive_connection() -> None:
    handle = start_http_echo()
    conn = http.client.HTTPConnection(handle.host, handle.port, timeout=10)
    try:
        conn.request("GET", "/")
        conn.getresponse().read()
        handle.close()  # must not hang on the idle keep-alive connection
        assert not handle.thread.is_alive()
    finally:
        conn.close()
        handle.close()
