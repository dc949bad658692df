"""Runtimes on the network: real libp2p nodes on 127.0.0.1, each runtime with its own SQLite file, data dir
(node key) and scripted model server. Agents of one node show up on the other, an escalation raised on A is
answered on B and applied by A once, tasks announced on the network are taken on, nodes stop cleanly.

Every wait polls with a generous deadline; nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import BIN, cli_env, eventually
from test_escalations import Node, Script, escalated_script, node, post

from bzzz_console.config import ConfigError, load_settings
from bzzz_console.domain import commands as cmd
from bzzz_console.domain import events as ev
from bzzz_console.domain.addresses import parse_address
from bzzz_console.domain.errors import CommandError
from bzzz_console.domain.lifecycle import AgentState
from bzzz_console.p2p.node import NodeConfig, P2PError, P2PNode
from bzzz_console.p2p.signing import SignatureError, public_key_of_peer, sign, verify
from bzzz_console.p2p.tasks import network_task_id
from bzzz_console.p2p.wire import MessageType, WireMessage
from bzzz_console.runtime.tools.directory import lookup_agents

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
DEADLINE_S = 30.0
LOOPBACK = {"enabled": True, "listen": ["/ip4/127.0.0.1/tcp/0"], "availability_interval_s": 1}


def address(n: Node) -> str:
    assert n.rt.network is not None and n.rt.network.node is not None
    return n.rt.network.node.addrs[0]


def peer(n: Node) -> str:
    assert n.rt.network is not None
    return n.rt.network.peer_id


@contextlib.asynccontextmanager
async def joined(tmp_path: Path, name: str, script: Script, *peers: Node, **p2p: Any) -> AsyncIterator[Node]:
    folder = tmp_path / name
    folder.mkdir()
    settings = {**LOOPBACK, "peers": [address(p) for p in peers], **p2p}
    async with node(folder, script, p2p=settings) as n:
        for other in peers:
            await eventually(
                lambda o=other: peer(o) in n.rt.network.node.subscribed_peers(), "the peer's topics"
            )
        yield n


async def escalated_on(a: Node) -> str:
    """A's reviewer asks a human; the escalation's id."""
    await a.rt.submit(cmd.AddTask(title="Pick a cache strategy", roles=("architect", "reviewer")))
    row = await eventually(lambda: a.rt.store.escalations("open"), "A's escalation")
    return str(row[0].id)


# -- pure parts ---------------------------------------------------------------------------------------------------


def test_a_signed_payload_verifies_with_the_peer_id_alone_and_tampering_is_caught() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from bzzz_console.p2p.bridge import peer_id_from_seed

    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    peer_id = peer_id_from_seed(seed)
    assert public_key_of_peer(peer_id).public_bytes_raw() == key.public_key().public_bytes_raw()
    signed = sign({"escalation_id": "esc-1", "decision": "approve", "by": "ann"}, key)
    verify(signed, peer_id)
    with pytest.raises(SignatureError, match="not made by"):
        verify({**signed, "decision": "reject"}, peer_id)
    other = peer_id_from_seed(bytes(32))
    with pytest.raises(SignatureError, match="not made by"):
        verify(signed, other)
    with pytest.raises(SignatureError, match="missing"):
        verify({"decision": "approve"}, peer_id)
    with pytest.raises(SignatureError, match="base58"):
        public_key_of_peer("12D3KooW0OIl")


def test_a_remote_decision_becomes_the_owners_command_or_a_clear_error() -> None:
    from bzzz_console.p2p.escalation_sync import command_from
    from bzzz_console.store.tables import EscalationRow

    row = EscalationRow(id="esc-1", agent_id="reviewer-1", rule="r", reason="why")

    def decision(kind: str, **details: Any) -> dict[str, Any]:
        return {"decision": kind, "by": "bob", "details": details}

    moved = command_from(decision("reassign", to="reviewer-2.ABCDEF"), row, "12D3KooWpeerXYZ", "ABCDEF")
    assert isinstance(moved, cmd.Reassign) and moved.to == "reviewer-2" and moved.operator == "bob via eerXYZ"
    assert command_from(decision("reassign", to="architect"), row, "p", "ABCDEF").to == "architect"  # type: ignore[union-attr]
    ended = command_from(decision("terminate"), row, "p", "ABCDEF")
    assert isinstance(ended, cmd.Terminate) and ended.agent_id == "reviewer-1"
    with pytest.raises(ValueError, match="amount_usd: must be a number"):
        command_from(decision("raise_budget", amount_usd="lots"), row, "p", "ABCDEF")
    with pytest.raises(ValueError, match="unknown decision 'launch'"):
        command_from(decision("launch"), row, "p", "ABCDEF")


# -- two and three runtimes -----------------------------------------------------------------------------------------


async def test_agents_of_another_node_are_visible_and_follow_its_states(tmp_path: Path) -> None:
    async with joined(tmp_path, "a", Script()) as a, joined(tmp_path, "b", Script(), a) as b:
        suffix = peer(a)[-6:]
        name = f"architect-1.{suffix}"
        remote = await eventually(lambda: b.rt.agents.get(name), "A's architect on B")
        assert (remote.origin, remote.role) == ("remote", "architect")
        assert {r.id: r.node_id for r in b.rt.store.agents()}[name] == peer(a)
        found = {
            agent["agent_id"] for agent in lookup_agents(b.rt, parse_address("bzzz://architect@*"), None)
        }
        assert name in found and "architect-1" in found
        assert remote.can_join and not remote.picked_automatically  # invited by name only
        a.rt.transition(a.rt.agents["architect-1"], AgentState.ACTIVE, None, "test")
        await eventually(lambda: remote.state is AgentState.ACTIVE, "A's architect active on B")
        assert b.rt.network is not None
        snapshot = b.rt.network.snapshot()
        listed = {p["peer_id"]: p for p in snapshot["peer_list"]}
        assert listed[peer(a)]["connected"] and listed[peer(a)]["agents"] == 2
        assert snapshot["received_by_type"]["capability_broadcast"] >= 1
        status = await eventually(
            lambda: [e for e in b.of(ev.NetworkStatus) if e.remote_agents == 2], "status"
        )
        assert status[-1].peers == 1


async def test_an_agent_of_another_node_invited_by_name_takes_its_turn_there(tmp_path: Path) -> None:
    host_script = Script(architect_1=[post("proposal", "Cache reads for 5 minutes.")])
    async with joined(tmp_path, "a", host_script) as a, joined(tmp_path, "b", Script(), a) as b:
        guest = f"reviewer-1.{peer(b)[-6:]}"
        await eventually(lambda: guest in a.rt.agents, "B's reviewer on A")
        thread = a.rt.conversations.create_thread("Cache policy", ["architect-1", guest], None)
        closed = lambda: a.rt.store.get_thread(thread.id).status == "closed"  # noqa: E731
        await eventually(closed, "consensus on A's thread")
        on_a = [(m.author, m.type) for m in a.messages(thread.id)]
        assert ("architect-1", "proposal") in on_a and (guest, "agree") in on_a
        assert a.rt.store.get_thread(thread.id).outcome == "consensus"
        mirror = f"{thread.id}.{peer(a)[-6:]}"
        await eventually(lambda: b.rt.store.get_thread(mirror).status == "closed", "B's mirror closed")
        on_b = [(m.author, m.type) for m in b.messages(mirror)]
        assert (f"architect-1.{peer(a)[-6:]}", "proposal") in on_b and ("reviewer-1", "agree") in on_b
        assert [t.agent for t in b.script.turns] == ["reviewer-1"]  # B's model spoke once, for its own agent
        assert b.rt.agents["reviewer-1"].state is not AgentState.COLLABORATING


async def test_an_escalation_raised_on_a_is_answered_on_b_and_applied_once_by_a(tmp_path: Path) -> None:
    async with joined(tmp_path, "a", escalated_script()) as a, joined(tmp_path, "b", Script(), a) as b:
        esc = await escalated_on(a)
        mirror = await eventually(lambda: b.rt.store.get_escalation(esc), "the mirror on B")
        assert (mirror.state, mirror.origin_peer, mirror.agent_id) == (
            "open",
            peer(a),
            f"reviewer-1.{peer(a)[-6:]}",
        )
        assert "Which TTL" in mirror.reason and mirror.context["excerpt"]
        assert any(e.escalation_id == esc for e in b.of(ev.EscalationRaised))

        row = await b.rt.submit(cmd.Reply(escalation_id=esc, text="5 minutes, no more.", operator="bob"))
        assert row.state == "answered"
        owner = a.rt.store.get_escalation(esc)
        assert owner is not None and owner.state == "answered" and owner.applied
        assert owner.decision is not None and owner.decision["peer"] == peer(b)
        assert owner.decision["surface"] == f"peer {peer(b)}"  # decided on another node, and which
        signed = owner.decision["signed"]  # the decider's signed request, kept by A, still proves who decided
        verify(signed, peer(b))
        assert (signed["by"], signed["details"], signed["request_id"]) == (
            "bob",
            {"text": "5 minutes, no more."},
            owner.decision["request_id"],
        )
        await eventually(
            lambda: a.rt.agents["reviewer-1"].state is not AgentState.ESCALATING, "A's agent resumed"
        )
        await a.idle()
        thread_id = str(owner.thread_id)
        assert any(
            m.author == "bob via " + peer(b)[-6:] or "5 minutes" in m.content for m in a.messages(thread_id)
        )
        settled = b.rt.store.get_escalation(esc)
        assert settled is not None
        assert (settled.state, settled.decision["kind"], settled.answered_by) == (
            owner.state,
            owner.decision["kind"],
            owner.answered_by,
        )
        with pytest.raises(CommandError, match="already answered"):
            await b.rt.submit(cmd.Approve(escalation_id=esc, operator="bob"))


async def test_answered_on_two_nodes_at_once_it_resolves_once_and_the_other_hears_why(tmp_path: Path) -> None:
    async with (
        joined(tmp_path, "a", escalated_script()) as a,
        joined(tmp_path, "b", Script(), a) as b,
        joined(tmp_path, "c", Script(), a, b) as c,
    ):
        esc = await escalated_on(a)
        for other in (b, c):
            await eventually(lambda o=other: o.rt.store.get_escalation(esc), "the mirrors")
        results = await asyncio.gather(
            b.rt.submit(cmd.Approve(escalation_id=esc, note="from B", operator="bob")),
            c.rt.submit(cmd.Reject(escalation_id=esc, reason="from C", operator="carol")),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], CommandError), results
        assert "already answered" in str(errors[0])
        owner = a.rt.store.get_escalation(esc)
        assert owner is not None
        winner = "approve" if isinstance(results[1], BaseException) else "reject"
        assert owner.decision is not None and owner.decision["kind"] == winner
        for other in (b, c):
            await eventually(
                lambda o=other: (row := o.rt.store.get_escalation(esc)) and row.state == "answered", "settled"
            )
            mirror = other.rt.store.get_escalation(esc)
            assert mirror is not None and mirror.decision is not None and mirror.decision["kind"] == winner


async def test_a_node_that_comes_back_is_told_the_open_escalations(tmp_path: Path) -> None:
    async with joined(tmp_path, "a", escalated_script()) as a:
        async with joined(tmp_path, "b", Script(), a) as b:
            esc = await escalated_on(a)
            await eventually(lambda: b.rt.store.get_escalation(esc), "the mirror on B")
        a.rt.store.claim_decision(
            esc, {"kind": "approve", "by": "ann"}, "ann", datetime.now(UTC), applying=True
        )
        a.rt.escalations.apply_recorded()
        a.rt.publish(
            ev.EscalationAnswered(
                escalation_id=esc, thread_id=None, agent_id=None, decision="approve", by="ann"
            )
        )
        (tmp_path / "b2").mkdir()
        for item in (tmp_path / "b").iterdir():  # same data dir and database: the same node, restarted
            item.rename(tmp_path / "b2" / item.name)
        (tmp_path / "b").rmdir()
        async with joined(tmp_path, "b", Script(), a) as b_again:
            await eventually(
                lambda: (row := b_again.rt.store.get_escalation(esc)) and row.state == "answered",
                "the decision made while B was away",
            )


async def test_a_forged_decision_is_dropped_and_applies_nothing(tmp_path: Path) -> None:
    async with joined(tmp_path, "a", escalated_script()) as a, joined(tmp_path, "b", Script(), a) as b:
        esc = await escalated_on(a)
        await eventually(lambda: b.rt.store.get_escalation(esc), "the mirror on B")
        assert b.rt.network is not None and b.rt.network.key is not None
        forged = sign(
            {
                "escalation_id": esc,
                "decision": "approve",
                "by": "mallory",
                "decided_at": "2026-11-26T10:00:00Z",
                "status": "request",
                "origin": peer(a),
                "request_id": "req-forged",
                "details": {},
            },
            b.rt.network.key,
        )
        forged["by"] = "someone else"  # changed after signing
        await b.rt.network.send(MessageType.ESCALATION_DECISION, forged)
        await eventually(lambda: [e for e in a.of(ev.ErrorRaised) if "signature" in e.message], "the drop")
        owner = a.rt.store.get_escalation(esc)
        assert owner is not None and owner.state == "open"
        assert a.rt.network is not None and a.rt.network.snapshot()["rejected"]["bad_signature"] == 1


async def test_a_peers_decision_is_validated_and_one_that_fails_to_apply_reopens(tmp_path: Path) -> None:
    from test_decisions import budgets_accept_writes, budgets_refuse_writes

    script = escalated_script(architect_1=[post("comment", "Noted.")], reviewer_1=[post("agree", "Agreed.")])
    async with joined(tmp_path, "a", script) as a, joined(tmp_path, "b", Script(), a) as b:
        esc = await escalated_on(a)
        await eventually(lambda: b.rt.store.get_escalation(esc), "the mirror on B")
        assert b.rt.network is not None and b.rt.network.key is not None
        # A peer that skips its own checks (hostile, or an older version): the owner refuses, and says why.
        for n, amount in enumerate((float("nan"), 1e308)):
            request_id = f"req-hostile-{n}"
            answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            b.rt.network.escalations.pending[request_id] = (esc, answer)
            request = {
                "escalation_id": esc,
                "decision": "raise_budget",
                "by": "mallory",
                "decided_at": "2026-11-26T10:00:00Z",
                "status": "request",
                "origin": peer(a),
                "request_id": request_id,
                "details": {"amount_usd": amount},
            }
            await b.rt.network.send(MessageType.ESCALATION_DECISION, sign(request, b.rt.network.key))
            with pytest.raises(CommandError, match="raise the budget by"):
                await asyncio.wait_for(answer, DEADLINE_S)
        # a decision that cannot apply is refused by the owner before it records anything
        with pytest.raises(CommandError, match="already in it"):
            await b.rt.submit(
                cmd.Reassign(escalation_id=esc, to=f"architect-1.{peer(a)[-6:]}", operator="bob")
            )
        owner = a.rt.store.get_escalation(esc)
        assert owner is not None and owner.state == "open" and owner.decision is None
        # A well-formed decision that fails on A (its budgets table refuses writes): A goes on, the escalation
        # reopens there (and stays open on B), and B's operator hears why.
        budgets_refuse_writes(a)
        with pytest.raises(CommandError, match="could not be applied"):
            await b.rt.submit(cmd.RaiseBudget(escalation_id=esc, amount_usd=0.5, operator="bob"))
        owner = a.rt.store.get_escalation(esc)
        assert (
            owner is not None and owner.state == "open" and "frozen" in owner.context["last_error"]["error"]
        )
        assert [e.decision for e in a.of(ev.DecisionFailed)] == ["raise_budget"]
        mirror = b.rt.store.get_escalation(esc)
        assert mirror is not None and mirror.state == "open"
        budgets_accept_writes(a)
        row = await b.rt.submit(cmd.Reply(escalation_id=esc, text="Five minutes.", operator="bob"))
        assert row.state == "answered"
        await eventually(
            lambda: a.rt.agents["reviewer-1"].state is not AgentState.ESCALATING, "A's agent resumed"
        )


async def test_a_task_announced_on_the_network_is_taken_on_and_claimed(tmp_path: Path) -> None:
    seen: list[WireMessage] = []
    outsider = P2PNode(
        bytes(range(32)), NodeConfig(listen=["/ip4/127.0.0.1/tcp/0"]), lambda m, _: seen.append(m)
    )
    await outsider.start()
    try:
        async with joined(tmp_path, "b", Script()) as b:
            await outsider.connect(address(b))
            await eventually(lambda: peer(b) in outsider.subscribed_peers(), "B's topics")
            await eventually(lambda: outsider.peer_id in b.rt.network.node.subscribed_peers(), "our topics")
            announcement = {
                "task_id": 42,
                "title": "Review the cache RFC",
                "roles": ["architect"],
                "priority": 2,
            }
            await outsider.publish(
                WireMessage(MessageType.TASK_ANNOUNCEMENT, outsider.peer_id, datetime.now(UTC), announcement)
            )
            task_id = network_task_id(outsider.peer_id, "42")
            started = lambda: any(t.id == task_id and t.thread_id for t in b.rt.store.tasks())  # noqa: E731
            await eventually(started, "B's thread on the task")
            row = b.rt.store.get_task(task_id)
            assert (row.source, row.priority, row.title) == ("p2p", "high", "Review the cache RFC")
            claims = await eventually(
                lambda: [m for m in seen if m.type is MessageType.TASK_CLAIM], "the claim"
            )
            assert claims[0].data["task_id"] == "42" and claims[0].data["announcer"] == outsider.peer_id
            await outsider.publish(  # a replay of the same announcement is not a second task
                WireMessage(MessageType.TASK_ANNOUNCEMENT, outsider.peer_id, datetime.now(UTC), announcement)
            )
            await b.idle()
            assert len([t for t in b.rt.store.tasks() if t.source == "p2p"]) == 1
            v1_trigger = {"reason": "stuck on the schema", "task_id": 42}  # a v1 node's: no escalation id
            await outsider.publish(
                WireMessage(MessageType.ESCALATION_TRIGGER, outsider.peer_id, datetime.now(UTC), v1_trigger)
            )
            shown = lambda: [e for e in b.of(ev.NetworkMessage) if e.type == "escalation_trigger"]  # noqa: E731
            assert "stuck on the schema" in (await eventually(shown, "the v1 trigger shown"))[0].summary
            assert b.rt.store.escalations() == []
    finally:
        await outsider.stop()


async def test_nodes_stop_cleanly_with_no_stray_threads(tmp_path: Path) -> None:
    before = {t.name for t in threading.enumerate()}
    async with joined(tmp_path, "a", Script()) as a, joined(tmp_path, "b", Script(), a):
        assert any(t.name.startswith("bzzz-p2p") for t in threading.enumerate())
    await eventually(
        lambda: (
            not [t for t in threading.enumerate() if t.name.startswith("bzzz-p2p") and t.name not in before]
        ),
        "the p2p threads to end",
        timeout=10,
    )


async def test_a_taken_port_fails_the_start_with_one_clear_line_and_nothing_left_running(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(P2PError, match=f"cannot listen on /ip4/127.0.0.1/tcp/{port}: the port is in use"):
            async with node(tmp_path, Script(), p2p={**LOOPBACK, "listen": [f"/ip4/127.0.0.1/tcp/{port}"]}):
                pass
    assert not [t for t in threading.enumerate() if t.name.startswith("bzzz-p2p")]


def test_a_malformed_address_in_the_config_file_names_the_key_and_the_file(tmp_path: Path) -> None:
    config = tmp_path / "bzzz.toml"
    config.write_text('[p2p]\nenabled = true\npeers = ["/ip4/10.0.0.5/tcp/4001"]\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    message = str(caught.value)
    assert "p2p.peers" in message and str(config) in message and "/p2p/12D3KooW" in message


# -- the installed command ----------------------------------------------------------------------------------------


class Headless:
    """``bzzz-console run --headless`` in its own folder, its JSON events read line by line."""

    def __init__(self, root: Path, *args: str) -> None:
        root.mkdir()
        argv = [str(BIN), "run", "--headless", "--db", f"sqlite:///{root / 'bzzz.db'}", *args]
        self.proc = subprocess.Popen(
            argv, env=cli_env(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.events: list[dict[str, Any]] = []

    def wait_for(self, check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            self.events.append(event)
            if check(event):
                return event
        raise AssertionError(
            f"no {what} (exit {self.proc.poll()}): {self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ''}"
        )

    def stop(self) -> int:
        """SIGTERM, then the rest of its output; its exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self.events += [json.loads(line) for line in out.splitlines() if line.strip()]
        return self.proc.returncode


