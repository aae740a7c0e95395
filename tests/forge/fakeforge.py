"""A loopback server speaking the subset of GitHub's REST API and GitLab's API v4 that
``autopack pr`` calls through PyGithub and python-gitlab, with a real bare git
repository as the remote: a pull request is refused for a branch that was not pushed
and a check run for a commit the remote does not have, as the real forges do.

State is kept in memory and every request is logged (method, path, body, headers), so a
test can check what reached the forge and that the token was only ever in the
``Authorization`` / ``PRIVATE-TOKEN`` header.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

Handler = Callable[["FakeForge", dict[str, str], dict[str, list[str]], Any], tuple[int, Any]]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Logged:
    method: str
    path: str
    body: str
    headers: dict[str, str]


@dataclass
class FakeForge:
    """One repository ``owner/name`` on a fake GitHub and GitLab at ``url``."""

    remote: Path
    token: str
    repository: str = "acme/textkit"
    author: str = "autopack-bot"
    refuse_checks: bool = False
    rate_limited: bool = False
    permissions: dict[str, str] = field(
        default_factory=lambda: {"autopack-bot": "write", "bob": "write", "carol": "admin"}
    )
    """GitHub permission per user (anyone else: read)."""
    members: dict[int, int] = field(default_factory=lambda: {2: 40, 31: 30, 32: 20})
    """GitLab access level per user id (2 the token's user, 31 a Developer, 32 a Reporter)."""
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    log: list[Logged] = field(default_factory=list)
    url: str = ""
    _server: ThreadingHTTPServer | None = None

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> FakeForge:
        forge = self

        class Handle(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                status, data = forge.handle(self.command, self.path, dict(self.headers), raw)
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- what a test does as a reviewer ------------------------------------------------
    def add_review(self, number: int, user: str, state: str, body: str = "") -> dict[str, Any]:
        reviews = self.reviews.setdefault(number, [])
        review = {
            "id": 9000 + len(reviews) + sum(len(r) for r in self.reviews.values()),
            "user": {"login": user, "id": 1, "type": "User"},
            "state": state,
            "body": body,
            "submitted_at": now(),
            "commit_id": self.pulls[number]["head"]["sha"],
        }
        reviews.append(review)
        return review

    # -- dispatch ----------------------------------------------------------------------
    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw: str
    ) -> tuple[int, Any]:
        self.log.append(Logged(method, raw_path, raw, headers))
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query)
        body = json.loads(raw) if raw else {}
        gitlab = parts.path.startswith("/api/v4/")
        given = headers.get("PRIVATE-TOKEN", "") if gitlab else _bearer(headers)
        if self.rate_limited and not gitlab:
            return 403, {"message": "API rate limit exceeded for user ID 2."}
        if given != self.token:
            return 401, (
                {"message": "401 Unauthorized"} if gitlab else {"message": "Bad credentials"}
            )
        for verb, pattern, handler in ROUTES:
            found = re.fullmatch(pattern, parts.path)
            if found and verb == method:
                return handler(self, found.groupdict(), query, body)
        return 404, {"message": "Not Found"}

    def has_commit(self, rev: str) -> str | None:
        done = subprocess.run(
            [
                "git",
                "--git-dir",
                str(self.remote),
                "rev-parse",
                "--verify",
                "-q",
                rev + "^{commit}",
            ],
            capture_output=True,
            text=True,
        )
        return done.stdout.strip() if done.returncode == 0 else None

    def is_ancestor(self, commit: str, ref: str) -> bool:
        done = subprocess.run(
            ["git", "--git-dir", str(self.remote), "merge-base", "--is-ancestor", commit, ref],
            capture_output=True,
        )
        return done.returncode == 0

    # -- GitHub ------------------------------------------------------------------------
    def api(self, path: str) -> str:
        return f"{self.url}/repos/{self.repository}{path}"

    def gh_repo(self, m: dict[str, str], q: Any, b: Any) -> tuple[int, Any]:
        if f"{m['owner']}/{m['name']}" != self.repository:
            return 404, {"message": "Not Found"}
        owner, name = self.repository.split("/")
        return 200, {
            "id": 1,
            "name": name,
            "full_name": self.repository,
            "owner": {"login": owner},
            "default_branch": "main",
            "url": self.api(""),
            "html_url": f"https://github.test/{self.repository}",
        }

    def gh_user(self, m: dict[str, str], q: Any, b: Any) -> tuple[int, Any]:
        return 200, {"login": self.author, "id": 2, "type": "Bot"}

    def gh_permission(self, m: dict[str, str], q: Any, b: Any) -> tuple[int, Any]:
        permission = self.permissions.get(m["user"], "read")
        return 200, {"permission": permission, "user": {"login": m["user"]}}

    def gh_pulls(self, m: dict[str, str], q: dict[str, list[str]], b: Any) -> tuple[int, Any]:
        head = q.get("head", [""])[0].split(":", 1)[-1]
        state = q.get("state", ["open"])[0]
        found = [
            p
            for p in self.pulls.values()
            if (not head or p["head"]["ref"] == head) and (state == "all" or p["state"] == state)
        ]
        return 200, found

    def gh_create_pull(self, m: dict[str, str], q: Any, b: dict[str, Any]) -> tuple[int, Any]:
        sha = self.has_commit(f"refs/heads/{b['head']}")
        if sha is None:
            return 422, {"message": "Validation Failed", "errors": [{"field": "head"}]}
        if self.is_ancestor(sha, f"refs/heads/{b['base']}"):
            error = {"message": f"No commits between {b['base']} and {b['head']}"}
            return 422, {"message": "Validation Failed", "errors": [error]}
        number = len(self.pulls) + 1
        self.pulls[number] = {
            "id": 100 + number,
            "number": number,
            "state": "open",
            "title": b["title"],
            "body": b.get("body", ""),
            "url": self.api(f"/pulls/{number}"),
            "html_url": f"https://github.test/{self.repository}/pull/{number}",
            "user": {"login": self.author, "id": 2, "type": "Bot"},
            "head": {"ref": b["head"], "sha": sha},
            "base": {"ref": b["base"]},
        }
        return 201, self.pulls[number]

    def gh_pull(self, m: dict[str, str], q: Any, b: Any) -> tuple[int, Any]:
        pull = self.pulls.get(int(m["n"]))
        return (200, pull) if pull else (404, {"message": "Not Found"})

    def gh_edit_pull(self, m: dict[str, str], q: Any, b: dict[str, Any]) -> tuple[int, Any]:
        pull = self.pulls[int(m["n"])]
        pull.update({k: v for k, v in b.items() if k in ("title", "body")})
        pull["head"]["sha"] = self.has_commit(f"refs/heads/{pull['head']['ref']}")
        return 200, pull

    def gh_reviews(self, m: dict[str, str], q: Any, b: Any) -> tuple[int, Any]:
        return 200, self.reviews.get(int(m["n"]), [])

    def gh_commit(self, m: dict[str, str], q: Any, b: Any) -> tuple[int, Any]:
        if self.has_commit(m["sha"]) != m["sha"]:
            return 422, {"message": "No commit found for SHA: " + m["sha"]}
        return 200, {"sha": m["sha"], "url": self.api(f"/commits/{m['sha']}"), "files": []}

    def gh_commit_checks(
        self, m: dict[str, str], q: dict[str, list[str]], b: Any
    ) -> tuple[int, Any]:
        name = q.get("check_name", [None])[0]
        runs = [
            r
            for r in self.check_runs.values()
            if r["head_sha"] == m["sha"] and (name is None or r["name"] == name)
        ]
        return 200, {"total_count": len(runs), "check_runs": runs}

    def gh_create_check(self, m: dict[str, str], q: Any, b: dict[str, Any]) -> tuple[int, Any]:
        if self.refuse_checks:
            return 403, {"message": "Resource not accessible by personal access token"}
        if self.has_commit(b["head_sha"]) != b["head_sha"]:
            return 422, {"message": "No commit found for SHA: " + b["head_sha"]}
        number = 500 + len(self.check_runs)
        self.check_runs[number] = {**b, "id": number, "url": self.api(f"/check-runs/{number}")}
        return 201, self.check_runs[number]

    def gh_edit_check(self, m: dict[str, str], q: Any, b: dict[str, Any]) -> tuple[int, Any]:
        run = self.check_runs[int(m["id"])]
        run.update(b)
        return 200, run

    def gh_status(self, m: dict[str, str], q: Any, b: dict[str, Any]) -> tuple[int, Any]:
        if self.has_commit(m["sha"]) != m["sha"]:
            return 422, {"message": "No commit found for SHA"}
        self.statuses.append({**b, "sha": m["sha"], "id": len(self.statuses) + 1})
        return 201, self.statuses[-1]

    # -- GitLab ------------------------------------------------------------------------
    def gl_project(self, m: dict[str, str], q: Any, b: Any) -> tuple[int, Any]:
        if unquote(m["id"]) not in (self.repository, "1"):
            return 404, {"message": "404 Project Not Found"}
        return 200, {
            "id": 1,
            "path_with_namespace": self.repository,
            "default_branch": "main",
            "web_url": f"https://gitlab.test/{self.repository}",
        }

    def gl_mrs(self, m: dict[str, str], q: dict[str, list[str]], b: Any) -> tuple[int, Any]:
        source = q.get("source_branch", [""])[0]
        state = q.get("state", ["opened"])[0]
        found = [
            p
            for p in self.pulls.values()
            if p["source_branch"] == source and (state == "all" or p["state"] == state)
        ]
        return 200, found

    def gl_create_mr(self, m: dict[str, str], q: Any, b: dict[str, Any]) -> tuple[int, Any]:
        sha = self.has_commit(f"refs/heads/{b['source_branch']}")
        if sha is None:
            return 409, {"message": ["Source branch does not exist"]}
        iid = len(self.pulls) + 1
        self.pulls[iid] = {
            "id": 300 + iid,
            "iid": iid,
            "project_id": 1,
            "state": "opened",
            "title": b["title"],
            "description": b.get("description", ""),
            "source_branch": b["source_branch"],
            "target_branch": b["target_branch"],
            "sha": sha,
            "web_url": f"https://gitlab.test/{self.repository}/-/merge_requests/{iid}",
            "author": {"username": self.author, "id": 2},
        }
        return 201, self.pulls[iid]

    def gl_update_mr(self, m: dict[str, str], q: Any, b: dict[str, Any]) -> tuple[int, Any]:
        mr = self.pulls[int(m["iid"])]
        mr.update({k: v for k, v in b.items() if k in ("title", "description")})
        return 200, mr

    def gl_status(self, m: dict[str, str], q: Any, b: dict[str, Any]) -> tuple[int, Any]:
        if self.has_commit(m["sha"]) != m["sha"]:
            return 404, {"message": "404 Commit Not Found"}
        self.statuses.append({**b, "sha": m["sha"], "id": len(self.statuses) + 1})
        return 201, self.statuses[-1]

    def gl_notes(self, m: dict[str, str], q: Any, b: Any) -> tuple[int, Any]:
        return 200, self.reviews.get(int(m["iid"]), [])

    def gl_user(self, m: dict[str, str], q: Any, b: Any) -> tuple[int, Any]:
        return 200, {"username": self.author, "id": 2}

    def gl_member(self, m: dict[str, str], q: Any, b: Any) -> tuple[int, Any]:
        level = self.members.get(int(m["user"]))
        if level is None:
            return 404, {"message": "404 Not found"}
        return 200, {"id": int(m["user"]), "access_level": level}

    def add_gitlab_note(self, iid: int, user: str, user_id: int, text: str) -> None:
        notes = self.reviews.setdefault(iid, [])
        notes.append(
            {
                "id": 7000 + len(notes),
                "body": text,
                "system": True,
                "author": {"username": user, "id": user_id},
                "created_at": now(),
            }
        )


