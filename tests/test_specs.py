"""Tests for agent role specs, the shipped ``agents/`` data and the pricing table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bzzz_console.config import ConfigError
from bzzz_console.domain.llm import Usage
from bzzz_console.domain.specs import AgentSpec, load_spec, load_specs
from bzzz_console.resources import agents_dir
from bzzz_console.runtime.llm.pricing import Price, PricingTable, load_pricing

SEED_CAPABILITIES = {
    "architect": ("system_design", "architecture_review", "technology_selection", "scalability_analysis"),
    "reviewer": (
        "code_review",
        "security_analysis",
        "performance_optimization",
        "best_practices_enforcement",
    ),
    "documentation": ("technical_writing", "api_documentation", "user_guides", "knowledge_synthesis"),
}

VALID_SPEC = """
role = "tester"
model = "gpt-4o-mini"
capabilities = ["testing"]

[reasoning_prompts]
system = "You test things."
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- shipped specs


@pytest.fixture(scope="module")
def shipped() -> dict[str, AgentSpec]:
    return load_specs(agents_dir())


def test_shipped_roles_are_exactly_the_seeds(shipped: dict[str, AgentSpec]) -> None:
    assert set(shipped) == {"architect", "reviewer", "documentation"}


@pytest.mark.parametrize("role", sorted(SEED_CAPABILITIES))
def test_shipped_capabilities_match_the_seed(shipped: dict[str, AgentSpec], role: str) -> None:
    spec = shipped[role]
    assert spec.role == role
    assert spec.capabilities == SEED_CAPABILITIES[role]


@pytest.mark.parametrize("role", sorted(SEED_CAPABILITIES))
def test_shipped_specs_are_usable(shipped: dict[str, AgentSpec], role: str) -> None:
    spec = shipped[role]
    assert spec.reasoning_prompts["system"].strip()
    assert spec.model
    assert spec.token_limit >= 512
    assert spec.max_tasks >= 1
    assert spec.description


def test_shipped_models_are_priced(shipped: dict[str, AgentSpec]) -> None:
    table = load_pricing(agents_dir() / "pricing.toml")
    for spec in shipped.values():
        assert table.price(spec.model) is not None, spec.model


def test_docs_alias_answers_for_documentation(shipped: dict[str, AgentSpec]) -> None:
    docs = shipped["documentation"]
    assert docs.aliases == ("docs",)
    assert docs.answers_to("docs")
    assert docs.answers_to("documentation")
    assert not docs.answers_to("doc")
    assert not shipped["architect"].answers_to("docs")
    assert not shipped["reviewer"].answers_to("documentation")


def test_load_single_shipped_spec() -> None:
    spec = load_spec(agents_dir() / "architect.toml")
    assert spec.role == "architect"
    assert spec.model == "gpt-4o"
    assert spec.budget_usd == 2.0
    assert spec.token_limit == 12000


def test_pricing_toml_is_skipped_by_load_specs(tmp_path: Path) -> None:
    shutil.copy(agents_dir() / "pricing.toml", tmp_path / "pricing.toml")
    write(tmp_path, "tester.toml", VALID_SPEC)
    assert list(load_specs(tmp_path)) == ["tester"]


def test_only_toml_files_are_read(tmp_path: Path) -> None:
    write(tmp_path, "tester.toml", VALID_SPEC)
    write(tmp_path, "notes.txt", "role = 'broken' this is not toml")
    assert list(load_specs(tmp_path)) == ["tester"]


def test_spec_defaults(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "tester.toml", VALID_SPEC))
    assert spec.aliases == ()
    assert spec.token_limit == 8000
    assert spec.max_tasks == 2
    assert spec.budget_usd is None
    assert spec.api_key_entry is None
    assert spec.interaction_patterns == {}


# --------------------------------------------------------------------------- bad spec files


def test_missing_model(tmp_path: Path) -> None:
    path = write(tmp_path, "tester.toml", VALID_SPEC.replace('model = "gpt-4o-mini"\n', ""))
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "field 'model'" in msg
    assert "required" in msg.lower()


def test_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, "tester.toml", VALID_SPEC.replace("role =", 'token_limit = "lots"\nrole ='))
    with pytest.raises(ConfigError) as info:
        load_specs(tmp_path)
    msg = str(info.value)
    assert str(path) in msg
    assert "field 'token_limit'" in msg
    assert "integer" in msg


def test_wrong_type_in_list(tmp_path: Path) -> None:
    path = write(tmp_path, "tester.toml", VALID_SPEC.replace('["testing"]', '["testing", 3]'))
    with pytest.raises(ConfigError, match=r"field 'capabilities\.1'") as info:
        load_spec(path)
    assert str(path) in str(info.value)


def test_unknown_field(tmp_path: Path) -> None:
    path = write(tmp_path, "tester.toml", VALID_SPEC.replace("role =", "modle = 'x'\nrole ="))
    with pytest.raises(ConfigError, match=r"field 'modle'") as info:
        load_spec(path)
    assert str(path) in str(info.value)


def test_bad_role_name(tmp_path: Path) -> None:
    path = write(tmp_path, "tester.toml", VALID_SPEC.replace('"tester"', '"Bad Role"'))
    with pytest.raises(ConfigError, match=r"field 'role'"):
        load_spec(path)


def test_bad_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "tester.toml", VALID_SPEC + "\n[broken\n")
    for load in (load_spec, lambda p: load_specs(p.parent)):
        with pytest.raises(ConfigError) as info:
            load(path)
        msg = str(info.value)
        assert str(path) in msg
        assert "not valid TOML" in msg


