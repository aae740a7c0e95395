"""What trusting nothing in a worktree costs: Autopack's git against plain git, and the seal.

Plain git finds the repository through the worktree's ``.git`` file; Autopack's names
the git directory and work tree and switches off what could run a command. The seal
is taken before and checked after every sandboxed command. Both are measured in the
same process on the same worktree (the median of ``--repeat`` runs), and so is the walk
that finds special files after the Builder's tools ran. Prints one table.

    python bench/git_trust.py              # a 2,000-file repository
    python bench/git_trust.py --files 50   # a small one
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from autopack.workspace import git, landing, seal

COMMANDS = (("status", "--porcelain"), ("add", "-A"), ("write-tree",), ("rev-parse", "HEAD"))


def _median_ms(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _repository(root: Path, files: int) -> Path:
    repo = root / "repo"
    for index in range(files):
        path = repo / f"pkg{index % 20}" / f"mod{index}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"VALUE = {index}\n")
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    return repo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="200 files, 5 runs (CI smoke)")
    args = parser.parse_args()
    if args.quick:
        args.files, args.repeat = 200, 5
    with tempfile.TemporaryDirectory(prefix="autopack-bench-") as scratch:
        repo = _repository(Path(scratch), args.files)
        worktree = repo / ".autopack" / "worktrees" / "run" / "phase"
        git.add_worktree(repo, worktree, "HEAD")
        rows = []
        for command in COMMANDS:
            plain = _median_ms(
                lambda c=command: subprocess.run(
                    ["git", *c], cwd=worktree, capture_output=True, check=True
                ),
                args.repeat,
            )
            ours = _median_ms(lambda c=command: git.git(worktree, *c), args.repeat)
            rows.append((f"git {' '.join(command)}", plain, ours))
        cold = _median_ms(lambda: (git.forget_location(worktree), git.locate(worktree)), 10)
        sealed = _median_ms(lambda: seal.broken(seal.take(worktree)), args.repeat)
        walk = _median_ms(lambda: landing.special_files(worktree), args.repeat)
    print(f"{args.files} files, median of {args.repeat} runs")
    print(f"{'operation':<24} {'plain git ms':>13} {'autopack ms':>12} {'added ms':>9}")
    for name, plain, ours in rows:
        print(f"{name:<24} {plain:>13.2f} {ours:>12.2f} {ours - plain:>9.2f}")
    print(f"{'locate (not remembered)':<24} {'':>13} {cold:>12.2f} {cold:>9.2f}")
    print(f"{'seal take + check':<24} {'':>13} {sealed:>12.2f} {sealed:>9.2f}")
    print(f"{'special-file walk':<24} {'':>13} {walk:>12.2f} {walk:>9.2f}")


if __name__ == "__main__":
    main()
