"""A real OAuth 2.0 authorization server for tests, built on Authlib's server components.

Authlib's Flask integration (``authlib.integrations.flask_oauth2.AuthorizationServer`` and
``ResourceProtector``) does all protocol work: client authentication, grant validation, PKCE
(RFC 7636), the device flow (RFC 8628), bearer and RFC 9068 JWT access tokens, error responses.
This module only supplies in-memory models, a few knobs for failure tests and a werkzeug server
in a background thread bound to 127.0.0.1 on an OS-picked port::

    with OAuthServer() as srv:
        srv.add_client("cli", "s3cret")
        ...  # POST srv.token_url with grant_type=client_credentials and HTTP Basic auth

Endpoints:

* ``POST /oauth/token``: client_credentials, refresh_token, authorization_code (+PKCE) and
  ``urn:ietf:params:oauth:grant-type:device_code``. Every call is recorded in ``token_requests``.
* ``GET /oauth/authorize``: auto-approving consent; 302 to the (loopback) redirect_uri with code+state.
* ``POST /oauth/device/code``: RFC 8628 device authorization.
* ``GET /device?user_code=X&action=approve|deny``: the "user" side of the device flow.
* ``GET /api/me``: protected resource; 200 ``{"client_id", "scope", "sub"}`` for a valid bearer token.
* ``GET /.well-known/oauth-authorization-server``: RFC 8414 metadata.

Knobs (plain attributes, settable at any time): ``token_lifetime``, ``rotate_refresh_tokens``,
``issue_refresh_for_client_credentials``, ``jwt_access_tokens``, ``omit_expires_in``, ``mode``
(``normal``/``down``/``slow``/``html``/``no_token``), ``down_style`` (``reset``/``503``),
``slow_seconds``, ``device_interval``, ``device_expires_in``.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import secrets
import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector, current_token
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, grants
from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint, DeviceCodeGrant, DeviceCredentialDict
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from flask import Flask, Response, jsonify, request
from joserfc.jwk import OctKey
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request

LOOPBACK = "127.0.0.1"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_GRANTS: tuple[str, ...] = ("client_credentials", "refresh_token", "authorization_code", DEVICE_GRANT)
MODES = ("normal", "down", "slow", "html", "no_token")
AUTH_CODE_LIFETIME_S = 600
JOIN_TIMEOUT_S = 5.0
HANDLER_IDLE_TIMEOUT_S = 30.0
LOOPBACK_REDIRECT_HOSTS = ("127.0.0.1", "localhost", "::1")


# -- in-memory models ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _User:
    """The resource owner. Client-credentials tokens get a "user" named after the client."""

    user_id: str

    def get_user_id(self) -> str:
        return self.user_id


TEST_USER = _User("test-user")


@dataclass
class _Client(ClientMixin):
    client_id: str
    client_secret: str | None
    auth_method: str
    grants: tuple[str, ...]
    scope: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        # None -> Authlib answers invalid_scope.
        if not scope:
            return self.scope
        allowed = set(scope_to_list(self.scope))
        requested = scope_to_list(scope)
        if not set(requested) <= allowed:
            return None
        return " ".join(requested)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # RFC 8252 section 7.3: loopback redirect URIs, any port.
        try:
            parts = urlsplit(redirect_uri)
            port = parts.port
        except ValueError:
            return False
        return (
            parts.scheme == "http"
            and parts.hostname in LOOPBACK_REDIRECT_HOSTS
            and port is not None
            and not parts.fragment
        )

    def check_client_secret(self, client_secret: str) -> bool:
        if self.client_secret is None:
            return False
        return hmac.compare_digest(self.client_secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grants

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grants


@dataclass
class _Token(TokenMixin):
    access_token: str
    client_id: str
    scope: str
    user: _User
    grant_type: str
    issued_at: float
    expires_at: float
    refresh_token: str | None = None
    access_revoked: bool = False
    refresh_revoked: bool = False

    def check_client(self, client: ClientMixin) -> bool:
        return client.get_client_id() == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, int(self.expires_at - self.issued_at))

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.access_revoked

    def get_user(self) -> _User:
        return self.user

    def get_client(self) -> Any:
        return self.client_id


@dataclass
class _AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: _User
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class _Store:
    """Everything the server knows. Guarded by ``lock``; the token endpoint is also serialised."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    clients: dict[str, _Client] = field(default_factory=dict)
    tokens: dict[str, _Token] = field(default_factory=dict)  # by access token
    refresh: dict[str, _Token] = field(default_factory=dict)  # by refresh token
    codes: dict[str, _AuthCode] = field(default_factory=dict)
    devices: dict[str, DeviceCredentialDict] = field(default_factory=dict)  # by device_code
    user_grants: dict[str, bool] = field(default_factory=dict)  # user_code -> approved?


