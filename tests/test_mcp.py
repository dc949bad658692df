"""The MCP server: the seed's six tools plus escalations/decide, through the mcp SDK ``Client``.

In memory (``Client(build_server(rt))``), over streamable HTTP behind the bearer token, over stdio against the
installed ``bzzz-console mcp`` command, and inside the running console (``--mcp-port``). Every node runs the
scripted demo model on a temporary SQLite database; most start from a copy of a database that a headless demo
run left behind (two consensus threads closed, one thread waiting for the operator on an open escalation).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from bzzz_console.app import make_runtime
from bzzz_console.cli.headless import run_headless
from bzzz_console.config import Settings
from bzzz_console.domain.lifecycle import AgentState
from bzzz_console.domain.principals import os_user
from bzzz_console.mcp.serve import HttpServer
from bzzz_console.mcp.server import build_server
from bzzz_console.runtime.runtime import Runtime
from bzzz_console.runtime.tools.registry import agent_tool_specs, registry
from bzzz_console.security.tokens import TokenBook

SEED_TOOLS = ("bzzz_announce", "bzzz_lookup", "bzzz_get", "bzzz_post", "bzzz_thread", "bzzz_subscribe")
OPERATOR_TOOLS = ("bzzz_escalations", "bzzz_decide", "bzzz_inbox")
ANY_THREAD = "bzzz://*@*/threads/{}"
COMMAND = Path(sys.executable).parent / "bzzz-console"


# -- nodes ------------------------------------------------------------------------------------------------
def _settings(folder: Path, **overrides: Any) -> Settings:
    data = {
        "data_dir": str(folder / "data"),
        "store": {"url": f"sqlite:///{folder / 'bzzz.db'}"},
        "demo": {"latency_ms": 0, "seed": 7},
        "runtime": {"poll_interval_s": 0.05},
        **overrides,
    }
    return Settings.model_validate(data)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database after ``run --headless --demo`` ran until idle: made once, copied by every test that needs it."""
    folder = tmp_path_factory.mktemp("demo-run")
    settings = _settings(folder)
    code = asyncio.run(run_headless(settings, demo=True, exit_when_idle=True, out=io.StringIO()))
    assert code == 0
    return folder / "bzzz.db"


