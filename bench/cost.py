"""What a Builder session costs with and without the providers' prompt caches.

Builder sessions of 10, 20 and 40 steps run on a real repository (SymPy's sdist, about
2,200 files, fetched with ``pip download`` into a cache dir once) through the real tool
loop: scripted tool calls whose observations are real file contents, real searches and
real test output of that repository. Each request goes through the door and the official
SDK to the loopback server of ``tests/llm``, which answers with the next scripted call and
reports the usage the provider would bill for the request body it actually received,
under the provider's documented cache rules:

* Anthropic (claude-sonnet-4-6): a prefix is cached up to each ``cache_control``
  breakpoint (the API's 1,024-token minimum applies); a request reads the longest cached
  prefix found at one of its breakpoints or up to 20 blocks before it, and writes the
  rest up to its last breakpoint. Writes cost 1.25x input, reads 0.1x.
* OpenAI (gpt-4.1): prompts of 1,024 tokens or more are cached by themselves; a request
  reads the longest prefix it shares with an earlier one of the same ``prompt_cache_key``,
  in steps of 128 tokens, at 0.25x input. Writes cost nothing extra.

Tokens are counted as the text sent divided by four. "uncached $" prices every prompt
token as input; "cached $" is what the door recorded (the reported usage priced by
tier). "largest" is the largest request as the door counts it (characters / 3), first
with each model's own window, then with a 32k context budget (``[models.limits]
context_window = 32768``), within which older observations are condensed.

    python bench/cost.py [--quick]     # --quick: 10-step sessions only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "llm"))

from fakeserver import FakeServer, Recorded, Reply

from autopack.edits import PathPolicy
from autopack.events import ModelCalled
from autopack.llm.base import Model, ModelRequest, ModelResponse
from autopack.llm.door import BudgetLedger, Caps, ModelDoor, Spent, resolve_model
from autopack.llm.limits import LimitTable
from autopack.llm.pricing import PriceTable
from autopack.llm.tokens import estimate_prompt_tokens
from autopack.plan import Phase
from autopack.roles import BuilderLimits, PhaseBrief, build
from autopack.workspace.runner import make_sandbox

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "autopack-bench"
PROJECT, VERSION = "sympy", "1.13.3"
SPECS = {"anthropic": "anthropic:claude-sonnet-4-6", "openai": "openai:gpt-4.1"}
CONTEXT_BUDGET = 32_768
MIN_CACHED = 1_024
"""Shortest prompt either provider caches, in tokens."""
LOOKBACK = 20
"""Blocks before a breakpoint Anthropic looks back for a cached prefix."""
OPENAI_STEP = 128
TEST_COMMAND = "python -m pytest -q -x -p no:cacheprovider sympy/utilities/tests/test_decorator.py"
PHASE = {
    "id": "tidy-utilities",
    "goal": "Make sympy.utilities.misc's helpers raise clear errors on bad input",
    "description": "Read the helpers and their callers, run their tests, then change them.",
    "scope": {"paths": ["sympy/utilities/misc.py", "sympy/utilities/tests/test_misc.py"]},
    "acceptance_criteria": ["every helper names the bad argument", "the tests pass"],
    "deliverables": ["sympy/utilities/misc.py"],
}


def tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


# -- the corpus ------------------------------------------------------------------------


def corpus(into: Path) -> Path:
    """SymPy's sdist, downloaded once into the cache, unpacked into ``into``."""
    archive = CACHE / f"{PROJECT}-{VERSION}.tar.gz"
    if not archive.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        spec = f"{PROJECT}=={VERSION}"
        subprocess.run(
            ["pip", "download", "--no-binary", ":all:", "--no-deps", "-q", "-d", str(CACHE), spec],
            check=True,
        )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / f"{PROJECT}-{VERSION}"


