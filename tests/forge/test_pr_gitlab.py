"""``autopack pr`` on GitLab (python-gitlab's real requests against the loopback API v4):
the forge, project and API told by ``[pr]`` in autopack.toml, one merge request opened
then updated, a commit status per phase commit, approvals from the merge request's
system notes (the author's ignored), a refused token exit 3."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.forge.conftest import TOKEN
from tests.forge.fakeforge import FakeForge
from typer.testing import CliRunner

from autopack.cli import app
from autopack.engine.runtime import Runtime


@pytest.fixture
def gitlab(demo: tuple[Path, str], tmp_path: Path) -> Iterator[FakeForge]:
    repo, _ = demo
    fake = FakeForge(remote=tmp_path / "remote.git", token=TOKEN).start()
    with (repo / "autopack.toml").open("a") as config:
        config.write(
            f'\n[pr]\nforge = "gitlab"\napi_url = "{fake.url}"\nrepository = "acme/textkit"\n'
        )
    yield fake
    fake.stop()


def pr(repo: Path, run_id: str, token: str = TOKEN) -> tuple[int, str]:
    done = CliRunner().invoke(app, ["pr", run_id, "-C", str(repo)], env={"GITLAB_TOKEN": token})
    return done.exit_code, done.output


def test_merge_request_opened_updated_and_statuses(
    demo: tuple[Path, str], gitlab: FakeForge
) -> None:
    repo, run_id = demo
    code, out = pr(repo, run_id)
    assert code == 0, out
    assert "merge request !1 opened: https://gitlab.test/acme/textkit/-/merge_requests/1" in out
    mr = gitlab.pulls[1]
    assert mr["source_branch"] == f"autopack/{run_id}" and mr["target_branch"] == "main"
    assert "3 of 3 phases landed" in mr["description"]
    view = Runtime.open(repo).store.view(run_id)
    commits = {view.phases[p].commit for p in view.phases}
    assert {s["sha"] for s in gitlab.statuses} == commits
    assert all(s["state"] == "success" and s["name"] == "Autopack gate" for s in gitlab.statuses)

    gitlab.pulls[1]["description"] = "edited by someone"
    code, out = pr(repo, run_id)
    assert code == 0 and "merge request !1 updated" in out, out
    assert "3 of 3 phases landed" in gitlab.pulls[1]["description"]
    assert len(gitlab.pulls) == 1
    put = [r for r in gitlab.log if r.method == "PUT"]
    assert len(put) == 1 and "3 of 3 phases landed" in put[0].body
    assert all(TOKEN not in r.path + r.body for r in gitlab.log)
    found = subprocess.run(["grep", "-rl", TOKEN, str(repo)], capture_output=True, text=True)
    assert found.stdout == ""


def test_gitlab_refused_token_exits_3(demo: tuple[Path, str], gitlab: FakeForge) -> None:
    repo, run_id = demo
    code, out = pr(repo, run_id, token="glpat-wrong")
    assert code == 3, out
    assert "GitLab refused the token in GITLAB_TOKEN (401" in out
    assert "Traceback" not in out and "glpat-wrong" not in out


def test_gitlab_approval_notes_are_read(demo: tuple[Path, str], gitlab: FakeForge) -> None:
    from autopack.config import load_settings
    from autopack.forge.clients import PullRequest, open_forge
    from autopack.forge.target import TargetOptions, resolve

    repo, run_id = demo
    assert pr(repo, run_id)[0] == 0
    gitlab.add_gitlab_note(1, "dana", 31, "approved this merge request")
    gitlab.add_gitlab_note(1, "erin", 32, "requested changes")
    gitlab.add_gitlab_note(1, "dana", 31, "added 1 commit")
    target = resolve(repo, load_settings(repo).pr, TargetOptions(), {"GITLAB_TOKEN": TOKEN})
    forge = open_forge(target)
    reviews = forge.reviews(PullRequest(1, "", gitlab.author))
    assert [(r.user, r.state) for r in reviews] == [
        ("dana", "APPROVED"),
        ("erin", "CHANGES_REQUESTED"),
    ]
    assert [forge.may_answer(r) for r in reviews] == [True, False]  # Developer, Reporter
    assert forge.token_user() == gitlab.author