def _bearer(headers: dict[str, str]) -> str:
    value = headers.get("Authorization", "")
    return value.split(" ", 1)[1] if " " in value else ""


REPO = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"
GL = r"/api/v4/projects/(?P<id>[^/]+)"
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/user", FakeForge.gh_user),
    ("GET", "/api/v4/user", FakeForge.gl_user),
    ("GET", REPO, FakeForge.gh_repo),
    ("GET", REPO + r"/collaborators/(?P<user>[^/]+)/permission", FakeForge.gh_permission),
    ("GET", REPO + "/pulls", FakeForge.gh_pulls),
    ("POST", REPO + "/pulls", FakeForge.gh_create_pull),
    ("GET", REPO + r"/pulls/(?P<n>\d+)", FakeForge.gh_pull),
    ("PATCH", REPO + r"/pulls/(?P<n>\d+)", FakeForge.gh_edit_pull),
    ("GET", REPO + r"/pulls/(?P<n>\d+)/reviews", FakeForge.gh_reviews),
    ("GET", REPO + r"/commits/(?P<sha>[0-9a-f]+)", FakeForge.gh_commit),
    ("GET", REPO + r"/commits/(?P<sha>[0-9a-f]+)/check-runs", FakeForge.gh_commit_checks),
    ("POST", REPO + "/check-runs", FakeForge.gh_create_check),
    ("PATCH", REPO + r"/check-runs/(?P<id>\d+)", FakeForge.gh_edit_check),
    ("POST", REPO + r"/statuses/(?P<sha>[0-9a-f]+)", FakeForge.gh_status),
    ("GET", GL, FakeForge.gl_project),
    ("GET", GL + "/merge_requests", FakeForge.gl_mrs),
    ("POST", GL + "/merge_requests", FakeForge.gl_create_mr),
    ("PUT", GL + r"/merge_requests/(?P<iid>\d+)", FakeForge.gl_update_mr),
    ("GET", GL + r"/merge_requests/(?P<iid>\d+)/notes", FakeForge.gl_notes),
    ("POST", GL + r"/statuses/(?P<sha>[0-9a-f]+)", FakeForge.gl_status),
    ("GET", GL + r"/members/all/(?P<user>\d+)", FakeForge.gl_member),
]
