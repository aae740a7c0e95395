"""``autopack pr`` after a real demo run, against a loopback GitHub (PyGithub's real
requests) and a bare git repository as the remote: the branch and proof notes pushed,
one pull request opened with the evidence and updated (never duplicated) by a second
call, a check run per phase commit with the gate's verdict and proof hash, a refused
token exit 3 in one line, and the token nowhere but in the requests' headers."""

from __future__ import annotations

import io
import logging
import subprocess
from pathlib import Path

import pytest
from tests.forge.conftest import TOKEN, pr_args
from tests.forge.fakeforge import FakeForge
from tests.forge.githttp import GitHttpRemote
from typer.testing import CliRunner

from autopack.cli import app
from autopack.engine.runtime import Runtime

PHASES = ("slugify", "word-frequencies", "cli")


def git(where: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True)
    return done.stdout.strip()


def run_pr(args: list[str], token: str = TOKEN) -> tuple[int, str]:
    """``autopack pr`` with every log record at DEBUG captured beside its output."""
    records = io.StringIO()
    handler = logging.StreamHandler(records)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        done = CliRunner().invoke(app, args, env={"GITHUB_TOKEN": token, "COLUMNS": "200"})
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return done.exit_code, done.output + records.getvalue()


def test_pr_opens_then_updates_one_pull_request_with_checks(
    demo: tuple[Path, str], forge: FakeForge
) -> None:
    repo, run_id = demo
    remote = forge.remote
    code, out = run_pr(pr_args(forge, repo, run_id))
    assert code == 0, out
    assert "pull request #1 opened" in out and "check runs on 3 commit(s)" in out

    branch = f"autopack/{run_id}"
    assert git(remote, "rev-parse", f"refs/heads/{branch}") == git(repo, "rev-parse", branch)
    view = Runtime.open(repo).store.view(run_id)
    for phase_id in PHASES:
        phase = view.phases[phase_id]
        note = git(remote, "notes", "--ref=refs/notes/autopack", "show", phase.commit)
        assert phase.proof_hash in git(repo, "log", "-1", "--format=%B", phase.commit)
        assert f'"phase_id":"{phase_id}"' in note.replace(" ", "")

    assert len(forge.pulls) == 1
    pull = forge.pulls[1]
    assert pull["head"]["ref"] == branch and pull["base"]["ref"] == "main"
    body = pull["body"]
    assert "Grow textkit with slugs, word frequencies and a command line" in body
    assert f"Run `{run_id}` is **SUCCEEDED**: 3 of 3 phases landed" in body
    row = next(line for line in body.splitlines() if line.startswith("| `word-frequencies`"))
    assert "2 file(s) +" in row and "passed 6→9" in row and "**PASS**" in row
    assert "approve" in row and view.phases["word-frequencies"].proof_hash[:12] in row
    assert "attempt 1: RETRY" in body  # the retried attempt and why, in the details
    assert "`src/textkit/stats.py` +" in body

    checks = {c["head_sha"]: c for c in forge.check_runs.values()}
    assert set(checks) == {view.phases[p].commit for p in PHASES}
    for phase_id in PHASES:
        phase = view.phases[phase_id]
        check = checks[phase.commit]
        assert check["conclusion"] == "success" and check["external_id"] == phase.proof_hash
        assert f"{phase_id}: PASS" in check["output"]["title"]
        assert phase.proof_hash in check["output"]["summary"]

    before = len(forge.log)
    forge.check_runs[next(iter(forge.check_runs))]["conclusion"] = "neutral"  # made stale
    forge.pulls[1]["body"] = "edited by someone"
    code, out = run_pr(pr_args(forge, repo, run_id))
    assert code == 0, out
    assert "pull request #1 updated" in out
    assert len(forge.pulls) == 1 and len(forge.check_runs) == 3  # updated, not duplicated
    writes = [(r.method, r.path.split("/")[-2]) for r in forge.log[before:] if r.method != "GET"]
    assert sorted(writes) == [("PATCH", "check-runs"), ("PATCH", "pulls")]  # only what changed
    assert all(c["conclusion"] == "success" for c in forge.check_runs.values())
    assert forge.pulls[1]["body"] == body

    leaked = [r for r in forge.log if TOKEN in r.path or TOKEN in r.body]
    assert not leaked
    assert all(TOKEN not in str(c) for c in forge.check_runs.values())
    assert TOKEN not in out
    for where in (repo, remote):  # config, events, the store, cassette, notes, objects
        found = subprocess.run(["grep", "-rl", TOKEN, str(where)], capture_output=True, text=True)
        assert found.stdout == "", found.stdout
    assert TOKEN not in git(repo, "config", "--list", "--show-origin")


