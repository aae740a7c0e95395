"""Prompt tokens the Builder sends per phase, against the naive baseline.

The naive baseline ("naive") is the token count of every file in the phase's write
scope and read-only context, whole (file contents only, no instructions). Autopack
sends a repo map and selected context within a token budget ("map+ctx", checked
against the budget), inside the Builder's first prompt ("prompt", instructions and
phase text included). This prints both, per phase, for the demo plan and for a
generated repository of 2,000 files (``--quick``: 200 files).

    python bench/context.py [--quick] [--budget TOKENS]
"""

from __future__ import annotations

import argparse
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from string import Template

from autopack.plan import Plan, PlanError, load_plan, parse_plan_text
from autopack.roles import BuilderLimits, PhaseBrief
from autopack.roles.builder import render_prompt
from autopack.roles.context import scope_files, select_context
from autopack.roles.repomap import list_files
from autopack.roles.tokens import estimate_tokens

DEMO = Path(__file__).resolve().parents[1] / "src/autopack/examples/demo"
GENERATED_PLAN = Template("""
run: {goal: Maintain the generated service}
tiers:
  - id: t1
    phases:
      - id: refactor-package
        goal: Split the long functions of $a into helpers
        scope: {paths: ["src/gen/$a/**"], read_only: ["src/gen/core/**"]}
      - id: feature-two-packages
        goal: Add retry support to $b using $c's client
        scope: {paths: ["src/gen/$b/**", "tests/$b/**"], read_only: ["src/gen/$c/**"]}
      - id: narrow-fix
        goal: Fix the off-by-one in $d.mod_07.window
        scope:
          paths: [src/gen/$d/mod_07.py, tests/$d/test_mod_07.py]
          read_only: [src/gen/$d/mod_06.py, src/gen/$d/mod_08.py, tests/$d/test_mod_06.py]
      - id: document-package
        goal: Document $e in docs/$e.md
        scope: {paths: ["docs/$e.md"], read_only: ["src/gen/$e/**"]}
        deliverables: [docs/$e.md]
  - id: t2
    phases:
      - id: config-everywhere
        goal: Give every package config a TIMEOUT setting
        scope: {paths: ["src/gen/*/config.py"], read_only: ["src/gen/core/mod_*.py"]}
""")
PACKAGES = {"a": "pkg03", "b": "pkg10", "c": "pkg11", "d": "pkg20", "e": "pkg05"}
QUICK_PACKAGES = {"a": "pkg00", "b": "pkg01", "c": "pkg02", "d": "pkg02", "e": "pkg00"}
"""Which generated packages the phases touch; the quick repository has only three."""


def generate_repo(root: Path, files: int, seed: int = 7) -> Path:
    """A deterministic Python project of exactly ``files`` files, shaped like a service."""
    rng = random.Random(seed)
    written = 0

    def write(rel: str, text: str) -> None:
        nonlocal written
        if written < files:
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written += 1

    for n in range(20):
        write(f"src/gen/core/base_{n:02d}.py", _module(rng, "core", n))
    package = 0
    while written < files:
        name = f"pkg{package:02d}"
        write(f"src/gen/{name}/__init__.py", f'"""Package {name}."""\n')
        write(f"src/gen/{name}/config.py", f"NAME = {name!r}\nRETRIES = {rng.randint(1, 5)}\n")
        for n in range(40):
            write(f"src/gen/{name}/mod_{n:02d}.py", _module(rng, name, n))
        for n in range(8):
            write(f"tests/{name}/test_mod_{n:02d}.py", _test(name, n))
        write(f"docs/{name}.md", f"# {name}\n\nWhat {name} does.\n")
        package += 1
    return root


