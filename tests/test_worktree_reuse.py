"""A worktree handed from one phase to the next starts exactly at the new base, and the
change staged path by path is the tree ``git add -A`` would have written."""

from __future__ import annotations

from pathlib import Path

from autopack.engine.create import create_run
from autopack.engine.local import LocalExecutor
from autopack.engine.runtime import Runtime
from autopack.plan import parse_plan_text
from autopack.states import RunState
from autopack.workspace import git


def make_repo(tmp_path: Path, files: dict[str, str]) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir(parents=True)
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    return repo


def builder_reply(text: str) -> str:
    return "      - |\n" + "".join(f"        {line}\n" for line in text.splitlines())


def run_plan(tmp_path: Path, repo: Path, plan: str, script: str) -> tuple[Runtime, str]:
    (tmp_path / "script.yaml").write_text("version: 1\nreplies:\n" + script)
    rt = Runtime.open(repo, model_override=f"scripted:{tmp_path / 'script.yaml'}")
    run_id = create_run(rt, parse_plan_text(plan), plan_source="plan.yaml")
    assert LocalExecutor(rt).execute(run_id) is RunState.SUCCEEDED
    return rt, run_id


APPROVE = "    auditor:\n      - {verdict: approve, summary: ok, issues: []}\n"


def test_the_next_phase_sees_none_of_what_the_last_phase_tests_left(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"a.py": "A = 0\n", "b.py": "B = 0\n", ".gitignore": "*.pyc\n"})
    litter = "touch junk.txt && mkdir -p cache && touch cache/x.pyc && echo tampered >> b.py"
    clean = (
        "grep -q worktrees/p1 .git && test ! -e junk.txt && test ! -e cache/x.pyc"
        " && grep -qx 'A = 1' a.py && grep -qx 'B = 1' b.py && ! grep -q tampered b.py"
    )
    plan = (
        "run: {goal: isolation}\ntiers:\n"
        "  - id: t1\n    phases:\n"
        f"      - {{id: p1, goal: a, scope: {{paths: [a.py]}}, tests: {{command: '{litter}'}}}}\n"
        "  - id: t2\n    phases:\n"
        f"      - {{id: p2, goal: b, scope: {{paths: [b.py]}},\n"
        # the check fails on the base tree (B = 0) and the phase is there to make it pass
        f'         tests: {{command: "{clean}", fail_to_pass: ["<exit status>"]}}}}\n'
    )
    edit_a = "a.py\n<<<<<<< SEARCH\nA = 0\n=======\nA = 1\n>>>>>>> REPLACE\n"
    edit_b = "b.py\n<<<<<<< SEARCH\nB = 0\n=======\nB = 1\n>>>>>>> REPLACE\n"
    script = (
        f"  p1:\n    builder:\n{builder_reply(edit_a)}{APPROVE}"
        f"  p2:\n    builder:\n{builder_reply(edit_b)}{APPROVE}"
    )
    rt, run_id = run_plan(tmp_path, repo, plan, script)

    view = rt.store.view(run_id)
    assert view.phases["p2"].attempt == 1, "p2's tests passed the first time: a clean start"
    # p2's test command checked that its worktree is p1's, moved (``worktrees/p1``).
    assert git.ls_files(repo, view.branch) == [".gitignore", "a.py", "b.py"]
    assert git.git(repo, "show", f"{view.branch}:b.py") == "B = 1"