def tool_calls(root: Path, steps: int, tests: bool) -> list[tuple[str, dict[str, Any]]]:
    """``steps`` calls: reads of real modules, searches, listings, the tests (once every
    ten steps; a search instead without ``tests``); then finish."""
    modules = sorted(
        p.relative_to(root).as_posix()
        for p in (root / "sympy").rglob("*.py")
        if p.stat().st_size > 6_000 and "/tests/" not in p.as_posix()
    )
    folders = sorted({m.rsplit("/", 1)[0] for m in modules})
    words = ["def _sympify", "raise ValueError", "class Basic", "as_coefficient", "lru_cache"]
    cycle = ["list_dir", "read", "search", "read", "read", "run", "read", "search", "read", "read"]
    calls: list[tuple[str, dict[str, Any]]] = []
    for n in range(steps - 1):
        kind = cycle[n % len(cycle)]
        if kind == "read":
            calls.append(("read_file", {"path": modules[(n * 37) % len(modules)]}))
        elif kind == "search":
            calls.append(("search", {"pattern": words[n % len(words)], "path": "sympy/core"}))
        elif kind == "list_dir":
            calls.append(("list_dir", {"path": folders[(n * 7) % len(folders)]}))
        elif tests:
            calls.append(("run", {"command": TEST_COMMAND, "timeout_s": 300}))
        else:
            calls.append(("search", {"pattern": "def test_", "path": "sympy/utilities/tests"}))
    calls.append(("finish", {"summary": "read the helpers, their callers and their tests"}))
    return calls


# -- the providers' cache rules ----------------------------------------------------------


def _digest(previous: str, block: Any) -> str:
    plain = {k: v for k, v in block.items() if k != "cache_control"}
    return hashlib.sha256((previous + json.dumps(plain, sort_keys=True)).encode()).hexdigest()


def _text(block: dict[str, Any]) -> str:
    if block.get("type") == "tool_use":
        return block["name"] + json.dumps(block["input"])
    if block.get("type") == "tool_result":
        return str(block["content"])
    if "text" in block:
        return str(block["text"])
    return json.dumps(block)  # a tool definition


@dataclass
class AnthropicCache:
    """Anthropic's prompt cache as documented: prefixes up to breakpoints, 20-block lookback."""

    entries: set[str] = field(default_factory=set)

    def usage(self, body: dict[str, Any]) -> tuple[int, int, int]:
        """(prompt tokens, read from the cache, written to it) for one request body."""
        blocks = [*body.get("tools", []), *body.get("system", [])]
        blocks += [b for turn in body["messages"] for b in turn["content"]]
        sums, prefixes, marks, total, digest = [], [], [], 0, ""
        for i, block in enumerate(blocks):
            total += tokens(_text(block)) + 4
            digest = _digest(digest, block)
            sums.append(total)
            prefixes.append(digest)
            if "cache_control" in block:
                marks.append(i)
        hit = -1
        for mark in reversed(marks):
            for j in range(mark, max(mark - LOOKBACK, -1), -1):
                if prefixes[j] in self.entries:
                    hit = max(hit, j)
                    break
        read = sums[hit] if hit >= 0 else 0
        last = marks[-1] if marks else -1
        write = sums[last] - read if last > hit and sums[last] >= MIN_CACHED else 0
        self.entries.update(prefixes[m] for m in marks if sums[m] >= MIN_CACHED)
        return total, read, write


