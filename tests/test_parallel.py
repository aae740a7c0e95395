"""Parallel phases: concurrent work, landing in plan order, conflicts sent back."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from autopack.engine.create import create_run
from autopack.engine.local import LocalExecutor
from autopack.engine.runtime import Runtime
from autopack.plan import parse_plan_text
from autopack.states import RunState
from autopack.workspace import git


def edit(path: str, old: str, new: str) -> str:
    lines = [path, "<<<<<<< SEARCH", *old.splitlines(), "=======", *new.splitlines()]
    return "\n".join([*lines, ">>>>>>> REPLACE", ""])


def replies(*texts: str) -> str:
    return "".join(
        "      - |\n" + "".join(f"        {line}\n" for line in text.splitlines()) for text in texts
    )


APPROVE = "    auditor:\n      - {verdict: approve, summary: ok, issues: []}\n"


def make_repo(tmp_path: Path, files: dict[str, str], parallel: int) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name, text in files.items():
        (repo / name).write_text(text)
    (repo / "autopack.toml").write_text(f"max_parallel = {parallel}\n")
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    return repo


def test_independent_phases_run_together_and_land_in_plan_order(tmp_path: Path) -> None:
    names = ["p1", "p2", "p3", "p4"]
    repo = make_repo(tmp_path, {f"{n}.py": f"{n.upper()} = 0\n" for n in names}, parallel=4)
    phases = "".join(
        f"      - {{id: {n}, goal: bump {n}, scope: {{paths: [{n}.py]}}, "
        f"tests: {{command: 'sleep 1'}}}}\n"
        for n in names
    )
    plan = f"run: {{goal: four at once}}\ntiers:\n  - id: only\n    phases:\n{phases}"
    script = "version: 1\nreplies:\n" + "".join(
        f"  {n}:\n    builder:\n"
        + replies(edit(f"{n}.py", f"{n.upper()} = 0", f"{n.upper()} = 1"))
        + APPROVE
        for n in names
    )
    (tmp_path / "script.yaml").write_text(script)
    rt = Runtime.open(repo, model_override=f"scripted:{tmp_path / 'script.yaml'}")
    run_id = create_run(rt, parse_plan_text(plan), plan_source="plan.yaml")
    assert LocalExecutor(rt).execute(run_id) is RunState.SUCCEEDED

    events = rt.store.events(run_id)
    first_commit = next(
        e.seq for e in events if e.type == "step_completed" and e.data["step"] == "commit"
    )
    started = {e.phase_id for e in events if e.type == "phase_started" and e.seq < first_commit}
    assert started == set(names), "all four phases were at work before the first landed"
    view = rt.store.view(run_id)
    commits = git.log_commits(repo, view.base_commit, view.branch)
    assert [git.trailers(repo, c)["Autopack-Phase"] for c in commits] == names
    for n in names:
        assert git.git(repo, "show", f"{view.branch}:{n}.py") == f"{n.upper()} = 1"
    rebased = [e for e in events if e.type == "phase_started" and e.data.get("rebase_tree")]
    assert rebased, "later phases were merged onto the moved branch and verified again"
    assert all(p.attempt - p.attempt_floor == 1 for p in view.phases.values())


def test_a_conflict_with_the_moved_branch_sends_the_phase_back_with_feedback(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path, {"a.py": "A = 0\n"}, parallel=1)
    plan = (
        "run: {goal: conflict}\ntiers:\n  - id: only\n    phases:\n"
        "      - {id: x, goal: set A, scope: {paths: [a.py]}, tests: {command: 'sleep 2'}}\n"
    )
    script = (
        "version: 1\nreplies:\n  x:\n    builder:\n"
        + replies(edit("a.py", "A = 0", "A = 1"), edit("a.py", "A = 5", "A = 6"))
        + "    auditor:\n"
        + "      - {verdict: approve, summary: ok, issues: []}\n" * 2
    )
    (tmp_path / "script.yaml").write_text(script)
    rt = Runtime.open(repo, model_override=f"scripted:{tmp_path / 'script.yaml'}")
    run_id = create_run(rt, parse_plan_text(plan), plan_source="plan.yaml")
    result: list[RunState] = []
    thread = threading.Thread(target=lambda: result.append(LocalExecutor(rt).execute(run_id)))
    thread.start()
    for _ in range(600):
        if rt.store.view(run_id).phases["x"].step == "verify":
            break
        time.sleep(0.05)
    # Someone else lands a change to the same line on the run branch meanwhile.
    branch = rt.store.view(run_id).branch
    head = git.rev_parse(repo, f"refs/heads/{branch}")
    assert head is not None
    blob = git.git(repo, "hash-object", "-w", "--stdin", input_text="A = 5\n")
    tree = git.git(repo, "mktree", input_text=f"100644 blob {blob}\ta.py\n")
    git.git(
        repo,
        "update-ref",
        f"refs/heads/{branch}",
        git.commit_tree_object(repo, tree, head, "other"),
        head,
    )
    thread.join(timeout=120)

    assert result == [RunState.SUCCEEDED]
    view = rt.store.view(run_id)
    first = view.phases["x"].attempts[0]["steps"]["commit"]
    assert "conflicting files: a.py" in first["conflict"]
    prompt = rt.run_dir(run_id) / "phases" / "x" / "2" / "prompt.txt"
    assert "conflicting files: a.py" in prompt.read_text()
    assert git.git(repo, "show", f"{branch}:a.py") == "A = 6"
