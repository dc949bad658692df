"""Local model servers (Ollama, vLLM, llama.cpp, LM Studio): models and prices from the settings tree."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_model_server import PROPOSAL, THINKING, LocalModelServer

from bzzz_console.app import make_runtime
from bzzz_console.config import Settings
from bzzz_console.domain import commands as cmd
from bzzz_console.domain import events as ev
from bzzz_console.domain.llm import Usage
from bzzz_console.resources import agents_dir
from bzzz_console.runtime.llm.pricing import pricing_for
from bzzz_console.runtime.threads.model_watch import CUT_MARK, WRONG_FORM_NOTE
from bzzz_console.views.spend import spend_report


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


# -- each row of the table, against a server that behaves like the real ones ------------------------


LISTED = (
    "tool-model:8b",
    "prose:7b",
    "json-text:3b",
    "fenced:3b",
    "hermes:7b",
    "broken:1b",
    "gemma:2b",
    "cut:8b",
    "always-cut:8b",
    "no-usage:1b",
    "thinker:7b",
    "parrot:1b",
    "slow:70b",
)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalModelServer]:
    with LocalModelServer(listed=LISTED, slow_s=1.5) as srv:
        yield srv


def settings_for(tmp_path: Path, server: LocalModelServer, models: dict[str, str], **more: Any) -> Settings:
    data: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "store": {"url": f"sqlite:///{tmp_path / 'bzzz.db'}"},
        "model": {"provider": "openai", "base_url": server.base_url, "timeout_s": 10, "max_attempts": 2},
        "runtime": {"poll_interval_s": 0.05, "fleet": {"architect": 1, "reviewer": 1}},
        "budgets": {"daily_usd": None, "thread_usd": None},
        "models": models,
        "pricing": {m: {"input": 0, "output": 0} for m in LISTED},
    }
    for key, value in more.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return Settings.model_validate(data)


class Outcome:
    def __init__(self, rt: Any, events: list[ev.Event], requests: list[dict[str, Any]]) -> None:
        self.rt, self.events, self.requests = rt, events, requests
        self.threads = rt.store.threads()
        self.escalations = rt.store.escalations()
        self.messages = [m for t in self.threads for m in rt.store.messages(t.id)]
        self.usage = rt.store.usage()

    def of(self, kind: type[ev.Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


async def play(settings: Settings, server: LocalModelServer, *, timeout: float = 60) -> Outcome:
    """One task for an architect and a reviewer, run until the runtime is idle (done, or waiting for a human)."""
    rt = make_runtime(settings)
    subscription = rt.bus.subscribe(maxsize=100_000)
    before = len(server.seen.requests)
    async with rt:
        rt.store.add_task(
            title="Rate limiting",
            description="",
            roles=["architect", "reviewer"],
            priority="medium",
            project="default",
        )
        rt.capacity_changed()
        await asyncio.wait_for(rt.wait_idle(), timeout)
        return Outcome(rt, subscription.drain(), server.seen.requests[before:])


def one_model_trouble(out: Outcome) -> Any:
    [escalation] = out.escalations
    assert (escalation.rule, escalation.state) == ("Model Trouble", "open"), escalation
    assert "downgrade_model" in escalation.context["options"]
    return escalation


async def test_a_tool_capable_model_reaches_consensus(tmp_path: Path, server: LocalModelServer) -> None:
    out = await play(settings_for(tmp_path, server, {"default": "tool-model:8b"}), server)
    assert [(t.status, t.outcome) for t in out.threads] == [("closed", "consensus")]
    assert {r["model"] for r in out.requests} == {"tool-model:8b"}  # [models] default, for both roles
    assert all(u.cost_usd == 0 for u in out.usage)  # priced at 0 by [pricing]: known, not "unknown"
    report = spend_report(out.rt.store, out.rt.settings, {})
    metrics = report["metrics"]
    assert metrics["agent_response_time_ms_p95"] >= metrics["agent_response_time_ms_median"]


async def test_models_per_role_from_the_settings(tmp_path: Path, server: LocalModelServer) -> None:
    models = {"architect": "tool-model:8b", "default": "no-usage:1b"}
    out = await play(settings_for(tmp_path, server, models), server)
    assert {a.id: a.model for a in out.rt.agents.values()} == {
        "architect-1": "tool-model:8b",
        "reviewer-1": "no-usage:1b",
    }
    assert {r["model"] for r in out.requests} == {"tool-model:8b", "no-usage:1b"}


async def test_a_model_that_answers_in_prose_escalates_after_four_turns(
    tmp_path: Path, server: LocalModelServer
) -> None:
    out = await play(settings_for(tmp_path, server, {"default": "prose:7b"}), server)
    escalation = one_model_trouble(out)
    assert "prose:7b has not used the tools in 4 turns" in escalation.reason
    assert "may not support function calling" in escalation.reason
    assert len(out.requests) <= 8  # four turns each at most, one call a turn; not 24 calls and a stall
    assert out.threads[0].status == "waiting_human"


@pytest.mark.parametrize("family", ["json-text", "fenced", "hermes"])
async def test_a_tool_call_written_as_text_is_run_and_the_model_told_once(
    family: str, tmp_path: Path, server: LocalModelServer
) -> None:
    out = await play(
        settings_for(tmp_path, server, {"default": f"{family}:3b" if family != "hermes" else "hermes:7b"}),
        server,
    )
    assert [(t.status, t.outcome) for t in out.threads] == [("closed", "consensus")]
    said = [m for m in out.messages if m.author in ("architect-1", "reviewer-1")]
    assert [m.type for m in said] == ["proposal", "agree"] and said[0].content == PROPOSAL
    assert not any("bzzz_post" in m.content or "{" in m.content for m in out.messages)  # no raw JSON posted
    notes = [
        r
        for r in out.requests
        if any(WRONG_FORM_NOTE.split("(")[0] in str(m.get("content")) for m in r["messages"])
    ]
    assert len(notes) <= 2  # told within the turn it happened, once per agent; never in later prompts


async def test_malformed_tool_calls_escalate_with_the_errors_after_a_few_calls(
    tmp_path: Path, server: LocalModelServer
) -> None:
    out = await play(settings_for(tmp_path, server, {"default": "broken:1b"}), server)
    escalation = one_model_trouble(out)
    assert "last 4 tool calls failed (broken:1b)" in escalation.reason
    assert "not valid JSON" in escalation.reason and "unknown tool 'post_message'" in escalation.reason
    assert len(out.requests) == 2  # two replies of two bad calls each: not 96 calls


async def test_a_model_without_tool_support_escalates_at_the_first_call_with_the_servers_words(
    tmp_path: Path, server: LocalModelServer
) -> None:
    settings = settings_for(tmp_path, server, {"default": "gemma:2b"})
    rt = make_runtime(settings)
    before = len(server.seen.requests)
    async with rt:
        rt.store.add_task(
            title="Rate limiting",
            description="",
            roles=["architect", "reviewer"],
            priority="medium",
            project="default",
        )
        rt.capacity_changed()
        await asyncio.wait_for(rt.wait_idle(), 30)
        first = server.seen.requests[before:]
        [escalation] = rt.store.escalations()
        # approving does not just repeat the turn: a short probe runs first, and the operator hears at once
        await rt.submit(cmd.Approve(escalation_id=escalation.id, operator="olga"))
        await asyncio.wait_for(rt.wait_idle(), 30)
        probe = server.seen.requests[before + len(first) :]
        [again] = [e for e in rt.store.escalations() if e.state == "open"]
    assert (escalation.rule, escalation.state) == ("Model Trouble", "open")
    assert "gemma:2b does not support tools" in escalation.reason  # the server's own words
    assert "choose a tool-capable model" in escalation.reason
    assert "does not support tools" in escalation.context["model_error"]
    assert len(first) == 1  # not retried: retrying cannot fix a setup error
    assert len(probe) == 1 and probe[0]["max_tokens"] == 16 and len(probe[0]["messages"]) == 1
    assert "still, after the decision" in again.reason and "does not support tools" in again.reason


async def test_a_model_the_server_does_not_have_says_to_pull_it(
    tmp_path: Path, server: LocalModelServer
) -> None:
    out = await play(settings_for(tmp_path, server, {"default": "llama3.1:8b"}), server)
    escalation = one_model_trouble(out)
    assert 'model "llama3.1:8b" not found, try pulling it first' in escalation.reason
    assert "ollama pull llama3.1:8b" in escalation.reason
    assert len(out.requests) == 1


async def test_a_cut_reply_is_asked_for_again_shorter(tmp_path: Path, server: LocalModelServer) -> None:
    out = await play(settings_for(tmp_path, server, {"default": "cut:8b"}), server)
    assert [(t.status, t.outcome) for t in out.threads] == [("closed", "consensus")]
    assert not any("because the" in m.content for m in out.messages)  # no half sentence posted
    assert len(out.requests) == 4  # each of the two turns: the cut reply, then the shorter one


async def test_a_reply_that_stays_cut_is_marked_and_bounded(tmp_path: Path, server: LocalModelServer) -> None:
    out = await play(settings_for(tmp_path, server, {"default": "always-cut:8b"}), server)
    posted = [m for m in out.messages if m.author in ("architect-1", "reviewer-1")]
    assert posted and all(m.content.endswith(CUT_MARK) for m in posted)
    one_model_trouble(out)  # never a tool call: it escalates like any model that does not use the tools
    assert len(out.requests) <= 16


async def test_without_usage_tokens_are_estimated_and_budgets_still_work(
    tmp_path: Path, server: LocalModelServer
) -> None:
    settings = settings_for(
        tmp_path,
        server,
        {"default": "no-usage:1b"},
        pricing={"no-usage:1b": {"input": 1000, "output": 1000}},
        budgets={"thread_usd": 0.5},
    )
    out = await play(settings, server)
    called = out.of(ev.LLMCalled)
    assert called and all(c.prompt_tokens > 0 and c.estimated for c in called)
    assert all(u.prompt_tokens > 0 and u.cost_usd > 0 for u in out.usage if u.error is None)
    assert [e.rule for e in out.escalations] == ["Budget Breach"]  # the estimate is enough to trigger it
    assert all(u.estimated for u in out.usage if u.error is None)  # and it is remembered as an estimate
    report = spend_report(out.rt.store, out.rt.settings, {})
    assert report["estimated_calls"] == len(called) and report["cost_usd"] > 0


async def test_thinking_is_never_posted_stored_or_sent_to_other_agents(
    tmp_path: Path, server: LocalModelServer
) -> None:
    out = await play(settings_for(tmp_path, server, {"default": "thinker:7b"}), server)
    assert [(t.status, t.outcome) for t in out.threads] == [("closed", "consensus")]
    assert not any("SECRET" in m.content or "<think>" in m.content for m in out.messages)
    sent = [str(m.get("content")) for r in out.requests for m in r["messages"]]
    assert not any(THINKING in s for s in sent)


async def test_the_same_reply_every_turn_escalates(tmp_path: Path, server: LocalModelServer) -> None:
    out = await play(settings_for(tmp_path, server, {"default": "parrot:1b"}), server)
    escalation = one_model_trouble(out)
    assert "wrote the same message 3 times in a row" in escalation.reason
    assert len([m for m in out.messages if m.type == "comment"]) <= 6  # not 24 identical messages


async def test_a_slow_one_slot_server_is_not_flooded_and_the_message_names_the_setting(
    tmp_path: Path, server: LocalModelServer
) -> None:
    settings = settings_for(
        tmp_path, server, {"default": "slow:70b"}, model={"timeout_s": 0.5, "max_attempts": 4}
    )
    rt = make_runtime(settings)
    subscription = rt.bus.subscribe(maxsize=100_000)
    before = len(server.seen.requests)
    async with rt:
        rt.store.add_task(
            title="Slow",
            description="",
            roles=["architect", "reviewer"],
            priority="medium",
            project="default",
        )
        rt.capacity_changed()
        events: list[ev.Event] = []
        for _ in range(200):
            events += subscription.drain()
            if any(isinstance(e, ev.LLMFailed) for e in events):
                break
            await asyncio.sleep(0.05)
        sent = server.seen.requests[before:]
    [failed, *_] = [e for e in events if isinstance(e, ev.LLMFailed)]
    assert "raise model.timeout_s" in failed.error
    retries = [e for e in events if isinstance(e, ev.LLMRetry)]
    assert retries and "trying once more with 1s" in retries[0].reason  # shown live while it waits
    # once, then once more with twice the time: not the same request four times
    assert sum(1 for r in sent if r == sent[0]) == 2


@pytest.mark.slow
def test_status_checks_each_agents_model_and_says_plainly_when_one_cannot_work(
    tmp_path: Path, server: LocalModelServer
) -> None:
    import json
    import subprocess

    from helpers import BIN, cli_env

    config = tmp_path / "bzzz.toml"
    config.write_text(
        f"""
