"""Real-output edit cases through ``autopack run`` with a scripted Builder (issue #16):
what lands on the run branch, and where a refused edit's per-hunk report shows up."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from autopack.api.views import attempt_steps, evidence
from autopack.cli import app
from autopack.engine.runtime import Runtime
from autopack.states import PhaseState, RunState
from autopack.workspace import git

APP = "def greet(name):\n    greeting = 'hello'\n    return greeting + name\n"
# The Builder's first diff quotes a line that is not in the file: it must be refused.
WRONG_DIFF = (
    "--- a/app.py\n+++ b/app.py\n@@ -1,3 +1,3 @@\n def greet(name):\n"
    "-    greeting = 'hi'\n+    greeting = 'hey'\n     return greeting + name\n"
)
RIGHT_EDIT = (
    "app.py\n<<<<<<< SEARCH\n    greeting = 'hello'\n=======\n    greeting = 'hey'\n"
    ">>>>>>> REPLACE\n"
)
PLAN = """\
run: {{goal: edits, max_attempts: {attempts}}}
tiers:
  - id: only
    phases:
      - id: edit
        goal: Change the greeting
        scope: {{paths: ['*']}}
        tests: {{command: "true"}}
"""


def _reply(text: str) -> str:
    return "      - |\n" + "".join(f"        {line}\n" for line in text.splitlines())


def _project(tmp_path: Path, files: dict[str, bytes], replies: str, attempts: int = 1) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name, data in files.items():
        (repo / name).write_bytes(data)
    (repo / "autopack.toml").write_text("tidy_on_finish = true\n")
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    (tmp_path / "plan.yaml").write_text(PLAN.format(attempts=attempts))
    script = "version: 1\nreplies:\n  edit:\n    builder:\n" + replies
    script += "    auditor:\n      - {verdict: approve, summary: ok, issues: []}\n"
    (tmp_path / "script.yaml").write_text(script)
    return repo


def _run(tmp_path: Path, repo: Path) -> tuple[int, str, Runtime, str]:
    args = ["run", str(tmp_path / "plan.yaml"), "--repo", str(repo)]
    result = CliRunner().invoke(app, [*args, "--model", f"scripted:{tmp_path / 'script.yaml'}"])
    rt = Runtime.open(repo)
    (row,) = rt.store.list_runs()
    return result.exit_code, result.output, rt, row.id


def test_a_refused_diffs_hunk_report_reaches_the_retry_show_dashboard_and_ledger(
    tmp_path: Path,
) -> None:
    repo = _project(
        tmp_path, {"app.py": APP.encode()}, _reply(WRONG_DIFF) + _reply(RIGHT_EDIT), attempts=2
    )
    code, output, rt, run_id = _run(tmp_path, repo)
    assert code == 0, output
    view = rt.store.view(run_id)
    assert view.state is RunState.SUCCEEDED
    assert git.git(repo, "show", f"{view.branch}:app.py") == APP.replace("'hello'", "'hey'")[:-1]

    # which hunk, why, the nearest candidate with its line, and the lines that differ
    wanted = [
        "app.py modify #1: refused: no_match",
        "candidate at line 1",
        "\"    greeting = 'hi'\"",
    ]
    found = "    greeting = 'hello'"
    cassette = [json.loads(line) for line in rt.run_dir(run_id).joinpath("cassette.jsonl").open()]
    builder_calls = [e for e in cassette if "Builder" in json.dumps(e["request"])[:20_000]]
    retry = json.dumps(builder_calls[-1]["request"])
    assert all(json.dumps(w)[1:-1] in retry for w in wanted), retry
    assert json.dumps(found)[1:-1] in retry

    shown = CliRunner().invoke(app, ["show", run_id, "edit", "--attempt", "1", "-C", str(repo)])
    assert shown.exit_code == 0, shown.output
    assert "edits refused" in shown.output
    assert all(w in shown.output for w in wanted) and found in shown.output, shown.output

    attempt = evidence(rt, run_id, "edit", 1, attempt_steps(view.phases["edit"])[1])
    page = "\n".join(attempt.reasons)  # what the dashboard's attempt page lists
    assert all(w in page for w in wanted) and found in page

    debug_log = git.git(repo, "show", f"{view.branch}:docs/DEBUG_LOG.md")
    assert all(w in debug_log for w in wanted[:2]), debug_log


CRLF = b"first\r\nsecond\r\nthird\r\n"


def test_the_builders_edit_and_write_file_tools_keep_crlf_and_write_through_the_engine(
    tmp_path: Path,
) -> None:
    calls = [
        {"name": "edit", "arguments": {"path": "win.txt", "old": "second\n", "new": "2nd\n2b\n"}},
        {"name": "write_file", "arguments": {"path": "other.txt", "content": "x\ny\n"}},
        {"name": "write_file", "arguments": {"path": "../escape.txt", "content": "x"}},
        {"name": "finish", "arguments": {"summary": "done"}},
    ]
    replies = "".join(f"      - {json.dumps({'tool_calls': [call]})}\n" for call in calls)
    repo = _project(tmp_path, {"win.txt": CRLF, "other.txt": b"a\r\nb\r\n"}, replies)
    code, output, rt, run_id = _run(tmp_path, repo)
    assert code == 0, output
    view = rt.store.view(run_id)
    assert view.phases["edit"].state is PhaseState.COMPLETE
    blob = git.git(repo, "rev-parse", f"{view.branch}:win.txt")
    assert _blob(repo, blob) == b"first\r\n2nd\r\n2b\r\nthird\r\n"
    other = git.git(repo, "rev-parse", f"{view.branch}:other.txt")
    assert _blob(repo, other) == b"x\r\ny\r\n"  # the file's CRLF kept, not the model's LF
    assert not (tmp_path / "escape.txt").exists()


def test_a_reply_mixing_formats_and_a_new_executable_all_land(tmp_path: Path) -> None:
    reply = (
        "app.py\n```python\n<<<<<<< SEARCH\n    greeting = 'hello'\n=======\n"
        "    greeting = 'hey'\n>>>>>>> REPLACE\n```\n\nREADME.txt\n```\nhow to greet\n```\n\n"
        "```diff\ndiff --git a/run.sh b/run.sh\nnew file mode 100755\n--- /dev/null\n"
        "+++ b/run.sh\n@@ -0,0 +1,2 @@\n+#!/bin/sh\n+echo hey\n```"
    )
    repo = _project(tmp_path, {"app.py": APP.encode()}, _reply(reply))
    code, output, rt, run_id = _run(tmp_path, repo)
    assert code == 0, output
    branch = rt.store.view(run_id).branch
    assert "'hey'" in git.git(repo, "show", f"{branch}:app.py")
    assert git.git(repo, "show", f"{branch}:README.txt") == "how to greet"
    mode = git.git(repo, "ls-tree", branch, "run.sh").split()[0]
    assert mode == "100755"


def _blob(repo: Path, sha: str) -> bytes:
    import subprocess

    return subprocess.run(
        ["git", "cat-file", "blob", sha], cwd=repo, capture_output=True, check=True
    ).stdout


def test_a_diff_with_a_blank_tail_and_no_final_newline_lands_as_git_would(
    tmp_path: Path,
) -> None:
    diff = (
        "--- a/app.py\n+++ b/app.py\n@@ -2,2 +2,2 @@ def greet(name):\n"
        "-    greeting = 'hello'\n+    greeting = 'hey'\n     return greeting + name\n \n  \n"
    )
    # blank lines after the hunk, and the reply stops without a line break
    reply = f"      - {json.dumps(diff.rstrip(chr(10)))}\n"
    repo = _project(tmp_path, {"app.py": APP.encode()}, reply)
    code, output, rt, run_id = _run(tmp_path, repo)
    assert code == 0, output
    edits = (rt.attempt_dir(run_id, "edit", 1) / "edits.txt").read_text()
    assert edits.endswith("name\n \n  ")
    branch = rt.store.view(run_id).branch
    blob = git.git(repo, "rev-parse", f"{branch}:app.py")
    assert _blob(repo, blob) == APP.replace("'hello'", "'hey'").encode()


def test_a_one_sided_hunk_that_occurs_twice_is_refused_and_nothing_lands(
    tmp_path: Path,
) -> None:
    twice = "def a():\n    x = 1\n    return x\n\n\ndef b():\n    x = 1\n    return x\n"
    diff = "--- a/dup.py\n+++ b/dup.py\n@@ @@\n     x = 1\n-    return x\n+    return x + 1\n"
    repo = _project(tmp_path, {"dup.py": twice.encode()}, _reply(diff))
    code, output, rt, run_id = _run(tmp_path, repo)
    assert code == 1, output
    view = rt.store.view(run_id)
    assert view.state is RunState.FAILED
    assert "ambiguous" in view.phases["edit"].steps["apply"]["feedback"]
    assert git.git(repo, "show", f"{view.branch}:dup.py") == twice.rstrip("\n")
    assert (repo / "dup.py").read_text() == twice