# -- Authlib grant and endpoint subclasses --------------------------------------------------------


class _Server(AuthorizationServer):
    """Authlib's Flask AuthorizationServer with a back-reference to the harness."""

    harness: OAuthServer


def _harness(server: Any) -> OAuthServer:
    return server.harness


class _ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]  # noqa: RUF012

    def create_token_response(self):  # type: ignore[override]
        # Authlib's version never issues a refresh token (RFC 6749 4.4.3 "SHOULD NOT"); ours can.
        include = _harness(self.server).issue_refresh_for_client_credentials and self.client.check_grant_type(
            "refresh_token"
        )
        token = self.generate_token(scope=self.request.payload.scope, include_refresh_token=include)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class _RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]  # noqa: RUF012

    @property
    def INCLUDE_NEW_REFRESH_TOKEN(self) -> bool:  # type: ignore[override]
        return _harness(self.server).rotate_refresh_tokens

    def authenticate_refresh_token(self, refresh_token: str) -> _Token | None:
        store = _harness(self.server)._store
        with store.lock:
            token = store.refresh.get(refresh_token)
            if token is None or token.refresh_revoked:
                return None
            return token

    def authenticate_user(self, refresh_token: _Token) -> _User:
        return refresh_token.user

    def revoke_old_credential(self, refresh_token: _Token) -> None:
        if not _harness(self.server).rotate_refresh_tokens:
            return
        with _harness(self.server)._store.lock:
            refresh_token.refresh_revoked = True


class _S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only; a public client must send a code_challenge."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012

    def validate_code_challenge(self, grant, redirect_uri):
        request_ = grant.request
        challenge = request_.payload.data.get("code_challenge")
        if not challenge and grant.request.client.auth_method == "none":
            raise InvalidRequestError("Missing 'code_challenge': PKCE is required for public clients")
        if challenge and request_.payload.data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Unsupported 'code_challenge_method': use S256")
        return super().validate_code_challenge(grant, redirect_uri)


class _AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]  # noqa: RUF012

    def save_authorization_code(self, code: str, request_) -> None:
        store = _harness(self.server)._store
        item = _AuthCode(
            code=code,
            client_id=request_.client.get_client_id(),
            redirect_uri=request_.payload.redirect_uri,
            scope=request_.scope,
            user=request_.user,
            code_challenge=request_.payload.data.get("code_challenge"),
            code_challenge_method=request_.payload.data.get("code_challenge_method"),
            expires_at=time.time() + AUTH_CODE_LIFETIME_S,
        )
        with store.lock:
            store.codes[code] = item

    def query_authorization_code(self, code: str, client: _Client) -> _AuthCode | None:
        store = _harness(self.server)._store
        with store.lock:
            item = store.codes.get(code)
        if item is None or item.client_id != client.client_id or item.expires_at < time.time():
            return None
        return item

    def delete_authorization_code(self, authorization_code: _AuthCode) -> None:
        with _harness(self.server)._store.lock:
            _harness(self.server)._store.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: _AuthCode) -> _User:
        return authorization_code.user


class _DeviceAuthorizationEndpoint(DeviceAuthorizationEndpoint):
    @property
    def EXPIRES_IN(self) -> int:  # type: ignore[override]
        return int(_harness(self.server).device_expires_in)

    @property
    def INTERVAL(self) -> int:  # type: ignore[override]
        return int(_harness(self.server).device_interval)

    def authenticate_client(self, request_):
        client = super().authenticate_client(request_)
        if not client.check_grant_type(DEVICE_GRANT):
            raise UnauthorizedClientError("The client may not use the device flow")
        if client.get_allowed_scope(request_.payload.scope) is None:
            raise InvalidScopeError()
        return client

    def get_verification_uri(self) -> str:
        return _harness(self.server).url + "/device"

    def save_device_credential(self, client_id: str, scope: str | None, data: dict[str, Any]) -> None:
        store = _harness(self.server)._store
        item = DeviceCredentialDict(
            client_id=client_id,
            scope=scope,
            device_code=data["device_code"],
            user_code=data["user_code"],
            expires_at=time.time() + data["expires_in"],
            last_poll=None,
        )
        with store.lock:
            store.devices[data["device_code"]] = item


