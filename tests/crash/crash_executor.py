"""Runs one executor on a stored run and kills itself with SIGKILL at a chosen point.

    python crash_executor.py REPO RUN_ID event N    # right after event N is committed
    python crash_executor.py REPO RUN_ID commit N   # after the N-th phase commit moved the
                                                    # run branch, before its event is written

Used by test_crash_resume.py; the fault injection lives here, not in Autopack.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from autopack.engine.local import LocalExecutor
from autopack.engine.runtime import Runtime
from autopack.store import SqlStore
from autopack.workspace import git


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(repo: str, run_id: str, kind: str, point: int) -> None:
    if kind == "event":
        append = SqlStore.append

        def append_then_die(self: SqlStore, run: str, payload: Any) -> Any:
            stored = append(self, run, payload)
            if stored.seq >= point:
                die()
            return stored

        SqlStore.append = append_then_die  # type: ignore[method-assign]
    else:
        move = git.move_branch
        moves = [0]

        def move_then_die(*args: Any) -> None:
            move(*args)
            moves[0] += 1
            if moves[0] == point:
                die()

        git.move_branch = move_then_die
    LocalExecutor(Runtime.open(Path(repo))).execute(run_id)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
