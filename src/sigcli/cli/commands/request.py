"""`sig request URL`: one authenticated HTTP request; the credentials never leave this process."""

from __future__ import annotations

import sys

from ..._version import __version__
from ...core.errors import SigError, usage_error
from ..app import App
from ..args import Args
from ..common import one_positional

TYPE_CHECKING = False
if TYPE_CHECKING:
    import http.client
    from typing import BinaryIO

    from ...core.redactor import StreamRedactor
    from ...inject.request import Result

FLAGS = {"method": "value", "body": "value", "header": "multi", "format": "value", "provider": "multi",
         "cacert": "value", "no-redaction": "bool", "timeout": "value", "output": "value"}
# curl's and `gh api`'s spellings: -X POST, -H "N: V", -d @file, -o FILE
SHORT = {"-X": "method", "-H": "header", "-d": "body", "-o": "output"}
FORMATS = ("json", "body", "headers")
USAGE = ('sig request <url> [-X M] [-d STR|@file|-] [-H "N: V"]... [-o FILE] [--format json|body|headers]')
BUFFER_LIMIT = 4 << 20  # bodies up to this size are pretty-printed when JSON; larger ones are streamed


def _body(spec: str | None) -> bytes | None:
    if spec is None:
        return None
    if spec == "-":
        return sys.stdin.buffer.read()
    if spec.startswith("@"):
        path = spec[1:]
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise usage_error(f"cannot read the body file {path}: {exc.strerror}",
                              "check the path after @ (use --body @./file.json)") from None
    return spec.encode("utf-8")


def _headers(specs: list[str]) -> list[tuple[str, str]]:
    out = []
    for spec in specs:
        name, colon, value = spec.partition(":")
        if not colon or not name.strip() or any(c in spec for c in "\r\n\0"):
            raise usage_error(f'the header "{spec}" is not in the form "Name: Value"', 'e.g. --header "X-Trace: 1"')
        name, value = name.strip(), value.strip()
        if not (name.isascii() and name.isprintable() and " " not in name):
            raise usage_error("a --header name must be ASCII letters, digits or punctuation, without spaces",
                              'e.g. --header "X-Trace: 1"')
        try:
            value.encode("latin-1")  # what HTTP/1.1 header values can carry (non-UTF-8 argv fails here too)
        except UnicodeEncodeError:
            raise usage_error(f'the value of header "{name}" has characters outside Latin-1, which an HTTP '
                              "header cannot carry", "percent-encode the value (or use the header's own "
                              "encoding, e.g. RFC 8187 filename*=UTF-8''…)") from None
        out.append((name, value))
    return out




class _Out:
    """stdout through the redactor (unless disabled), binary-safe."""

    def __init__(self, redactor: StreamRedactor | None, stream: BinaryIO | None = None) -> None:
        self.redactor = redactor
        self.stream = sys.stdout.buffer if stream is None else stream

    def write(self, data: bytes) -> None:
        if self.redactor is not None:
            data = self.redactor.feed(data)
        if data:
            self.stream.write(data)

    def close(self) -> None:
        if self.redactor is not None:
            self.stream.write(self.redactor.flush())
        self.stream.flush()


class RequestOptions:
    """`sig request`'s URL and flags, typed and checked (the body is read later: it may be stdin)."""

    def __init__(self, args: Args) -> None:
        self.url = one_positional(args.positionals, USAGE)
        self.format = args.value("format") or "json"
        if self.format not in FORMATS:
            raise usage_error(f'unknown format "{self.format}"', f"use one of: {', '.join(FORMATS)}")
        self.output = args.value("output")
        if self.output is not None and self.format == "json" and args.given("format"):
            raise usage_error("-o/--output writes the response body to a file; --format json has no body then",
                              "drop --format json (or use --format headers to also print the status and headers)")
        # As curl -d and gh api: a body without a method is a POST (a GET with a body is never what was meant).
        self.method = (args.value("method") or ("POST" if args.given("body") else "GET")).upper()
        if not self.method.isalpha():
            raise usage_error(f'"{self.method}" is not an HTTP method', "e.g. --method POST")
        try:
            self.timeout = float(args.value("timeout") or 30)
        except ValueError:
            raise usage_error("--timeout takes a number of seconds", "e.g. --timeout 10") from None
        self.header_specs = args.values("header")
        self.body = args.value("body")  # STR, @file or - (stdin)
        self.providers = [n.strip() for spec in args.values("provider") for n in spec.split(",") if n.strip()]
        self.cacert = args.value("cacert")
        self.raw = args.flag("no-redaction")