def _module(rng: random.Random, package: str, n: int) -> str:
    lines = [f'"""Module {n} of {package}."""', "", "from src.gen.core import base_00", ""]
    for f in range(rng.randint(3, 8)):
        lines += [f"def step_{n}_{f}(items, limit={f}):", '    """Process items."""']
        lines += [f"    total = {f}", "    for item in items:"]
        lines += [f"        total += item * {rng.randint(1, 9)}"] * rng.randint(2, 12)
        lines += ["    return total", "", ""]
    lines += [f"class Worker{n}:", "    def run(self):", "        return None", ""]
    return "\n".join(lines)


def _test(package: str, n: int) -> str:
    body = f"def test_mod_{n}():\n    assert mod_{n:02d}\n"
    return f"from src.gen.{package} import mod_{n:02d}\n\n\n{body}"


@dataclass
class Row:
    phase: str
    files: int
    naive: int
    repo_map: int
    context: int
    prompt: int
    whole: int
    omitted: int


def measure(plan: Plan, root: Path, limits: BuilderLimits) -> list[Row]:
    rows = []
    every = list_files(root)
    for _, phase in plan.phases():
        in_scope = sorted(set(scope_files(every, [*phase.scope.paths, *phase.scope.read_only])))
        naive = sum(estimate_tokens((root / rel).read_text(errors="replace")) for rel in in_scope)
        chosen = select_context(
            phase, root, token_budget=limits.context_tokens, map_share=limits.map_share
        )
        brief = PhaseBrief(run_goal=plan.run.goal, phase=phase, attempt=1)
        prompt = estimate_tokens(render_prompt(brief, chosen))
        map_tokens = estimate_tokens(chosen.repo_map)
        rows.append(
            Row(
                phase.id,
                len(in_scope),
                naive,
                map_tokens,
                chosen.tokens - map_tokens,
                prompt,
                len(chosen.whole),
                len(chosen.omitted),
            )
        )
    return rows


def print_table(title: str, rows: list[Row], budget: int) -> None:
    print(f"\n{title} (context budget {budget} tokens; tokens estimated as the door does)")
    head = (
        f"{'phase':<22}{'files':>6}{'naive':>9}{'map':>7}{'context':>9}{'map+ctx':>9}"
        f"{'within':>8}{'prompt':>8}{'prompt/naive':>14}{'whole/not shown':>17}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        total = r.repo_map + r.context
        ratio = f"{r.prompt / r.naive:.0%}" if r.naive else "n/a"
        within = "yes" if total <= budget else "NO"
        split = f"{r.whole}/{r.omitted}"
        print(
            f"{r.phase:<22}{r.files:>6}{r.naive:>9}{r.repo_map:>7}{r.context:>9}{total:>9}"
            f"{within:>8}{r.prompt:>8}{ratio:>14}{split:>17}"
        )
    naive = sum(r.naive for r in rows)
    prompt = sum(r.prompt for r in rows)
    ratio = f"{prompt / naive:.0%}" if naive else "n/a"
    print(f"{'all phases':<22}{'':>6}{naive:>9}{'':>7}{'':>9}{'':>9}{'':>8}{prompt:>8}{ratio:>14}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 files instead of 2,000")
    parser.add_argument("--budget", type=int, default=BuilderLimits().context_tokens)
    args = parser.parse_args()
    limits = BuilderLimits(context_tokens=args.budget)
    demo_plan = DEMO / "plan.yaml"
    try:
        rows = measure(load_plan(demo_plan), DEMO / "project", limits)
        print_table("Demo plan (bundled textkit project)", rows, args.budget)
    except PlanError as exc:
        print(f"Demo plan skipped: it does not load ({exc})")
    files = 200 if args.quick else 2_000
    with tempfile.TemporaryDirectory(prefix="autopack-bench-") as scratch:
        root = generate_repo(Path(scratch), files)
        packages = QUICK_PACKAGES if args.quick else PACKAGES
        plan = parse_plan_text(GENERATED_PLAN.substitute(packages))
        rows = measure(plan, root, limits)
        print_table(f"Generated repository ({files} files)", rows, args.budget)


if __name__ == "__main__":
    main()
