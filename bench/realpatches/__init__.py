"""Real model-written patches for ``bench/edits.py``: assembled at run time, never committed.

``bench/data/edits_real.json`` names, for each system, the public predictions file
(repository, commit, path) and the SWE-bench Lite instances used, with each instance's
repository and base commit. :func:`assemble` reads the predictions and the base files
from local bare git mirrors (``<mirrors>/<owner>+<name>/repo``; make one with
``git clone --bare https://github.com/<owner>/<name> <mirrors>/<owner>+<name>/repo``)
and caches them as plain files, so later runs need neither the mirrors nor a network.
Neither the predictions nor the repositories' code are committed here: they are other
people's work, and the manifest is enough to rebuild the corpus.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

MANIFEST = Path(__file__).resolve().parents[1] / "data" / "edits_real.json"
DEFAULT_MIRRORS = Path(os.environ.get("AUTOPACK_BENCH_MIRRORS", "/work/.mirror"))
DEFAULT_CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "autopack" / "edits-real"
)
_DIFF_PATH = re.compile(r"^(?:---|\+\+\+) (?:[ab]/)?(\S+)", re.MULTILINE)
_GIT_PATH = re.compile(r"^diff --git a/(\S+) b/(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class RealPatch:
    """One system's patch for one task, and the files it touches as they were at base."""

    system: str
    instance: str
    repo: str
    diff: str
    files: dict[str, tuple[bytes, int]]
    """Path -> (bytes, mode) at the base commit, for every existing file the diff names."""


def load(cache: Path = DEFAULT_CACHE, mirrors: Path = DEFAULT_MIRRORS) -> list[RealPatch]:
    """The corpus from the cache, assembling it first when it is missing and mirrors exist."""
    index = cache / "index.json"
    if not index.exists():
        if not mirrors.is_dir():
            return []
        assemble(cache, mirrors)
    return [_read(cache, entry) for entry in json.loads(index.read_text())]


def assemble(cache: Path, mirrors: Path) -> None:
    """Copy every manifest patch and its base files from the mirrors into ``cache``."""
    manifest = json.loads(MANIFEST.read_text())
    entries = []
    for system in manifest["systems"]:
        predictions = _predictions(mirrors, system)
        for instance in system["instances"]:
            meta = manifest["instances"][instance]
            diff = predictions[instance]
            folder = cache / system["name"] / instance
            (folder / "files").mkdir(parents=True, exist_ok=True)
            (folder / "patch.diff").write_bytes(diff.encode("utf-8", errors="surrogateescape"))
            modes = _base_files(mirrors / _mirror_name(meta["repo"]), meta, diff, folder / "files")
            entries.append(
                {
                    "system": system["name"],
                    "instance": instance,
                    "repo": meta["repo"],
                    "modes": modes,
                }
            )
    (cache / "index.json").write_text(json.dumps(entries, indent=1))


def _mirror_name(repo: str) -> str:
    return repo.replace("/", "+") + "/repo"


def _predictions(mirrors: Path, system: dict[str, str]) -> dict[str, str]:
    raw = _git(
        mirrors / _mirror_name(system["repo"]), "show", f"{system['commit']}:{system['path']}"
    )
    text = raw.decode("utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    rows = list(data.values()) if isinstance(data, dict) else data
    return {row["instance_id"]: row["model_patch"] for row in rows if row.get("model_patch")}


def _base_files(git_dir: Path, meta: dict[str, str], diff: str, into: Path) -> dict[str, int]:
    """Write the base version of every file the diff names that exists at the base commit."""
    paths = set(_DIFF_PATH.findall(diff)) | {p for pair in _GIT_PATH.findall(diff) for p in pair}
    modes = {}
    for path in sorted(paths - {"/dev/null", "dev/null"}):
        listing = _git(git_dir, "ls-tree", meta["base_commit"], "--", path).decode()
        if not listing.strip() or listing.split()[1] != "blob":
            continue
        target = into / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_git(git_dir, "show", f"{meta['base_commit']}:{path}"))
        modes[path] = int(listing.split()[0], 8) & 0o777
    return modes


def _read(cache: Path, entry: dict[str, object]) -> RealPatch:
    folder = cache / str(entry["system"]) / str(entry["instance"])
    modes = entry["modes"]
    assert isinstance(modes, dict)
    files = {path: ((folder / "files" / path).read_bytes(), mode) for path, mode in modes.items()}
    diff = (folder / "patch.diff").read_bytes().decode("utf-8", errors="surrogateescape")
    return RealPatch(str(entry["system"]), str(entry["instance"]), str(entry["repo"]), diff, files)


def _git(git_dir: Path, *args: str) -> bytes:
    result = subprocess.run(
        ["git", "--git-dir", str(git_dir), *args], capture_output=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {git_dir}: {result.stderr.decode()}")
    return result.stdout
