"""Agent role specs: one TOML file per role in the agents folder (the seed's §2.1 definitions, as data)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bzzz_console.domain.errors import ConfigError


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    role: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    """Role name, used in addresses (``bzzz://<role>@*``) and in tasks' required roles."""
    aliases: tuple[str, ...] = ()
    """Other names the role answers to in addresses (the seed calls documentation ``docs``)."""
    description: str = ""
    model: str
    """Chat model this role uses unless the operator downgrades it."""
    token_limit: int = Field(8000, ge=512)
    """Prompt token budget per turn; the context optimizer keeps prompts under it."""
    max_tasks: int = Field(2, ge=1)
    """Threads an agent of this role works on at once (its load limit)."""
    budget_usd: float | None = Field(None, ge=0)
    """Daily spend limit of one agent of this role; None = only the global budget applies."""
    capabilities: tuple[str, ...]
    reasoning_prompts: dict[str, str]
    """Must contain ``system``; the others are added to the system prompt as guidance."""
    interaction_patterns: dict[str, str] = {}
    api_key_entry: str | None = None
    """Name of this role's own API key entry (``bzzz-console key set --entry NAME``); None = the shared key."""

    def answers_to(self, name: str) -> bool:
        return name == self.role or name in self.aliases


def load_spec(path: Path) -> AgentSpec:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"agent spec {path} is not valid TOML: {exc}") from None
    try:
        spec = AgentSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in e['loc'])}': {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"agent spec {path}: {problems}") from None
    if "system" not in spec.reasoning_prompts:
        raise ConfigError(f"agent spec {path}: field 'reasoning_prompts.system' is required")
    return spec


def load_specs(folder: Path) -> dict[str, AgentSpec]:
    """Every ``*.toml`` in ``folder`` that declares a ``role`` (other TOML files there are data, not specs)."""
    specs: dict[str, AgentSpec] = {}
    if not folder.is_dir():
        raise ConfigError(f"agents folder {folder} does not exist")
    for path in sorted(folder.glob("*.toml")):
        try:
            head = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"agent spec {path} is not valid TOML: {exc}") from None
        if "role" not in head:
            continue
        spec = load_spec(path)
        if spec.role in specs:
            raise ConfigError(f"agent spec {path}: role {spec.role!r} is defined twice")
        specs[spec.role] = spec
    return specs
