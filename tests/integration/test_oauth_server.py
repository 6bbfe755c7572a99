"""The Authlib-based OAuth test server behaves as the harness promises (standard library clients only)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc import jwt

from harness.oauth_server import DEVICE_GRANT, OAuthServer

REDIRECT = "http://127.0.0.1:53682/callback"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def _call(
    url: str,
    form: dict[str, str] | None = None,
    *,
    auth: tuple[str, str] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5,
) -> tuple[int, Any, bytes]:
    """GET (no form) or POST a form; never follows redirects. Returns (status, headers, raw body)."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    if auth is not None:
        req.add_header("Authorization", _basic(*auth))
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read()


def _json(url: str, form: dict[str, str] | None = None, **kwargs: Any) -> tuple[int, dict[str, Any], Any]:
    status, headers, body = _call(url, form, **kwargs)
    assert headers["Content-Type"].startswith("application/json"), (status, body)
    return status, json.loads(body), headers


def _me(srv: OAuthServer, token: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    status, body, _ = _json(srv.url + "/api/me", headers=headers)
    return status, body


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _authorize(srv: OAuthServer, client_id: str, **params: str) -> tuple[int, str | None, bytes]:
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "state": "st-1"}
    query.update(params)
    status, headers, body = _call(srv.authorize_url + "?" + urllib.parse.urlencode(query))
    return status, headers.get("Location"), body


def _code_from(location: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


@pytest.fixture
def srv() -> Iterator[OAuthServer]:
    with OAuthServer() as server:
        server.add_client("conf", "conf-secret")
        server.add_client("poster", "post-secret", auth_method="client_secret_post")
        server.add_client("public", auth_method="none")
        yield server


def _cc(srv: OAuthServer, **extra: str) -> tuple[int, dict[str, Any]]:
    status, body, _ = _json(
        srv.token_url, {"grant_type": "client_credentials", **extra}, auth=("conf", "conf-secret")
    )
    return status, body


# -- client credentials ---------------------------------------------------------------------------


def test_client_credentials_basic(srv: OAuthServer) -> None:
    status, body, headers = _json(
        srv.token_url, {"grant_type": "client_credentials"}, auth=("conf", "conf-secret")
    )
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "read write"
    assert "refresh_token" not in body
    assert headers["Cache-Control"] == "no-store"
    assert _me(srv, body["access_token"]) == (
        200,
        {"client_id": "conf", "scope": "read write", "sub": "conf"},
    )
    info = srv.introspect(body["access_token"])
    assert info is not None and info["active"] and info["client_id"] == "conf"
    assert abs(info["exp"] - (time.time() + 3600)) < 5
    assert srv.introspect("never-issued") is None


def test_client_credentials_post_and_method_is_enforced(srv: OAuthServer) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": "poster",
        "client_secret": "post-secret",
        "scope": "read",
    }
    status, body, _ = _json(srv.token_url, form)
    assert status == 200, body
    assert body["scope"] == "read"
    # The same credentials sent with HTTP Basic: this client is registered for client_secret_post only.
    status, body, _ = _json(
        srv.token_url, {"grant_type": "client_credentials"}, auth=("poster", "post-secret")
    )
    assert (status, body["error"]) == (401, "invalid_client")
    # And the basic client may not use the form.
    form = {"grant_type": "client_credentials", "client_id": "conf", "client_secret": "conf-secret"}
    status, body, _ = _json(srv.token_url, form)
    assert (status, body["error"]) == (401, "invalid_client")


def test_wrong_secret_and_unknown_client_are_401(srv: OAuthServer) -> None:
    status, body, headers = _json(srv.token_url, {"grant_type": "client_credentials"}, auth=("conf", "nope"))
    assert (status, body["error"]) == (401, "invalid_client")
    assert headers["WWW-Authenticate"].startswith("Basic")
    form = {"grant_type": "client_credentials", "client_id": "poster", "client_secret": "nope"}
    status, body, _ = _json(srv.token_url, form)
    assert (status, body["error"]) == (401, "invalid_client")
    status, body, _ = _json(srv.token_url, {"grant_type": "client_credentials"}, auth=("ghost", "x"))
    assert (status, body["error"]) == (401, "invalid_client")
    # A public client cannot use client_credentials at all.
    status, body, _ = _json(srv.token_url, {"grant_type": "client_credentials", "client_id": "public"})
    assert (status, body["error"]) == (401, "invalid_client")


