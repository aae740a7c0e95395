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

from autopack.llm.base import Usage
from autopack.llm.errors import UnknownPrice

_DATED = re.compile(r"-\d{8}$|-\d{4}-\d{2}-\d{2}$")
FREE_PROVIDERS = ("scripted",)


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens, by tier.

    Prompt tokens come in four tiers: uncached input, written to the provider's prompt
    cache (5-minute or 1-hour lifetime) and read from it. A tier left out of the table
    is priced like uncached input (no discount is ever assumed).
    """

    input_per_mtok: float
    output_per_mtok: float
    cache_write_per_mtok: float | None = None
    cache_write_1h_per_mtok: float | None = None
    cache_read_per_mtok: float | None = None

    def rates(self) -> tuple[float, float, float, float]:
        """Per-million prices of (uncached input, cache write 5m, cache write 1h, cache read)."""
        base = self.input_per_mtok
        write = base if self.cache_write_per_mtok is None else self.cache_write_per_mtok
        write_1h = write if self.cache_write_1h_per_mtok is None else self.cache_write_1h_per_mtok
        read = base if self.cache_read_per_mtok is None else self.cache_read_per_mtok
        return base, write, write_1h, read

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """The cost in USD of a call with these token counts, all input uncached."""
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6

    def cost_of(self, usage: Usage) -> float:
        """The cost in USD of reported usage, each prompt tier at its own price.

        ``usage.input_tokens`` is the whole prompt; its cached parts are priced at their
        tier and the rest as uncached input.
        """
        base, write, write_1h, read = self.rates()
        cached = usage.cache_write_tokens + usage.cache_write_1h_tokens + usage.cache_read_tokens
        uncached = max(usage.input_tokens - cached, 0)
        total = (
            uncached * base
            + usage.cache_write_tokens * write
            + usage.cache_write_1h_tokens * write_1h
            + usage.cache_read_tokens * read
            + usage.output_tokens * self.output_per_mtok
        )
        return total / 1e6

    def worst_cost(self, prompt_tokens: int, output_tokens: int) -> float:
        """The most a call can cost: every prompt token at the dearest input tier a call
        of Autopack's can be billed (it asks for the 5-minute cache, never the 1-hour one;
        a report of 1-hour writes is still charged within this reservation)."""
        base, write, _, read = self.rates()
        return (prompt_tokens * max(base, write, read) + output_tokens * self.output_per_mtok) / 1e6


FREE = Price(0.0, 0.0)
_TIERS = ("cache_write_per_mtok", "cache_write_1h_per_mtok", "cache_read_per_mtok")


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
            tiers = {k: float(entry[k]) for k in _TIERS if k in entry}
            table[spec] = Price(
                float(entry["input_per_mtok"]), float(entry["output_per_mtok"]), **tiers
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UnknownPrice(
                f"{source}: price of {spec!r} needs numeric input_per_mtok and "
                f"output_per_mtok ({exc})"
            ) from exc
        unknown = sorted(set(entry) - {"input_per_mtok", "output_per_mtok", *_TIERS})
        if unknown:
            raise UnknownPrice(
                f"{source}: price of {spec!r} has unknown keys {unknown}; known: "
                f"input_per_mtok, output_per_mtok, {', '.join(_TIERS)}"
            )
        if min(table[spec].rates()) < 0 or table[spec].output_per_mtok < 0:
            raise UnknownPrice(f"{source}: price of {spec!r} cannot be negative")
    return table