[model]
provider = "openai"
base_url = "{server.base_url}"

[models]
architect = "tool-model:8b"
reviewer = "gemma:2b"
documentation = "llama3.1:8b"

[runtime]
fleet = {{ architect = 1, reviewer = 1, documentation = 1 }}
""",
        encoding="utf-8",
    )
    db = f"sqlite:///{tmp_path / 'bzzz.db'}"
    env = cli_env(tmp_path, BZZZ_CONFIG=str(config))
    assert (
        subprocess.run([str(BIN), "db", "upgrade", "--db", db], env=env, capture_output=True).returncode == 0
    )
    done = subprocess.run(
        [str(BIN), "status", "--json", "--db", db], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr  # not healthy: two of the three models cannot work
    checks = {c["model"]: c for c in json.loads(done.stdout)["models"]}
    assert checks["tool-model:8b"]["ok"] and checks["tool-model:8b"]["roles"] == ["architect"]
    assert (checks["gemma:2b"]["listed"], checks["gemma:2b"]["tools"]) == (True, False)
    assert "does not support tools" in checks["gemma:2b"]["detail"]
    assert checks["llama3.1:8b"]["listed"] is False
    assert "ollama pull llama3.1:8b" in checks["llama3.1:8b"]["detail"]
    plain = subprocess.run(
        [str(BIN), "status", "--db", db], env=env, capture_output=True, text=True, timeout=60
    )
    lines = plain.stdout.splitlines()
    assert any(
        line.startswith("model") and "FAIL" in line and "gemma:2b (reviewer)" in line for line in lines
    )
    assert plain.stdout.rstrip().endswith("NOT healthy")


def test_the_console_shows_retries_and_failures_on_the_agent_and_thread_while_they_happen() -> None:
    from bzzz_console.tui.view import FleetView

    view = FleetView()
    view.apply(ev.AgentRegistered(agent_id="reviewer-1", role="reviewer", model="slow:70b"))
    view.apply(
        ev.ThreadCreated(
            thread_id="t-1", topic="Slow", participants=("reviewer-1",), task_id=None, project="p"
        )
    )
    view.apply(
        ev.LLMRetry(agent_id="reviewer-1", thread_id="t-1", attempt=1, delay_s=0.4, reason="no answer")
    )
    assert (
        view.agents["reviewer-1"].model_call == view.threads["t-1"].model_call == "retry 1 in 0.4s: no answer"
    )
    changed = view.apply(ev.LLMFailed(agent_id="reviewer-1", thread_id="t-1", error="raise model.timeout_s"))
    assert {"agents", "threads", "errors"} <= changed
    assert view.agents["reviewer-1"].model_call == "failed: raise model.timeout_s"
    assert view.errors[-1] == "reviewer-1: model call failed: raise model.timeout_s"
    view.apply(
        ev.LLMCalled(
            agent_id="reviewer-1",
            thread_id="t-1",
            model="slow:70b",
            prompt_tokens=10,
            completion_tokens=2,
            cached_tokens=0,
            cost_usd=None,
            latency_ms=1.0,
            attempts=1,
            estimated=True,
        )
    )
    agent = view.agents["reviewer-1"]
    assert agent.model_call == view.threads["t-1"].model_call == ""  # a call that worked clears it
    assert agent.tokens_estimated and agent.cost_unknown


def test_the_agents_and_threads_tables_mark_a_model_call_in_trouble() -> None:
    from datetime import UTC, datetime

    from bzzz_console.tui.tables import AgentsTable, ThreadsTable
    from bzzz_console.tui.view import FleetView

    view = FleetView()
    view.apply(ev.AgentRegistered(agent_id="reviewer-1", role="reviewer", model="slow:70b"))
    view.apply(
        ev.ThreadCreated(
            thread_id="t-1", topic="Slow", participants=("reviewer-1",), task_id=None, project="p"
        )
    )
    view.apply(
        ev.LLMRetry(agent_id="reviewer-1", thread_id="t-1", attempt=2, delay_s=0.4, reason="no answer")
    )
    now = datetime.now(UTC)
    [(_, agent_cells)] = list(AgentsTable().rows_for(view, now))
    [(_, thread_cells)] = list(ThreadsTable().rows_for(view, now))
    assert str(agent_cells[2]).endswith("⟳ retry 2") and str(thread_cells[1]).endswith("⟳ retry 2")
    view.apply(ev.LLMFailed(agent_id="reviewer-1", thread_id="t-1", error="no answer within 60s"))
    [(_, agent_cells)] = list(AgentsTable().rows_for(view, now))
    assert str(agent_cells[2]).endswith("✗ model failed")


def test_the_same_words_as_votes_on_new_revisions_are_not_a_model_going_round_in_circles() -> None:
    from datetime import UTC, datetime

    from bzzz_console.domain.lifecycle import AgentState
    from bzzz_console.domain.specs import load_specs
    from bzzz_console.domain.state import Agent, ThreadState
    from bzzz_console.domain.threads import MessageType, ThreadMessage, ThreadStatus
    from bzzz_console.runtime.threads.model_watch import ModelWatch, verdict

    spec = load_specs(agents_dir())["architect"]
    agent = Agent("architect-2", spec, "gpt-4o-mini", AgentState.COLLABORATING)
    now = datetime.now(UTC)

    def said(seq: int, kind: MessageType, reply_to: str | None) -> ThreadMessage:
        return ThreadMessage(f"t#{seq}", "t", seq, agent.id, "architect", kind, "Agreed.", now, reply_to)

    thread = ThreadState("t", "p", "topic", ThreadStatus.ACTIVE, [], [], 0, now)
    thread.messages = [said(i, MessageType.AGREE, f"t#{10 + i}") for i in range(3)]  # three revisions
    assert verdict(ModelWatch(), agent, "gpt-4o-mini", thread) is None
    thread.messages = [said(i, MessageType.COMMENT, None) for i in range(3)]  # the same comment three times
    reason = verdict(ModelWatch(), agent, "gpt-4o-mini", thread)
    assert reason is not None and "wrote the same message 3 times in a row" in reason


@pytest.mark.slow
def test_escalations_show_quotes_the_model_servers_last_error(
    tmp_path: Path, server: LocalModelServer
) -> None:
    import subprocess

    from helpers import BIN, cli_env

    settings = settings_for(tmp_path, server, {"default": "gemma:2b"})
    out = asyncio.run(play(settings, server))
    [escalation] = out.escalations
    shown = subprocess.run(
        [str(BIN), "escalations", "show", escalation.id, "--db", settings.database_url()],
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    [line] = [x for x in shown.stdout.splitlines() if x.startswith("model error: ")]
    assert "gemma:2b does not support tools" in line
