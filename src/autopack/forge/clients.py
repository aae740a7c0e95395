"""The two forges behind one small protocol, through their maintained client libraries:
PyGithub for GitHub's REST API, python-gitlab for GitLab's.

A :class:`Forge` finds or opens the pull (merge) request of a branch, updates its text,
writes a verdict per commit (a GitHub check run, or a commit status where the token may
not write check runs; a GitLab commit status) and lists the reviews that can answer a
waiting phase. Errors become :class:`ForgeRefused` (401/403: exit 3) or
:class:`ForgeProblem` (anything else: exit 3); no message carries the token.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from autopack.forge.target import ForgeTarget

T = TypeVar("T")
CHECK_NAME = "Autopack gate"
TIMEOUT_S = 30


class ForgeProblem(RuntimeError):
    """The forge could not be reached or answered with an error (exit 3)."""


class ForgeRefused(ForgeProblem):
    """The forge refused the token (401 or 403)."""


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    author: str
    created: bool = False
    noun: str = "pull request #"
    """How the forge names it: ``pull request #3`` or ``merge request !3``."""


@dataclass(frozen=True)
class Review:
    """One review; ``state`` is APPROVED, CHANGES_REQUESTED or anything else (ignored)."""

    id: str
    user: str
    state: str
    body: str
    submitted_at: datetime | None
    user_id: int = 0


@dataclass(frozen=True)
class CommitVerdict:
    """What one commit of the branch is reported with."""

    sha: str
    conclusion: str
    """success, failure or neutral."""
    title: str
    summary: str
    proof_hash: str


class Forge(Protocol):
    label: str

    def default_branch(self) -> str: ...

    def find(self, head: str) -> PullRequest | None:
        """The open pull request from branch ``head``, if there is one."""
        ...

    def open_or_update(self, head: str, base: str, title: str, body: str) -> PullRequest: ...

    def report(self, verdicts: list[CommitVerdict]) -> str:
        """Write each verdict on its commit; returns what was written (for the output)."""
        ...

    def reviews(self, pull: PullRequest) -> list[Review]: ...

    def token_user(self) -> str:
        """Who the token acts as: its reviews never answer a phase."""
        ...

    def may_answer(self, review: Review) -> bool:
        """Whether the reviewer may write to the repository (anyone may review a public one)."""
        ...


WRITERS = frozenset({"admin", "maintain", "write"})
DEVELOPER = 30
"""GitLab's access level that may push (Developer)."""


def open_forge(target: ForgeTarget) -> Forge:
    if target.forge == "github":
        return GitHubForge(target)
    return GitLabForge(target)


def _message(data: Any, fallback: str) -> str:
    if isinstance(data, dict):
        text = data.get("message") or data.get("error_description") or data.get("error")
        if text:
            return str(text)
    return str(data or fallback)[:300]


