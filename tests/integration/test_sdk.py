"""The Python SDK (sigcli.sdk) end to end: log in with the real CLI, run the SDK in a subprocess whose
SIG_HOME is the test's home, and assert on what the loopback echo servers received.

Scripts never print a secret: they report statuses and error codes; the values are checked server side.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any
from urllib.parse import quote

import pytest

from harness.servers import ServerHandle
from harness.sigproc import Sig

TOKEN = "tok-SDK-SECRET-4e1d7a"
KEY = "key-SDK-SECRET-9b7c21"
SDK_TIMEOUT_S = 60

PRELUDE = """\
import json, os, sys
from sigcli.core.errors import SigError

def out(obj):
    print(json.dumps(obj))

def code_of(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except SigError as err:
        return err.code
    return None
"""


def run_sdk(sig: Sig, script: str, *, env: dict[str, str | None] | None = None) -> Any:
    """Run `script` (after PRELUDE) with the runner's environment; return the JSON of its last stdout line."""
    child_env = dict(sig.env)
    for name, value in (env or {}).items():
        if value is None:
            child_env.pop(name, None)
        else:
            child_env[name] = value
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(script)], env=child_env,
                          cwd=sig.user_home, capture_output=True, text=True, timeout=SDK_TIMEOUT_S)
    for secret in (TOKEN, KEY):
        assert secret not in proc.stdout and secret not in proc.stderr, "a secret reached the script's output"
    assert proc.returncode == 0, f"SDK script failed ({proc.returncode})\n{proc.stdout}\n{proc.stderr}"
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None


def login_echo(sig: Sig, server: ServerHandle) -> None:
    """`echo`: Authorization: Bearer TOKEN; `keyed`: X-API-Key: KEY (same host, chosen by id)."""
    sig("login", server.url, "--token-stdin", "--as", "echo", input=TOKEN, check=0)
    sig("login", server.url, "--token-stdin", "--as", "keyed", "--header-name", "X-API-Key",
        "--header-prefix", "", input=KEY, check=0)


def other_origin(server: ServerHandle, path: str) -> str:
    """The same server reached as `localhost`: another origin, not in the providers' domains."""
    return f"{server.scheme}://localhost:{server.port}{path}"


def redirect(server: ServerHandle, to: str, code: int = 302) -> str:
    return server.url_for(f"/redirect?to={quote(to, safe='')}&code={code}")


# -- importing ---------------------------------------------------------------------------------------------
def test_import_is_lazy(sig: Sig) -> None:
    got = run_sdk(sig, """
        import sigcli.sdk
        from sigcli.sdk import SigClient, SigError, ErrorCode
        before = [m for m in ("httpx", "requests") if m in sys.modules]
        from sigcli.sdk import SigAuth, SigRequestsAuth, sig_httpx_client
        import httpx, requests.auth
        out({"before": before, "httpx": issubclass(SigAuth, httpx.Auth),
             "requests": issubclass(SigRequestsAuth, requests.auth.AuthBase),
             "all": sorted(sigcli.sdk.__all__)})
    """)
    assert got["before"] == []
    assert got["httpx"] and got["requests"]
    assert {"SigClient", "SigAuth", "SigRequestsAuth", "SigResponse", "sig_httpx_client"} <= set(got["all"])


def test_import_without_httpx_and_requests(sig: Sig) -> None:
    got = run_sdk(sig, """
        import importlib.abc

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("httpx", "requests"):
                    raise ImportError(f"blocked: {name}")
                return None

        sys.meta_path.insert(0, Block())
        for name in [m for m in sys.modules if m.split(".")[0] in ("httpx", "requests")]:
            del sys.modules[name]
        import sigcli.sdk
        from sigcli.sdk import SigClient, SigAuth, SigRequestsAuth, sig_httpx_client

        def import_error(fn, *args):
            try:
                fn(*args)
            except ImportError as exc:
                return str(exc)
            return None

        out({"client": type(SigClient()).__name__,
             "httpx": import_error(SigAuth, "echo"),
             "helper": import_error(sig_httpx_client, "echo"),
             "requests": import_error(SigRequestsAuth, "echo"),
             "loaded": [m for m in sys.modules if m.split(".")[0] in ("httpx", "requests")]})
    """)
    assert got["client"] == "SigClient"
    assert "pip install httpx" in got["httpx"] and "pip install httpx" in got["helper"]
    assert "pip install requests" in got["requests"]
    assert got["loaded"] == []


