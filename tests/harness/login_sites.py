"""Loopback websites that the browser-login end-to-end tests log into.

``sig login`` drives a real Chromium and contains no site-specific automation, so the "user" is
played by the pages themselves: every login page fills in and submits its own form (or fires its
own ``fetch``) ``user_delay_ms`` after ``DOMContentLoaded``. With ``auto_user=False`` the pages
stay put, which lets a test check that sig waits instead of declaring success; once such a page has
passed the moment it would have acted, it marks ``<html data-user="idle">``.

``hold_users()`` makes the user wait instead: pages rendered while held ask ``GET /__gate`` (counted in
``hits``) every 100 ms and act only once ``release_users()`` opened it. A test sees a page waiting at
the gate in ``hits(site, "/__gate")``, a state it can wait on rather than a time.

    with LoginSites() as sites:
        ...  # sig login sites.sso_app + "/"  --validate sites.sso_app + "/wiki/rest/api/myself"
        assert sites.issued("sso")

The user is always ``alice`` / ``hunter2``; the MFA code is ``123456``.

Scenarios (``hits``/``authorized_hits`` keys in brackets; ``issued`` keys in braces):

1. Multi-hop SSO with MFA and a sub-path session cookie [``sso`` app, ``idp``] {``sso``, ``idp``}.
   ``sso_app`` (127.0.0.1) sends the browser to ``idp`` (host ``localhost``: another site for the
   browser), which asks for a password, then an MFA code, then redirects back with a one-time code.
   The app trades it for ``session=<random>; Path=/wiki; HttpOnly; Max-Age=28800``. Decoys on the
   response to ``/``: ``lang=en; Path=/`` and ``static_ver=3; Path=/static``. The IdP's own cookie is
   ``idp_session=<random>; Path=/; HttpOnly`` (host-only, localhost). Validate URL:
   ``/wiki/rest/api/myself`` (200 ``{"name": "alice"}`` / 401 ``{"error": "unauthorized"}``).
2. Public site that sets tracking cookies on every response [``tracking``] {``tracking``}:
   ``_ga`` (2 years), ``_gid`` (1 day), ``_gat`` (30 s), all ``Path=/``. The login (fetch POST
   ``/login``) sets ``sid=<random>; Path=/; HttpOnly; Max-Age=7200``. Validate URL: ``/api/me``.
3. API that answers 200 with an error body [``api``] {``api``}: fetch POST ``/session`` sets the
   session cookie ``auth=<random>; Path=/; HttpOnly`` (no Max-Age). ``/api/status`` is always 200:
   ``{"ok": true, "user": "alice"}`` or ``{"ok": false, "error": "not logged in"}``.
4. SPA keeping its token in localStorage [``spa``] {``spa``, ``spa-cookie``}: fetch POST
   ``/api/login`` answers ``{"accessToken", "expiresAt"}`` (epoch ms, +1 h) and sets
   ``d=<random>; Path=/; Max-Age=86400``; the page stores ``localStorage.auth`` (that JSON) and
   ``localStorage.theme = "dark"``, then polls ``/api/me`` with ``Authorization: Bearer`` every
   500 ms (at most 120 times). ``/api/me`` is 200 with a valid bearer token, 401 otherwise.
5. Intranet with session cookies only [``session``] {``session``}: ``/`` is the dashboard with a valid
   ``sid``, else a redirect to ``/login`` (a login page), whose form POSTs ``/login``; that sets
   ``sid=<random>; Path=/; HttpOnly`` (no Max-Age/Expires: gone when the browser closes) and the
   persistent ``theme=dark; Path=/; Max-Age=31536000``, and redirects to ``/``. ``/api/me``: 200
   ``{"user": "alice"}`` with a valid ``sid``, 401 otherwise. The server honours a ``sid`` until
   ``revoke("session")``, however often the browser restarts.

Every server binds 127.0.0.1 on an OS-picked port and runs in a daemon thread; ``__exit__`` stops
them within a few seconds even if a browser still holds keep-alive connections.
"""