class _DeviceCodeGrant(DeviceCodeGrant):
    def query_device_credential(self, device_code: str) -> DeviceCredentialDict:
        with _harness(self.server)._store.lock:
            item = _harness(self.server)._store.devices.get(device_code)
        if item is None:
            # Unknown or already exchanged (RFC 6749 5.2: invalid, expired, revoked grant).
            raise InvalidGrantError("Invalid or already used 'device_code'")
        return item

    def query_user_grant(self, user_code: str) -> tuple[_User, bool] | None:
        with _harness(self.server)._store.lock:
            approved = _harness(self.server)._store.user_grants.get(user_code)
        if approved is None:
            return None
        return TEST_USER, approved

    def should_slow_down(self, credential: DeviceCredentialDict) -> bool:
        now = time.monotonic()
        with _harness(self.server)._store.lock:
            last = credential.get("last_poll")
            credential["last_poll"] = now
        return last is not None and now - last < _harness(self.server).device_interval

    def create_token_response(self):  # type: ignore[override]
        result = super().create_token_response()
        with _harness(self.server)._store.lock:
            _harness(self.server)._store.devices.pop(self.request.credential["device_code"], None)
        return result


class _JWTGenerator(JWTBearerTokenGenerator):
    def __init__(self, harness: OAuthServer, **kwargs: Any) -> None:
        super().__init__(issuer=harness.url, alg="HS256", **kwargs)
        self._harness = harness

    def get_jwks(self) -> OctKey:
        return self._harness.jwt_key


class _BearerValidator(BearerTokenValidator):
    def __init__(self, harness: OAuthServer) -> None:
        super().__init__()
        self._harness = harness

    def authenticate_token(self, token_string: str) -> _Token | None:
        with self._harness._store.lock:
            return self._harness._store.tokens.get(token_string)


# -- the werkzeug request handler -----------------------------------------------------------------


class _Handler(WSGIRequestHandler):
    """Quiet handler that can drop the connection with a TCP reset when the server is "down"."""

    timeout = HANDLER_IDLE_TIMEOUT_S
    harness: OAuthServer  # set on a per-server subclass

    def run_wsgi(self) -> None:
        harness = self.harness
        if harness.mode == "down" and harness.down_style == "reset":
            req = Request(self.make_environ())
            if req.path == "/oauth/token":
                harness._record(req, 0, "connection_reset")
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()  # linger 0: RST, not FIN
            return
        super().run_wsgi()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


# -- the harness ----------------------------------------------------------------------------------