def run(args: Args, app: App) -> int:
    """Send the request through inject/request.py and print the answer, redacted unless --no-redaction."""
    opts = RequestOptions(args)
    url, fmt, output, method, timeout = opts.url, opts.format, opts.output, opts.method, opts.timeout
    headers = _headers(opts.header_specs)
    if any(n.lower() in ("authorization", "proxy-authorization", "cookie") for n, _v in headers):
        app.warn("a credential header in the command line is visible to other processes and shell history; "
                 "log in once (sig login) and let sig add it")
    body = _body(opts.body)
    from ...sandbox.inside import in_sandbox

    if in_sandbox():  # no credential here: the proxy adds it (and redacts the answer)
        return _in_sandbox(opts, app, headers, body)
    names = opts.providers
    if opts.raw:
        from ..guard import require_person

        matched = names or [p.id for p in [app.config.resolve(url)] if p is not None]
        require_person(app, "request --no-redaction", matched, target=url)  # before anything is sent
    from ...inject.request import authenticated_request

    audit_meta = {"url": url, "method": method}
    try:
        result = authenticated_request(
            app.config, app.auth, url, method=method, headers=headers, body=body, provider_names=names,
            cafiles=[opts.cacert] if opts.cacert else [], timeout=timeout,
            user_agent=f"sig/{__version__}", log=app.log)
    except SigError as err:
        app.audit("request", "failure", names[0] if names else None, {**audit_meta, "error": err.message})
        raise
    provider_id = ",".join(p.id for p in result.prepared.providers)
    status = result.status
    app.audit("request", "success" if 200 <= status < 300 else "failure", provider_id,
              {**audit_meta, "statusCode": status})
    redactor = None
    if not opts.raw:
        from ...core.redactor import StreamRedactor
        from ...core.secret_forms import secret_forms

        forms = [f for values in result.prepared.values for f in secret_forms(values)]
        redactor = StreamRedactor(forms)
    if output is not None:
        _save_body(result, fmt, output, redactor, opts.raw)
    else:
        out = _Out(redactor)
        try:
            _render(result, fmt, out)
        finally:
            out.close()
            result.close()
    if status == 401:
        app.say(f'The server answered 401: the credential of "{provider_id}" may be revoked or expired. '
                f"Run: sig login {result.prepared.providers[0].login_target()}")
    return 0 if 200 <= status < 300 else 1


def _in_sandbox(opts: RequestOptions, app: App, headers: list[tuple[str, str]], body: bytes | None) -> int:
    """`sig request` in `sig run --sandbox`: sent through the sandbox's proxy, which adds the credential
    and redacts the answer (there is no value here to redact)."""
    from ...sandbox.request import through_proxy

    result = through_proxy(opts.url, method=opts.method, headers=headers, body=body, timeout=opts.timeout,
                           cafiles=[opts.cacert] if opts.cacert else [], user_agent=f"sig/{__version__}")
    status = result.status
    if opts.output is not None:
        _save_body(result, opts.format, opts.output, None, False)
    else:
        out = _Out(None)
        try:
            _render(result, opts.format, out)
        finally:
            out.close()
            result.close()
    if status == 401:
        app.say("The server answered 401: the credential may be missing or expired; the person outside the "
                "sandbox can check with: sig status")
    return 0 if 200 <= status < 300 else 1


def _save_body(result: Result, fmt: str, path: str, redactor: StreamRedactor | None, raw: bool) -> None:
    """`-o FILE` (curl's): the body, redacted as stdout would be, into FILE; `--format headers` still prints
    the status line and headers on stdout. An unredacted body may hold a secret: its file is made 0600."""
    if path == "-":
        out = _Out(redactor)
    else:
        import os

        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if raw else 0o666)
            if raw:
                os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
        except OSError as exc:
            result.close()
            raise usage_error(f"cannot write {path}: {exc.strerror}", "check the path given to -o") from None
        out = _Out(redactor, os.fdopen(fd, "wb"))
    try:
        if fmt == "headers":
            head = _Out(redactor)  # one redactor, used in turn: close() flushes it for the body
            _render(result, "headers", head)
            head.close()
        _render(result, "body", out)
    finally:
        out.close()
        if path != "-":
            out.stream.close()
        result.close()


def _header_map(response: http.client.HTTPResponse) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in response.getheaders():
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _render(result: Result, fmt: str, out: _Out) -> None:
    """Write the answer in `fmt` through `out`. For json, the body is masked as it arrived (every form
    a secret can take there) before sig decodes, parses or escapes it, and `out` masks sig's own output
    again (a secret the server escaped in a way the first pass does not know comes out of the parser
    as plain text)."""
    from ...core.jsonio import dumps, loads

    response = result.response
    if fmt == "headers":
        from ...core.text import printable

        # The server's words go to a terminal: its reason phrase and header values are shown, never obeyed.
        lines = [f"{response.status} {printable(response.reason or '', one_line=True)}"] + [
            f"{printable(k, one_line=True)}: {printable(v, one_line=True)}" for k, v in _header_map(response).items()]
        out.write(("\n".join(lines) + "\n").encode("utf-8"))
        return
    if fmt == "body":
        while chunk := response.read(65536):
            out.write(chunk)
        return
    raw = None
    if out.redactor is not None:
        from ...core.redactor import StreamRedactor

        raw = StreamRedactor(out.redactor.forms)
    data = response.read(BUFFER_LIMIT + 1)
    headers = _header_map(response)
    head = {"status": response.status, "statusText": response.reason, "headers": headers}
    if len(data) <= BUFFER_LIMIT:
        if raw is not None:
            data = raw.feed(data) + raw.flush()
        text = data.decode("utf-8", "replace")
        body: object = text
        if _is_json(headers.get("content-type")):
            try:
                body = loads(text)  # the JSON value itself, not a string to decode a second time
            except ValueError:
                pass
        out.write((dumps({**head, "body": body}, indent=2) + "\n").encode("utf-8"))
        return
    # Too big to hold: stream the body as one JSON string, escaped chunk by chunk.
    import codecs
    from _json import encode_basestring

    prefix = dumps({**head, "body": ""}, indent=2)
    out.write(prefix[: prefix.rindex('""') + 1].encode("utf-8"))
    decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def body_chunk(chunk: bytes, final: bool = False) -> None:
        if raw is not None:
            chunk = raw.feed(chunk) + (raw.flush() if final else b"")
        out.write(encode_basestring(decoder.decode(chunk, final=final))[1:-1].encode("utf-8"))

    for start in range(0, len(data), 65536):
        body_chunk(data[start : start + 65536])
    del data
    while chunk := response.read(65536):
        body_chunk(chunk)
    body_chunk(b"", final=True)
    out.write(b'"\n}\n')
