"""A git repository served over HTTPS by `git http-backend` (git's smart HTTP) on 127.0.0.1, for tests
that clone or list it through sig. Callers skip when `git` is not installed."""

from __future__ import annotations

import os
import subprocess
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import trustme

from harness.servers import HandlerServer

_AUTHOR = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}


class GitHttpServer(HandlerServer):
    """`repo_url` is a bare repository (branch main, one commit: README holding `readme`), made under
    `folder`, served with a certificate from `ca`. `seen` lists each request's Authorization header; with
    `token`, a request without `Bearer <token>` is answered 401."""

    def __init__(self, folder: Path, ca: trustme.CA, readme: str, token: str | None = None) -> None:
        root = folder / "repos"
        src = folder / "src"
        env = {**os.environ, **_AUTHOR}
        subprocess.run(["git", "init", "-q", "-b", "main", str(src)], check=True, timeout=30)
        (src / "README").write_text(readme)
        subprocess.run(["git", "-C", str(src), "add", "README"], check=True, timeout=30, env=env)
        subprocess.run(["git", "-C", str(src), "commit", "-qm", "init"], check=True, timeout=30, env=env)
        subprocess.run(["git", "clone", "-q", "--bare", str(src), str(root / "repo.git")], check=True, timeout=30)
        self.seen: list[str | None] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _backend(self) -> None:
                seen.append(self.headers.get("Authorization"))
                if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                cgi = {"GIT_PROJECT_ROOT": str(root), "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path,
                       "QUERY_STRING": query, "REQUEST_METHOD": self.command, "REMOTE_ADDR": "127.0.0.1",
                       "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
                       "PATH": os.environ["PATH"]}
                if self.headers.get("Git-Protocol"):
                    cgi["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
                out = subprocess.run(["git", "http-backend"], input=body, env=cgi, capture_output=True,
                                     timeout=60).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                status, headers = 200, []
                for line in head.decode().split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _backend

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(Handler, ca)
        self.repo_url = f"{self.url}/repo.git"
