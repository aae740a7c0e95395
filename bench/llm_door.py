"""What the model door adds to every call: budget, cassette, redaction, replay, SDK path.

Each row runs N calls of one kind and prints the mean time per call. The in-process
model answers at once, so those rows are the door's own overhead; the loopback rows
go through the official SDKs to the fake HTTP server of ``tests/llm`` (no network).
Replay rows serve from cassettes of growing size, to show lookup stays flat.

    python bench/llm_door.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "llm"))

from fakeserver import FakeServer, Reply

from autopack.llm.base import Message, Model, ModelRequest, ModelResponse, Usage
from autopack.llm.cassette import Cassette, ReplayModel
from autopack.llm.door import BudgetLedger, Caps, ModelDoor, Spent, resolve_model
from autopack.llm.pricing import PriceTable

PROMPT = "Change the function so that the tests pass.\n" + "def f(x):\n    return x\n" * 200


class InstantModel:
    """A priced model that replies at once, to measure the door alone."""

    spec = "openai:gpt-4.1"

    def complete(self, request: ModelRequest) -> ModelResponse:
        return ModelResponse(text="done", usage=Usage(900, 40), model=self.spec)


def request(n: int) -> ModelRequest:
    return ModelRequest(messages=(Message("user", f"{PROMPT}\n# call {n}"),), phase_id="p")


def door(cassette: Cassette | None = None) -> ModelDoor:
    ledger = BudgetLedger(Caps(cost_usd=1e9), {}, Spent(), {})
    return ModelDoor(
        run_id="bench", ledger=ledger, prices=PriceTable.default(), on_call=lambda e: None,
        cassette=cassette,
    )  # fmt: skip


def timed(calls: int, run: Callable[[int], object]) -> float:
    started = time.perf_counter()
    for n in range(calls):
        run(n)
    return (time.perf_counter() - started) / calls


def threaded(calls: int, threads: int) -> float:
    gate = door()
    model = InstantModel()
    per_thread = calls // threads

    def work() -> None:
        for n in range(per_thread):
            gate.complete(model, request(n))

    workers = [threading.Thread(target=work) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return (time.perf_counter() - started) / (per_thread * threads)


def recorded(tmp: Path, size: int) -> Path:
    path = tmp / f"cassette-{size}.jsonl"
    gate, model = door(Cassette(path)), InstantModel()
    for n in range(size):
        gate.complete(model, request(n))
    return path


def loopback(calls: int, provider: str, spec: str) -> float:
    with FakeServer() as server:
        url = server.anthropic_url if provider == "anthropic" else server.openai_url
        model: Model = resolve_model(spec, settings={"providers": {provider: {"base_url": url}}})
        server.default[provider] = Reply(text="done", input_tokens=900)  # type: ignore[index]
        gate = door()
        model.complete(request(0))  # warm the connection pool
        return timed(calls, lambda n: gate.complete(model, request(n)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny input, seconds")
    quick = parser.parse_args().quick
    calls = 50 if quick else 2_000
    sizes = (10, 100) if quick else (100, 1_000, 5_000)
    import os

    os.environ.setdefault("ANTHROPIC_API_KEY", "sk-ant-bench-key-not-secret")
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-key-not-secret-0000")
    rows: list[tuple[str, int, float]] = []
    model = InstantModel()
    rows.append(("model alone", calls, timed(calls, lambda n: model.complete(request(n)))))
    plain = door()
    rows.append(
        ("door, no cassette", calls, timed(calls, lambda n: plain.complete(model, request(n))))
    )
    rows.append(("door, 4 threads", calls, threaded(calls, 4)))
    with tempfile.TemporaryDirectory() as tmp:
        taping = door(Cassette(Path(tmp) / "c.jsonl"))
        rows.append(
            ("door + cassette", calls, timed(calls, lambda n: taping.complete(model, request(n))))
        )
        for size in sizes:
            replay = ReplayModel(recorded(Path(tmp), size), model.spec)
            gate = door()
            n_calls = min(calls, size)
            rows.append(
                (f"replay, cassette of {size}", n_calls,
                 timed(n_calls, lambda n, g=gate, r=replay: g.complete(r, request(n))))
            )  # fmt: skip
    sdk_calls = 10 if quick else 200
    rows.append(("anthropic SDK, loopback", sdk_calls,
                 loopback(sdk_calls, "anthropic", "anthropic:claude-opus-4-5")))  # fmt: skip
    rows.append(("openai SDK, loopback", sdk_calls,
                 loopback(sdk_calls, "openai", "openai:gpt-4.1")))  # fmt: skip
    print(f"{'scenario':<28} {'calls':>6} {'ms/call':>9}")
    for name, n, seconds in rows:
        print(f"{name:<28} {n:>6} {seconds * 1000:>9.3f}")


if __name__ == "__main__":
    main()
