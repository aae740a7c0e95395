"""Shared by the model-layer tests: provider keys and a door wired for observation."""

from __future__ import annotations

from autopack.events import ModelCalled
from autopack.llm.cassette import Cassette
from autopack.llm.door import BudgetLedger, Caps, ModelDoor, RetryPolicy, Spent
from autopack.llm.pricing import PriceTable

ANTHROPIC_KEY = "sk-ant-api03-TESTKEY-abcdefghijklmnopqrstuvwxyz0123456789"
OPENAI_KEY = "sk-proj-TESTKEY-0123456789abcdefghijklmnopqrstuvwxyz"


class DoorRig:
    """A door with a free ledger, recorded events and recorded (not slept) waits."""

    def __init__(self, cassette: Cassette | None, caps: Caps = Caps()) -> None:
        self.events: list[ModelCalled] = []
        self.sleeps: list[float] = []
        self.ledger = BudgetLedger(caps, {}, Spent(), {})
        self.door = ModelDoor(
            run_id="run-1",
            ledger=self.ledger,
            prices=PriceTable.default(),
            on_call=self.events.append,
            cassette=cassette,
            retry=RetryPolicy(max_retries=3),
            sleep=self.sleeps.append,
        )