def _clean(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


class GitHubForge:
    """GitHub (and GitHub Enterprise) through PyGithub."""

    label = "GitHub"

    def __init__(self, target: ForgeTarget) -> None:
        from github import Auth, Github

        self.target = target
        self.gh = Github(
            auth=Auth.Token(target.token), base_url=target.api_url, timeout=TIMEOUT_S, retry=None
        )
        with self._errors(repository=True):
            self.repo = self.gh.get_repo(target.repository)

    @contextmanager
    def _errors(self, repository: bool = False) -> Iterator[None]:
        import requests
        from github import GithubException

        try:
            yield
        except GithubException as exc:
            text = _clean(_message(exc.data, str(exc.status)), self.target.token)
            where = f"{self.target.api_url} ({self.target.repository})"
            if exc.status in (403, 429) and "rate limit" in text.lower():
                raise ForgeProblem(f"GitHub's rate limit: {text}; try again later") from None
            if exc.status in (401, 403):
                raise ForgeRefused(
                    f"GitHub refused the token in {self.target.token_env} ({exc.status} {text})"
                    f" at {where}; give it access to the repository"
                    " (contents, pull requests, checks: write)"
                ) from None
            if exc.status == 404 and repository:
                raise ForgeProblem(
                    f"GitHub has no repository {self.target.repository} at {self.target.api_url}"
                    f", or the token in {self.target.token_env} cannot see it"
                ) from None
            raise ForgeProblem(f"GitHub answered {exc.status}: {text} at {where}") from None
        except requests.RequestException as exc:
            text = _clean(str(exc), self.target.token)
            raise ForgeProblem(f"cannot reach GitHub at {self.target.api_url}: {text}") from None

    def default_branch(self) -> str:
        with self._errors():
            return str(self.repo.default_branch)

    def _pull(self, pr: Any, created: bool = False) -> PullRequest:
        return PullRequest(int(pr.number), str(pr.html_url), str(pr.user.login), created)

    def _open_pull(self, head: str) -> Any:
        owner = self.target.repository.split("/")[0]
        with self._errors():
            for pr in self.repo.get_pulls(state="open", head=f"{owner}:{head}"):
                return pr
        return None

    def find(self, head: str) -> PullRequest | None:
        pr = self._open_pull(head)
        return self._pull(pr) if pr is not None else None

    def open_or_update(self, head: str, base: str, title: str, body: str) -> PullRequest:
        pr = self._open_pull(head)
        with self._errors():
            if pr is not None:
                if (pr.title, pr.body) != (title, body):  # unchanged: no write
                    pr.edit(title=title, body=body)
                return self._pull(pr)
            pr = self.repo.create_pull(base=base, head=head, title=title, body=body)
            return self._pull(pr, created=True)

    def report(self, verdicts: list[CommitVerdict]) -> str:
        from github import GithubException

        try:
            with self._errors():
                for verdict in verdicts:
                    self._check_run(verdict)
            return f"check runs on {len(verdicts)} commit(s)"
        except ForgeRefused:  # a token that may not write check runs (a personal token)
            with self._errors():
                try:
                    for verdict in verdicts:
                        self._status(verdict)
                except GithubException as exc:
                    if exc.status not in (401, 403):
                        raise
                    raise ForgeRefused(
                        "GitHub refused both check runs and commit statuses for the token; "
                        "give it checks: write or statuses: write"
                    ) from None
            return f"commit statuses on {len(verdicts)} commit(s) (the token may not write checks)"

    def _check_run(self, verdict: CommitVerdict) -> None:
        """Create the commit's check run, or bring the existing one up to date; an
        unchanged one is left alone (GitHub asks clients to space writes a second apart)."""
        from github.CheckRun import CheckRun
        from github.PaginatedList import PaginatedList

        output = {"title": verdict.title, "summary": verdict.summary}
        fields: dict[str, Any] = {
            "status": "completed",
            "conclusion": verdict.conclusion,
            "external_id": verdict.proof_hash,
            "output": output,
        }
        existing = PaginatedList(
            CheckRun,
            self.repo.requester,
            f"{self.repo.url}/commits/{verdict.sha}/check-runs",
            {"check_name": CHECK_NAME},
            list_item="check_runs",
        )
        for run in existing:
            said = run.output
            same = (run.conclusion, run.external_id, said.title, said.summary) == (
                verdict.conclusion,
                verdict.proof_hash,
                verdict.title,
                verdict.summary,
            )
            if not same:
                run.edit(**fields)
            return
        self.repo.create_check_run(name=CHECK_NAME, head_sha=verdict.sha, **fields)

    def _status(self, verdict: CommitVerdict) -> None:
        state = {"success": "success", "failure": "failure"}.get(verdict.conclusion, "pending")
        self.repo.get_commit(verdict.sha).create_status(
            state=state, description=verdict.title[:140], context=CHECK_NAME
        )

    def token_user(self) -> str:
        with self._errors():
            return str(self.gh.get_user().login)

    def may_answer(self, review: Review) -> bool:
        with self._errors():
            return self.repo.get_collaborator_permission(review.user) in WRITERS

    def reviews(self, pull: PullRequest) -> list[Review]:
        with self._errors():
            return [
                Review(str(r.id), str(r.user.login), str(r.state), r.body or "", r.submitted_at)
                for r in self.repo.get_pull(pull.number).get_reviews()
                if r.user is not None
            ]


GITLAB_SAID = re.compile(r"^(approved this merge request|requested changes)", re.IGNORECASE)


class GitLabForge:
    """GitLab (gitlab.com or self-hosted) through python-gitlab. Reviews are the merge
    request's system notes "approved this merge request" and "requested changes"."""

    label = "GitLab"

    def __init__(self, target: ForgeTarget) -> None:
        import gitlab

        self.target = target
        self.gl = gitlab.Gitlab(
            url=target.api_url, private_token=target.token, timeout=TIMEOUT_S, per_page=100
        )
        self.project = self._call(lambda: self.gl.projects.get(target.repository))

    def _call(self, action: Callable[[], T]) -> T:
        import requests
        from gitlab.exceptions import GitlabError

        try:
            return action()
        except GitlabError as exc:
            code = exc.response_code
            text = _clean(str(exc.error_message)[:300], self.target.token)
            where = f"{self.target.api_url} ({self.target.repository})"
            if code in (401, 403):
                raise ForgeRefused(
                    f"GitLab refused the token in {self.target.token_env} ({code} {text}) at "
                    f"{where}; "
                    "give it the api scope and Developer access to the project"
                ) from None
            if code == 404:
                raise ForgeProblem(
                    f"GitLab has no project {self.target.repository} at {self.target.api_url}"
                    ", or the token cannot see it"
                ) from None
            raise ForgeProblem(f"GitLab answered {code}: {text} at {where}") from None
        except requests.RequestException as exc:
            text = _clean(str(exc), self.target.token)
            raise ForgeProblem(f"cannot reach GitLab at {self.target.api_url}: {text}") from None

    def default_branch(self) -> str:
        return str(self.project.default_branch)

    def _pull(self, mr: Any, created: bool = False) -> PullRequest:
        author = str(mr.author["username"])
        return PullRequest(int(mr.iid), str(mr.web_url), author, created, "merge request !")

    def _find(self, head: str) -> Any:
        found = self._call(
            lambda: self.project.mergerequests.list(
                source_branch=head, state="opened", get_all=False
            )
        )
        return found[0] if found else None

    def find(self, head: str) -> PullRequest | None:
        mr = self._find(head)
        return self._pull(mr) if mr is not None else None

    def open_or_update(self, head: str, base: str, title: str, body: str) -> PullRequest:
        mr = self._find(head)
        if mr is not None:
            if (mr.title, mr.description) != (title, body):  # unchanged: no write
                mr.title, mr.description = title, body
                self._call(mr.save)
            return self._pull(mr)
        fields = {"source_branch": head, "target_branch": base, "title": title}
        created = self._call(
            lambda: self.project.mergerequests.create({**fields, "description": body})
        )
        return self._pull(created, created=True)

    def report(self, verdicts: list[CommitVerdict]) -> str:
        state = {"success": "success", "failure": "failed"}

        def write(verdict: CommitVerdict) -> None:
            commit = self.project.commits.get(verdict.sha, lazy=True)
            status = {
                "state": state.get(verdict.conclusion, "skipped"),
                "name": CHECK_NAME,
                "description": verdict.title[:255],
            }
            commit.statuses.create(status)

        for verdict in verdicts:
            self._call(functools.partial(write, verdict))
        return f"commit statuses on {len(verdicts)} commit(s)"

    def reviews(self, pull: PullRequest) -> list[Review]:
        mr = self.project.mergerequests.get(pull.number, lazy=True)
        notes = self._call(lambda: mr.notes.list(get_all=True, sort="asc"))
        found = []
        for note in notes:
            said = GITLAB_SAID.match(str(note.body)) if note.system else None
            if said:
                state = (
                    "APPROVED" if said[1].lower().startswith("approved") else "CHANGES_REQUESTED"
                )
                when = datetime.fromisoformat(str(note.created_at).replace("Z", "+00:00"))
                author = note.author
                found.append(
                    Review(str(note.id), author["username"], state, "", when, int(author["id"]))
                )
        return found

    def token_user(self) -> str:
        self._call(self.gl.auth)
        return str(self.gl.user.username) if self.gl.user else ""

    def may_answer(self, review: Review) -> bool:
        from gitlab.exceptions import GitlabGetError

        try:
            member = self.project.members_all.get(review.user_id)
        except GitlabGetError as exc:
            if exc.response_code == 404:
                return False
            raise
        return int(member.access_level) >= DEVELOPER
