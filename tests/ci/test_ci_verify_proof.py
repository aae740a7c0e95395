"""`autopack verify-proof` as the generated CI runs it: a proof that does not match its
commit, or a commit with no proof, fails the workflow with the branch and commit named."""

from __future__ import annotations

import subprocess
from pathlib import Path

import typer
from ci_helpers import add_phase_commit, add_run, git, hook_command, load_yaml, run_env
from typer.testing import CliRunner

from autopack.ci.cli import mount
from autopack.ci.contract import PRE_COMMIT_PATH
from autopack.gate import NOTES_REF

app = typer.Typer()
mount(app)
PROOF_STEP = "Every autopack/* branch matches its proofs"


def verify(repo: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["verify-proof", "--repo", str(repo), *args])
    return result.exit_code, result.output


def test_the_whole_workflow_passes_on_an_intact_run(project: Path, ci_run) -> None:
    add_run(project, "run-1")
    results = ci_run()
    assert [name for name, _ in results] == [
        "Fetch Autopack proofs and run branches",
        "Tests",
        "Ledgers are append-only",
        PROOF_STEP,
    ]
    assert all(done.returncode == 0 for _, done in results), results[-1][1].stderr
    assert "ok autopack/run-1: every commit matches its proof" in results[-1][1].stdout


def test_a_proof_that_does_not_match_its_commit_fails_ci(project: Path, ci_run) -> None:
    first, second = add_run(project, "run-1")
    # someone edits the landed phase afterwards, keeping its message and its note
    git(project, "checkout", "--quiet", "autopack/run-1")
    (project / "p2.py").write_text("PHASE = 'changed by hand'\n")
    git(project, "commit", "--quiet", "--amend", "-a", "--no-edit")
    amended = git(project, "rev-parse", "HEAD")
    git(project, "notes", f"--ref={NOTES_REF}", "copy", second, amended)
    git(project, "checkout", "--quiet", "main")

    name, done = ci_run()[-1]

    assert name == PROOF_STEP and done.returncode == 1
    tree = git(project, "rev-parse", f"{amended}^{{tree}}")
    assert f"autopack/run-1: {amended[:12]}: commit tree {tree} != proof result tree" in done.stdout
    assert first[:12] not in done.stdout


def test_a_commit_without_proof_on_a_run_branch_fails_ci(project: Path, ci_run) -> None:
    add_run(project, "run-1")
    git(project, "checkout", "--quiet", "autopack/run-1")
    (project / "extra.py").write_text("SNEAKED_IN = True\n")
    git(project, "add", "extra.py")
    git(project, "commit", "--quiet", "-m", "a quick fix")
    sneaked = git(project, "rev-parse", "HEAD")
    git(project, "checkout", "--quiet", "main")

    name, done = ci_run()[-1]

    assert name == PROOF_STEP and done.returncode == 1
    assert (
        f"autopack/run-1: {sneaked[:12]}: missing Autopack-Phase/Autopack-Proof trailers"
        in done.stdout
    )


def test_the_pre_push_hook_catches_a_missing_note(project: Path, bin_dir: Path) -> None:
    first, _ = add_run(project, "run-1")
    git(project, "notes", f"--ref={NOTES_REF}", "remove", first)
    hooks = {h["id"]: h for h in load_yaml(project / PRE_COMMIT_PATH)["repos"][0]["hooks"]}
    done = subprocess.run(
        hook_command(hooks["autopack-proofs"]),
        cwd=project,
        env=run_env(bin_dir),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert f"autopack/run-1: {first[:12]}: no proof note under {NOTES_REF}" in done.stdout


def test_a_blocked_phase_lands_only_with_a_recorded_approval(project: Path) -> None:
    blocked, _ = add_phase_commit(project, "run-2", "p1", None, decision="NEEDS_APPROVAL")
    code, out = verify(project, "run-2")
    assert code == 1
    assert f"{blocked[:12]}: landed with decision NEEDS_APPROVAL (no recorded approval)" in out
    approval = {"by": "reviewer@example.com", "at": "2026-11-24T10:00:00Z"}
    add_phase_commit(project, "run-3", "p1", None, approval=approval)
    assert verify(project, "run-3") == (0, "ok autopack/run-3: every commit matches its proof\n")
    unnamed, _ = add_phase_commit(project, "run-4", "p1", None, approval={"note": "fine"})
    code, out = verify(project, "run-4")
    assert code == 1
    assert f"{unnamed[:12]}: the approval does not say who approved and when" in out


def test_all_checks_every_run_branch_and_skips_merged_ones(project: Path) -> None:
    assert verify(project, "--all") == (0, "no autopack/* branches: nothing to check\n")
    add_run(project, "run-1")
    add_run(project, "run-2", phases=1)
    git(project, "merge", "--quiet", "--ff-only", "autopack/run-1")
    code, out = verify(project, "--all")
    assert code == 0, out
    assert "ok autopack/run-1: merged into main, nothing to check" in out
    assert "ok autopack/run-2: every commit matches its proof" in out


def test_bad_input_exits_2(project: Path) -> None:
    assert verify(project)[0] == 2
    assert verify(project, "run-1", "--all")[0] == 2
    code, out = verify(project, "nope")
    assert code == 2 and "no branch autopack/nope" in out
    add_run(project, "run-1", phases=1)
    code, out = verify(project, "--all", "--base", "no-such-ref")
    assert code == 2 and "unknown base 'no-such-ref'" in out