from __future__ import annotations

import html
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from harness.servers import LoopbackServer

LOOPBACK = "127.0.0.1"
USER = "alice"
PASSWORD = "hunter2"
MFA_CODE = "123456"

SSO_SESSION_MAX_AGE = 8 * 3600
TRACKING_SID_MAX_AGE = 2 * 3600
SPA_COOKIE_MAX_AGE = 86400
SPA_TOKEN_LIFETIME_MS = 3_600_000
SPA_POLL_MS = 500
SPA_POLL_MAX = 120
AUTH_CODE_LIFETIME_S = 300

HIT_SCENARIOS = ("sso", "idp", "tracking", "api", "spa", "session")
ISSUED_KINDS = ("sso", "idp", "tracking", "api", "spa", "spa-cookie", "session")

MAX_BODY_BYTES = 1024 * 1024
IDLE_TIMEOUT_S = 15.0
JOIN_TIMEOUT_S = 5.0


# -- tiny request/response model ----------------------------------------------------------------


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Message
    cookies: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        parsed = parse_qs(self.body.decode("utf-8", errors="replace"), keep_blank_values=True)
        return {name: values[0] for name, values in parsed.items()}

    def json(self) -> dict[str, Any] | None:
        """The JSON object body, or None when the body is not a JSON object."""
        try:
            data = json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def bearer(self) -> str | None:
        value = self.headers.get("Authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return token.strip() or None


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def cookie(self, value: str) -> _Reply:
        self.headers.append(("Set-Cookie", value))
        return self


def _html(status: int, title: str, body: str) -> _Reply:
    page = (
        '<!doctype html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n{body}\n</body></html>\n"
    )
    return _Reply(status, page.encode("utf-8"))


def _json(status: int, obj: Any) -> _Reply:
    return _Reply(status, json.dumps(obj).encode("utf-8"), "application/json")


def _redirect(location: str, status: int = 302) -> _Reply:
    return _Reply(status, b"", "text/plain", [("Location", location)])


def _not_found() -> _Reply:
    return _json(404, {"error": "not found"})


def _parse_cookies(header: str) -> dict[str, str]:
    """Cookie header -> dict; the first occurrence wins (browsers send the most specific path first)."""
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in out:
            out[name] = value
    return out


def _script(auto_user: bool, delay_ms: int, body: str, held: bool = False) -> str:
    """The JS that plays the user: ``whenUser(act)`` runs ``act`` ``delay_ms`` later when AUTO (after
    the gate opened, when the page was rendered held), else marks the page idle."""
    return (
        f"<script>\nconst AUTO = {json.dumps(auto_user)};\nconst DELAY = {int(delay_ms)};\n"
        f"const HELD = {json.dumps(held)};\n" + _WHEN_USER + f"{body}\n</script>"
    )


_WHEN_USER = """function whenUser(act) {
  setTimeout(async () => {
    if (!AUTO) { document.documentElement.dataset.user = "idle"; return; }
    for (let i = 0; HELD && i < 1200; i++) {  // bounded: two minutes at most
      try {
        const r = await fetch("/__gate", {cache: "no-store"});
        if ((await r.json()).open) break;
      } catch (e) {}
      await new Promise((ok) => setTimeout(ok, 100));
    }
    document.documentElement.dataset.user = "acting";
    act();
  }, DELAY);
}
"""


# -- server plumbing ----------------------------------------------------------------------------


Route = Callable[[_Request], _Reply]


class _SiteServer(LoopbackServer):
    """One loopback site: dispatches every request to ``route`` and can drop keep-alive connections."""

    def __init__(self, name: str, route: Route) -> None:
        self.name = name
        self.route = route
        super().__init__(_Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SigTestLoginSite/1.0"
    timeout = IDLE_TIMEOUT_S
    server: _SiteServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _handle(self) -> None:
        length_header = self.headers.get("Content-Length", "0") or "0"
        try:
            length = int(length_header)
        except ValueError:
            length = -1
        if self.headers.get("Transfer-Encoding") or not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            self.send_error(400, "unsupported request body")
            return
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        query = {name: values[0] for name, values in parse_qs(split.query, keep_blank_values=True).items()}
        req = _Request(
            method="GET" if self.command == "HEAD" else self.command,
            path=split.path or "/",
            query=query,
            headers=self.headers,
            cookies=_parse_cookies("; ".join(self.headers.get_all("Cookie") or [])),
            body=body,
        )
        try:
            reply = self.server.route(req)
        except Exception as exc:  # a harness bug should show up as a 500, not a hung browser
            reply = _json(500, {"error": f"{type(exc).__name__}: {exc}"})
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in reply.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)
        self.wfile.flush()

    do_GET = _handle
    do_POST = _handle
    do_HEAD = _handle
    do_PUT = _handle
    do_DELETE = _handle


# -- the sites ----------------------------------------------------------------------------------


class LoginSites:
    """Starts the five login scenarios (six servers) on loopback; see the module docstring.

    ``user_delay_ms`` and ``auto_user`` are read each time a page is rendered, so a test may
    change them while the servers run.
    """

    sso_app: str
    idp: str
    tracking: str
    api: str
    spa: str
    session: str

    def __init__(self, user_delay_ms: int = 300, auto_user: bool = True) -> None:
        self.user_delay_ms = user_delay_ms
        self.auto_user = auto_user
        self.users_held = False
        self._lock = threading.Lock()
        self._issued: dict[str, list[str]] = {kind: [] for kind in ISSUED_KINDS}
        self._hits: dict[str, Counter[str]] = {name: Counter() for name in HIT_SCENARIOS}
        self._authorized: dict[str, Counter[str]] = {name: Counter() for name in HIT_SCENARIOS}
        # Live secrets per scenario; spa tokens map to their expiry (epoch ms).
        self._valid: dict[str, set[str]] = {name: set() for name in ("sso", "idp", "tracking", "api", "session")}
        self._spa_tokens: dict[str, int] = {}
        self._webdriver: list[bool] = []  # navigator.webdriver as each SPA page load saw it
        self._codes: dict[str, float] = {}  # one-time SSO codes -> expiry (monotonic)
        self._servers: list[tuple[_SiteServer, threading.Thread]] = []

    # -- public API ----------------------------------------------------------------------------

    def issued(self, scenario: str) -> list[str]:
        """Secrets handed out so far, oldest first: ``sso`` (app session), ``idp`` (idp_session),
        ``tracking`` (sid), ``api`` (auth), ``spa`` (access tokens), ``spa-cookie`` (d), ``session`` (sid)."""
        self._check(scenario, ISSUED_KINDS)
        with self._lock:
            return list(self._issued[scenario])

    def webdriver_flags(self) -> list[bool]:
        """navigator.webdriver as reported by every SPA page load so far (True = automation visible)."""
        with self._lock:
            return list(self._webdriver)

    def hits(self, scenario: str, path: str) -> int:
        """Requests (any method, any credentials) to ``path`` (no query) on a scenario's server."""
        self._check(scenario, HIT_SCENARIOS)
        with self._lock:
            return self._hits[scenario][path]

    def authorized_hits(self, scenario: str, path: str) -> int:
        """Requests to ``path`` that carried a currently valid session/token: proves the credentials
        sig captured actually work, not just that it knocked."""
        self._check(scenario, HIT_SCENARIOS)
        with self._lock:
            return self._authorized[scenario][path]

    def hold_users(self) -> None:
        """Pages rendered from now on wait at ``/__gate`` before their user acts."""
        self.users_held = True

    def release_users(self) -> None:
        """Open the gate: every waiting page acts now (and pages rendered later act at once)."""
        self.users_held = False

    def revoke(self, scenario: str) -> None:
        """Invalidate every session/token a scenario issued (server-side logout / expiry)."""
        self._check(scenario, HIT_SCENARIOS)
        with self._lock:
            if scenario == "spa":
                self._spa_tokens.clear()
            else:
                self._valid[scenario].clear()

    def __enter__(self) -> LoginSites:
        try:
            app = self._start("sso", self._route_sso_app)
            idp = self._start("idp", self._route_idp)
            tracking = self._start("tracking", self._route_tracking)
            api = self._start("api", self._route_api)
            spa = self._start("spa", self._route_spa)
            session = self._start("session", self._route_session)
        except BaseException:
            self.close()
            raise
        self.sso_app = f"http://{LOOPBACK}:{app.port}"
        self.idp = f"http://localhost:{idp.port}"
        self.tracking = f"http://{LOOPBACK}:{tracking.port}"
        self.api = f"http://{LOOPBACK}:{api.port}"
        self.spa = f"http://{LOOPBACK}:{spa.port}"
        self.session = f"http://{LOOPBACK}:{session.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every server (bounded: each shutdown polls at 50 ms, joins wait at most 5 s)."""
        servers, self._servers = self._servers, []
        for server, _ in servers:
            server.drop_connections()
        # shutdown() blocks until the serve loop notices; do them all at once, each bounded.
        stoppers = [threading.Thread(target=server.shutdown, daemon=True) for server, _ in servers]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join(timeout=JOIN_TIMEOUT_S)
        for server, thread in servers:
            server.server_close()
            thread.join(timeout=JOIN_TIMEOUT_S)

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _check(scenario: str, allowed: tuple[str, ...]) -> None:
        if scenario not in allowed:
            raise ValueError(f"unknown scenario {scenario!r}; expected one of {', '.join(allowed)}")

    def _start(self, name: str, route: Route) -> _SiteServer:
        def counted(req: _Request) -> _Reply:
            with self._lock:
                self._hits[name][req.path] += 1
            if req.path == "/__gate":
                return _json(200, {"open": not self.users_held})
            return route(req)

        server = _SiteServer(name, counted)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"login-site-{name}-{server.port}",
            daemon=True,
        )
        thread.start()
        self._servers.append((server, thread))
        return server

    def _issue(self, kind: str, valid_key: str | None = None) -> str:
        secret = secrets.token_urlsafe(24)  # 32 URL-safe characters
        with self._lock:
            self._issued[kind].append(secret)
            if valid_key is not None:
                self._valid[valid_key].add(secret)
        return secret

    def _valid_secret(self, scenario: str, secret: str | None, path: str) -> bool:
        with self._lock:
            ok = bool(secret) and secret in self._valid[scenario]
            if ok:
                self._authorized[scenario][path] += 1
        return ok

    def _page_script(self, body: str) -> str:
        return _script(self.auto_user, self.user_delay_ms, body, self.users_held)

    @staticmethod
    def _credentials_ok(data: dict[str, Any] | None) -> bool:
        return bool(data) and data.get("user") == USER and data.get("password") == PASSWORD

    # -- scenario 1: SSO app (127.0.0.1) -------------------------------------------------------

    def _route_sso_app(self, req: _Request) -> _Reply:
        path = req.path
        if path == "/" and req.method == "GET":
            return _redirect("/wiki/home").cookie("lang=en; Path=/").cookie("static_ver=3; Path=/static")
        if path == "/wiki/home" and req.method == "GET":
            if self._valid_secret("sso", req.cookies.get("session"), path):
                return _html(200, "Wiki home", f"<h1>Welcome {USER}</h1>")
            return_to = quote(f"{self.sso_app}/callback", safe="")
            return _redirect(f"{self.idp}/sso/authorize?return={return_to}")
        if path == "/callback" and req.method == "GET":
            code = req.query.get("code", "")
            with self._lock:
                expiry = self._codes.pop(code, None)
            if expiry is None or expiry < time.monotonic():
                return _html(401, "Sign-in failed", "<h1>Invalid or used authorization code</h1>")
            session = self._issue("sso", "sso")
            return _redirect("/wiki/home").cookie(
                f"session={session}; Path=/wiki; HttpOnly; Max-Age={SSO_SESSION_MAX_AGE}"
            )
        if path == "/wiki/rest/api/myself" and req.method == "GET":
            if self._valid_secret("sso", req.cookies.get("session"), path):
                return _json(200, {"name": USER})
            return _json(401, {"error": "unauthorized"})
        return _not_found()

    # -- scenario 1: identity provider (localhost) --------------------------------------------

    def _return_ok(self, return_to: str) -> bool:
        return return_to.startswith(f"{self.sso_app}/")

    def _route_idp(self, req: _Request) -> _Reply:
        path = req.path
        if path == "/sso/authorize" and req.method == "GET":
            return_to = req.query.get("return", "")
            if not self._return_ok(return_to):
                return _html(400, "Bad request", "<h1>Unknown return address</h1>")
            return self._idp_login_page(return_to)
        if path == "/sso/login" and req.method == "POST":
            form = req.form()
            return_to = form.get("return", "")
            if not self._return_ok(return_to):
                return _html(400, "Bad request", "<h1>Unknown return address</h1>")
            if form.get("username") != USER or form.get("password") != PASSWORD:
                return _html(401, "Sign in failed", "<h1>Wrong user name or password</h1>")
            idp_session = self._issue("idp", "idp")
            return _redirect(f"/mfa?return={quote(return_to, safe='')}").cookie(
                f"idp_session={idp_session}; Path=/; HttpOnly"
            )
        if path == "/mfa":
            if not self._valid_secret("idp", req.cookies.get("idp_session"), path):
                return _html(401, "Session expired", "<h1>No IdP session; sign in again</h1>")
            return_to = (req.query if req.method == "GET" else req.form()).get("return", "")
            if not self._return_ok(return_to):
                return _html(400, "Bad request", "<h1>Unknown return address</h1>")
            if req.method == "GET":
                return self._idp_mfa_page(return_to)
            if req.method == "POST":
                if req.form().get("code") != MFA_CODE:
                    return _html(401, "Wrong code", "<h1>Wrong verification code</h1>")
                code = secrets.token_urlsafe(16)
                with self._lock:
                    self._codes[code] = time.monotonic() + AUTH_CODE_LIFETIME_S
                sep = "&" if "?" in return_to else "?"
                return _redirect(f"{return_to}{sep}code={quote(code, safe='')}")
        return _not_found()

    def _login_page(self, heading: str, action: str, hidden: str = "") -> _Reply:
        """A user/password form (`hidden`: extra hidden inputs) that the user stand-in fills and submits."""
        body = f"""<h1>{heading}</h1>
<form id="login" method="post" action="{action}">
{hidden}  <label>User <input id="username" name="username" autocomplete="username"></label>
  <label>Password <input id="password" name="password" type="password"></label>
  <button type="submit">Sign in</button>
</form>
""" + self._page_script(f"""document.addEventListener("DOMContentLoaded", () => {{
  whenUser(() => {{
    document.getElementById("username").value = {json.dumps(USER)};
    document.getElementById("password").value = {json.dumps(PASSWORD)};
    document.getElementById("login").submit();
  }});
}});""")
        return _html(200, "Sign in", body)

    def _idp_login_page(self, return_to: str) -> _Reply:
        return self._login_page("Example IdP: sign in", "/sso/login",
                                f'  <input type="hidden" name="return" value="{html.escape(return_to)}">\n')

    def _idp_mfa_page(self, return_to: str) -> _Reply:
        body = f"""<h1>Two-step verification</h1>
<form id="mfa" method="post" action="/mfa">
  <input type="hidden" name="return" value="{html.escape(return_to)}">
  <label>Code <input id="code" name="code" inputmode="numeric" autocomplete="one-time-code"></label>
  <button type="submit">Verify</button>
</form>
""" + self._page_script(f"""document.addEventListener("DOMContentLoaded", () => {{
  whenUser(() => {{
    document.getElementById("code").value = {json.dumps(MFA_CODE)};
    document.getElementById("mfa").submit();
  }});
}});""")
        return _html(200, "Verify", body)

    # -- scenario 2: tracking cookies ----------------------------------------------------------

    def _route_tracking(self, req: _Request) -> _Reply:
        reply = self._tracking_reply(req)
        ga = f"GA1.2.{secrets.randbelow(10**10)}.{int(time.time())}"
        reply.cookie(f"_ga={ga}; Path=/; Max-Age=63072000")
        reply.cookie(f"_gid=GA1.2.{secrets.randbelow(10**10)}; Path=/; Max-Age=86400")
        reply.cookie("_gat=1; Path=/; Max-Age=30")
        return reply

    def _tracking_reply(self, req: _Request) -> _Reply:
        path = req.path
        if path == "/" and req.method == "GET":
            body = """<h1>Example News</h1>
<p>Public articles for everyone. <span id="status">Signed out.</span></p>
""" + self._page_script(f"""document.addEventListener("DOMContentLoaded", () => {{
  whenUser(async () => {{
    const r = await fetch("/login", {{
      method: "POST",
      headers: {{"Content-Type": "application/json"}},
      body: JSON.stringify({{user: {json.dumps(USER)}, password: {json.dumps(PASSWORD)}}}),
    }});
    if (!r.ok) {{ document.getElementById("status").textContent = "Login failed."; return; }}
    location.href = "/account";
  }});
}});""")
            return _html(200, "Example News", body)
        if path == "/login" and req.method == "POST":
            if not self._credentials_ok(req.json()):
                return _json(401, {"error": "invalid credentials"})
            sid = self._issue("tracking", "tracking")
            return _json(200, {"ok": True}).cookie(
                f"sid={sid}; Path=/; HttpOnly; Max-Age={TRACKING_SID_MAX_AGE}"
            )
        if path == "/account" and req.method == "GET":
            if self._valid_secret("tracking", req.cookies.get("sid"), path):
                return _html(200, "Your account", f"<h1>Account of {USER}</h1>")
            return _redirect("/")
        if path == "/api/me" and req.method == "GET":
            if self._valid_secret("tracking", req.cookies.get("sid"), path):
                return _json(200, {"user": USER})
            return _json(401, {"error": "unauthorized"})
        return _not_found()

    # -- scenario 3: 200 with an error body ----------------------------------------------------

    def _route_api(self, req: _Request) -> _Reply:
        path = req.path
        if path == "/" and req.method == "GET":
            body = """<h1>Example API console</h1>
<p id="status">Connecting…</p>
""" + self._page_script(f"""document.addEventListener("DOMContentLoaded", () => {{
  whenUser(async () => {{
    const r = await fetch("/session", {{
      method: "POST",
      headers: {{"Content-Type": "application/json"}},
      body: JSON.stringify({{user: {json.dumps(USER)}, password: {json.dumps(PASSWORD)}}}),
    }});
    if (!r.ok) {{ document.getElementById("status").textContent = "Login failed."; return; }}
    location.href = "/app";
  }});
}});""")
            return _html(200, "API console", body)
        if path == "/session" and req.method == "POST":
            if not self._credentials_ok(req.json()):
                return _json(401, {"error": "invalid credentials"})
            auth = self._issue("api", "api")
            return _json(200, {"ok": True}).cookie(f"auth={auth}; Path=/; HttpOnly")
        if path == "/app" and req.method == "GET":
            if self._valid_secret("api", req.cookies.get("auth"), path):
                return _html(200, "App", f"<h1>Hello {USER}</h1>")
            return _html(200, "App", "<h1>Not logged in</h1>")
        if path == "/api/status" and req.method == "GET":
            if self._valid_secret("api", req.cookies.get("auth"), path):
                return _json(200, {"ok": True, "user": USER})
            return _json(200, {"ok": False, "error": "not logged in"})
        return _not_found()

    # -- scenario 4: SPA with a localStorage token ----------------------------------------------

    def _route_spa(self, req: _Request) -> _Reply:
        path = req.path
        if path == "/" and req.method == "GET":
            return _html(200, "Example SPA", self._spa_page())
        if path == "/api/login" and req.method == "POST":
            if not self._credentials_ok(req.json()):
                return _json(401, {"error": "invalid credentials"})
            token = self._issue("spa")
            cookie = self._issue("spa-cookie")
            expires_at = int(time.time() * 1000) + SPA_TOKEN_LIFETIME_MS
            with self._lock:
                self._spa_tokens[token] = expires_at
            return _json(200, {"accessToken": token, "expiresAt": expires_at}).cookie(
                f"d={cookie}; Path=/; Max-Age={SPA_COOKIE_MAX_AGE}"
            )
        if path == "/api/env" and req.method == "POST":
            # The page reports whether it sees an automation marker (navigator.webdriver).
            with self._lock:
                self._webdriver.append(bool((req.json() or {}).get("webdriver")))
            return _json(200, {})
        if path == "/api/me" and req.method == "GET":
            token = req.bearer()
            now_ms = int(time.time() * 1000)
            with self._lock:
                ok = token is not None and self._spa_tokens.get(token, 0) > now_ms
                if ok:
                    self._authorized["spa"][path] += 1
            if ok:
                return _json(200, {"user": USER})
            return _json(401, {"error": "unauthorized"})
        return _not_found()

    def _spa_page(self) -> str:
        return """<div id="app"><h1>Example SPA</h1><p id="status">Signed out.</p></div>
""" + self._page_script(f"""function storedToken() {{
  try {{
    const auth = JSON.parse(localStorage.getItem("auth") || "null");
    if (auth && auth.accessToken && auth.expiresAt > Date.now()) return auth.accessToken;
  }} catch (e) {{}}
  return null;
}}
function pollMe() {{
  let n = 0;
  const timer = setInterval(() => {{
    if (++n > {SPA_POLL_MAX}) {{ clearInterval(timer); return; }}
    const token = storedToken();
    if (!token) return;
    fetch("/api/me", {{headers: {{Authorization: "Bearer " + token}}}})
      .then((r) => {{ document.getElementById("status").textContent = r.ok ? "Signed in." : "Signed out."; }})
      .catch(() => {{}});
  }}, {SPA_POLL_MS});
}}
document.addEventListener("DOMContentLoaded", () => {{
  fetch("/api/env", {{method: "POST", headers: {{"Content-Type": "application/json"}},
                      body: JSON.stringify({{webdriver: navigator.webdriver === true}})}}).catch(() => {{}});
  if (storedToken()) {{ pollMe(); return; }}
  whenUser(async () => {{
    const r = await fetch("/api/login", {{
      method: "POST",
      headers: {{"Content-Type": "application/json"}},
      body: JSON.stringify({{user: {json.dumps(USER)}, password: {json.dumps(PASSWORD)}}}),
    }});
    if (!r.ok) {{ document.getElementById("status").textContent = "Login failed."; return; }}
    localStorage.setItem("auth", JSON.stringify(await r.json()));
    localStorage.setItem("theme", "dark");
    pollMe();
  }});
}});""")

    # -- scenario 5: session cookies only ------------------------------------------------------

    def _route_session(self, req: _Request) -> _Reply:
        path = req.path
        if path == "/" and req.method == "GET":
            if self._valid_secret("session", req.cookies.get("sid"), path):
                return _html(200, "Intranet", f"<h1>Dashboard of {USER}</h1>")
            return _redirect("/login")
        if path == "/login" and req.method == "GET":
            return self._login_page("Intranet: sign in", "/login")
        if path == "/login" and req.method == "POST":
            form = req.form()
            if form.get("username") != USER or form.get("password") != PASSWORD:
                return _html(401, "Sign in failed", "<h1>Wrong user name or password</h1>")
            sid = self._issue("session", "session")
            return _redirect("/").cookie(f"sid={sid}; Path=/; HttpOnly").cookie(
                "theme=dark; Path=/; Max-Age=31536000")
        if path == "/api/me" and req.method == "GET":
            if self._valid_secret("session", req.cookies.get("sid"), path):
                return _json(200, {"user": USER})
            return _json(401, {"error": "unauthorized"})
        return _not_found()