def test_invalid_scope_and_unsupported_grant(srv: OAuthServer) -> None:
    assert _cc(srv, scope="read admin")[1]["error"] == "invalid_scope"
    assert _cc(srv, scope="read admin")[0] == 400
    status, body, _ = _json(srv.token_url, {"grant_type": "password"}, auth=("conf", "conf-secret"))
    assert (status, body["error"]) == (400, "unsupported_grant_type")


def test_client_grants_are_restricted(srv: OAuthServer) -> None:
    srv.add_client("cc-only", "s", grants=("client_credentials",))
    status, body, _ = _json(srv.token_url, {"grant_type": "client_credentials"}, auth=("cc-only", "s"))
    assert status == 200 and "refresh_token" not in body
    status, body, _ = _json(srv.device_url, {"client_id": "cc-only"}, auth=("cc-only", "s"))
    assert (status, body["error"]) == (400, "unauthorized_client")


# -- refresh tokens -------------------------------------------------------------------------------


def _refresh(srv: OAuthServer, refresh_token: str, **extra: str) -> tuple[int, dict[str, Any]]:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    status, body, _ = _json(srv.token_url, form, auth=("conf", "conf-secret"))
    return status, body


def test_refresh_rotation_and_reuse_is_invalid_grant(srv: OAuthServer) -> None:
    srv.issue_refresh_for_client_credentials = True
    status, first = _cc(srv)
    assert status == 200 and first["refresh_token"]
    status, second = _refresh(srv, first["refresh_token"])
    assert status == 200, second
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] not in (None, first["refresh_token"])
    assert second["scope"] == "read write"
    # The old refresh token was revoked by the rotation.
    status, body = _refresh(srv, first["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    # The new one works, and may narrow the scope but not widen it.
    status, third = _refresh(srv, second["refresh_token"], scope="read")
    assert status == 200 and third["scope"] == "read"
    status, body = _refresh(srv, third["refresh_token"], scope="read write admin")
    assert (status, body["error"]) == (400, "invalid_scope")
    # Another client cannot use it.
    form = {"grant_type": "refresh_token", "refresh_token": third["refresh_token"]}
    srv.add_client("other", "other-secret")
    status, body, _ = _json(srv.token_url, form, auth=("other", "other-secret"))
    assert (status, body["error"]) == (400, "invalid_grant")


def test_refresh_without_rotation_keeps_the_old_token(srv: OAuthServer) -> None:
    srv.issue_refresh_for_client_credentials = True
    srv.rotate_refresh_tokens = False
    _, first = _cc(srv)
    for _ in range(2):
        status, body = _refresh(srv, first["refresh_token"])
        assert status == 200, body
        assert "refresh_token" not in body


def test_concurrent_refresh_with_rotation_has_one_winner(srv: OAuthServer) -> None:
    srv.issue_refresh_for_client_credentials = True
    _, first = _cc(srv)
    results: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        status, _ = _refresh(srv, first["refresh_token"])
        with lock:
            results.append(status)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [200, 400, 400, 400]


# -- authorization code + PKCE --------------------------------------------------------------------


def test_auth_code_pkce_public_client_end_to_end(srv: OAuthServer) -> None:
    verifier, challenge = _pkce()
    status, location, _ = _authorize(
        srv, "public", code_challenge=challenge, code_challenge_method="S256", scope="read"
    )
    assert status == 302 and location is not None
    assert location.startswith(REDIRECT + "?")
    params = _code_from(location)
    assert params["state"] == "st-1" and params["code"]
    form = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "redirect_uri": REDIRECT,
        "client_id": "public",
        "code_verifier": verifier,
    }
    status, body, _ = _json(srv.token_url, form)
    assert status == 200, body
    assert body["scope"] == "read" and body["refresh_token"]
    assert _me(srv, body["access_token"]) == (
        200,
        {"client_id": "public", "scope": "read", "sub": "test-user"},
    )
    # A code is single use.
    status, again, _ = _json(srv.token_url, form)
    assert (status, again["error"]) == (400, "invalid_grant")
    # A public client refreshes with its client_id alone.
    form = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": "public"}
    status, refreshed, _ = _json(srv.token_url, form)
    assert status == 200 and refreshed["refresh_token"] != body["refresh_token"]


def test_auth_code_wrong_verifier_or_redirect_is_invalid_grant(srv: OAuthServer) -> None:
    verifier, challenge = _pkce()
    _, location, _ = _authorize(srv, "public", code_challenge=challenge, code_challenge_method="S256")
    code = _code_from(location or "")["code"]
    base = {"grant_type": "authorization_code", "code": code, "client_id": "public", "redirect_uri": REDIRECT}
    status, body, _ = _json(srv.token_url, {**base, "code_verifier": _pkce()[0]})
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body, _ = _json(
        srv.token_url, {**base, "code_verifier": verifier, "redirect_uri": REDIRECT + "2"}
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body, _ = _json(srv.token_url, base)  # no verifier at all
    assert (status, body["error"]) == (400, "invalid_request")
    status, body, _ = _json(srv.token_url, {**base, "code_verifier": verifier})
    assert status == 200, body


def test_public_client_must_use_s256(srv: OAuthServer) -> None:
    _, location, _ = _authorize(srv, "public")
    params = _code_from(location or "")
    assert params["error"] == "invalid_request" and params["state"] == "st-1" and "code" not in params
    verifier, _ = _pkce()
    _, location, _ = _authorize(srv, "public", code_challenge=verifier, code_challenge_method="plain")
    assert _code_from(location or "")["error"] == "invalid_request"


def test_auth_code_confidential_client_with_and_without_pkce(srv: OAuthServer) -> None:
    _, location, _ = _authorize(srv, "conf")
    form = {
        "grant_type": "authorization_code",
        "code": _code_from(location or "")["code"],
        "redirect_uri": REDIRECT,
    }
    status, body, _ = _json(srv.token_url, form, auth=("conf", "conf-secret"))
    assert status == 200, body
    verifier, challenge = _pkce()
    _, location, _ = _authorize(srv, "conf", code_challenge=challenge, code_challenge_method="S256")
    form = {
        "grant_type": "authorization_code",
        "code": _code_from(location or "")["code"],
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    status, body, _ = _json(srv.token_url, form, auth=("conf", "conf-secret"))
    assert status == 200, body
    # The code is bound to the client that asked for it.
    _, location, _ = _authorize(srv, "conf")
    form = {
        "grant_type": "authorization_code",
        "code": _code_from(location or "")["code"],
        "redirect_uri": REDIRECT,
    }
    srv.add_client("other", "other-secret")
    status, body, _ = _json(srv.token_url, form, auth=("other", "other-secret"))
    assert (status, body["error"]) == (400, "invalid_grant")


def test_authorize_accepts_any_loopback_port_and_rejects_others(srv: OAuthServer) -> None:
    _, challenge = _pkce()
    pk = {"code_challenge": challenge, "code_challenge_method": "S256"}
    for uri in ("http://127.0.0.1:1234/cb", "http://localhost:40000/", "http://127.0.0.1:8/x?keep=1"):
        status, location, _ = _authorize(srv, "public", redirect_uri=uri, **pk)
        assert status == 302 and location is not None and location.startswith(uri), (uri, location)
    for uri in (
        "https://evil.example/cb",
        "http://127.0.0.1/cb",
        "http://10.1.2.3:80/cb",
        "ftp://localhost:21/",
    ):
        status, location, body = _authorize(srv, "public", redirect_uri=uri, **pk)
        assert status == 400 and location is None, (uri, body)
        assert json.loads(body)["error"] == "invalid_request"
    status, location, body = _authorize(srv, "ghost", **pk)
    assert (status, location, json.loads(body)["error"]) == (400, None, "invalid_client")
    # With a valid redirect_uri, errors go back to the client.
    _, location, _ = _authorize(srv, "public", scope="admin", **pk)
    assert _code_from(location or "")["error"] == "invalid_scope"


# -- device flow (RFC 8628) -----------------------------------------------------------------------


def _device_start(srv: OAuthServer, client_id: str = "public", **extra: str) -> dict[str, Any]:
    status, body, _ = _json(srv.device_url, {"client_id": client_id, **extra})
    assert status == 200, body
    return body


def _poll(srv: OAuthServer, device_code: str, client_id: str = "public") -> tuple[int, dict[str, Any]]:
    form = {"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": client_id}
    status, body, _ = _json(srv.token_url, form)
    return status, body


def test_device_flow_pending_slow_down_approve(srv: OAuthServer) -> None:
    start = _device_start(srv, scope="read")
    assert set(start) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "interval",
    }
    assert (start["interval"], start["expires_in"]) == (1, 300)
    assert start["verification_uri"] == srv.url + "/device"
    assert start["verification_uri_complete"].endswith("user_code=" + start["user_code"])
    assert _poll(srv, start["device_code"]) == (400, {"error": "authorization_pending"})
    assert _poll(srv, start["device_code"]) == (400, {"error": "slow_down"})
    time.sleep(1.1)  # respecting the interval: pending again, not slow_down
    assert _poll(srv, start["device_code"]) == (400, {"error": "authorization_pending"})
    # The user opens verification_uri_complete and approves, over HTTP.
    status, headers, page = _call(start["verification_uri_complete"])
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert start["user_code"].encode() in page and b"action=approve" in page
    status, _, _ = _call(start["verification_uri_complete"] + "&action=approve")
    assert status == 200
    status, body = _poll(srv, start["device_code"])
    assert status == 200, body
    assert body["scope"] == "read" and body["refresh_token"]
    assert _me(srv, body["access_token"])[1]["sub"] == "test-user"
    # The device code is spent.
    assert _poll(srv, start["device_code"])[1]["error"] == "invalid_grant"
    assert _call(srv.url + "/device?user_code=NOPE-NOPE&action=approve")[0] == 404


def test_device_flow_confidential_client_and_deny(srv: OAuthServer) -> None:
    status, start, _ = _json(srv.device_url, {}, auth=("conf", "conf-secret"))
    assert status == 200, start
    srv.deny_device(start["user_code"])
    form = {"grant_type": DEVICE_GRANT, "device_code": start["device_code"]}
    status, body, _ = _json(srv.token_url, form, auth=("conf", "conf-secret"))
    assert (status, body["error"]) == (400, "access_denied")
    # Another client cannot poll this device code.
    start = _device_start(srv)
    srv.approve_device(start["user_code"])
    form = {"grant_type": DEVICE_GRANT, "device_code": start["device_code"]}
    status, body, _ = _json(srv.token_url, form, auth=("conf", "conf-secret"))
    assert (status, body["error"]) == (400, "unauthorized_client")
    with pytest.raises(KeyError):
        srv.approve_device("ZZZZ-ZZZZ")


def test_device_flow_expiry_and_bad_scope(srv: OAuthServer) -> None:
    srv.device_expires_in = 1
    srv.device_interval = 3
    start = _device_start(srv)
    assert (start["expires_in"], start["interval"]) == (1, 3)
    time.sleep(1.1)
    assert _poll(srv, start["device_code"]) == (400, {"error": "expired_token"})
    status, body, _ = _json(srv.device_url, {"client_id": "public", "scope": "admin"})
    assert (status, body["error"]) == (400, "invalid_scope")
    status, body, _ = _json(srv.device_url, {"client_id": "ghost"})
    assert body["error"] == "invalid_client"


# -- token shape and lifetime ---------------------------------------------------------------------


def test_jwt_access_tokens(srv: OAuthServer) -> None:
    srv.jwt_access_tokens = True
    srv.token_lifetime = 120
    status, body = _cc(srv, scope="read")
    assert status == 200 and body["expires_in"] == 120
    token = jwt.decode(body["access_token"], srv.jwt_key, algorithms=["HS256"])
    assert token.header["alg"] == "HS256"
    claims = token.claims
    assert claims["exp"] - claims["iat"] == 120
    assert abs(claims["iat"] - time.time()) < 5
    assert (claims["sub"], claims["scope"], claims["client_id"], claims["iss"]) == (
        "conf",
        "read",
        "conf",
        srv.url,
    )
    assert _me(srv, body["access_token"])[0] == 200
    # Unverified decoding (what a client that only wants exp does) works too.
    payload = body["access_token"].split(".")[1]
    assert json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"] == claims["exp"]


def test_omit_expires_in(srv: OAuthServer) -> None:
    srv.omit_expires_in = True
    srv.jwt_access_tokens = True
    srv.token_lifetime = 60
    status, body = _cc(srv)
    assert status == 200 and "expires_in" not in body
    claims = jwt.decode(body["access_token"], srv.jwt_key).claims
    assert claims["exp"] - claims["iat"] == 60
    info = srv.introspect(body["access_token"])
    assert info is not None and info["exp"] == claims["exp"]


def test_access_tokens_expire_server_side(srv: OAuthServer) -> None:
    srv.token_lifetime = 1
    _, short = _cc(srv)
    assert short["expires_in"] == 1
    assert _me(srv, short["access_token"])[0] == 200
    time.sleep(1.1)
    status, body = _me(srv, short["access_token"])
    assert (status, body["error"]) == (401, "invalid_token")
    info = srv.introspect(short["access_token"])
    assert info is not None and info["active"] is False


def test_expire_all_access_tokens_keeps_refresh_tokens(srv: OAuthServer) -> None:
    srv.issue_refresh_for_client_credentials = True
    _, tok = _cc(srv)
    assert _me(srv, tok["access_token"])[0] == 200
    srv.expire_all_access_tokens()
    assert _me(srv, tok["access_token"])[0] == 401
    assert srv.introspect(tok["access_token"])["active"] is False  # type: ignore[index]
    status, fresh = _refresh(srv, tok["refresh_token"])
    assert status == 200
    assert _me(srv, fresh["access_token"])[0] == 200


def test_api_me_requires_a_valid_bearer(srv: OAuthServer) -> None:
    status, body = _me(srv, None)
    assert (status, body["error"]) == (401, "missing_authorization")
    assert _me(srv, "not-a-token")[0] == 401
    status, _, _ = _call(srv.url + "/api/me", headers={"Authorization": _basic("conf", "conf-secret")})
    assert status == 401
    _, tok = _cc(srv)
    assert _me(srv, tok["access_token"])[0] == 200


# -- failure modes --------------------------------------------------------------------------------


def test_mode_down_resets_or_503(srv: OAuthServer) -> None:
    srv.mode = "down"
    with pytest.raises((OSError, http.client.HTTPException)):
        _call(srv.token_url, {"grant_type": "client_credentials"}, auth=("conf", "conf-secret"))
    with pytest.raises((OSError, http.client.HTTPException)):
        _call(srv.url + "/api/me")
    srv.down_style = "503"
    status, body, _ = _json(srv.token_url, {"grant_type": "client_credentials"}, auth=("conf", "conf-secret"))
    assert (status, body["error"]) == (503, "temporarily_unavailable")
    srv.mode = "normal"
    assert _cc(srv)[0] == 200
    assert [r["status"] for r in srv.token_requests] == [0, 503, 200]


def test_mode_slow(srv: OAuthServer) -> None:
    srv.mode = "slow"
    srv.slow_seconds = 0.5
    t0 = time.monotonic()
    assert _cc(srv)[0] == 200
    assert time.monotonic() - t0 >= 0.5
    srv.slow_seconds = 10
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        _call(srv.token_url, {"grant_type": "client_credentials"}, auth=("conf", "conf-secret"), timeout=0.3)
    assert time.monotonic() - t0 < 2
    srv.mode = "normal"
    assert _cc(srv)[0] == 200


def test_mode_html_and_no_token(srv: OAuthServer) -> None:
    srv.mode = "html"
    status, headers, body = _call(
        srv.token_url, {"grant_type": "client_credentials"}, auth=("conf", "conf-secret")
    )
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert body.startswith(b"<html>")
    srv.mode = "no_token"
    status, body = _cc(srv)
    assert status == 200 and "access_token" not in body and body["token_type"] == "Bearer"
    srv.mode = "normal"
    assert "access_token" in _cc(srv)[1]
    assert srv.count() == 3


# -- bookkeeping ----------------------------------------------------------------------------------


def test_token_requests_are_recorded(srv: OAuthServer) -> None:
    srv.issue_refresh_for_client_credentials = True
    _, tok = _cc(srv)
    _cc(srv, scope="bogus")
    _refresh(srv, tok["refresh_token"])
    _json(
        srv.token_url,
        {"grant_type": "client_credentials", "client_id": "poster", "client_secret": "post-secret"},
    )
    _poll(srv, _device_start(srv)["device_code"])
    log = srv.token_requests
    assert [(r["grant_type"], r["client_id"], r["status"], r["error"]) for r in log] == [
        ("client_credentials", "conf", 200, None),
        ("client_credentials", "conf", 400, "invalid_scope"),
        ("refresh_token", "conf", 200, None),
        ("client_credentials", "poster", 200, None),
        (DEVICE_GRANT, "public", 400, "authorization_pending"),
    ]
    assert all(isinstance(r["time"], float) for r in log)
    assert [r["time"] for r in log] == sorted(r["time"] for r in log)
    assert (
        srv.count(),
        srv.count("client_credentials"),
        srv.count("refresh_token"),
        srv.count("password"),
    ) == (
        5,
        3,
        1,
        0,
    )
    log.clear()  # a snapshot: the server's record is untouched
    assert srv.count() == 5


def test_metadata_and_close() -> None:
    server = OAuthServer()
    status, meta, _ = _json(server.url + "/.well-known/oauth-authorization-server")
    assert status == 200
    assert (meta["issuer"], meta["token_endpoint"], meta["device_authorization_endpoint"]) == (
        server.url,
        server.token_url,
        server.device_url,
    )
    assert server.authorize_url == server.url + "/oauth/authorize"
    assert server.url.startswith("http://127.0.0.1:")
    t0 = time.monotonic()
    server.close()
    server.close()  # idempotent
    assert time.monotonic() - t0 < 3
    with pytest.raises(OSError):
        _call(server.token_url, {"grant_type": "client_credentials"}, timeout=2)
