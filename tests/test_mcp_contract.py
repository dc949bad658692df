"""The MCP tool contract as an outside client meets it, with the real ``mcp`` client: every address a tool hands
out can be read back with ``bzzz_get`` (agents, roles, threads, tasks, escalations, subscriptions, a Go node's
task and escalation), a thread can be opened by its creator alone and joined later, and every tool publishes a
concrete output schema that its results satisfy (the client checks each result against it)."""

from __future__ import annotations

import asyncio
from typing import Any

from test_go_interop import ESCALATION, GO_PEER, HIVE_15, TASK_AVAILABLE, go_message
from test_mcp import _settings, demo_db, demo_settings, error, node, ok, settings  # noqa: F401

from bzzz_console.config import Settings
from bzzz_console.domain.lifecycle import AgentState
from bzzz_console.p2p.service import Network
from bzzz_console.p2p.wire import decode
from bzzz_console.runtime.tools.registry import registry

GET_KINDS = {"thread", "task", "agent", "agents", "escalation", "subscription"}


def _branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The object schemas a result may have: the root, or each ``oneOf`` branch (resolved)."""
    if "oneOf" not in schema:
        return [schema]
    return [schema["$defs"][b["$ref"].rsplit("/", 1)[1]] for b in schema["oneOf"]]


def _keys(node_: Any) -> set[str]:
    if isinstance(node_, dict):
        return set(node_) | {k for v in node_.values() for k in _keys(v)}
    if isinstance(node_, list):
        return {k for v in node_ for k in _keys(v)}
    return set()


async def test_every_tool_publishes_a_concrete_output_schema(settings: Settings) -> None:  # noqa: F811
    async with node(settings) as (_, client):
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == set(registry()) - {"request_human"} | {"bzzz_inbox"}  # the inbox is MCP's own
    for name, tool in tools.items():
        schema = tool.output_schema
        assert schema is not None and schema["type"] == "object", name
        assert "discriminator" not in _keys(schema), name  # plain JSON Schema: strict validators accept it
        for branch in _branches(schema):
            assert branch["type"] == "object" and branch["properties"], (name, branch)
            assert branch["additionalProperties"] is False, (name, branch.get("title"))
            assert branch.get("required"), (name, branch.get("title"))
    kinds = {b["properties"]["kind"]["const"] for b in _branches(tools["bzzz_get"].output_schema or {})}
    assert kinds == GET_KINDS
    for name, field in (("bzzz_thread", "action"), ("bzzz_escalations", "action"), ("bzzz_decide", "status")):
        consts = [b["properties"][field] for b in _branches(tools[name].output_schema or {})]
        assert all("const" in c or "enum" in c for c in consts), name
    card = tools["bzzz_lookup"].output_schema or {}
    agent = card["$defs"]["AgentCard"]["properties"]
    assert {"agent_id", "role", "capabilities", "state", "origin", "address"} <= set(agent)


async def test_get_reads_every_address_the_tools_hand_out(demo_settings: Settings) -> None:  # noqa: F811
    async with node(demo_settings) as (rt, client):
        announced = await ok(
            client,
            "bzzz_announce",
            {"agent_id": "ext-1", "role": "reviewer", "capabilities": ["rust", "review"]},
        )
        assert announced["address"] == "bzzz://ext-1:reviewer@*"
        card = await ok(client, "bzzz_get", {"address": announced["address"]})
        assert (card["kind"], card["agent_id"], card["role"], card["state"], card["origin"]) == (
            "agent",
            "ext-1",
            "reviewer",
            "idle",
            "mcp",
        )
        assert card["capabilities"] == ["rust", "review"] and card["metadata"]["threads"] == []
        assert (await ok(client, "bzzz_get", {"address": "bzzz://ext-1@*"}))["agent_id"] == "ext-1"

        found = await ok(client, "bzzz_lookup", {"semantic_address": "bzzz://reviewer@*"})
        assert found["count"] >= 3
        for match in found["matches"]:  # each address lookup hands out reads back as that agent
            got = await ok(client, "bzzz_get", {"address": match["address"], "include_metadata": False})
            assert got["agent_id"] == match["agent_id"] and "metadata" not in got
        role = await ok(client, "bzzz_get", {"address": found["address"]})  # the role: its agents
        assert role["kind"] == "agents" and role["count"] == found["count"]
        assert {m["agent_id"] for m in role["matches"]} == {m["agent_id"] for m in found["matches"]}
        by_role = await ok(client, "bzzz_get", {"address": "bzzz://:reviewer@default"})
        assert by_role["count"] == found["count"]
        everyone = await ok(client, "bzzz_get", {"address": "bzzz://*@*"})
        assert everyone["count"] == len(rt.agents)
        assert "address: no agent matches bzzz://ext-1:architect@*" in await error(
            client, "bzzz_get", {"address": "bzzz://ext-1:architect@*"}
        )

        thread = next(t for t in rt.store.threads() if t.task_id)
        listed = await ok(client, "bzzz_thread", {"action": "list"})
        assert thread.id in {t["thread_id"] for t in listed["threads"]}
        got_thread = await ok(
            client, "bzzz_get", {"address": f"bzzz://*@{thread.project}/threads/{thread.id}"}
        )
        assert got_thread["kind"] == "thread" and got_thread["thread_id"] == thread.id
        task = await ok(client, "bzzz_get", {"address": f"bzzz://*@*/tasks/{thread.task_id}"})
        assert (task["kind"], task["thread_id"], task["source"]) == ("task", thread.id, "demo")
        assert "network" not in task
        segment = await ok(client, "bzzz_get", {"address": f"bzzz://*@{thread.project}:{thread.task_id}"})
        assert segment["task_id"] == thread.task_id

        listed_esc = await ok(client, "bzzz_escalations", {"action": "list"})
        [open_one] = listed_esc["escalations"]
        escalation = await ok(client, "bzzz_get", {"address": f"bzzz://*@*/escalations/{open_one['id']}"})
        assert escalation["kind"] == "escalation" and escalation["read_only"] is None

        sub = await ok(client, "bzzz_subscribe", {"event_types": ["agent_registered"], "agent_id": "ext-1"})
        await ok(client, "bzzz_announce", {"agent_id": "ext-2", "role": "tester"})
        events = await ok(client, "bzzz_get", {"address": sub["address"]})
        assert events["kind"] == "subscription" and events["events"][0]["agent_id"] == "ext-2"

        # what a Go BZZZ node announced and escalated
        net = Network(rt)
        net._on_message(decode(go_message("task_announcement", TASK_AVAILABLE)), GO_PEER)
        net._on_message(decode(go_message("meta_discussion", ESCALATION)), GO_PEER)
        go_task = await ok(client, "bzzz_get", {"address": f"bzzz://*@*/tasks/{HIVE_15}"})
        assert (go_task["title"], go_task["status"], go_task["source"]) == (
            "Add WebSocket support for real-time coordination",
            "blocked",
            "p2p",
        )
        network = go_task["network"]
        assert (network["origin"], network["repository"], network["number"]) == (
            "go",
            "deepblackcloud/hive",
            15,
        )
        assert network["labels"] == ["bzzz-task", "feature", "realtime"] and network["estimated_hours"] == 8
        assert (
            network["required_skills"] == ["websockets", "python", "fastapi"]
            and network["difficulty"] == "medium"
        )
        assert network["depends_on"] == ["bzzz#23"] and network["waiting_for"] == ["bzzz#23"]
        go_esc = next(e for e in rt.store.escalations() if e.origin_peer == GO_PEER)
        shown = await ok(client, "bzzz_get", {"address": f"bzzz://*@*/escalations/{go_esc.id}"})
        assert shown["rule"] == "go-node escalation" and "no way to receive an answer" in shown["read_only"]
        assert shown["origin_peer"] == GO_PEER and shown["context"]["go_node"] is True
        text = await error(client, "bzzz_decide", {"escalation_id": go_esc.id, "decision": "approve"})
        assert "is read-only: raised by a Go BZZZ node" in text
        again = await ok(client, "bzzz_escalations", {"action": "show", "escalation_id": go_esc.id})
        assert again["action"] == "show" and again["state"] == "open" and again["read_only"]


async def test_a_thread_is_created_by_its_creator_alone_and_joined_later(settings: Settings) -> None:  # noqa: F811
    async with node(settings) as (rt, client):
        await ok(client, "bzzz_announce", {"agent_id": "ext-1", "role": "architect"})
        await ok(client, "bzzz_announce", {"agent_id": "ext-2", "role": "reviewer"})
        created = await ok(
            client, "bzzz_thread", {"action": "create", "topic": "Pick a queue", "agent_id": "ext-1"}
        )
        tid = created["thread_id"]
        assert (created["action"], created["participants"], created["status"]) == (
            "created",
            ["ext-1"],
            "active",
        )
        assert rt.agents["ext-1"].state is AgentState.ACTIVE  # in a thread, alone: not collaborating yet

        proposal = {
            "target_address": f"bzzz://*@*/threads/{tid}",
            "message_type": "proposal",
            "content": {"text": "Use a Redis stream."},
            "agent_id": "ext-1",
        }
        await ok(client, "bzzz_post", proposal)
        await asyncio.wait_for(rt.wait_idle(), 30)
        row = rt.store.get_thread(tid)
        assert row.status == "active" and row.outcome is None  # one participant: no consensus of one
        summary = await ok(client, "bzzz_thread", {"action": "summarize", "thread_id": tid})
        assert summary["action"] == "summarize" and summary["pending"] == [] and summary["agreed"] == []

        joined = await ok(client, "bzzz_thread", {"action": "join", "thread_id": tid, "agent_id": "ext-2"})
        assert joined["action"] == "joined" and joined["participants"] == ["ext-1", "ext-2"]
        assert rt.agents["ext-2"].state is AgentState.COLLABORATING
        assert (await ok(client, "bzzz_thread", {"action": "summarize", "thread_id": tid}))["pending"] == [
            "ext-2"
        ]
        agree = {**proposal, "message_type": "agree", "content": {"text": "Agreed."}, "agent_id": "ext-2"}
        posted = await ok(client, "bzzz_post", agree)
        assert posted["status"] == "posted"
        await asyncio.wait_for(rt.wait_idle(), 30)
        row = rt.store.get_thread(tid)
        assert (row.status, row.outcome) == ("closed", "consensus")

        text = await error(client, "bzzz_thread", {"action": "create", "topic": "Nobody"})
        assert "participants: name at least one agent or role" in text
        alone = await ok(
            client, "bzzz_thread", {"action": "create", "topic": "Docs", "participants": ["documentation-1"]}
        )
        await asyncio.wait_for(rt.wait_idle(), 30)
        waiting = rt.store.get_thread(alone["thread_id"])
        assert waiting.status == "active" and waiting.message_count == 1  # a local agent alone takes no turn
