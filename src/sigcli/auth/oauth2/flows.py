"""The interactive grants: authorization code + PKCE on a loopback listener, and device code (RFC 8628)."""

from __future__ import annotations

import time

from ...core.errors import ErrorCode, SigError
from .settings import DEVICE_GRANT
from .token import TokenError, TokenResponse, post_form

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..base import LoginContext
    from .settings import OAuth2Settings



def _b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class _Callback:
    """A one-shot HTTP listener on 127.0.0.1 that takes the authorization server's redirect."""

    def __init__(self, port: int, state: str) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, HTTPServer

        self.state = state
        self.result: dict[str, str] | None = None
        self.done = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                from urllib.parse import parse_qs, urlsplit

                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                if "code" not in query and "error" not in query:
                    self.send_response(404)
                    self.end_headers()
                    return
                accepted = outer.offer(query)
                self.send_response(200 if accepted else 400)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                text = ("Signed in. You can close this tab and return to the terminal." if accepted
                        else "This sign-in response was not expected (state mismatch). Start again with sig login.")
                self.wfile.write(f"<!doctype html><title>sig</title><p>{text}</p>".encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def offer(self, query: dict[str, str]) -> bool:
        """Accept a redirect (from the listener or pasted by the user) only with the exact state."""
        import hmac

        if self.done.is_set():
            return False
        if not hmac.compare_digest(query.get("state", ""), self.state):
            return False
        self.result = query
        self.done.set()
        return True

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def authorization_code(settings: OAuth2Settings, ctx: LoginContext) -> TokenResponse:
    """Authorization code + PKCE: open (or print) the sign-in URL, wait for the loopback callback, swap the
    code."""
    import os
    import threading
    from hashlib import sha256
    from urllib.parse import urlencode

    settings.require("auth_url", "token_url", "client_id")
    verifier = _b64url(os.urandom(48))
    challenge = _b64url(sha256(verifier.encode("ascii")).digest())
    state = _b64url(os.urandom(24))
    try:
        listener = _Callback(settings.redirect_port, state)
    except OSError as exc:
        raise SigError(ErrorCode.GENERAL_ERROR, f"cannot listen on 127.0.0.1:{settings.redirect_port}: "
                       f"{exc.strerror}", "free the port, or set oauth2.redirectPort to another one") from None
    redirect_uri = f"http://127.0.0.1:{listener.port}/callback"
    params = {"response_type": "code", "client_id": settings.client_id, "redirect_uri": redirect_uri,
              "state": state, "code_challenge": challenge, "code_challenge_method": "S256"}
    if settings.scope:
        params["scope"] = settings.scope
    if settings.audience:
        params["audience"] = settings.audience
    sep = "&" if "?" in settings.auth_url else "?"
    url = f"{settings.auth_url}{sep}{urlencode(params)}"
    try:
        opened = ctx.open_url(url)
        ctx.notify(("Your browser was opened to sign in. If it did not open, visit:" if opened
                    else "Open this URL in a browser to sign in:") + f"\n  {url}")
        wait = ctx.waiting("Waiting for the sign-in in the browser", settings.callback_timeout, ctx.ask is not None)
        ask = ctx.ask
        if ask is not None:
            # Over SSH the browser's redirect cannot reach this machine: let the user paste it instead.
            def paste() -> None:
                from urllib.parse import parse_qs, urlsplit

                line = ask("…or paste the full URL the browser was redirected to", False)
                wait.input_ended()
                if line and line.strip():
                    query = {k: v[0] for k, v in parse_qs(urlsplit(line.strip()).query).items()}
                    if not listener.offer(query):
                        ctx.notify("That URL does not belong to this sign-in (state mismatch); still waiting.")

            threading.Thread(target=paste, daemon=True).start()
        try:
            arrived = listener.done.wait(settings.callback_timeout)
        finally:
            wait.stop()
        if not arrived:
            raise SigError(ErrorCode.BROWSER_TIMEOUT,
                           f"no sign-in response arrived within {settings.callback_timeout:g} seconds",
                           "run sig login again and finish the sign-in in the browser")
    finally:
        listener.close()
    result = listener.result or {}
    if "error" in result:
        raise SigError(ErrorCode.GENERAL_ERROR, f"the authorization server refused: {result['error']}",
                       "log in again and approve the request")
    return post_form(settings.token_url, {"grant_type": "authorization_code", "code": result["code"],
                                          "redirect_uri": redirect_uri, "code_verifier": verifier}, settings)


def device_code(settings: OAuth2Settings, ctx: LoginContext, sleep: object = time.sleep) -> TokenResponse:
    """Device code (RFC 8628): show the code and URL, poll the token endpoint until approved or expired."""
    settings.require("device_url", "token_url", "client_id")
    fields = {"client_id": settings.client_id}
    if settings.scope:
        fields["scope"] = settings.scope
    start = post_form(settings.device_url, fields, settings, authenticate=False,
                      what="device authorization endpoint", field="deviceUrl").data
    device = str(start.get("device_code") or "")
    if not device:
        raise SigError(ErrorCode.GENERAL_ERROR, "the device authorization endpoint gave no device_code",
                       "check --device-url")
    uri = start.get("verification_uri_complete") or start.get("verification_uri") or ""
    ctx.notify(f"To sign in, open {start.get('verification_uri') or uri} and enter the code: "
               f"{start.get('user_code', '')}" + (f"\n  (or open {uri})" if start.get("verification_uri_complete")
                                                   else ""))
    interval = float(start.get("interval") or 5)
    lifetime = float(start.get("expires_in") or 600)
    deadline = time.monotonic() + lifetime
    wait = ctx.waiting("Waiting for the code to be approved", lifetime, False)
    try:
        while True:
            if time.monotonic() >= deadline:
                raise SigError(ErrorCode.GENERAL_ERROR, "the device code expired before it was approved",
                               "run sig login again and approve sooner")
            sleep(interval)  # type: ignore[operator]
            try:
                return post_form(settings.token_url, {"grant_type": DEVICE_GRANT, "device_code": device}, settings)
            except TokenError as err:
                if err.error == "authorization_pending":
                    continue
                if err.error == "slow_down":
                    interval += 5  # RFC 8628 §3.5
                    continue
                raise
    finally:
        wait.stop()