@dataclass
class OpenAICache:
    """OpenAI's automatic cache: the longest shared prefix, in steps of 128 tokens."""

    seen: dict[str, list[str]] = field(default_factory=dict)

    def usage(self, body: dict[str, Any]) -> tuple[int, int, int]:
        text = json.dumps(body.get("tools", [])) + "".join(json.dumps(m) for m in body["messages"])
        total = tokens(text)
        earlier = self.seen.setdefault(body.get("prompt_cache_key", ""), [])
        shared = max((_shared(text, e) for e in earlier), default=0)
        read = (shared // 4) // OPENAI_STEP * OPENAI_STEP if total >= MIN_CACHED else 0
        earlier.append(text)
        return total, read, 0


def _shared(a: str, b: str) -> int:
    """Characters two prompts share from their start."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def answer(provider: str, calls: list[tuple[str, dict[str, Any]]]) -> Callable[[Recorded], Reply]:
    """The loopback server's answers: the next call, with the usage its body would bill."""
    cache = AnthropicCache() if provider == "anthropic" else OpenAICache()
    pending = iter(calls)

    def reply(recorded: Recorded) -> Reply:
        total, read, write = cache.usage(recorded.body)
        name, args = next(pending)
        out = tokens(json.dumps(args)) + 20
        if provider == "anthropic":  # Anthropic reports the uncached part as input_tokens
            return Reply(
                tool_calls=[(name, args)],
                input_tokens=total - read - write,
                cache_read=read,
                cache_write=write,
                output_tokens=out,
            )
        return Reply(
            tool_calls=[(name, args)], input_tokens=total, cache_read=read, output_tokens=out
        )

    return reply


# -- one session -------------------------------------------------------------------------


@dataclass
class Measured:
    """A model that records how large each request was as the door counts it."""

    inner: Model
    sizes: list[int] = field(default_factory=list)

    @property
    def spec(self) -> str:
        return self.inner.spec

    def complete(self, request: ModelRequest) -> ModelResponse:
        self.sizes.append(estimate_prompt_tokens(request))
        return self.inner.complete(request)


@dataclass(frozen=True)
class Session:
    """Per request of one session, in order: what it would cost uncached, what the door
    recorded, its size as the door counts it; and the usage faults the door saw."""

    uncached: list[float]
    cached: list[float]
    sizes: list[int]
    faults: int

    def upto(self, steps: int) -> tuple[float, float, int]:
        """(uncached $, cached $, largest request) of the session's first ``steps`` calls:
        exactly what a session of ``steps`` calls sends (its requests are the same; only
        the reply to the last one, ``finish``, differs)."""
        return sum(self.uncached[:steps]), sum(self.cached[:steps]), max(self.sizes[:steps])


def session(provider: str, root: Path, steps: int, window: int | None, tests: bool) -> Session:
    """One Builder attempt of ``steps`` model calls through the door to the loopback server."""
    spec = SPECS[provider]
    calls = tool_calls(root, steps, tests)
    events: list[ModelCalled] = []
    limits = LimitTable.default({spec: {"context_window": window}} if window else None)
    door = ModelDoor(
        run_id="bench-cost",
        ledger=BudgetLedger(Caps(), {}, Spent(), {}),
        prices=PriceTable.default(),
        on_call=events.append,
        limits=limits,
    )
    with FakeServer() as server:
        server.default[provider] = answer(provider, calls)  # type: ignore[index]
        url = server.anthropic_url if provider == "anthropic" else server.openai_url
        model = Measured(resolve_model(spec, settings={"base_url": url}))
        counter = iter(range(10_000))
        build(
            PhaseBrief("Harden SymPy's utilities", Phase.model_validate(PHASE), 1),
            worktree=root,
            policy=PathPolicy(root=root, scope=tuple(PHASE["scope"]["paths"])),  # type: ignore[index]
            sandbox=make_sandbox(),
            door=door,
            model=model,
            call_counter=lambda role: next(counter),
            limits=BuilderLimits(max_steps=steps),
        )
    price = PriceTable.default().price_for(spec)
    return Session(
        uncached=[price.cost(e.input_tokens, e.output_tokens) for e in events],
        cached=[e.cost_usd for e in events],
        sizes=model.sizes,
        faults=sum(bool(e.usage_fault) for e in events),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="10-step sessions, searches instead of test runs"
    )
    args = parser.parse_args()
    os.environ.setdefault("ANTHROPIC_API_KEY", "bench-key-not-secret")
    os.environ.setdefault("OPENAI_API_KEY", "bench-key-not-secret")
    lengths = (10,) if args.quick else (10, 20, 40)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-cost-") as tmp:
        root = corpus(Path(tmp))
        files = sum(1 for p in root.rglob("*") if p.is_file())
        print(f"\nBuilder sessions on {PROJECT} {VERSION} ({files} files), tokens = chars / 4")
        head = (
            f"{'steps':>5}  {'provider':<10}{'uncached $':>11}{'cached $':>10}{'ratio':>7}"
            f"{'largest':>9}{'largest@32k':>12}{'cached$@32k':>12}"
        )
        print(head)
        print("-" * len(head))
        longest, tests = max(lengths), not args.quick
        runs = {
            (provider, window): session(provider, root, longest, window, tests)
            for provider in SPECS
            for window in (None, CONTEXT_BUDGET)
        }
        for steps in lengths:
            for provider in SPECS:
                free, tight = runs[provider, None], runs[provider, CONTEXT_BUDGET]
                uncached, cached, largest = free.upto(steps)
                _, cached_32k, largest_32k = tight.upto(steps)
                ratio = cached / uncached if uncached else 0.0
                faults = free.faults + tight.faults
                print(
                    f"{steps:>5}  {provider:<10}{uncached:>11.4f}{cached:>10.4f}{ratio:>7.0%}"
                    f"{largest:>9}{largest_32k:>12}{cached_32k:>12.4f}"
                    + (f"  ({faults} usage faults)" if faults else "")
                )
    print(
        f"\nratio = cached / uncached (target: at most 35% from 20 steps on); largest = the "
        f"largest request in tokens as the door counts them; @32k: with a {CONTEXT_BUDGET}-"
        f"token context budget (no request may exceed it). {time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