def test_a_refused_token_exits_3_in_one_line(demo: tuple[Path, str], forge: FakeForge) -> None:
    repo, run_id = demo
    code, out = run_pr(pr_args(forge, repo, run_id), token="ghp_wrong")
    assert code == 3, out
    assert "GitHub refused the token in GITHUB_TOKEN (401 Bad credentials)" in out
    assert "Traceback" not in out and "ghp_wrong" not in out
    assert forge.pulls == {}


def test_a_rate_limit_is_not_called_a_refused_token(
    demo: tuple[Path, str], forge: FakeForge
) -> None:
    repo, run_id = demo
    forge.rate_limited = True
    code, out = run_pr(pr_args(forge, repo, run_id))
    assert code == 3, out
    assert "GitHub's rate limit: API rate limit exceeded" in out and "refused" not in out


def test_no_token_unknown_run_and_no_branch_are_clear(
    demo: tuple[Path, str], forge: FakeForge
) -> None:
    repo, run_id = demo
    done = CliRunner().invoke(app, pr_args(forge, repo, run_id), env={"GITHUB_TOKEN": ""})
    assert done.exit_code == 3 and "set GITHUB_TOKEN" in done.output, done.output
    code, out = run_pr(pr_args(forge, repo, "run-nope"))
    assert code == 2 and "no run 'run-nope'" in out, out
    base = Runtime.open(repo).store.view(run_id).base_commit
    git(repo, "branch", "-f", f"autopack/{run_id}", base)
    code, out = run_pr(pr_args(forge, repo, run_id))
    assert code == 2 and f"has landed no commit on autopack/{run_id} yet" in out, out
    git(repo, "branch", "-D", f"autopack/{run_id}")
    code, out = run_pr(pr_args(forge, repo, run_id))
    assert code == 2 and f"has no branch autopack/{run_id}" in out, out
    assert "Traceback" not in out
    assert forge.log == []


def test_a_token_that_may_not_write_checks_gets_commit_statuses(
    demo: tuple[Path, str], forge: FakeForge
) -> None:
    repo, run_id = demo
    forge.refuse_checks = True
    code, out = run_pr(pr_args(forge, repo, run_id))
    assert code == 0, out
    assert "commit statuses on 3 commit(s)" in out
    view = Runtime.open(repo).store.view(run_id)
    by_sha = {s["sha"]: s for s in forge.statuses}
    for phase_id in PHASES:
        status = by_sha[view.phases[phase_id].commit]
        assert status["state"] == "success" and status["context"] == "Autopack gate"
        assert view.phases[phase_id].proof_hash[:12] in status["description"]


def test_the_push_over_https_gets_the_token_from_a_helper_and_keeps_none(
    demo: tuple[Path, str], forge: FakeForge
) -> None:
    """``origin`` is https://github.com/acme/textkit.git, rewritten by ``insteadOf`` to a
    loopback remote that asks for Basic auth, as a forge does: GitHub and acme/textkit are
    told by the URL, the push succeeds with the token, which then is in no config, URL or
    file of the repository."""
    repo, run_id = demo
    server = GitHttpRemote(root=forge.remote.parent, user="x-access-token", token=TOKEN).start()
    try:
        url = "https://github.com/acme/textkit.git"
        git(repo, "remote", "set-url", "origin", url)
        git(repo, "config", f"url.{server.url}/remote.git.insteadOf", url)
        args = ["pr", run_id, "-C", str(repo), "--api-url", forge.url]
        code, out = run_pr(args)
        assert code == 0, out
        assert server.refused >= 1 and server.authorised >= 2  # asked, then let in
        branch = f"autopack/{run_id}"
        assert git(forge.remote, "rev-parse", branch) == git(repo, "rev-parse", branch)
        assert git(forge.remote, "rev-parse", "refs/notes/autopack")
        assert git(repo, "config", "--get", "remote.origin.url") == url
        assert TOKEN not in git(repo, "config", "--list", "--show-origin") and TOKEN not in out
        found = subprocess.run(["grep", "-rl", TOKEN, str(repo)], capture_output=True, text=True)
        assert found.stdout == "", found.stdout
    finally:
        server.stop()

    assert len(forge.pulls) == 1 and forge.pulls[1]["head"]["ref"] == branch


def test_a_body_over_the_forge_limit_leaves_the_details_out(
    demo: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from autopack.forge import body

    repo, run_id = demo
    rt = Runtime.open(repo)
    view = rt.store.view(run_id)
    changes = body.collect(view, rt.repo, rt.run_dir(run_id))
    full = body.render(view, changes)
    assert "<details>" in full
    monkeypatch.setattr(body, "BODY_LIMIT", len(full) // 2)
    short = body.render(view, changes)
    assert "<details>" not in short and "Per-phase details left out" in short
    assert "| `cli` | COMPLETE" in short and "verify-proof" in short
