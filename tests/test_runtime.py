"""The headless runtime end to end, in-process, with the real openai SDK over HTTP to scripted servers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import eventually

from bzzz_console.app import make_runtime
from bzzz_console.config import Settings
from bzzz_console.demo.scripted_server import Fault, ScriptedReply, ScriptedServer, ScriptedToolCall
from bzzz_console.demo.team import add_demo_tasks
from bzzz_console.domain import commands as cmd
from bzzz_console.domain import events as ev
from bzzz_console.domain.errors import CommandError
from bzzz_console.domain.lifecycle import ALLOWED_TRANSITIONS, AgentState
from bzzz_console.runtime.llm.client import OpenAIBackend, RetryPolicy
from bzzz_console.runtime.runtime import Runtime
from bzzz_console.store.repo import Store


def make_settings(tmp_path: Path, **runtime: Any) -> Settings:
    data = {
        "data_dir": str(tmp_path / "data"),
        "store": {"url": f"sqlite:///{tmp_path / 'bzzz.db'}"},
        "demo": {"latency_ms": 0, "seed": 7},
        "runtime": {"poll_interval_s": 0.05, **runtime},
    }
    return Settings.model_validate(data)


async def run_until_idle(rt: Runtime, timeout: float = 30) -> None:
    await asyncio.wait_for(rt.wait_idle(), timeout)


async def taken(rt: Runtime, task_id: str) -> None:
    """Wait until the scheduler has taken a task added behind its back (the store, then ``capacity_changed``):
    until then the fleet may still look idle. A thread's start marks it busy in the same step."""
    await eventually(lambda: rt.store.get_task(task_id).status != "pending", f"task {task_id} to be taken")


async def test_demo_team_reaches_consensus_twice_and_escalates_once(tmp_path: Path) -> None:
    rt = make_runtime(make_settings(tmp_path), force_demo=True)
    events = rt.bus.subscribe()
    async with rt:
        add_demo_tasks(rt.store)
        rt.capacity_changed()
        await run_until_idle(rt)
        seen = events.drain()
        store = rt.store
        threads = {t.topic.split(": ", 1)[1]: t for t in store.threads()}
        escalations = store.escalations()
        usage = store.usage()
        agents = {a.id: a for a in store.agents()}
        episodes = {a: store.episodes(a, "default") for a in agents}
    kinds = [e.kind for e in seen]  # type: ignore[attr-defined]
    assert kinds[0] == "runtime_started"
    assert kinds.count("consensus_reached") == 2
    assert threads["Design the rate limiter for the public API"].status == "closed"
    assert threads["Document the MCP tool surface"].outcome == "consensus"
    disputed = threads["Review the schema migration for the audit table"]
    assert disputed.status == "waiting_human"
    [escalation] = escalations
    assert (escalation.rule, escalation.state, escalation.thread_id) == ("Agent Request", "open", disputed.id)
    assert agents[escalation.agent_id].state == AgentState.ESCALATING.value
    # every published lifecycle step is legal in the seed's diagram
    for e in seen:
        if isinstance(e, ev.AgentStateChanged) and e.old != e.new:
            assert AgentState(e.new) in ALLOWED_TRANSITIONS[AgentState(e.old)], e
    # usage from every call, cached tokens included, priced (the demo uses OpenAI model names)
    assert len(usage) == kinds.count("llm_called") > 10
    assert any(u.cached_tokens > 0 for u in usage)
    assert all(u.cost_usd is not None and u.cost_usd > 0 for u in usage)
    # participants of closed threads learned something, in this project
    closed_participants = {
        p.agent_id
        for p in Store.participants(rt.store, threads["Design the rate limiter for the public API"].id)
    }
    for agent_id in closed_participants:
        assert any(e.outcome == "consensus" and e.lessons for e in episodes[agent_id])
    tools_used = {e.tool for e in seen if isinstance(e, ev.ToolCalled)}
    assert {"bzzz_post", "bzzz_lookup", "request_human"} <= tools_used


