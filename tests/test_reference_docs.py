"""The reference pages in docs/ are generated from the code (scripts/gen_reference.py):
a field, setting or route added without regenerating them fails here, so they never
drift from what Autopack accepts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_references_match_the_code() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_reference.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