def test_missing_system_prompt(tmp_path: Path) -> None:
    text = VALID_SPEC.replace('system = "You test things."', 'task = "Do it."')
    path = write(tmp_path, "tester.toml", text)
    with pytest.raises(ConfigError) as info:
        load_specs(tmp_path)
    msg = str(info.value)
    assert str(path) in msg
    assert "reasoning_prompts.system" in msg


def test_missing_reasoning_prompts_table(tmp_path: Path) -> None:
    text = VALID_SPEC.split("[reasoning_prompts]")[0]
    path = write(tmp_path, "tester.toml", text)
    with pytest.raises(ConfigError, match=r"field 'reasoning_prompts'") as info:
        load_spec(path)
    assert str(path) in str(info.value)


def test_duplicate_role(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", VALID_SPEC)
    second = write(tmp_path, "b.toml", VALID_SPEC)
    with pytest.raises(ConfigError) as info:
        load_specs(tmp_path)
    msg = str(info.value)
    assert str(second) in msg
    assert "'tester'" in msg
    assert "twice" in msg


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_specs(tmp_path / "nowhere")


# --------------------------------------------------------------------------- pricing


@pytest.fixture(scope="module")
def table() -> PricingTable:
    return load_pricing(agents_dir() / "pricing.toml")


def test_shipped_table_loads(table: PricingTable) -> None:
    assert table.as_of == "2025-08-07"
    assert table.models["gpt-4o"] == Price(input=2.50, cached_input=1.25, output=10.00)
    assert table.models["gpt-4o-mini"] == Price(input=0.15, cached_input=0.075, output=0.60)
    assert {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-5"} <= set(table.models)
    for price in table.models.values():
        assert 0 < price.cached_input <= price.input
        assert price.output > 0


def test_cost_of_known_model_is_exact(table: PricingTable) -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=200, cached_tokens=400)
    # 600 fresh * 2.50 + 400 cached * 1.25 + 200 out * 10.00 = 4000 USD per million
    assert table.cost("gpt-4o", usage) == 4000 / 1e6
    assert table.cost("gpt-4o", Usage(prompt_tokens=1_000_000)) == 2.50
    assert table.cost("gpt-4o", Usage(prompt_tokens=1_000_000, cached_tokens=1_000_000)) == 1.25
    assert table.cost("gpt-4o", Usage(completion_tokens=1_000_000)) == 10.00


def test_cached_tokens_never_exceed_prompt_tokens(table: PricingTable) -> None:
    # more cached than prompt tokens (a confused server) bills at most every prompt token as cached
    assert table.cost("gpt-4o", Usage(prompt_tokens=100, cached_tokens=500)) == 100 * 1.25 / 1e6


def test_zero_usage_costs_zero_for_known_model(table: PricingTable) -> None:
    assert table.cost("gpt-4o-mini", Usage()) == 0.0


def test_dated_snapshot_uses_family_price(table: PricingTable) -> None:
    assert table.price("gpt-4o-2024-08-06") == table.models["gpt-4o"]
    # the longest family wins: a mini snapshot is not billed as gpt-4o
    assert table.price("gpt-4o-mini-2024-07-18") == table.models["gpt-4o-mini"]
    usage = Usage(prompt_tokens=1000, completion_tokens=200, cached_tokens=400)
    assert table.cost("gpt-4o-2024-08-06", usage) == table.cost("gpt-4o", usage)


@pytest.mark.parametrize("model", ["llama3:8b", "gpt-4", "gpt-4o2", "claude-3-opus", ""])
def test_unknown_model_cost_is_none(table: PricingTable, model: str) -> None:
    assert table.price(model) is None
    cost = table.cost(model, Usage(prompt_tokens=10, completion_tokens=10))
    assert cost is None
    assert cost != 0.0


def test_overrides_add_and_replace_models() -> None:
    table = load_pricing(
        agents_dir() / "pricing.toml",
        overrides={
            "llama3:8b": {"input": 1.0, "cached_input": 0.5, "output": 2.0},
            "gpt-4o": {"input": 5.0, "output": 20.0},
        },
    )
    assert table.price("llama3:8b") == Price(1.0, 0.5, 2.0)
    # a missing cached_input falls back to the input price
    assert table.price("gpt-4o") == Price(5.0, 5.0, 20.0)
    assert table.price("gpt-4o-2024-08-06") == Price(5.0, 5.0, 20.0)
    assert table.price("gpt-4o-mini") == Price(0.15, 0.075, 0.60)  # untouched
    assert table.cost("llama3:8b", Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)) == 3.0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"input": 1.0}, "missing field 'output'"),
        ({"output": 1.0}, "missing field 'input'"),
        ({"input": "cheap", "output": 1.0}, "must be numbers"),
        ({"input": -1.0, "output": 1.0}, "cannot be negative"),
        ({"input": 1.0, "cached_input": -0.1, "output": 1.0}, "cannot be negative"),
        (3.0, "expected a table"),
    ],
)
def test_bad_override_raises(raw: object, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_pricing(agents_dir() / "pricing.toml", overrides={"my-model": raw})  # type: ignore[dict-item]
    msg = str(info.value)
    assert "'my-model'" in msg
    assert expected in msg


def test_bad_pricing_file_names_file_and_model(tmp_path: Path) -> None:
    path = write(tmp_path, "pricing.toml", '[models."m1"]\ninput = 1.0\n')
    with pytest.raises(ConfigError) as info:
        load_pricing(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "'m1'" in msg
    assert "missing field 'output'" in msg


def test_invalid_or_missing_pricing_file(tmp_path: Path) -> None:
    bad = write(tmp_path, "pricing.toml", "models = [\n")
    with pytest.raises(ConfigError, match="pricing table") as info:
        load_pricing(bad)
    assert str(bad) in str(info.value)
    with pytest.raises(ConfigError, match="pricing table"):
        load_pricing(tmp_path / "absent.toml")