async def test_restart_restores_waiting_thread_and_escalating_agent(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with make_runtime(settings, force_demo=True) as rt:
        add_demo_tasks(rt.store)
        rt.capacity_changed()
        await run_until_idle(rt)
        waiting = [t.id for t in rt.store.threads("waiting_human")]
        escalating = [a.id for a in rt.agents.values() if a.state is AgentState.ESCALATING]
    rt2 = make_runtime(settings, force_demo=True)
    events = rt2.bus.subscribe()
    async with rt2:
        await run_until_idle(rt2)
        assert list(rt2.conversations.threads) == waiting
        assert [a.id for a in rt2.agents.values() if a.state is AgentState.ESCALATING] == escalating
        assert not any(
            isinstance(e, ev.AgentRegistered) and e.agent_id not in rt2.agents for e in events.drain()
        )
        # nothing was re-run: no new messages after the restart
        assert not any(isinstance(e, ev.MessagePosted) for e in events.drain())


async def test_memory_is_scoped_to_its_project(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, fleet={"architect": 1, "reviewer": 1})
    rt = make_runtime(settings, force_demo=True)
    async with rt:
        task = {
            "title": "Design the rate limiter for the public API",
            "description": "limits per key",
            "roles": ["architect", "reviewer"],
            "priority": "high",
        }
        rt.store.add_task(**task, project="alpha")
        rt.capacity_changed()
        await run_until_idle(rt)
        assert rt.store.episodes("architect-1", "alpha")
        server: ScriptedServer = rt._demo_server
        server.requests.clear()
        beta = rt.store.add_task(
            **{**task, "title": "Design the rate limiter for the admin API"}, project="beta"
        )
        rt.capacity_changed()
        await taken(rt, beta.id)
        await run_until_idle(rt)
        beta_prompts = [m["content"] for r in server.requests for m in r["messages"] if m["role"] == "system"]
        server.requests.clear()
        alpha = rt.store.add_task(
            **{**task, "title": "Design the rate limiter for the partner API"}, project="alpha"
        )
        rt.capacity_changed()
        await taken(rt, alpha.id)
        await run_until_idle(rt)
        alpha_prompts = [
            m["content"] for r in server.requests for m in r["messages"] if m["role"] == "system"
        ]
    assert beta_prompts and alpha_prompts
    assert not any("Lessons from your earlier work" in p for p in beta_prompts)
    assert not any("public API" in p for p in beta_prompts)
    assert any("Lessons from your earlier work" in p and "public API" in p for p in alpha_prompts)


def _post(thread_hint: str, kind: str, text: str) -> ScriptedToolCall:
    return ScriptedToolCall(
        "bzzz_post",
        {
            "target_address": "bzzz://*@*",
            "thread_id": thread_hint,
            "message_type": kind,
            "content": {"text": text},
        },
    )


class Scripted:
    """A responder driven by a list of per-call replies (thread id filled in from the prompt)."""

    def __init__(self, replies: list[Any]) -> None:
        self.replies = replies
        self.calls: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> ScriptedReply:
        self.calls.append(body)
        system = body["messages"][0]["content"]
        thread_id = system.split("thread_id: ", 1)[1].split("\n", 1)[0]
        reply = self.replies.pop(0) if self.replies else ScriptedReply(content="(no more script)")
        return reply(thread_id) if callable(reply) else reply


async def _with_server(tmp_path: Path, responder: Any, **runtime: Any) -> tuple[Runtime, ScriptedServer]:
    server = ScriptedServer(responder).start()
    backend = OpenAIBackend(
        base_url=server.base_url,
        api_key="test",
        policy=RetryPolicy(max_attempts=2, base_delay_s=0.01, timeout_s=5),
    )
    settings = make_settings(tmp_path, fleet={"architect": 1, "reviewer": 1}, **runtime)
    return make_runtime(settings, backend=backend), server


async def test_bad_tool_arguments_come_back_as_errors_and_the_turn_goes_on(tmp_path: Path) -> None:
    responder = Scripted(
        [
            lambda t: ScriptedReply(
                tool_calls=(
                    ScriptedToolCall(
                        "bzzz_post",
                        {"target_address": "bzzz://a b@x", "message_type": "shout", "content": {}},
                    ),
                )
            ),
            lambda t: ScriptedReply(tool_calls=(_post(t, "proposal", "Use a token bucket."),)),
            lambda t: ScriptedReply(tool_calls=(_post(t, "agree", "Fine by me."),)),
        ]
    )
    rt, server = await _with_server(tmp_path, responder)
    events = rt.bus.subscribe()
    try:
        async with rt:
            rt.store.add_task(
                title="Pick an algorithm",
                description="",
                roles=["architect", "reviewer"],
                priority="low",
                project="default",
            )
            rt.capacity_changed()
            await run_until_idle(rt)
            [thread] = rt.store.threads()
    finally:
        server.stop()
    tool_events = [e for e in events.drain() if isinstance(e, ev.ToolCalled)]
    assert tool_events[0].ok is False and "message_type" in tool_events[0].summary
    # the model saw the error text as the tool result and could correct itself
    tool_result = json.loads(responder.calls[1]["messages"][-1]["content"])
    assert tool_result["error"].startswith("message_type:")
    assert thread.status == "closed" and thread.outcome == "consensus"


async def test_model_failures_are_retried_then_escalate_by_the_error_rate_rule(tmp_path: Path) -> None:
    responder = Scripted([])
    rt, server = await _with_server(tmp_path, responder)
    server.inject(*[Fault.server_error(503)] * 20)
    events = rt.bus.subscribe()
    try:
        async with rt:
            rt.store.add_task(
                title="Anything",
                description="",
                roles=["architect", "reviewer"],
                priority="low",
                project="default",
            )
            rt.capacity_changed()
            await run_until_idle(rt)
            [thread] = rt.store.threads()
            [escalation] = rt.store.escalations()
            failed_rows = [u for u in rt.store.usage() if u.error]
    finally:
        server.stop()
    seen = events.drain()
    assert sum(isinstance(e, ev.LLMRetry) for e in seen) == 3  # one retry per call (max_attempts=2)
    failures = [e for e in seen if isinstance(e, ev.LLMFailed)]
    assert len(failures) == 3 and "503" in failures[0].error
    assert len(failed_rows) == 3  # failed calls are recorded: they feed the error rate
    assert escalation.rule == "Error Rate" and escalation.state == "open"
    assert escalation.default_action == "reject"
    assert thread.status == "waiting_human"


async def test_paused_agent_holds_its_turn_and_human_messages_reach_the_next_prompt(tmp_path: Path) -> None:
    replies: list[Any] = [lambda t: ScriptedReply(tool_calls=(_post(t, "proposal", "Plan A"),))]
    responder = Scripted(replies)
    rt, server = await _with_server(tmp_path, responder)
    server.latency_s = 0.3  # the architect's first call is still in flight when the reviewer is paused
    events = rt.bus.subscribe()
    try:
        async with rt:
            rt.store.add_task(
                title="Plan",
                description="",
                roles=["architect", "reviewer"],
                priority="low",
                project="default",
            )
            rt.capacity_changed()
            await eventually(
                lambda: any(isinstance(e, ev.ThreadCreated) for e in events.drain()), "the thread to start"
            )
            await rt.submit(cmd.Pause(agent_id="reviewer-1"))
            await run_until_idle(rt)
            [thread_id] = list(rt.conversations.threads)
            # the architect spoke once; the paused reviewer holds the next turn, so the thread waits
            assert (
                len(responder.calls) == 1
                and "agent_id: architect-1" in responder.calls[0]["messages"][0]["content"]
            )
            await rt.submit(
                cmd.PostHumanMessage(thread_id=thread_id, text="Keep it under 5 ms.", operator="ops")
            )
            replies.append(lambda t: ScriptedReply(tool_calls=(_post(t, "agree", "Agreed."),)))
            await rt.submit(cmd.Resume(agent_id="reviewer-1"))
            await run_until_idle(rt)
            status = rt.store.get_thread(thread_id).status
    finally:
        server.stop()
    last_prompt = responder.calls[-1]["messages"]
    assert "agent_id: reviewer-1" in last_prompt[0]["content"]
    assert any("[ops (human) · human" in (m.get("content") or "") for m in last_prompt)
    assert status == "closed"


async def test_task_for_a_role_nobody_has_is_blocked_with_a_reason(tmp_path: Path) -> None:
    rt = make_runtime(make_settings(tmp_path, fleet={"architect": 1}), force_demo=True)
    events = rt.bus.subscribe()
    async with rt:
        task = rt.store.add_task(
            title="Security audit", description="", roles=["reviewer"], priority="high", project="default"
        )
        rt.capacity_changed()
        await run_until_idle(rt)
        status = rt.store.get_task(task.id).status
    blocked = [e for e in events.drain() if isinstance(e, ev.TaskStatusChanged) and e.status == "blocked"]
    assert status == "blocked"
    assert "no agent with role 'reviewer'" in blocked[0].reason


async def test_commands_fail_clearly(tmp_path: Path) -> None:
    async with make_runtime(make_settings(tmp_path), force_demo=True) as rt:
        with pytest.raises(CommandError, match="no agent 'ghost'"):
            await rt.submit(cmd.Pause(agent_id="ghost"))
        with pytest.raises(CommandError, match="not open"):
            await rt.submit(cmd.PostHumanMessage(thread_id="nope", text="hi"))
        with pytest.raises(CommandError, match="needs a title"):
            await rt.submit(cmd.AddTask(title="  "))


async def test_terminating_an_escalating_agent_cancels_its_escalation_and_the_thread_goes_on(
    tmp_path: Path,
) -> None:
    rt = make_runtime(make_settings(tmp_path), force_demo=True)
    events = rt.bus.subscribe()
    async with rt:
        add_demo_tasks(rt.store)
        rt.capacity_changed()
        await run_until_idle(rt)
        [escalation] = rt.store.escalations("open")
        await rt.submit(cmd.Terminate(agent_id=escalation.agent_id or ""))
        await run_until_idle(rt)
        row = rt.store.get_escalation(escalation.id)
        thread = rt.store.get_thread(escalation.thread_id or "")
        agent_state = rt.agents[escalation.agent_id or ""].state
    assert (
        row is not None
        and row.state == "cancelled"
        and row.decision
        and "terminated" in row.decision["reason"]
    )
    seen = events.drain()
    cancelled_at = next(i for i, e in enumerate(seen) if isinstance(e, ev.EscalationCancelled))
    assert seen[cancelled_at].escalation_id == escalation.id  # type: ignore[attr-defined]
    resumed = [
        e for e in seen[cancelled_at:] if isinstance(e, ev.ThreadStatusChanged) and e.status == "active"
    ]
    assert resumed and resumed[0].thread_id == thread.id  # the thread went on without the terminated agent
    assert agent_state is AgentState.TERMINATING
    assert escalation.agent_id not in {p.agent_id for p in rt.store.participants(thread.id)}


async def test_tasks_are_stored_redacted(tmp_path: Path) -> None:
    async with make_runtime(make_settings(tmp_path, fleet={"architect": 1}), force_demo=True) as rt:
        task = await rt.submit(
            cmd.AddTask(
                title="Mail ops@example.com", description="Call +1 415 555 0100", roles=("architect",)
            )
        )
        stored = rt.store.get_task(task.id)
    assert stored.title == "Mail [redacted:email]"
    assert stored.description == "Call [redacted:phone]"