def test_two_headless_nodes_join_with_listen_and_peer(tmp_path: Path) -> None:
    a = Headless(tmp_path / "a", "--listen", "/ip4/127.0.0.1/tcp/0")
    b: Headless | None = None
    try:
        status = a.wait_for(lambda e: e["kind"] == "network_status", "network status on A")
        assert status["addrs"] and status["addrs"][0].endswith("/p2p/" + status["peer_id"])
        b = Headless(tmp_path / "b", "--peer", status["addrs"][0], "--listen", "/ip4/127.0.0.1/tcp/0")
        joined_b = b.wait_for(
            lambda e: e["kind"] == "network_status" and e["peers"] >= 1 and e["remote_agents"] >= 5,
            "A's agents on B",
        )
        assert joined_b["peer_id"] != status["peer_id"]
        registered = [e for e in b.events if e["kind"] == "agent_registered" and e.get("origin") == "remote"]
        assert {e["agent_id"].rsplit(".", 1)[1] for e in registered} == {status["peer_id"][-6:]}
        assert b.stop() == 0
        assert b.events[-1]["kind"] == "runtime_stopped" or (
            b.proc.stdout and "runtime_stopped" in b.proc.stdout.read()
        )
        assert a.stop() == 0
    finally:
        for each in (a, b):
            if each is not None and each.proc.poll() is None:
                each.proc.kill()
