"""Local model servers (Ollama, vLLM, llama.cpp, LM Studio): models and prices from the settings tree."""

from __future__ import annotations

from pathlib import Path

from bzzz_console.domain.llm import Usage
from bzzz_console.resources import agents_dir
from bzzz_console.runtime.llm.pricing import pricing_for


def test_pricing_overrides_from_the_settings_are_honoured(tmp_path: Path) -> None:
    shipped = pricing_for(
        agents_dir(), {"llama3.1:8b": {"input": 0, "output": 0}, "gpt-4o": {"input": 1, "output": 2}}
    )
    assert shipped.cost("llama3.1:8b", Usage(1000, 1000)) == 0.0  # priced, so $0 is known, not "unknown"
    assert shipped.cost("gpt-4o", Usage(1_000_000, 1_000_000)) == 3.0  # the override wins over the table
    assert shipped.price("gpt-4o-mini") is not None  # the rest of the table is still there
    # a custom agents folder without a pricing.toml: the overrides alone
    own = pricing_for(tmp_path, {"qwen2.5:7b": {"input": 0.1, "output": 0.2}})
    assert own.cost("qwen2.5:7b", Usage(1_000_000, 0)) == 0.1
    assert own.cost("gpt-4o", Usage(10, 10)) is None