def _copy_db(demo_db: Path, folder: Path) -> None:
    for file in demo_db.parent.glob(demo_db.name + "*"):
        shutil.copy(file, folder / file.name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A node on an empty database: the demo fleet, idle."""
    return _settings(tmp_path)


@pytest.fixture
def demo_settings(tmp_path: Path, demo_db: Path) -> Settings:
    """A node on a copy of the demo run's database: one escalation open, its agent escalating."""
    _copy_db(demo_db, tmp_path)
    return _settings(tmp_path)


@contextlib.asynccontextmanager
async def node(settings: Settings, *, readonly: bool = False) -> AsyncIterator[tuple[Runtime, Client]]:
    async with make_runtime(settings, force_demo=True) as rt:
        await asyncio.wait_for(rt.wait_idle(), 30)
        async with Client(build_server(rt, readonly=readonly)) as client:
            yield rt, client


async def ok(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict), result
    # the text content is the same document, for clients that read only text
    assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
    return result.structured_content


async def error(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    text: str = result.content[0].text  # type: ignore[union-attr]
    return text


async def eventually(check: Callable[[], Any], timeout: float = 10, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def state_of(rt: Runtime, agent_id: str) -> AgentState:
    return rt.agents[agent_id].state


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """A property's schema with ``$ref`` and ``anyOf [X, null]`` (an optional field) unwrapped."""
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in schema:
        [kind] = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return _resolve(kind, root)
    return schema


# -- the tool list ----------------------------------------------------------------------------------------
# §1.2 of the seed: property -> (JSON type, item type of an array)
SEED_SCHEMAS: dict[str, dict[str, tuple[str, str | None]]] = {
    "bzzz_announce": {
        "agent_id": ("string", None),
        "role": ("string", None),
        "capabilities": ("array", "string"),
        "specialization": ("string", None),
        "max_tasks": ("number", None),
    },
    "bzzz_lookup": {"semantic_address": ("string", None), "filter_criteria": ("object", None)},
    "bzzz_get": {
        "address": ("string", None),
        "include_metadata": ("boolean", None),
        "max_history": ("number", None),
    },
    "bzzz_post": {
        "target_address": ("string", None),
        "message_type": ("string", None),
        "content": ("object", None),
        "priority": ("string", None),
        "thread_id": ("string", None),
    },
    "bzzz_thread": {
        "action": ("string", None),
        "thread_id": ("string", None),
        "participants": ("array", "string"),
        "topic": ("string", None),
    },
    "bzzz_subscribe": {
        "event_types": ("array", "string"),
        "filter_address": ("string", None),
        "callback_webhook": ("string", None),
    },
}
SEED_DEFAULTS = {
    ("bzzz_announce", "max_tasks"): 3,
    ("bzzz_get", "include_metadata"): True,
    ("bzzz_get", "max_history"): 10,
}
SEED_ENUMS = {
    ("bzzz_post", "priority"): ["low", "medium", "high", "urgent"],
    ("bzzz_thread", "action"): ["create", "join", "leave", "list", "summarize"],
}


async def test_tools_have_the_seed_schemas_output_schemas_and_honest_annotations(settings: Settings) -> None:
    async with node(settings) as (_, client):
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {*SEED_TOOLS, *OPERATOR_TOOLS}  # request_human is for the node's own agents only

    for name, expected in SEED_SCHEMAS.items():
        schema = tools[name].input_schema
        assert schema["type"] == "object"
        props = schema["properties"]
        assert set(expected) <= set(props), (name, sorted(props))
        for prop, (kind, items) in expected.items():
            resolved = _resolve(props[prop], schema)
            assert resolved["type"] == kind, (name, prop, resolved)
            if items is not None:
                assert resolved["items"]["type"] == items, (name, prop, resolved)
    for (name, prop), default in SEED_DEFAULTS.items():
        assert tools[name].input_schema["properties"][prop]["default"] == default, (name, prop)
    for (name, prop), enum in SEED_ENUMS.items():
        assert (
            _resolve(tools[name].input_schema["properties"][prop], tools[name].input_schema)["enum"] == enum
        )
    lookup = tools["bzzz_lookup"].input_schema
    criteria = _resolve(lookup["properties"]["filter_criteria"], lookup)["properties"]
    assert _resolve(criteria["expertise"], lookup)["type"] == "array"
    assert _resolve(criteria["availability"], lookup)["type"] == "boolean"
    assert _resolve(criteria["performance_threshold"], lookup)["type"] == "number"
    assert tools["bzzz_post"].input_schema["properties"]["priority"]["default"] == "medium"

    for tool in tools.values():
        assert tool.description, tool.name
        assert tool.output_schema is not None and tool.output_schema["type"] == "object", tool.name
        hints = tool.annotations
        assert hints is not None, tool.name
        assert hints.read_only_hint is (tool.name in ("bzzz_lookup", "bzzz_get", "bzzz_escalations"))
        assert hints.destructive_hint is (
            tool.name in ("bzzz_decide", "bzzz_inbox")
        )  # both decide escalations

    # one code path: MCP clients see the arguments of the very registry the in-process agents use
    for name, tool in tools.items():
        if name == "bzzz_inbox":  # MCP's own (escalations as elicitations): not an agent tool
            continue
        model_schema = registry()[name].args.model_json_schema()
        assert set(tool.input_schema["properties"]) == set(model_schema["properties"]), name
        assert set(tool.input_schema.get("required", [])) == set(model_schema.get("required", [])), name
    offered = {spec.name: spec for spec in agent_tool_specs()}
    assert set(offered) - {"request_human"} <= set(tools)
    for name in set(offered) - {"request_human"}:
        assert set(offered[name].parameters["properties"]) == set(tools[name].input_schema["properties"])


async def test_bad_arguments_are_tool_errors_that_name_the_field(settings: Settings) -> None:
    async with node(settings) as (_, client):
        text = await error(client, "bzzz_lookup", {"semantic_address": "bzzz://architect"})
        assert "semantic_address" in text and "column" in text
        text = await error(client, "bzzz_get", {"address": "http://x@y/threads/1"})
        assert "address" in text and "column 0" in text and "bzzz://" in text
        text = await error(client, "bzzz_get", {"address": "bzzz://*@*/widgets/1"})
        assert "address" in text and "widgets" in text and "column" in text
        text = await error(client, "bzzz_thread", {"action": "archive"})
        assert "action" in text and "'create', 'join', 'leave', 'list' or 'summarize'" in text
        text = await error(
            client,
            "bzzz_post",
            {"target_address": "bzzz://x@*", "message_type": "comment", "content": {}, "priority": "asap"},
        )
        assert "priority" in text and "'low', 'medium', 'high' or 'urgent'" in text
        text = await error(client, "bzzz_get", {"max_history": 3})
        assert "address" in text and "Field required" in text
        text = await error(client, "bzzz_announce", {"agent_id": "ext-1"})
        assert "role" in text and "Field required" in text
        text = await error(client, "bzzz_announce", {"agent_id": "has space", "role": "reviewer"})
        assert "agent_id" in text and "pattern" in text
        text = await error(
            client, "bzzz_announce", {"agent_id": "ext-1", "role": "reviewer", "max_tasks": 2.5}
        )
        assert "max_tasks: must be a whole number" in text
        text = await error(client, "bzzz_get", {"address": "bzzz://*@*/threads/t", "max_history": -1})
        assert "max_history" in text
        text = await error(
            client,
            "bzzz_lookup",
            {"semantic_address": "bzzz://*@*", "filter_criteria": {"performance_threshold": 2}},
        )
        assert "performance_threshold" in text
        text = await error(client, "bzzz_subscribe", {"event_types": ["message_posted", "gossip"]})
        assert "event_types" in text and "gossip" in text and "message_posted" in text
        # handler-level checks name the field too
        await ok(client, "bzzz_announce", {"agent_id": "ext-1", "role": "reviewer"})
        text = await error(
            client,
            "bzzz_post",
            {
                "target_address": "bzzz://architect-1@*",
                "message_type": "rant",
                "content": {"text": "hi"},
                "agent_id": "ext-1",
            },
        )
        assert text.endswith(
            "message_type: 'rant' is not one of proposal, agree, disagree, question, answer, comment, summary"
        )
        text = await error(
            client,
            "bzzz_post",
            {
                "target_address": "bzzz://architect-1@*",
                "message_type": "comment",
                "content": {},
                "agent_id": "ext-1",
            },
        )
        assert "content.text: required" in text
        text = await error(
            client,
            "bzzz_post",
            {"target_address": "bzzz://architect-1@*", "message_type": "comment", "content": {"text": "hi"}},
        )
        assert "agent_id" in text and "bzzz_announce" in text
        text = await error(
            client,
            "bzzz_post",
            {
                "target_address": "bzzz://architect-1@*",
                "message_type": "comment",
                "content": {"text": "hi"},
                "agent_id": "nobody",
            },
        )
        assert "agent_id: 'nobody' is not announced" in text
        text = await error(client, "bzzz_announce", {"agent_id": "architect-1", "role": "architect"})
        assert "agent_id" in text and "own agents" in text
        text = await error(client, "bzzz_thread", {"action": "join", "agent_id": "ext-1"})
        assert "thread_id: required for join" in text
        text = await error(client, "bzzz_thread", {"action": "create", "participants": ["architect"]})
        assert "topic: required" in text


# -- announce, lookup, post, get, thread ------------------------------------------------------------------
async def test_announced_agent_is_first_class_found_by_lookup_and_invited(demo_settings: Settings) -> None:
    async with node(demo_settings) as (rt, client):
        announced = await ok(
            client,
            "bzzz_announce",
            {
                "agent_id": "ext-sec",
                "role": "reviewer",
                "capabilities": ["security_analysis", "threat_modeling"],
                "specialization": "Application security",
            },
        )
        assert announced["status"] == "announced" and announced["state"] == "idle"
        agent = rt.agents["ext-sec"]
        assert (agent.origin, agent.state, agent.spec.max_tasks) == ("mcp", AgentState.IDLE, 3)
        [row] = [a for a in rt.store.agents() if a.id == "ext-sec"]
        assert (row.origin, row.state) == ("mcp", "idle")

        found = await ok(client, "bzzz_lookup", {"semantic_address": "bzzz://ext-sec@*"})
        [match] = found["matches"]
        assert (match["agent_id"], match["state"], match["origin"], match["role"]) == (
            "ext-sec",
            "idle",
            "mcp",
            "reviewer",
        )
        reviewers = await ok(client, "bzzz_lookup", {"semantic_address": "bzzz://:reviewer@*"})
        assert {m["agent_id"] for m in reviewers["matches"]} == {"reviewer-1", "reviewer-2", "ext-sec"}
        by_expertise = await ok(
            client,
            "bzzz_lookup",
            {"semantic_address": "bzzz://:reviewer@*", "filter_criteria": {"expertise": ["threat_modeling"]}},
        )
        assert [m["agent_id"] for m in by_expertise["matches"]] == ["ext-sec"]
        available = await ok(
            client,
            "bzzz_lookup",
            {"semantic_address": "bzzz://*@*", "filter_criteria": {"availability": True}},
        )
        escalating = {a.id for a in rt.agents.values() if a.state is AgentState.ESCALATING}
        assert escalating and not escalating & {m["agent_id"] for m in available["matches"]}
        assert "ext-sec" in {m["agent_id"] for m in available["matches"]}
        proven = await ok(
            client,
            "bzzz_lookup",
            {"semantic_address": "bzzz://*@*", "filter_criteria": {"performance_threshold": 0.5}},
        )
        ids = {m["agent_id"] for m in proven["matches"]}
        assert "documentation-1" in ids  # its one finished thread ended in consensus
        assert "ext-sec" not in ids  # no track record yet

        # invited into a thread like any agent: by id, next to a role
        thread = await ok(
            client,
            "bzzz_thread",
            {
                "action": "create",
                "topic": "Threat model the webhook sender",
                "participants": ["ext-sec", "architect"],
            },
        )
        assert thread["action"] == "created" and thread["participants"][0] == "ext-sec"
        assert thread["participants"][1].startswith("architect-")
        assert state_of(rt, "ext-sec") is AgentState.COLLABORATING
        assert thread["thread_id"] in rt.agents["ext-sec"].threads

        # it speaks for itself (an agent that is not a participant cannot)
        await ok(client, "bzzz_announce", {"agent_id": "ext-other", "role": "tester"})
        text = await error(
            client,
            "bzzz_post",
            {
                "target_address": ANY_THREAD.format(thread["thread_id"]),
                "message_type": "comment",
                "content": {"text": "me too"},
                "agent_id": "ext-other",
            },
        )
        assert text.endswith(f"ext-other is not a participant of thread {thread['thread_id']}")
        # the thread id given separately, with an address that names no thread (its turn ends: the other goes on)
        first = await ok(
            client,
            "bzzz_post",
            {
                "target_address": "bzzz://*@*",
                "thread_id": thread["thread_id"],
                "message_type": "comment",
                "content": {"text": "Webhook receivers must verify the signature."},
                "agent_id": "ext-sec",
            },
        )
        # the thread named by the address; the last call here: the team may agree and close the thread after it
        posted = await ok(
            client,
            "bzzz_post",
            {
                "target_address": ANY_THREAD.format(thread["thread_id"]),
                "message_type": "proposal",
                "content": {
                    "text": "Sign every webhook body with HMAC-SHA256 and a timestamp.",
                    "reply_to": first["message_id"],
                },
                "priority": "high",
                "agent_id": "ext-sec",
            },
        )
        assert posted["status"] == "posted" and posted["thread_id"] == thread["thread_id"]
        assert posted["seq"] > first["seq"] > 1
        stored = {m.id: m for m in rt.store.messages(thread["thread_id"])}
        comment, proposal = stored[first["message_id"]], stored[posted["message_id"]]
        assert (comment.author, comment.type, comment.role) == ("ext-sec", "comment", "reviewer")
        assert (proposal.author, proposal.type, proposal.reply_to) == (
            "ext-sec",
            "proposal",
            first["message_id"],
        )
        assert proposal.content == "Sign every webhook body with HMAC-SHA256 and a timestamp."


async def test_post_to_an_agent_or_a_role_delivers_to_inboxes(settings: Settings) -> None:
    async with node(settings) as (rt, client):
        await ok(client, "bzzz_announce", {"agent_id": "ext-1", "role": "reviewer"})
        one = await ok(
            client,
            "bzzz_post",
            {
                "target_address": "bzzz://architect-2@*",
                "message_type": "question",
                "content": {"text": "Which store holds the limits?"},
                "priority": "urgent",
                "agent_id": "ext-1",
            },
        )
        assert one == {"status": "delivered", "delivered_to": ["architect-2"], "count": 1}
        assert (
            rt.agents["architect-2"].inbox[-1] == "[ext-1 · question · urgent] Which store holds the limits?"
        )
        assert not rt.agents["architect-1"].inbox
        role = await ok(
            client,
            "bzzz_post",
            {
                "target_address": "bzzz://:reviewer@*",
                "message_type": "comment",
                "content": {"text": "Please look at PR 42."},
                "agent_id": "ext-1",
            },
        )
        # every agent of the role, but not the sender itself
        assert sorted(role["delivered_to"]) == ["reviewer-1", "reviewer-2"] and role["count"] == 2
        for reviewer in ("reviewer-1", "reviewer-2"):
            assert rt.agents[reviewer].inbox[-1] == "[ext-1 · comment · medium] Please look at PR 42."
        assert not rt.agents["ext-1"].inbox
        text = await error(
            client,
            "bzzz_post",
            {
                "target_address": "bzzz://:astronaut@*",
                "message_type": "comment",
                "content": {"text": "hi"},
                "agent_id": "ext-1",
            },
        )
        assert "target_address: no agent matches" in text


async def test_get_reads_threads_tasks_agents_and_escalations(demo_settings: Settings) -> None:
    async with node(demo_settings) as (rt, client):
        threads = {t.topic.split(": ", 1)[1]: t for t in rt.store.threads()}
        closed = threads["Design the rate limiter for the public API"]
        address = ANY_THREAD.format(closed.id)
        got = await ok(client, "bzzz_get", {"address": address, "max_history": 2})
        assert got["thread_id"] == closed.id and got["status"] == "closed"
        last_two = [m.id for m in rt.store.messages(closed.id)][-2:]
        assert [m["id"] for m in got["messages"]] == last_two
        assert {"from", "role", "type", "content"} <= set(got["messages"][0])
        meta = got["metadata"]
        assert meta["message_count"] == closed.message_count and meta["project"] == "default"
        assert set(meta["participants"]) == {"architect-1", "architect-2", "reviewer-1", "reviewer-2"}
        default = await ok(client, "bzzz_get", {"address": address})
        assert len(default["messages"]) == min(10, closed.message_count)
        bare = await ok(client, "bzzz_get", {"address": address, "include_metadata": False, "max_history": 0})
        assert "metadata" not in bare and bare["messages"] == []

        assert closed.task_id is not None
        task = rt.store.get_task(closed.task_id)
        got_task = await ok(client, "bzzz_get", {"address": f"bzzz://*@default/tasks/{task.id}"})
        assert (got_task["task_id"], got_task["title"], got_task["status"]) == (task.id, task.title, "done")
        assert got_task["thread_id"] == closed.id and got_task["roles"] == ["architect", "reviewer"]

        agent = await ok(client, "bzzz_get", {"address": "bzzz://*@*/agents/documentation-1"})
        assert (agent["agent_id"], agent["role"], agent["state"]) == (
            "documentation-1",
            "documentation",
            "idle",
        )
        assert agent["metadata"]["origin"] == "local" and agent["metadata"]["consensus_rate"] == 1.0
        assert "metadata" not in await ok(
            client, "bzzz_get", {"address": "bzzz://*@*/agents/documentation-1", "include_metadata": False}
        )

        [open_escalation] = rt.store.escalations("open")
        escalation = await ok(client, "bzzz_get", {"address": f"bzzz://*@*/escalations/{open_escalation.id}"})
        assert (escalation["id"], escalation["state"], escalation["rule"]) == (
            open_escalation.id,
            "open",
            "Agent Request",
        )
        assert escalation["context"]["options"] and escalation["context"]["excerpt"]

        for missing in (
            "threads/nope",
            "tasks/nope",
            "agents/nope",
            "escalations/nope",
            "subscriptions/nope",
        ):
            text = await error(client, "bzzz_get", {"address": f"bzzz://*@*/{missing}"})
            assert "address: no " in text and "'nope'" in text
        card = await ok(client, "bzzz_get", {"address": "bzzz://architect-1@default"})  # no path: the agent
        assert (card["kind"], card["agent_id"], card["origin"]) == ("agent", "architect-1", "local")
        text = await error(client, "bzzz_get", {"address": "bzzz://nobody@default"})
        assert "address: no agent matches bzzz://nobody@default" in text


async def test_thread_join_leave_list_and_summarize(demo_settings: Settings) -> None:
    async with node(demo_settings) as (rt, client):
        await ok(client, "bzzz_announce", {"agent_id": "ext-1", "role": "reviewer"})
        await ok(client, "bzzz_announce", {"agent_id": "ext-2", "role": "tester"})
        listed = await ok(client, "bzzz_thread", {"action": "list"})
        assert listed["count"] == 3 == len(listed["threads"])
        assert sorted(t["status"] for t in listed["threads"]) == ["closed", "closed", "waiting_human"]

        # ext-1 opens a thread: its turn comes first, so the thread waits for it
        created = await ok(
            client,
            "bzzz_thread",
            {
                "action": "create",
                "topic": "Design a cache for lookups",
                "participants": ["architect", "reviewer"],
                "agent_id": "ext-1",
            },
        )
        tid = created["thread_id"]
        assert created["participants"][0] == "ext-1" and len(created["participants"]) == 3
        joined = await ok(client, "bzzz_thread", {"action": "join", "thread_id": tid, "agent_id": "ext-2"})
        assert joined["action"] == "joined" and joined["participants"][-1] == "ext-2"
        assert state_of(rt, "ext-2") is AgentState.COLLABORATING
        assert "already takes part" in await error(
            client, "bzzz_thread", {"action": "join", "thread_id": tid, "agent_id": "ext-2"}
        )
        assert (await ok(client, "bzzz_thread", {"action": "list"}))["count"] == 4

        # ext-2 leaves: out of the thread, and back to Idle (it has no other thread)
        left = await ok(client, "bzzz_thread", {"action": "leave", "thread_id": tid, "agent_id": "ext-2"})
        assert left == {"action": "left", "thread_id": tid}
        assert [p.agent_id for p in rt.store.participants(tid)] == created["participants"]
        assert state_of(rt, "ext-2") is AgentState.IDLE and not rt.agents["ext-2"].threads
        assert "does not take part" in await error(
            client, "bzzz_thread", {"action": "leave", "thread_id": tid, "agent_id": "ext-2"}
        )
        assert rt.store.get_thread(tid).message_count == 1  # still waiting for ext-1, whose turn it is

        # ext-1, whose turn it is, leaves: the thread does not wait for it any more, the others go on
        await ok(client, "bzzz_thread", {"action": "leave", "thread_id": tid, "agent_id": "ext-1"})
        assert state_of(rt, "ext-1") is AgentState.IDLE
        await asyncio.wait_for(rt.wait_idle(), 30)
        row = rt.store.get_thread(tid)
        assert row.message_count > 1 and row.status == "closed" and row.outcome == "consensus"

        summary = await ok(client, "bzzz_thread", {"action": "summarize", "thread_id": tid})
        assert summary["status"] == "closed" and summary["outcome"] == "consensus"
        assert summary["latest_proposal"] and summary["agreed"] and summary["pending"] == []
        assert set(summary["agreed"]) <= {p.agent_id for p in rt.store.participants(tid)}
        waiting = next(t for t in listed["threads"] if t["status"] == "waiting_human")
        summary = await ok(client, "bzzz_thread", {"action": "summarize", "thread_id": waiting["thread_id"]})
        assert summary["status"] == "waiting_human" and summary["pending"]
        assert summary["message_counts"]["proposal"] >= 2 and summary["message_counts"]["disagree"] >= 1
        assert "no thread 'nope'" in await error(
            client, "bzzz_thread", {"action": "summarize", "thread_id": "nope"}
        )
        assert "not an open thread" in await error(
            client, "bzzz_thread", {"action": "join", "thread_id": tid, "agent_id": "ext-2"}
        )


async def test_invitations_respect_availability_and_max_tasks(demo_settings: Settings) -> None:
    async with node(demo_settings) as (rt, client):
        [escalating] = [a.id for a in rt.agents.values() if a.state is AgentState.ESCALATING]
        text = await error(
            client,
            "bzzz_thread",
            {"action": "create", "topic": "Anything", "participants": [escalating, "documentation-1"]},
        )
        assert text.endswith(f"participants: {escalating} is escalating")

        await ok(client, "bzzz_announce", {"agent_id": "ext-one", "role": "reviewer", "max_tasks": 1})
        first = await ok(
            client,
            "bzzz_thread",
            {"action": "create", "topic": "One", "participants": ["documentation-1"], "agent_id": "ext-one"},
        )
        assert rt.agents["ext-one"].load == 1
        text = await error(
            client,
            "bzzz_thread",
            {"action": "create", "topic": "Two", "participants": ["ext-one", "documentation-1"]},
        )
        assert text.endswith("participants: ext-one is at its limit of 1 threads (max_tasks)")
        text = await error(
            client,
            "bzzz_thread",
            {"action": "create", "topic": "Two", "participants": ["documentation-1"], "agent_id": "ext-one"},
        )
        assert text.endswith("agent_id: ext-one is at its limit of 1 threads (max_tasks)")
        await ok(client, "bzzz_announce", {"agent_id": "ext-two", "role": "tester"})
        second = await ok(
            client,
            "bzzz_thread",
            {"action": "create", "topic": "Two", "participants": ["documentation-1"], "agent_id": "ext-two"},
        )
        text = await error(
            client, "bzzz_thread", {"action": "join", "thread_id": second["thread_id"], "agent_id": "ext-one"}
        )
        assert text.endswith("agent_id: ext-one is at its limit of 1 threads (max_tasks)")
        assert rt.agents["ext-one"].threads == {first["thread_id"]}


# -- subscriptions and webhooks ---------------------------------------------------------------------------
async def test_subscribe_filters_one_thread_and_is_read_with_get(settings: Settings) -> None:
    async with node(settings) as (rt, client):
        await ok(client, "bzzz_announce", {"agent_id": "ext-1", "role": "reviewer"})
        mine = await ok(
            client,
            "bzzz_thread",
            {
                "action": "create",
                "topic": "Pick a queue",
                "participants": ["architect-1"],
                "agent_id": "ext-1",
            },
        )
        other = await ok(
            client,
            "bzzz_thread",
            {
                "action": "create",
                "topic": "Name the service",
                "participants": ["documentation-1"],
                "agent_id": "ext-1",
            },
        )
        messages = await ok(
            client,
            "bzzz_subscribe",
            {
                "event_types": ["message_posted"],
                "filter_address": ANY_THREAD.format(mine["thread_id"]),
                "agent_id": "ext-1",
            },
        )
        assert messages["status"] == "subscribed" and messages["event_types"] == ["message_posted"]
        assert messages["address"] == f"bzzz://*@*/subscriptions/{messages['subscription_id']}"
        everything = await ok(
            client,
            "bzzz_subscribe",
            {"event_types": [], "filter_address": f"bzzz://*@default/threads/{mine['thread_id']}"},
        )
        assert everything["event_types"] == ["*"]
        unfiltered = await ok(client, "bzzz_subscribe", {"event_types": ["message_posted"]})

        for thread in (mine, other):
            await ok(
                client,
                "bzzz_post",
                {
                    "target_address": ANY_THREAD.format(thread["thread_id"]),
                    "message_type": "proposal",
                    "content": {"text": f"Proposal for {thread['topic']}"},
                    "agent_id": "ext-1",
                },
            )
        await asyncio.wait_for(rt.wait_idle(), 30)
        await ok(client, "bzzz_announce", {"agent_id": "ext-late", "role": "tester"})  # about no thread
        expected = [m.id for m in rt.store.messages(mine["thread_id"])][1:]  # after the opening message
        assert len(expected) >= 3 and rt.store.get_thread(mine["thread_id"]).status == "closed"

        first = await eventually(
            lambda: len(rt.subscriptions.by_id[messages["subscription_id"]].queue) >= len(expected),
            what="the subscription's events",
        )
        assert first
        page = await ok(client, "bzzz_get", {"address": messages["address"], "max_history": 2})
        assert [e["message_id"] for e in page["events"]] == expected[:2]
        assert all(
            e["kind"] == "message_posted" and e["thread_id"] == mine["thread_id"] for e in page["events"]
        )
        assert page["remaining"] == len(expected) - 2
        rest = await ok(client, "bzzz_get", {"address": messages["address"], "max_history": 0})
        assert [e["message_id"] for e in rest["events"]] == expected[2:] and rest["remaining"] == 0
        assert (await ok(client, "bzzz_get", {"address": messages["address"]}))["events"] == []

        # every kind, filtered by the thread (named with its project): only events about that thread, to its
        # very end (a closed thread is no longer in memory when its last events are delivered)
        def thread_seen_to_its_end() -> bool:
            queued = rt.subscriptions.by_id[everything["subscription_id"]].queue
            posted = [e["message_id"] for e in queued if e["kind"] == "message_posted"]
            closed = any(e["kind"] == "thread_status_changed" and e.get("status") == "closed" for e in queued)
            kinds = {e["kind"] for e in queued}
            return posted == expected and closed and {"consensus_reached", "agent_state_changed"} <= kinds

        await eventually(thread_seen_to_its_end, timeout=30, what="the thread's events, to its end")
        events = (await ok(client, "bzzz_get", {"address": everything["address"], "max_history": 0}))[
            "events"
        ]
        assert events and {e.get("thread_id") for e in events} == {mine["thread_id"]}
        kinds = [e["kind"] for e in events]
        assert {"message_posted", "consensus_reached", "thread_status_changed", "agent_state_changed"} <= set(
            kinds
        )
        assert [e["message_id"] for e in events if e["kind"] == "message_posted"] == expected
        # without a filter: both threads
        everything_posted = (
            await ok(client, "bzzz_get", {"address": unfiltered["address"], "max_history": 0})
        )["events"]
        assert {e["thread_id"] for e in everything_posted} == {mine["thread_id"], other["thread_id"]}

        agent_sub = await ok(
            client, "bzzz_subscribe", {"event_types": [], "filter_address": "bzzz://*@*/agents/ext-2"}
        )
        # an agent's address: the events about that agent, those inside a thread included
        await ok(client, "bzzz_announce", {"agent_id": "ext-2", "role": "tester"})
        await ok(
            client,
            "bzzz_thread",
            {"action": "create", "topic": "Test plan", "participants": ["reviewer-2"], "agent_id": "ext-2"},
        )

        def agent_seen_in_a_thread() -> bool:
            queued = rt.subscriptions.by_id[agent_sub["subscription_id"]].queue
            kinds = {e["kind"] for e in queued}
            in_thread = any(e["kind"] == "agent_state_changed" and e.get("thread_id") for e in queued)
            return {"agent_registered", "agent_state_changed"} <= kinds and in_thread

        await eventually(agent_seen_in_a_thread, timeout=30, what="the agent's events, in its thread")
        about = (await ok(client, "bzzz_get", {"address": agent_sub["address"], "max_history": 0}))["events"]
        assert {e["agent_id"] for e in about} == {"ext-2"}
        assert {"agent_registered", "agent_state_changed"} <= {e["kind"] for e in about}
        assert any(e["kind"] == "agent_state_changed" and e["thread_id"] for e in about)


class _Receiver:
    """A webhook receiver on 127.0.0.1 in a thread: answers with the next status of ``statuses`` (then 200), and
    keeps each delivery's raw body and headers."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.deliveries: list[tuple[bytes, dict[str, str]]] = []
        self.attempts = 0
        self.statuses = list(statuses or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.attempts += 1
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.bodies.append(json.loads(body))
                    receiver.deliveries.append((body, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def receiver_accepts(secret: str, body: bytes, headers: dict[str, str], now: float | None = None) -> bool:
    """What the README tells a receiver to do: recompute the HMAC over "<timestamp>.<body>" (the raw bytes),
    compare in constant time, and refuse a timestamp more than five minutes old (a replay)."""
    import hashlib
    import hmac

    timestamp = headers.get("x-bzzz-timestamp", "")
    if not timestamp.isdigit() or abs((now or time.time()) - int(timestamp)) > 300:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("x-bzzz-signature", ""), f"v1={expected}")


async def test_webhook_deliveries_are_signed_with_a_secret_shown_once(tmp_path: Path) -> None:
    with _Receiver(statuses=[503]) as receiver:
        settings = _settings(tmp_path, mcp={"webhook_hosts": [f"127.0.0.1:{receiver.port}"]})
        async with node(settings) as (rt, client):
            await ok(client, "bzzz_announce", {"agent_id": "ext-1", "role": "reviewer"})
            sub = await ok(
                client,
                "bzzz_subscribe",
                {
                    "event_types": ["thread_created", "message_posted"],
                    "callback_webhook": receiver.url,
                    "agent_id": "ext-1",
                },
            )
            secret = sub["webhook_secret"]
            assert sub["webhook"] == receiver.url and len(secret) >= 43  # token_urlsafe(32)
            assert "X-Bzzz-Signature" in sub["webhook_signature"]
            thread = await ok(
                client,
                "bzzz_thread",
                {
                    "action": "create",
                    "topic": "Webhooks",
                    "participants": ["architect-1"],
                    "agent_id": "ext-1",
                },
            )
            # thread_created + the opening message: the first POST gets a 503 and is retried after 0.2 s
            await eventually(lambda: len(receiver.bodies) >= 2, what="webhook deliveries")
            assert receiver.attempts >= 3
            assert all(b["subscription_id"] == sub["subscription_id"] for b in receiver.bodies)
            assert {b["event"]["kind"] for b in receiver.bodies} == {"thread_created", "message_posted"}
            assert {b["event"]["thread_id"] for b in receiver.bodies} == {thread["thread_id"]}
            # the receiver has the bodies a moment before the poster has read its responses and counted them
            subscription = rt.subscriptions.by_id[sub["subscription_id"]]
            await eventually(lambda: subscription.delivered >= 2, what="deliveries counted")
            state = await ok(client, "bzzz_get", {"address": sub["address"], "max_history": 0})
            assert state["webhook_delivered"] >= 2 and state["webhook_failed"] == 0
            assert {e["kind"] for e in state["events"]} == {"thread_created", "message_posted"}  # also queued
            # the secret was shown once: not by bzzz_get, not in the subscription's repr (what a log would show)
            assert secret not in json.dumps(state) and secret not in repr(subscription)
            second = await ok(client, "bzzz_subscribe", {"event_types": [], "callback_webhook": receiver.url})
            assert second["webhook_secret"] != secret  # one secret per subscription

    for body, headers in receiver.deliveries:
        assert headers["content-type"] == "application/json"
        assert receiver_accepts(secret, body, headers)
        assert not receiver_accepts(secret + "x", body, headers)  # a wrong secret fails
        assert not receiver_accepts(secret, body + b" ", headers)  # so does a changed body
        assert not receiver_accepts(secret, body, headers, now=time.time() + 301)  # and a replay, later
    stamps = [int(h["x-bzzz-timestamp"]) for _, h in receiver.deliveries]
    assert all(abs(time.time() - t) < 60 for t in stamps)


async def test_webhooks_go_only_to_listed_host_ports(tmp_path: Path) -> None:
    port = free_port()
    listed = _settings(tmp_path, mcp={"webhook_hosts": [f"127.0.0.1:{port}", "[::1]:9000"]})
    async with node(listed) as (rt, client):
        refused = {
            "http://127.0.0.1:22/": (
                f"127.0.0.1:22 is not on the allow-list (mcp.webhook_hosts = ['127.0.0.1:{port}', '[::1]:9000']); "
                'to allow it, add "127.0.0.1:22"'
            ),
            "http://127.0.0.1/hook": "127.0.0.1:80 is not on the allow-list",  # the scheme's port
            "https://127.0.0.1/hook": "127.0.0.1:443 is not on the allow-list",
            f"http://localhost:{port}/hook": f"localhost:{port} is not on the allow-list",  # host:port, exactly
            "http://10.0.0.1:8080/hook": "10.0.0.1:8080 is not on the allow-list",
            f"http://127.0.0.1.evil.example:{port}/hook": "is not on the allow-list",
            "http://[::1]:9001/": "[::1]:9001 is not on the allow-list",
            f"http://127.0.0.1:{port}@evil.example/": "evil.example:80 is not on the allow-list",
            "http://127.0.0.1:99999/": "has an invalid port",
            "file:///etc/passwd": "not an http(s) URL",
        }
        for url, expected in refused.items():
            text = await error(client, "bzzz_subscribe", {"event_types": [], "callback_webhook": url})
            assert "callback_webhook: " in text, text
            assert expected in text, (url, text)
        accepted = [f"http://127.0.0.1:{port}/hook", "http://[0:0::1]:9000/x"]  # IPv6 however it is written
        for url in accepted:
            assert (await ok(client, "bzzz_subscribe", {"event_types": [], "callback_webhook": url}))[
                "webhook"
            ]
        assert len(rt.subscriptions.by_id) == len(accepted)
    # the default: no webhooks at all, and the error says how to allow one
    async with node(_settings(tmp_path / "default")) as (rt, client):
        text = await error(
            client, "bzzz_subscribe", {"event_types": [], "callback_webhook": "http://127.0.0.1:8080/hook"}
        )
        assert (
            "webhooks are off (mcp.webhook_hosts is empty); "
            'to allow this one, set mcp.webhook_hosts = ["127.0.0.1:8080"]' in text
        )
        assert not rt.subscriptions.by_id


async def test_the_mcp_server_itself_is_never_a_webhook_target(tmp_path: Path) -> None:
    from bzzz_console.runtime.subscriptions import resolves_locally

    port = free_port()
    hosts = [f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"0.0.0.0:{port}"]
    settings = _settings(tmp_path, mcp={"webhook_hosts": hosts})
    async with make_runtime(settings, force_demo=True) as rt:
        server = HttpServer(rt, port, book(settings), readonly=False)
        await server.start()
        try:
            async with Client(build_server(rt)) as client:
                for host in ("127.0.0.1", "localhost", "[::1]", "0.0.0.0"):
                    text = await error(
                        client,
                        "bzzz_subscribe",
                        {"event_types": [], "callback_webhook": f"http://{host}:{port}/mcp"},
                    )
                    assert f":{port} is this node's own MCP server" in text, text
            assert not rt.subscriptions.by_id
        finally:
            await server.stop()
    # a name that resolves here is looked up (only for the server's port)
    assert await resolves_locally(f"http://localhost:{port}/", {port})
    assert not await resolves_locally(f"http://localhost:{port + 1}/", {port})


def test_webhook_hosts_must_be_host_port(tmp_path: Path) -> None:
    from bzzz_console.config import ConfigError, load_settings

    config = tmp_path / "config.toml"
    for bad in ('["127.0.0.1"]', '["::1:9000"]', '["hooks.example:0"]', '["http://hooks.example:443"]'):
        config.write_text(f"[mcp]\nwebhook_hosts = {bad}\n")
        with pytest.raises(ConfigError) as caught:
            load_settings(config, environ={})
        message = str(caught.value)
        assert f"key 'mcp.webhook_hosts' in config file {config}" in message, message
        assert "expected host:port entries such as '127.0.0.1:8080'" in message
    config.write_text('[mcp]\nwebhook_hosts = ["Hooks.Example:443", "[0:0::1]:9000", " 127.0.0.1:8080 "]\n')
    assert load_settings(config, environ={}).mcp.webhook_hosts == [
        "hooks.example:443",
        "[::1]:9000",
        "127.0.0.1:8080",
    ]
    assert Settings().mcp.webhook_hosts == []  # off unless allowed


# -- escalations and decisions ----------------------------------------------------------------------------
async def test_escalations_list_show_and_decide_once(demo_settings: Settings) -> None:
    async with node(demo_settings) as (rt, client):
        listed = await ok(client, "bzzz_escalations", {})
        [escalation] = listed["escalations"]
        assert (
            listed["count"] == 1 and escalation["state"] == "open" and escalation["rule"] == "Agent Request"
        )
        agent_id, thread_id = escalation["agent_id"], escalation["thread_id"]
        assert rt.agents[agent_id].state is AgentState.ESCALATING
        shown = await ok(client, "bzzz_escalations", {"action": "show", "escalation_id": escalation["id"]})
        assert shown["id"] == escalation["id"] and shown["context"]["options"] and shown["decision"] is None
        assert "escalation_id: required for show" in await error(
            client, "bzzz_escalations", {"action": "show"}
        )
        assert "no escalation 'esc-nope'" in await error(
            client, "bzzz_escalations", {"action": "show", "escalation_id": "esc-nope"}
        )

        decided = await ok(
            client,
            "bzzz_decide",
            {"escalation_id": escalation["id"], "decision": "approve", "note": "online is fine"},
        )
        assert decided == {
            "status": "decided",
            "escalation_id": escalation["id"],
            "decision": "approve",
            "by": os_user(),  # an in-memory server serves the local OS user as operator
            "state": "answered",
        }
        assert rt.agents[agent_id].state is not AgentState.ESCALATING  # the agent resumed
        await asyncio.wait_for(rt.wait_idle(), 30)
        assert rt.store.get_thread(thread_id).status != "waiting_human"
        row = rt.store.get_escalation(escalation["id"])
        assert row is not None and row.state == "answered" and row.answered_by == os_user()
        assert row.decision is not None and row.decision["kind"] == "approve"

        again = await error(client, "bzzz_decide", {"escalation_id": escalation["id"], "decision": "approve"})
        assert "already answered" in again
        assert (await ok(client, "bzzz_escalations", {}))["count"] == 0
        closed = await ok(client, "bzzz_escalations", {"include_closed": True})
        assert [e["state"] for e in closed["escalations"]] == ["answered"]
        assert "decision" in await error(
            client, "bzzz_decide", {"escalation_id": escalation["id"], "decision": "ignore"}
        )


async def test_readonly_server_refuses_decide(demo_settings: Settings) -> None:
    async with node(demo_settings, readonly=True) as (rt, client):
        [escalation] = (await ok(client, "bzzz_escalations", {}))["escalations"]
        text = await error(client, "bzzz_decide", {"escalation_id": escalation["id"], "decision": "approve"})
        assert "bzzz_decide is refused: this server is read-only" in text
        row = rt.store.get_escalation(escalation["id"])
        assert row is not None and row.state == "open"
        # the read tools still work
        await ok(client, "bzzz_lookup", {"semantic_address": "bzzz://*@*"})


async def test_readonly_setting_refuses_decide(tmp_path: Path, demo_db: Path) -> None:
    _copy_db(demo_db, tmp_path)
    async with node(_settings(tmp_path, mcp={"readonly": True})) as (rt, client):
        [escalation] = rt.store.escalations("open")
        text = await error(client, "bzzz_decide", {"escalation_id": escalation.id, "decision": "approve"})
        assert "read-only" in text


# -- HTTP -------------------------------------------------------------------------------------------------
def book(settings: Settings) -> TokenBook:
    return TokenBook(settings.resolved_data_dir())


def operator_token(settings: Settings, name: str = "alice") -> str:
    return book(settings).issue("operator", name)[0]


@contextlib.asynccontextmanager
async def http_client(url: str, token: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


async def test_http_needs_the_bearer_token(settings: Settings) -> None:
    token = operator_token(settings)
    async with make_runtime(settings, force_demo=True) as rt:
        server = HttpServer(rt, free_port(), book(settings), readonly=False)
        await server.start()
        try:
            assert server.url.startswith("http://127.0.0.1:")
            async with http_client(server.url, token) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                assert names == {*SEED_TOOLS, *OPERATOR_TOOLS}
                announced = await ok(client, "bzzz_announce", {"agent_id": "ext-http", "role": "architect"})
                assert announced["state"] == "idle" and rt.agents["ext-http"].origin == "mcp"
                found = await ok(client, "bzzz_lookup", {"semantic_address": "bzzz://ext-http@*"})
                assert found["count"] == 1
                assert "semantic_address" in await error(client, "bzzz_lookup", {"semantic_address": "x"})

            request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
            headers = {"accept": "application/json, text/event-stream"}
            async with httpx2.AsyncClient() as raw:
                for auth in ({}, {"authorization": "Bearer wrong"}, {"authorization": token}):
                    response = await raw.post(server.url, json=request, headers={**headers, **auth})
                    assert response.status_code == 401, auth
                    assert response.headers["www-authenticate"].startswith("Bearer")
                    assert response.headers["content-type"] == "application/json"
                    body = response.json()
                    assert body["error"] == "unauthorized" and "bzzz-console mcp token" in body["detail"]
                response = await raw.get(f"http://127.0.0.1:{server.port}/")
                assert response.status_code == 401  # every path, not only /mcp
            with pytest.raises(Exception):  # noqa: B017 - the SDK wraps the 401 in its own errors
                async with http_client(server.url, "wrong") as client:
                    await client.list_tools()
        finally:
            await server.stop()


async def test_http_readonly_refuses_decide(demo_settings: Settings) -> None:
    token = operator_token(demo_settings)
    async with make_runtime(demo_settings, force_demo=True) as rt:
        server = HttpServer(rt, free_port(), book(demo_settings), readonly=True)
        await server.start()
        try:
            async with http_client(server.url, token) as client:
                [escalation] = (await ok(client, "bzzz_escalations", {}))["escalations"]
                text = await error(
                    client, "bzzz_decide", {"escalation_id": escalation["id"], "decision": "approve"}
                )
                assert "read-only" in text
        finally:
            await server.stop()


# -- processes: the installed command --------------------------------------------------------------------
def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_") and k != "OPENAI_API_KEY"}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg-data")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg-config")
    return env


@pytest.mark.slow
async def test_stdio_serves_the_installed_command_on_the_same_database(tmp_path: Path, demo_db: Path) -> None:
    _copy_db(demo_db, tmp_path)
    url = f"sqlite:///{tmp_path / 'bzzz.db'}"
    params = StdioServerParameters(
        command=str(COMMAND), args=["mcp", "--demo", "--db", url], env=_env(tmp_path)
    )
    async with Client(params) as client:  # the client works: stdout carries nothing but the protocol
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == {*SEED_TOOLS, *OPERATOR_TOOLS}
        listed = await ok(client, "bzzz_escalations", {})
        [escalation] = listed["escalations"]
        assert escalation["state"] == "open" and escalation["rule"] == "Agent Request"
        await ok(client, "bzzz_announce", {"agent_id": "ext-stdio", "role": "reviewer"})
        found = await ok(client, "bzzz_lookup", {"semantic_address": "bzzz://ext-stdio@*"})
        assert found["matches"][0]["origin"] == "mcp"
        assert "semantic_address" in await error(client, "bzzz_lookup", {"semantic_address": "nope"})
    # the node wrote to the same database (the announced agent is there) and logged to its file
    from bzzz_console.store.repo import Store

    store = Store.open(url)
    try:
        assert {a.id: a.origin for a in store.agents()}["ext-stdio"] == "mcp"
    finally:
        store.close()
    log = tmp_path / "xdg-data" / "bzzz-console" / "bzzz-console.log"
    assert "Tool 'bzzz_lookup' failed" in log.read_text()


@pytest.mark.slow
def test_stdio_stdout_carries_only_the_protocol_and_logs_go_to_the_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bzzz.db'}"
    proc = subprocess.Popen(
        [str(COMMAND), "mcp", "--demo", "--db", url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp_path),
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []

    def send(message: dict[str, Any]) -> None:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
        proc.stdin.flush()

    def answer(request_id: int) -> dict[str, Any]:
        assert proc.stdout is not None
        while True:
            line = proc.stdout.readline()
            assert line, "the server closed stdout"
            lines.append(line)
            message = json.loads(line)
            if message.get("id") == request_id:
                return dict(message)

    try:
        send(
            {
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "test", "version": "1"},
                },
            }
        )
        assert answer(1)["result"]["serverInfo"]["name"] == "bzzz"
        send({"method": "notifications/initialized"})
        # two failing calls: the server logs both (INFO), which must not reach stdout
        send(
            {
                "id": 2,
                "method": "tools/call",
                "params": {"name": "bzzz_lookup", "arguments": {"semantic_address": "x"}},
            }
        )
        assert answer(2)["result"]["isError"] is True
        send(
            {"id": 3, "method": "tools/call", "params": {"name": "bzzz_thread", "arguments": {"action": "x"}}}
        )
        assert answer(3)["result"]["isError"] is True
        proc.stdin.close()
        lines += proc.stdout.readlines()
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for line in lines:  # every line on stdout is a JSON-RPC message
        assert json.loads(line)["jsonrpc"] == "2.0", line
    assert proc.stderr.read() == ""
    log = (tmp_path / "xdg-data" / "bzzz-console" / "bzzz-console.log").read_text()
    assert "Tool 'bzzz_lookup' failed" in log and "Tool 'bzzz_thread' rejected arguments" in log


# -- the console ------------------------------------------------------------------------------------------
async def test_a_tool_call_over_mcp_shows_up_in_the_running_console(settings: Settings) -> None:
    from bzzz_console.tui.app import BzzzApp
    from bzzz_console.tui.tables import AgentsTable

    port = free_port()
    app = BzzzApp(settings, demo=True, mcp_port=port)
    async with app.run_test(size=(160, 48)) as pilot:
        # (not read from the status line: the runtime_started event can overwrite its MCP suffix)
        await eventually(
            lambda: app._mcp is not None and app._mcp.server.started and app._mcp.port == port,
            what="the console's MCP server",
        )
        async with http_client(f"http://127.0.0.1:{port}/mcp", operator_token(settings)) as client:
            await ok(
                client,
                "bzzz_announce",
                {"agent_id": "ext-console", "role": "reviewer", "capabilities": ["sql"]},
            )
        await eventually(lambda: "ext-console" in app.view.agents, what="the agent in the console's view")
        assert app.view.agents["ext-console"].state == "idle"
        table = app.screen.query_one("#agents", AgentsTable)

        def row() -> list[Any] | None:
            try:
                return table.get_row("ext-console")
            except Exception:
                return None

        cells = await eventually(row, what="the agent's row in the agents table")
        await pilot.pause()
        assert str(cells[0]) == "ext-console" and str(cells[1]) == "reviewer" and "Idle" in str(cells[2])


async def test_unknown_arguments_are_refused_with_their_name_not_dropped(settings: Settings) -> None:
    async with node(settings) as (_, client):
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert all(t.input_schema.get("additionalProperties") is False for t in listed.values())
        text = await error(
            client, "bzzz_lookup", {"semantic_address": "bzzz://reviewer@*", "filter_critera": {}}
        )
        assert "filter_critera" in text and "Extra inputs are not permitted" in text
        assert (await ok(client, "bzzz_lookup", {"semantic_address": "bzzz://reviewer@*"}))["count"] >= 1
