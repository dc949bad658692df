"""Escalations answered from an MCP client: ``bzzz_inbox`` puts each to the operator as an elicitation (the
2026-07-28 protocol's input-required round trip), with the real ``mcp`` client's ``elicitation_callback``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import eventually
from local_model_server import LocalModelServer

from bzzz_console.app import make_runtime
from bzzz_console.config import Settings
from bzzz_console.domain import commands as cmd
from bzzz_console.domain.principals import Principal
from bzzz_console.mcp.server import build_server


@pytest.fixture(scope="module")
def models() -> Iterator[LocalModelServer]:
    with LocalModelServer(listed=("gemma:2b",)) as srv:
        yield srv


@pytest.fixture
async def rt(tmp_path: Path, models: LocalModelServer) -> AsyncIterator[Any]:
    """A runtime with one open escalation: the model takes no tools (Model Trouble, high, with options)."""
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path / "data"),
            "store": {"url": f"sqlite:///{tmp_path / 'bzzz.db'}"},
            "model": {"provider": "openai", "base_url": models.base_url},
            "models": {"default": "gemma:2b"},
            "runtime": {"poll_interval_s": 0.05, "fleet": {"architect": 1, "reviewer": 1}},
        }
    )
    runtime = make_runtime(settings)
    await runtime.start()
    runtime.store.add_task(title="x", description="", roles=["architect"], priority="high", project="default")
    runtime.capacity_changed()
    await eventually(lambda: runtime.store.escalations("open"), "the escalation")
    yield runtime
    await runtime.close()


def client_for(rt: Any, answer: Any, principal: Principal | None = None) -> Any:
    from mcp import types
    from mcp.client.client import Client

    async def on_elicit(context: Any, params: Any) -> types.ElicitResult:
        return await answer(params)

    return Client(build_server(rt, principal=principal), elicitation_callback=on_elicit)


async def call(client: Any, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool("bzzz_inbox", arguments)
    assert not result.is_error, result.content
    return dict(result.structured_content)


async def test_an_escalation_is_put_as_a_form_and_the_answer_is_the_operators_decision(rt: Any) -> None:
    from mcp import types

    [escalation] = rt.store.escalations("open")
    seen: list[Any] = []

    async def approve(params: Any) -> types.ElicitResult:
        seen.append(params)
        return types.ElicitResult(
            action="accept", content={"decision": "approve", "text": "pulled the model"}
        )

    async with client_for(rt, approve, Principal("operator", "olga", "mcp token 1")) as client:
        result = await call(client, wait_s=0)
    assert result["status"] == "decided" and result["escalation_id"] == escalation.id
    [form] = seen
    assert f"escalation {escalation.id}" in form.message and "does not support tools" in form.message
    decisions = form.requested_schema["properties"]["decision"]["enum"]
    assert {"approve", "reject", "reply", "hand_back"} <= set(decisions)
    assert "downgrade_model" in form.requested_schema["properties"]["option"]["enum"]  # the rule's options
    row = rt.store.get_escalation(escalation.id)
    assert (row.state, row.answered_by, row.decision["kind"]) == ("answered", "olga", "approve")
    assert row.decision["surface"] == "mcp token 1"  # the surface and the token it came through


async def test_whoever_answers_first_decides_and_the_late_answer_gets_the_outcome(rt: Any) -> None:
    from mcp import types

    [escalation] = rt.store.escalations("open")

    async def too_late(params: Any) -> types.ElicitResult:
        # while the form is open, the console answers the same escalation
        await rt.submit(cmd.Reject(escalation_id=escalation.id, reason="not now", operator="carla"))
        return types.ElicitResult(action="accept", content={"decision": "approve"})

    async with client_for(rt, too_late) as client:
        result = await call(client, wait_s=0)
    assert result["status"] == "already answered"
    row = rt.store.get_escalation(escalation.id)
    assert (row.answered_by, row.decision["kind"]) == ("carla", "reject")  # decided once, by the first


async def test_a_dismissed_form_decides_nothing_and_an_empty_inbox_says_so(rt: Any) -> None:
    from mcp import types

    async def dismiss(params: Any) -> types.ElicitResult:
        return types.ElicitResult(action="decline")

    async with client_for(rt, dismiss) as client:
        assert (await call(client, wait_s=0))["status"] == "declined"
        assert rt.store.escalations("open")  # still waiting
        [escalation] = rt.store.escalations("open")
        await rt.submit(cmd.HandBack(escalation_id=escalation.id, operator="olga"))
        assert await call(client, wait_s=0.2) == {"status": "empty", "escalation_id": None, "detail": ""}


async def test_an_agent_token_cannot_use_the_inbox(rt: Any) -> None:
    from mcp import types

    async def never(params: Any) -> types.ElicitResult:
        raise AssertionError("an agent must not be asked")

    async with client_for(rt, never, Principal("agent", "ext-ci", "mcp token 2")) as client:
        result = await client.call_tool("bzzz_inbox", {"wait_s": 0})
    assert result.is_error and "only an operator" in str(result.content)
    assert rt.store.escalations("open")


async def test_the_inbox_is_listed_for_operators_with_its_result_schema(rt: Any) -> None:
    from mcp.client.client import Client

    async with Client(build_server(rt)) as client:
        [tool] = [t for t in (await client.list_tools()).tools if t.name == "bzzz_inbox"]
    schema = tool.output_schema or {}
    assert schema["properties"]["status"]["enum"] == [
        "empty",
        "decided",
        "approval recorded",
        "declined",
        "already answered",
        "refused",
    ]
    assert schema["required"] == ["status"] and schema["additionalProperties"] is False
    assert tool.input_schema["properties"]["wait_s"]["maximum"] == 300
