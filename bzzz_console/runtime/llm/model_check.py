"""Can the server run each agent's model with tools? ``bzzz-console status`` asks before the fleet finds out.

Two cheap questions per model: is it in the server's ``GET /models`` list, and does one chat completion that
offers a tool (one word of output) go through? Local servers answer the second with the same errors that would
stop an agent at its first turn (Ollama's "does not support tools", "not found, try pulling it first"), so the
operator reads them — with the fix — before starting the console.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bzzz_console.domain.llm import ChatMessage, ToolSpec
from bzzz_console.runtime.llm.client import OpenAIBackend, RetryPolicy
from bzzz_console.runtime.llm.errors import LLMError

if TYPE_CHECKING:
    from bzzz_console.config import Settings
    from bzzz_console.domain.specs import AgentSpec
    from bzzz_console.runtime.llm.provider import ProviderChoice

PROBE_TOOL = ToolSpec("ping", "Answer the health check.", {"type": "object", "properties": {}})


@dataclass(frozen=True, slots=True)
class ModelCheck:
    model: str
    roles: tuple[str, ...]
    listed: bool | None
    """In the server's model list (None: the server lists none, as some proxies do)."""
    tools: bool | None
    """A call offering a tool went through (None: not known — the call failed for another reason)."""
    detail: str

    @property
    def ok(self) -> bool:
        return self.listed is not False and self.tools is not False


def fleet_models(settings: Settings, specs: Mapping[str, AgentSpec]) -> dict[str, tuple[str, ...]]:
    """The model each role of the fleet will run (``[models]`` over the spec's), with the roles using it."""
    models: dict[str, list[str]] = {}
    for role in settings.runtime.fleet:
        spec = specs.get(role)
        model = settings.models.get(role) or settings.models.get("default") or (spec.model if spec else None)
        if model:
            models.setdefault(model, []).append(role)
    return {m: tuple(r) for m, r in models.items()}


async def check_models(
    choice: ProviderChoice, models: Mapping[str, Sequence[str]], timeout_s: float = 20.0
) -> list[ModelCheck]:
    backend = OpenAIBackend(
        base_url=choice.base_url,
        api_key=choice.api_key or "not-needed",
        policy=RetryPolicy(max_attempts=1, timeout_s=timeout_s),
    )
    try:
        listed = await _listed(backend)
        return list(await asyncio.gather(*(_check(backend, m, tuple(r), listed) for m, r in models.items())))
    finally:
        await backend.aclose()


async def _listed(backend: OpenAIBackend) -> set[str] | None:
    try:
        page = await backend.client().models.list()
    except Exception:  # the provider line of the report already says whether the server answers at all
        return None
    return {m.id for m in page.data} or None


async def _check(
    backend: OpenAIBackend, model: str, roles: tuple[str, ...], listed: set[str] | None
) -> ModelCheck:
    on_list = None if listed is None else model in listed
    try:
        await backend.complete(
            model=model, messages=[ChatMessage("user", "Reply OK.")], tools=[PROBE_TOOL], max_tokens=1
        )
    except LLMError as exc:
        if exc.setup is not None:
            return ModelCheck(model, roles, on_list, False, f"{exc} — {exc.setup}")
        return ModelCheck(model, roles, on_list, None, str(exc))
    detail = "takes tool calls" if on_list is not False else "answers, but is not in the server's model list"
    return ModelCheck(model, roles, on_list, True, detail)
