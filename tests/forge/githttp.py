"""A git remote over smart HTTP on loopback: git's own ``git-http-backend`` behind a
server that asks for Basic authentication, as GitHub and GitLab do for a push. Only the
token of the test is let in, with the user name the forge expects."""

from __future__ import annotations

import base64
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass
class GitHttpRemote:
    root: Path
    """The folder holding bare repositories (``root/remote.git``)."""
    user: str
    token: str
    url: str = ""
    refused: int = 0
    authorised: int = 0
    headers_seen: list[dict[str, str]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> GitHttpRemote:
        remote = self
        backend = Path(
            subprocess.run(["git", "--exec-path"], capture_output=True, text=True).stdout.strip()
        )
        expected = "Basic " + base64.b64encode(f"{self.user}:{self.token}".encode()).decode()

        class Handle(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                remote.headers_seen.append(dict(self.headers))
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                if self.headers.get("Authorization") != expected:
                    remote.refused += 1
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="fake forge"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                remote.authorised += 1
                parts = urlsplit(self.path)
                env = {
                    "GIT_PROJECT_ROOT": str(remote.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "PATH_INFO": parts.path,
                    "QUERY_STRING": parts.query,
                    "REQUEST_METHOD": self.command,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(data)),
                    "REMOTE_USER": remote.user,
                    "REMOTE_ADDR": "127.0.0.1",
                    "GIT_CONFIG_NOSYSTEM": "1",
                }
                if self.headers.get("Content-Encoding"):
                    env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
                done = subprocess.run(
                    [str(backend / "git-http-backend")], input=data, env=env, capture_output=True
                )
                head, _, body = done.stdout.partition(b"\r\n\r\n")
                status, headers = 200, []
                for line in head.decode().split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.strip().split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