# -- SigClient ---------------------------------------------------------------------------------------------
def test_get_headers_and_apply(sig_init: Sig, http_echo: ServerHandle) -> None:
    login_echo(sig_init, http_echo)
    got = run_sdk(sig_init, """
        import urllib.request
        from sigcli.sdk import SigClient
        c = SigClient()
        url = os.environ["ECHO_URL"]
        for target in ("echo", url, "keyed"):
            req = urllib.request.Request(url + "/headers", headers=c.get_headers(target))
            urllib.request.urlopen(req, timeout=10).read()
        applied = c.apply("keyed", url + "/x")
        secret = os.environ["SECRETS"].split(",")
        texts = [repr(c), repr(applied), repr(c.provider("echo"))]
        out({"names": sorted(applied.headers), "query": applied.query, "body": applied.body,
             "clean": not any(s in t for s in secret for t in texts)})
    """, env={"ECHO_URL": http_echo.url, "SECRETS": f"{TOKEN},{KEY}"})
    assert got == {"names": ["X-API-Key"], "query": None, "body": None, "clean": True}
    seen = http_echo.requests
    assert [r["headers"].get("authorization") for r in seen] == [f"Bearer {TOKEN}", f"Bearer {TOKEN}", None]
    assert seen[2]["headers"]["x-api-key"] == KEY