def test_a_change_staged_by_path_is_the_tree_add_all_writes(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path,
        {"src/keep.py": "K = 0\n", "src/old.py": "OLD = 1\n", ".gitignore": "*.log\n"},
    )
    edits = (
        "src/keep.py\n<<<<<<< SEARCH\nK = 0\n=======\nK = 1\n>>>>>>> REPLACE\n"
        "src/new.py\n<<<<<<< SEARCH\n=======\nNEW = 1\n>>>>>>> REPLACE\n"
        "src/notes.log\n<<<<<<< SEARCH\n=======\nignored\n>>>>>>> REPLACE\n"
    )
    delete = "*** Delete File: src/old.py\n"
    plan = (
        "run: {goal: staging}\ntiers:\n  - id: t1\n    phases:\n"
        "      - {id: p1, goal: edit, scope: {paths: ['src/**']}, tests: {command: 'true'}}\n"
        "  - id: t2\n    phases:\n"
        "      - {id: p2, goal: delete, scope: {paths: ['src/**']}, tests: {command: 'true'}}\n"
    )
    script = (
        f"  p1:\n    builder:\n{builder_reply(edits)}{APPROVE}"
        f"  p2:\n    builder:\n{builder_reply(delete)}{APPROVE}"
    )
    rt, run_id = run_plan(tmp_path, repo, plan, script)

    view = rt.store.view(run_id)
    assert view.phases["p1"].attempt == 1
    assert sorted(view.phases["p1"].steps["apply"]["changed_files"]) == [
        "src/keep.py",
        "src/new.py",
    ]
    assert git.ls_files(repo, view.branch) == [".gitignore", "src/keep.py", "src/new.py"]
    # The same edits on a scratch worktree, staged with ``add -A``, give the same trees.
    for phase in ("p1", "p2"):
        steps = view.phases[phase].steps
        scratch = tmp_path / f"scratch-{phase}"
        git.add_worktree(repo, scratch, view.phases[phase].base_commit)
        git.apply_diff(scratch, (rt.attempt_dir(run_id, phase, 1) / "changes.diff").read_text())
        (scratch / "src" / "notes.log").write_text("ignored\n")
        assert git.tree_hash(scratch) == steps["apply"]["tree"]
        commit = steps["commit"]["commit"]
        assert git.commit_tree(repo, commit) == steps["apply"]["tree"]


def test_staging_by_path_matches_add_all_for_every_kind_of_change(tmp_path: Path) -> None:
    files = {"a.txt": "a\n", "gone.txt": "g\n", "dir/b.txt": "b\n", ".gitignore": "*.log\n"}
    trees = []
    for name, stage in (("all", None), ("paths", git.stage_paths)):
        repo = make_repo(tmp_path / name, files)
        (repo / "a.txt").write_text("a2\n")
        (repo / "gone.txt").unlink()
        (repo / "dir" / "c.txt").write_text("c\n")
        (repo / "dir" / "x.log").write_text("ignored\n")
        (repo / "link").symlink_to("dir", target_is_directory=True)
        written = ["a.txt", "gone.txt", "dir/c.txt", "dir/x.log", "link"]
        if stage is None:
            git.stage_all(repo)
        else:
            stage(repo, written)
        trees.append(git.git(repo, "write-tree"))
        assert "dir/x.log" not in git.git(repo, "ls-files")
    assert trees[0] == trees[1]


def test_a_path_behind_a_symlink_falls_back_to_staging_everything(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"real/a.txt": "a\n"})
    (repo / "alias").symlink_to("real", target_is_directory=True)
    git.git(repo, "add", "alias")
    (repo / "real" / "a.txt").write_text("a2\n")
    git.stage_paths(repo, ["alias/a.txt"])  # git refuses the path; everything is staged
    assert git.git(repo, "diff", "--cached", "--name-only", "HEAD") == "alias\nreal/a.txt"


def test_the_index_stamp_changes_when_any_git_command_changes_the_index(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path, {"a.txt": "a\n"})
    worktree = tmp_path / "wt"
    git.add_worktree(repo, worktree, "HEAD")
    before = git.index_stamp(worktree)
    assert before is not None and git.index_stamp(worktree) == before
    (worktree / "a.txt").write_text("a2\n")
    git.git(worktree, "add", "a.txt")
    assert git.index_stamp(worktree) != before
    git.remove_worktree(repo, worktree)
    assert git.index_stamp(worktree) is None
