"""Model prices: what a call costs, so the budget ledger can count it before it happens.

The defaults live in ``prices.toml`` next to this module (data, not code); the
``[prices]`` table of the configuration overrides or extends them. A model with no
known price raises :class:`UnknownPrice`: silently counting an unknown model as free
would let a run spend without limit. Scripted models cost nothing, explicitly.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from autopack.llm.errors import UnknownPrice

_DATED = re.compile(r"-\d{8}$|-\d{4}-\d{2}-\d{2}$")
FREE_PROVIDERS = ("scripted",)


@dataclass(frozen=True)
class Price:
    """US dollars per million input and output tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """The cost in USD of a call with these token counts."""
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


FREE = Price(0.0, 0.0)


class PriceTable:
    """Prices by model spec (``provider:model``)."""

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self._prices = dict(prices)

    @classmethod
    def default(cls, overrides: Mapping[str, Any] | None = None) -> PriceTable:
        """The package table, with config overrides (the ``[prices]`` table) on top."""
        text = resources.files("autopack.llm").joinpath("prices.toml").read_text("utf-8")
        table = _parse(tomllib.loads(text), source="autopack/llm/prices.toml")
        table.update(_parse(overrides or {}, source="[prices]"))
        return cls(table)

    def price_for(self, spec: str) -> Price:
        """The price of ``spec``; a dated snapshot falls back to its undated name."""
        provider = spec.split(":", 1)[0]
        if provider in FREE_PROVIDERS:
            return FREE
        for candidate in (spec, _DATED.sub("", spec)):
            if candidate in self._prices:
                return self._prices[candidate]
        raise UnknownPrice(
            f'no price is known for model {spec!r}: add [prices."{spec}"] with '
            "input_per_mtok and output_per_mtok (USD per million tokens) to autopack.toml"
        )


def _parse(data: Mapping[str, Any], *, source: str) -> dict[str, Price]:
    table: dict[str, Price] = {}
    for spec, entry in data.items():
        try:
            table[spec] = Price(float(entry["input_per_mtok"]), float(entry["output_per_mtok"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise UnknownPrice(
                f"{source}: price of {spec!r} needs numeric input_per_mtok and "
                f"output_per_mtok ({exc})"
            ) from exc
        if table[spec].input_per_mtok < 0 or table[spec].output_per_mtok < 0:
            raise UnknownPrice(f"{source}: price of {spec!r} cannot be negative")
    return table