def test_request_get_with_query_and_post_json(sig_init: Sig, http_echo: ServerHandle) -> None:
    login_echo(sig_init, http_echo)
    got = run_sdk(sig_init, """
        from sigcli.sdk import SigClient, SigResponse
        c = SigClient()
        url = os.environ["ECHO_URL"]
        r = c.request(url + "/items?page=2&q=a%20b", headers={"X-Trace": "t1"})
        p = c.request(url + "/items", method="post", body={"name": "x", "n": 1}, providers=["keyed"])
        s = c.request(url + "/raw", method="PUT", body="plain", headers=[("Content-Type", "text/plain")])
        assert isinstance(r, SigResponse)
        out({"status": r.status, "reason": r.reason, "ok": r.ok, "ctype": r.headers["content-type"],
             "echo_path": r.json()["path"], "body_type": type(r.body).__name__, "text": r.text[:1],
             "post": p.status, "post_method": p.json()["method"], "put": s.status, "repr": repr(r),
             "url": r.url.split("?")[0]})
    """, env={"ECHO_URL": http_echo.url})
    assert got == {"status": 200, "reason": "OK", "ok": True, "ctype": "application/json",
                   "echo_path": "/items", "body_type": "bytes", "text": "{", "post": 200, "post_method": "POST",
                   "put": 200, "repr": "SigResponse(200 OK)", "url": http_echo.url_for("/items")}
    get, post, put = http_echo.requests
    assert get["query"] == {"page": "2", "q": "a b"}
    assert get["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert get["headers"]["x-trace"] == "t1"
    assert get["headers"]["user-agent"].startswith("sig-sdk/")
    assert post["method"] == "POST" and json.loads(post["body"]) == {"name": "x", "n": 1}
    assert post["headers"]["content-type"] == "application/json"
    assert post["headers"]["x-api-key"] == KEY and "authorization" not in post["headers"]
    assert put["body"] == "plain" and put["headers"]["content-type"] == "text/plain"


def test_request_redirect_to_other_origin_drops_credential(sig_init: Sig, http_echo: ServerHandle) -> None:
    login_echo(sig_init, http_echo)
    target = other_origin(http_echo, "/landed")
    got = run_sdk(sig_init, """
        from sigcli.sdk import SigClient
        r = SigClient().request(os.environ["START"], providers="keyed")
        out({"status": r.status, "url": r.url})
    """, env={"START": redirect(http_echo, target)})
    assert got == {"status": 200, "url": target}
    first, landed = http_echo.requests
    assert first["headers"]["x-api-key"] == KEY
    assert landed["path"] == "/landed" and landed["headers"]["host"] == f"localhost:{http_echo.port}"
    assert "x-api-key" not in landed["headers"] and "authorization" not in landed["headers"]


def test_errors_are_sig_errors(sig_init: Sig, http_echo: ServerHandle) -> None:
    login_echo(sig_init, http_echo)
    sig_init("logout", "keyed", check=0)
    got = run_sdk(sig_init, """
        from sigcli.sdk import SigClient
        c = SigClient()
        url = os.environ["ECHO_URL"]
        other = os.environ["OTHER"]
        try:
            c.get_headers("nope")
        except SigError as err:
            first = {"code": err.code, "message": err.message, "hint": bool(err.hint)}
        out({"unknown": first,
             "unknown_request": code_of(c.request, url, providers="nope"),
             "unknown_apply": code_of(c.apply, "nope", url),
             "no_provider_for_host": code_of(c.request, "http://unknown.invalid/x"),
             "missing": code_of(c.get_headers, "keyed"),
             "missing_request": code_of(c.request, url, providers=["keyed"]),
             "refused_apply": code_of(c.apply, "echo", other),
             "refused_request": code_of(c.request, other, providers="echo"),
             "bad_url": code_of(c.request, "ftp://127.0.0.1/x"),
             "bad_header": code_of(c.request, url, headers={"X-A": "a\\r\\nb"}),
             "bad_body": code_of(c.request, url, method="POST", body=3.5),
             "unreachable": code_of(c.request, "http://127.0.0.1:9/x", timeout=5)})
    """, env={"ECHO_URL": http_echo.url, "OTHER": other_origin(http_echo, "/x")})
    assert got["unknown"] == {"code": "PROVIDER_NOT_FOUND", "message": 'no provider matches "nope"', "hint": True}
    assert got["unknown_request"] == got["unknown_apply"] == got["no_provider_for_host"] == "PROVIDER_NOT_FOUND"
    assert got["missing"] == got["missing_request"] == "CREDENTIAL_NOT_FOUND"
    assert got["refused_apply"] == got["refused_request"] == "GENERAL_ERROR"
    assert got["bad_url"] == got["bad_header"] == got["bad_body"] == "USAGE_ERROR"
    assert got["unreachable"] == "GENERAL_ERROR"
    assert http_echo.requests == []  # nothing was sent for any of them


def test_explicit_sig_home(sig_init: Sig, http_echo: ServerHandle, tmp_path: Any) -> None:
    login_echo(sig_init, http_echo)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    got = run_sdk(sig_init, """
        from sigcli.sdk import SigClient
        home = os.environ["REAL_HOME"]
        r = SigClient(sig_home=home).request(os.environ["ECHO_URL"] + "/explicit")
        out({"status": r.status, "default": code_of(SigClient().get_headers, "echo")})
    """, env={"SIG_HOME": str(elsewhere), "REAL_HOME": str(sig_init.home), "ECHO_URL": http_echo.url})
    assert got == {"status": 200, "default": "CONFIG_ERROR"}
    assert http_echo.requests[0]["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert list(elsewhere.iterdir()) == []  # SIG_HOME's folder was not written to


def test_config_changes_are_picked_up(sig_init: Sig, http_echo: ServerHandle) -> None:
    sig_init("login", http_echo.url, "--token-stdin", "--as", "echo", input=TOKEN, check=0)
    script = """
        import subprocess
        from sigcli.sdk import SigClient
        c = SigClient()
        before = code_of(c.get_headers, "keyed")
        subprocess.run([*json.loads(os.environ["SIG"]), "login", os.environ["ECHO_URL"], "--token-stdin", "--as", "keyed",
                        "--header-name", "X-API-Key", "--header-prefix", ""], input=os.environ["KEY"],
                       text=True, capture_output=True, timeout=30, check=True)
        r = c.request(os.environ["ECHO_URL"] + "/after", providers="keyed")
        out({"before": before, "after": r.status})
    """
    got = run_sdk(sig_init, script, env={"SIG": json.dumps(sig_init.cmd), "ECHO_URL": http_echo.url, "KEY": KEY})
    assert got == {"before": "PROVIDER_NOT_FOUND", "after": 200}
    assert http_echo.requests[0]["headers"]["x-api-key"] == KEY


def test_https_with_cafile(sig_init: Sig, https_echo: ServerHandle) -> None:
    sig_init("login", https_echo.url, "--token-stdin", "--as", "secure", input=TOKEN, check=0)
    got = run_sdk(sig_init, """
        import ssl
        import httpx
        from sigcli.sdk import SigClient, sig_httpx_client
        c = SigClient()
        url, ca = os.environ["ECHO_URL"], os.environ["CA"]
        r = c.request(url + "/tls", cafile=ca)
        untrusted = code_of(c.request, url + "/untrusted")
        with sig_httpx_client("secure", sig_client=c, verify=ssl.create_default_context(cafile=ca)) as h:
            hx = h.get(url + "/httpx").status_code
        out({"status": r.status, "untrusted": untrusted, "httpx": hx})
    """, env={"ECHO_URL": https_echo.url, "CA": str(https_echo.ca_path)})
    assert got == {"status": 200, "untrusted": "GENERAL_ERROR", "httpx": 200}
    paths = [r["path"] for r in https_echo.requests]
    assert paths == ["/tls", "/httpx"]  # the untrusted handshake never got as far as a request
    assert all(r["headers"]["authorization"] == f"Bearer {TOKEN}" for r in https_echo.requests)


# -- httpx -------------------------------------------------------------------------------------------------
def test_httpx_auth_injects_and_guards_redirects(sig_init: Sig, http_echo: ServerHandle) -> None:
    login_echo(sig_init, http_echo)
    cross = redirect(http_echo, other_origin(http_echo, "/landed-cross"))
    same_then_cross = redirect(http_echo, redirect(http_echo, other_origin(http_echo, "/landed-chain")), 307)
    same = redirect(http_echo, "/landed-same", 301)
    got = run_sdk(sig_init, """
        import httpx
        from sigcli.sdk import SigAuth, sig_httpx_client
        url = os.environ["ECHO_URL"]
        statuses = []
        with httpx.Client(auth=SigAuth("echo"), timeout=10) as h:
            statuses.append(h.get(url + "/plain", params={"a": "1"}).status_code)
        with sig_httpx_client("keyed", follow_redirects=True, timeout=10) as h:
            for start in (os.environ["CROSS"], os.environ["CHAIN"], os.environ["SAME"]):
                statuses.append(h.get(start).status_code)
        with sig_httpx_client("echo", follow_redirects=False, timeout=10) as h:
            r = h.get(os.environ["CROSS"])
            statuses.append(r.status_code)
            statuses.append(code_of(h.send, r.next_request))  # the client's SigAuth refuses localhost
            statuses.append(h.send(r.next_request, auth=None).status_code)
        out(statuses)
    """, env={"ECHO_URL": http_echo.url, "CROSS": cross, "CHAIN": same_then_cross, "SAME": same})
    assert got == [200, 200, 200, 200, 302, "GENERAL_ERROR", 200]
    seen = http_echo.requests
    by_path = [(r["path"], r["headers"].get("host", "").split(":")[0]) for r in seen]
    assert by_path == [
        ("/plain", "127.0.0.1"),
        ("/redirect", "127.0.0.1"), ("/landed-cross", "localhost"),
        ("/redirect", "127.0.0.1"), ("/redirect", "127.0.0.1"), ("/landed-chain", "localhost"),
        ("/redirect", "127.0.0.1"), ("/landed-same", "127.0.0.1"),
        ("/redirect", "127.0.0.1"), ("/landed-cross", "localhost"),
    ]
    assert seen[0]["headers"]["authorization"] == f"Bearer {TOKEN}" and seen[0]["query"] == {"a": "1"}
    keyed = [r["headers"].get("x-api-key") for r in seen[1:8]]
    assert keyed == [KEY, None, KEY, KEY, None, KEY, KEY]
    assert "authorization" not in seen[9]["headers"] and seen[8]["headers"]["authorization"] == f"Bearer {TOKEN}"


def test_httpx_async_client_guards_redirects(sig_init: Sig, http_echo: ServerHandle) -> None:
    login_echo(sig_init, http_echo)
    got = run_sdk(sig_init, """
        import asyncio
        from sigcli.sdk import sig_httpx_async_client

        async def main():
            async with sig_httpx_async_client("keyed", follow_redirects=True, timeout=10) as h:
                return (await h.get(os.environ["START"])).status_code

        out(asyncio.run(main()))
    """, env={"START": redirect(http_echo, other_origin(http_echo, "/landed"))})
    assert got == 200
    first, landed = http_echo.requests
    assert first["headers"]["x-api-key"] == KEY and "x-api-key" not in landed["headers"]


def test_httpx_refuses_other_hosts(sig_init: Sig, http_echo: ServerHandle) -> None:
    login_echo(sig_init, http_echo)
    got = run_sdk(sig_init, """
        import httpx
        from sigcli.sdk import SigAuth
        with httpx.Client(timeout=10) as h:
            refused = code_of(h.get, os.environ["OTHER"], auth=SigAuth("echo"))
            unknown = code_of(h.get, os.environ["ECHO_URL"], auth=SigAuth("nope"))
        out([refused, unknown, repr(SigAuth("echo"))])
    """, env={"OTHER": other_origin(http_echo, "/x"), "ECHO_URL": http_echo.url})
    assert got == ["GENERAL_ERROR", "PROVIDER_NOT_FOUND", "SigAuth(provider='echo')"]
    assert http_echo.requests == []


def test_query_rules(sig_init: Sig, http_echo: ServerHandle) -> None:
    """A provider whose rule puts the credential in the query string: every adapter adds it, replacing a
    parameter of the same name, and keeps the rest of the query as it was."""
    sig_init("login", http_echo.url, "--token-stdin", "--as", "qp", input=TOKEN, check=0)
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    path = sig_init.home / "config.yaml"
    doc = yaml.load(path.read_text())
    doc["providers"]["qp"]["apply"] = [{"in": "query", "name": "api_key", "value": "${token}"}]
    with path.open("w") as fh:
        yaml.dump(doc, fh)
    got = run_sdk(sig_init, """
        import httpx, requests
        from sigcli.sdk import SigAuth, SigClient, SigRequestsAuth
        url = os.environ["ECHO_URL"]
        out([SigClient().request(url + "/sdk?api_key=mine&x=a%20b").status,
             httpx.get(url + "/httpx?api_key=mine&x=a%20b", auth=SigAuth("qp"), timeout=10).status_code,
             requests.get(url + "/requests?api_key=mine&x=a%20b", auth=SigRequestsAuth("qp"), timeout=10).status_code])
    """, env={"ECHO_URL": http_echo.url})
    assert got == [200, 200, 200]
    assert [r["query"] for r in http_echo.requests] == [{"x": "a b", "api_key": TOKEN}] * 3
    assert all("authorization" not in r["headers"] for r in http_echo.requests)


# -- requests ----------------------------------------------------------------------------------------------
def test_requests_auth_injects_and_guards_redirects(sig_init: Sig, http_echo: ServerHandle) -> None:
    login_echo(sig_init, http_echo)
    cross = redirect(http_echo, other_origin(http_echo, "/landed-cross"))
    same_then_cross = redirect(http_echo, redirect(http_echo, other_origin(http_echo, "/landed-chain")), 307)
    same = redirect(http_echo, "/landed-same", 308)
    got = run_sdk(sig_init, """
        import requests
        from sigcli.sdk import SigClient, SigRequestsAuth
        url = os.environ["ECHO_URL"]
        auth = SigRequestsAuth("keyed", SigClient())
        out([requests.get(url + "/plain", auth=SigRequestsAuth("echo"), timeout=10).status_code]
            + [requests.get(os.environ[k], auth=auth, timeout=10).status_code for k in ("CROSS", "CHAIN", "SAME")]
            + [code_of(requests.get, os.environ["OTHER"], auth=auth, timeout=10), repr(auth)])
    """, env={"ECHO_URL": http_echo.url, "CROSS": cross, "CHAIN": same_then_cross, "SAME": same,
              "OTHER": other_origin(http_echo, "/refused")})
    assert got == [200, 200, 200, 200, "GENERAL_ERROR", "SigRequestsAuth(provider='keyed')"]
    seen = http_echo.requests
    assert [r["path"] for r in seen] == ["/plain", "/redirect", "/landed-cross", "/redirect", "/redirect",
                                         "/landed-chain", "/redirect", "/landed-same"]
    assert seen[0]["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert [r["headers"].get("x-api-key") for r in seen[1:]] == [KEY, None, KEY, KEY, None, KEY, KEY]
    assert [r["headers"]["host"].split(":")[0] for r in seen[1:]] == [
        "127.0.0.1", "localhost", "127.0.0.1", "127.0.0.1", "localhost", "127.0.0.1", "127.0.0.1"]


@pytest.mark.parametrize("adapter", ["httpx", "requests"])
def test_adapters_leave_callers_own_headers(sig_init: Sig, http_echo: ServerHandle, adapter: str) -> None:
    """The redirect guard strips only values sig put there: a header the caller set goes on."""
    login_echo(sig_init, http_echo)
    script = {
        "httpx": """
            from sigcli.sdk import sig_httpx_client
            with sig_httpx_client("keyed", follow_redirects=True, timeout=10) as h:
                out(h.get(os.environ["START"], headers={"X-Trace": "mine"}).status_code)
        """,
        "requests": """
            import requests
            from sigcli.sdk import SigRequestsAuth
            out(requests.get(os.environ["START"], headers={"X-Trace": "mine"}, auth=SigRequestsAuth("keyed"),
                             timeout=10).status_code)
        """,
    }[adapter]
    got = run_sdk(sig_init, script, env={"START": redirect(http_echo, other_origin(http_echo, "/landed"))})
    assert got == 200
    first, landed = http_echo.requests
    assert first["headers"]["x-api-key"] == KEY and "x-api-key" not in landed["headers"]
    assert landed["headers"]["x-trace"] == "mine"


# -- pure helpers ------------------------------------------------------------------------------------------
def test_origin_and_query_helpers() -> None:
    from sigcli.sdk._common import same_origin, with_query, without_query

    assert same_origin("https://API.example.com./a", "https://api.example.com:443/b")
    assert not same_origin("https://api.example.com/", "http://api.example.com/")
    assert not same_origin("https://api.example.com/", "https://api.example.com:8443/")
    assert not same_origin("https://api.example.com/", "https://evil.example.com/")
    assert not same_origin("", "https://api.example.com/")
    assert not same_origin("https://[bad/", "https://[bad/")
    assert with_query("https://h/p", {"k": "v w"}) == "https://h/p?k=v+w"
    assert with_query("https://h/p?a=%20&k=old&b#frag", {"k": "n"}) == "https://h/p?a=%20&b&k=n#frag"
    assert with_query("https://h/p?x=1", {}) == "https://h/p?x=1"
    assert without_query("https://h/p?a=1&k=s#f", {"k"}) == "https://h/p?a=1#f"
    assert without_query("https://h/p?k=s", {"k"}) == "https://h/p"
    assert without_query("https://h/p", {"k"}) == "https://h/p"
