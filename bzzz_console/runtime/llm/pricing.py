"""The dated pricing table (``agents/pricing.toml``, overridable) and the cost of a call.

An unknown model's cost is ``None`` — shown as unknown, never as $0, so a missing price cannot hide spend.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bzzz_console.domain.errors import ConfigError
from bzzz_console.domain.llm import Usage

_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input: float
    cached_input: float
    output: float


@dataclass(frozen=True, slots=True)
class PricingTable:
    as_of: str
    models: Mapping[str, Price]

    def price(self, model: str) -> Price | None:
        if model in self.models:
            return self.models[model]
        # Dated snapshots ("gpt-4o-2024-08-06") are billed like their family; other suffixes
        # ("gpt-4o-realtime-preview") are different products with different prices, so they stay unknown.
        family = _DATED.sub("", model)
        return self.models.get(family)

    def cost(self, model: str, usage: Usage) -> float | None:
        price = self.price(model)
        if price is None:
            return None
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        fresh = usage.prompt_tokens - cached
        return (
            fresh * price.input + cached * price.cached_input + usage.completion_tokens * price.output
        ) / 1e6


def _price(where: str, raw: object) -> Price:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a table with input, cached_input and output")
    try:
        values = {k: float(raw[k]) for k in ("input", "output")}
        cached = float(raw.get("cached_input", values["input"]))
    except KeyError as exc:
        raise ConfigError(f"{where}: missing field {exc.args[0]!r} (USD per million tokens)") from None
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: prices must be numbers (USD per million tokens)") from None
    if min(*values.values(), cached) < 0:
        raise ConfigError(f"{where}: prices cannot be negative")
    return Price(values["input"], cached, values["output"])


def load_pricing(path: Path, overrides: Mapping[str, Mapping[str, float]] | None = None) -> PricingTable:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"pricing table {path}: {exc}") from None
    models = {
        name: _price(f"pricing table {path}: model {name!r}", raw)
        for name, raw in data.get("models", {}).items()
    }
    for name, raw in (overrides or {}).items():
        models[name] = _price(f"settings pricing override for {name!r}", raw)
    return PricingTable(as_of=str(data.get("as_of", "unknown")), models=models)


def pricing_for(
    agents_folder: Path, overrides: Mapping[str, Mapping[str, float]] | None = None
) -> PricingTable:
    """The agents folder's ``pricing.toml`` with the settings' ``[pricing]`` over it (only the overrides if the
    folder has no table: a custom agents folder for local models needs no copy of the OpenAI prices)."""
    table = agents_folder / "pricing.toml"
    if table.is_file():
        return load_pricing(table, overrides)
    models = {
        name: _price(f"settings pricing override for {name!r}", raw)
        for name, raw in (overrides or {}).items()
    }
    return PricingTable(as_of="unknown", models=models)