class OAuthServer:
    """An Authlib authorization server on 127.0.0.1:<random port>, running until ``close()``."""

    def __init__(self) -> None:
        self.token_lifetime: int = 3600
        self.rotate_refresh_tokens: bool = True
        self.issue_refresh_for_client_credentials: bool = False
        self.jwt_access_tokens: bool = False
        self.omit_expires_in: bool = False
        self.mode = "normal"
        self.down_style: str = "reset"  # "reset" (TCP RST) or "503"
        self.slow_seconds: float = 5.0
        self.device_interval: int = 1
        self.device_expires_in: int = 300
        self.jwt_secret: bytes = secrets.token_bytes(32)
        self.jwt_key: OctKey = OctKey.import_key(self.jwt_secret)

        self._store = _Store()
        self._log_lock = threading.Lock()
        self._token_requests: list[dict[str, Any]] = []
        self._token_endpoint_lock = threading.Lock()
        self._closing = threading.Event()
        self._closed = False

        handler = type("_BoundHandler", (_Handler,), {"harness": self})
        self._httpd = make_server(LOOPBACK, 0, self._wsgi, threaded=True, request_handler=handler)
        self.port: int = self._httpd.port
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.token_url = self.url + "/oauth/token"
        self.authorize_url = self.url + "/oauth/authorize"
        self.device_url = self.url + "/oauth/device/code"
        self.verification_url = self.url + "/device"
        self.me_url = self.url + "/api/me"
        self._app = self._make_app()  # needs self.url (issuer, verification_uri)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="oauth-server", daemon=True
        )
        self._thread.start()

    @property
    def mode(self) -> str:
        """``normal``, ``down``, ``slow``, ``html`` or ``no_token`` (see the module docstring)."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {value!r}")
        self._mode = value

    # -- setup ---------------------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self._app(environ, start_response)

    def _make_app(self) -> Flask:
        app = Flask(__name__)
        server = _Server(app, query_client=self._query_client, save_token=self._save_token)
        server.harness = self
        opaque = BearerTokenGenerator(
            access_token_generator=lambda **_: secrets.token_urlsafe(32),
            refresh_token_generator=lambda **_: secrets.token_urlsafe(36),
            expires_generator=lambda client, grant_type: int(self.token_lifetime),
        )
        jwt_gen = _JWTGenerator(
            self,
            refresh_token_generator=lambda **_: secrets.token_urlsafe(36),
            expires_generator=lambda client, grant_type: int(self.token_lifetime),
        )

        def generate(grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True):
            gen = jwt_gen if self.jwt_access_tokens else opaque
            return gen(grant_type, client, user, scope, expires_in, include_refresh_token)

        server.register_token_generator("default", generate)
        server.register_grant(_ClientCredentialsGrant)
        server.register_grant(_RefreshTokenGrant)
        server.register_grant(_AuthorizationCodeGrant, [_S256CodeChallenge(required=True)])
        server.register_grant(_DeviceCodeGrant)
        server.register_endpoint(_DeviceAuthorizationEndpoint(server))

        protect = ResourceProtector()
        protect.register_token_validator(_BearerValidator(self))

        @app.before_request
        def _down():
            if self.mode != "down":
                return None
            # down_style == "503" (with "reset" the handler drops the connection before Flask)
            if request.path == "/oauth/token":
                self._record(request, 503, "temporarily_unavailable")
            return jsonify(error="temporarily_unavailable"), 503

        @app.post("/oauth/token")
        def token():
            return self._token_endpoint(server)

        @app.get("/oauth/authorize")
        def authorize():
            try:
                grant = server.get_consent_grant(end_user=TEST_USER)
            except OAuth2Error as error:
                if error.redirect_uri:  # the redirect_uri was validated: report the error there
                    return server.handle_error_response(None, error)
                # unknown client or a redirect_uri we won't send to: show the "user" a 400 page
                return jsonify(error=error.error, error_description=error.description), 400
            return server.create_authorization_response(grant_user=TEST_USER, grant=grant)

        @app.post("/oauth/device/code")
        def device_code():
            return server.create_endpoint_response("device_authorization")

        @app.get("/device")
        def device_page():
            user_code = (request.args.get("user_code") or "").strip().upper()
            action = request.args.get("action")
            with self._store.lock:
                known = any(d["user_code"] == user_code for d in self._store.devices.values())
            if not known:
                return Response("unknown or expired user_code\n", 404, mimetype="text/plain")
            if action in ("approve", "deny"):
                self._set_user_grant(user_code, action == "approve")
            else:
                page = (
                    f"<html><body><p>Authorize device {user_code}?</p>"
                    f'<a href="?user_code={user_code}&action=approve">approve</a> '
                    f'<a href="?user_code={user_code}&action=deny">deny</a></body></html>'
                )
                return Response(page, 200, mimetype="text/html")
            done = "approved" if action == "approve" else "denied"
            return Response(f"device {user_code} {done}\n", 200, mimetype="text/plain")

        @app.get("/api/me")
        @protect()
        def me():
            tok: _Token = current_token._get_current_object()
            return jsonify(client_id=tok.client_id, scope=tok.scope, sub=tok.user.get_user_id())

        @app.get("/.well-known/oauth-authorization-server")
        def metadata():
            return jsonify(
                issuer=self.url,
                token_endpoint=self.token_url,
                authorization_endpoint=self.authorize_url,
                device_authorization_endpoint=self.device_url,
                grant_types_supported=list(DEFAULT_GRANTS),
                response_types_supported=["code"],
                code_challenge_methods_supported=["S256"],
                token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post", "none"],
            )

        return app

    def _token_endpoint(self, server: _Server) -> Response:
        mode = self.mode
        if mode == "slow":
            self._closing.wait(max(0.0, float(self.slow_seconds)))
        if mode == "html":
            response = Response("<html><body><h1>Sign in</h1></body></html>", 200, mimetype="text/html")
        elif mode == "no_token":
            response = jsonify(token_type="Bearer", expires_in=int(self.token_lifetime))
        else:
            with self._token_endpoint_lock:  # serialise so refresh rotation is race-free
                response = server.create_token_response()
            if self.omit_expires_in and response.status_code == 200 and response.is_json:
                body = response.get_json()
                body.pop("expires_in", None)
                response.set_data(json.dumps(body))
        error = None
        if response.status_code >= 400 and response.is_json:
            error = (response.get_json(silent=True) or {}).get("error")
        self._record(request, response.status_code, error)
        return response

    def _record(self, req: Request, status: int, error: str | None) -> None:
        client_id = req.form.get("client_id")
        if not client_id and req.authorization is not None and req.authorization.type == "basic":
            client_id = req.authorization.username
        entry = {
            "grant_type": req.form.get("grant_type"),
            "client_id": client_id,
            "time": time.time(),
            "status": status,
            "error": error,
        }
        with self._log_lock:
            self._token_requests.append(entry)

    # -- Authlib callbacks ---------------------------------------------------------------------

    def _query_client(self, client_id: str) -> _Client | None:
        with self._store.lock:
            return self._store.clients.get(client_id)

    def _save_token(self, token: dict[str, Any], request_) -> None:
        now = time.time()
        client = request_.client
        user = request_.user or _User(client.get_client_id())
        lifetime = token.get("expires_in", int(self.token_lifetime))
        item = _Token(
            access_token=token["access_token"],
            client_id=client.get_client_id(),
            scope=token.get("scope") or "",
            user=user,
            grant_type=request_.payload.grant_type,
            issued_at=now,
            expires_at=now + lifetime,
            refresh_token=token.get("refresh_token"),
        )
        with self._store.lock:
            self._store.tokens[item.access_token] = item
            if item.refresh_token:
                self._store.refresh[item.refresh_token] = item

    # -- public API ----------------------------------------------------------------------------

    def add_client(
        self,
        client_id: str,
        client_secret: str | None = None,
        *,
        auth_method: str = "client_secret_basic",
        grants: Iterable[str] = DEFAULT_GRANTS,
        scope: str = "read write",
    ) -> None:
        """Register (or replace) a client. ``auth_method="none"`` makes a public (PKCE) client."""
        if auth_method not in ("client_secret_basic", "client_secret_post", "none"):
            raise ValueError(f"unsupported auth_method {auth_method!r}")
        if auth_method != "none" and not client_secret:
            raise ValueError("a confidential client needs a client_secret")
        client = _Client(
            client_id, client_secret if auth_method != "none" else None, auth_method, tuple(grants), scope
        )
        with self._store.lock:
            self._store.clients[client_id] = client

    @property
    def token_requests(self) -> list[dict[str, Any]]:
        """A snapshot of every token endpoint call: grant_type, client_id, time, status, error.

        ``status`` is the HTTP status answered, or 0 when ``mode == "down"`` reset the connection;
        ``error`` is the OAuth error code of a JSON error answer (else None).
        """
        with self._log_lock:
            return [dict(e) for e in self._token_requests]

    def provider_entry(self, pid: str = "api", **oauth2: object) -> str:
        """A provider of this server for `Sig.add_providers`: domains [127.0.0.1], its entryUrl, strategy
        oauth2 and the `oauth2:` settings given (tokenUrl defaults to this server's)."""
        settings = {"tokenUrl": self.token_url, **oauth2}
        lines = [f"  {pid}:", "    domains: [127.0.0.1]", f"    entryUrl: {self.url}/", "    strategy: oauth2",
                 "    oauth2:", *(f"      {key}: {json.dumps(value)}" for key, value in settings.items())]
        return "\n".join(lines) + "\n"

    def count(self, grant_type: str | None = None) -> int:
        with self._log_lock:
            return sum(1 for e in self._token_requests if grant_type is None or e["grant_type"] == grant_type)

    def _set_user_grant(self, user_code: str, approved: bool) -> None:
        user_code = user_code.strip().upper()
        with self._store.lock:
            if not any(d["user_code"] == user_code for d in self._store.devices.values()):
                raise KeyError(f"unknown user_code {user_code!r}")
            self._store.user_grants[user_code] = approved

    def approve_device(self, user_code: str) -> None:
        self._set_user_grant(user_code, True)

    def deny_device(self, user_code: str) -> None:
        self._set_user_grant(user_code, False)

    def expire_all_access_tokens(self) -> None:
        """Every access token issued so far is expired server side (refresh tokens stay valid)."""
        past = time.time() - 1
        with self._store.lock:
            for tok in self._store.tokens.values():
                tok.expires_at = min(tok.expires_at, past)

    def introspect(self, access_token: str) -> dict[str, Any] | None:
        """RFC 7662-like view of an access token, or None if this server never issued it."""
        with self._store.lock:
            tok = self._store.tokens.get(access_token)
            if tok is None:
                return None
            return {
                "active": not tok.is_expired() and not tok.is_revoked(),
                "client_id": tok.client_id,
                "scope": tok.scope,
                "exp": int(tok.expires_at),
                "sub": tok.user.get_user_id(),
                "grant_type": tok.grant_type,
            }

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._httpd.shutdown()
        self._thread.join(JOIN_TIMEOUT_S)
        self._httpd.server_close()

    def __enter__(self) -> OAuthServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<OAuthServer {self.url} mode={self.mode}>"
