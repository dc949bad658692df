"""The libp2p node: real hosts on 127.0.0.1, gossipsub on both BZZZ topics, driven from asyncio.

Every wait polls with a generous deadline (the machine may be busy); nothing sleeps a fixed time to "let
things settle".
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from helpers import eventually

from bzzz_console.p2p.node import NodeConfig, P2PError, P2PNode, peer_id_from_seed
from bzzz_console.p2p.wire import TOPIC_COORDINATION, TOPIC_META, MessageType, WireMessage, topic_of

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


class Inbox:
    """What a node's on_message received, and on which thread."""

    def __init__(self) -> None:
        self.messages: list[tuple[WireMessage, str]] = []
        self.threads: set[str] = set()

    def __call__(self, message: WireMessage, author: str) -> None:
        self.threads.add(threading.current_thread().name)
        self.messages.append((message, author))

    def of_type(self, kind: MessageType) -> list[tuple[WireMessage, str]]:
        return [(m, a) for m, a in self.messages if m.type is kind]


def message(node: P2PNode, kind: MessageType, **data: Any) -> WireMessage:
    return WireMessage(kind, node.peer_id, datetime.now(UTC), data)


@asynccontextmanager
async def running(
    seed: bytes | None = None, inbox: Inbox | None = None, **config: Any
) -> AsyncIterator[tuple[P2PNode, Inbox]]:
    inbox = inbox or Inbox()
    node = P2PNode(seed or os.urandom(32), NodeConfig(**{"redial_s": 0.3, **config}), inbox)
    await node.start()
    try:
        yield node, inbox
    finally:
        await node.stop()


def test_the_same_seed_gives_the_same_peer_id_as_libp2p_derives() -> None:
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID

    seed = bytes(range(32))
    expected = str(ID.from_pubkey(create_new_key_pair(seed).public_key))
    assert peer_id_from_seed(seed) == expected == peer_id_from_seed(bytes(range(32)))
    assert expected.startswith("12D3KooW")
    assert peer_id_from_seed(os.urandom(32)) != expected
    with pytest.raises(P2PError, match="32 bytes"):
        peer_id_from_seed(b"short")


async def test_two_nodes_exchange_messages_both_ways_on_both_topics() -> None:
    async with running() as (a, inbox_a), running() as (b, inbox_b):
        assert a.addrs and all(addr.endswith(f"/p2p/{a.peer_id}") for addr in a.addrs)
        await a.connect(b.addrs[0])
        await eventually(lambda: a.peers() == [b.peer_id] and b.peers() == [a.peer_id], "both connected")

        await a.publish(message(a, MessageType.TASK_ANNOUNCEMENT, task=1))
        await a.publish(message(a, MessageType.META_DISCUSSION, text="from a"))
        await b.publish(message(b, MessageType.AVAILABILITY_BROADCAST, status="ready"))
        await b.publish(
            message(b, MessageType.ESCALATION_TRIGGER, escalation_id="e1", reason="stuck", priority="high")
        )
        await eventually(lambda: len(inbox_a.messages) == 2 and len(inbox_b.messages) == 2, "4 deliveries")

        assert {(m.type, author) for m, author in inbox_b.messages} == {
            (MessageType.TASK_ANNOUNCEMENT, a.peer_id),
            (MessageType.META_DISCUSSION, a.peer_id),
        }
        ((trigger, _),) = inbox_a.of_type(MessageType.ESCALATION_TRIGGER)
        assert trigger.data == {"escalation_id": "e1", "reason": "stuck", "priority": "high"}
        assert topic_of(trigger.type) == TOPIC_META
        # on_message runs on the asyncio loop's thread, never on the trio thread
        assert inbox_a.threads == inbox_b.threads == {threading.current_thread().name}
        stats = a.stats
        assert stats["published"] == 2 and stats["received"] == 2 and stats["peers"] == 1
        assert stats["topics"][TOPIC_COORDINATION] == {"published": 1, "received": 1, "rejected": 0}
        assert stats["topics"][TOPIC_META] == {"published": 1, "received": 1, "rejected": 0}
        assert stats["rejected"] == {} and stats["rate_in_per_s"] > 0
        assert not inbox_a.of_type(MessageType.TASK_ANNOUNCEMENT)  # our own messages are not delivered to us


async def test_a_message_crosses_a_line_of_three_nodes_through_gossip() -> None:
    async with running() as (a, _), running() as (b, inbox_b), running() as (c, inbox_c):
        await a.connect(b.addrs[0])
        await c.connect(b.addrs[0])
        await eventually(lambda: len(b.peers()) == 2, "B connected to A and C")
        assert c.peer_id not in a.peers()

        await a.publish(message(a, MessageType.TASK_CLAIM, task=7))
        await eventually(lambda: inbox_c.messages, "A's message at C")
        ((got, author),) = inbox_c.messages
        assert author == a.peer_id and got.sender == a.peer_id and got.data == {"task": 7}
        assert len(inbox_b.messages) == 1


async def test_forged_from_and_malformed_messages_are_rejected_counted_and_never_delivered() -> None:
    async with running() as (a, _), running() as (b, inbox_b), running() as (c, inbox_c):
        await a.connect(b.addrs[0])
        await c.connect(b.addrs[0])
        await eventually(lambda: len(b.peers()) == 2, "B connected to A and C")

        # A signs, but the JSON claims C wrote it
        forged = (
            b'{"type":"task_claim","from":"' + c.peer_id.encode() + b'",'
            b'"timestamp":"2026-11-26T15:20:01Z","data":{"task":1}}'
        )
        with pytest.raises(P2PError, match="forged_from"):  # publish() refuses to write another peer's id
            await a.publish(WireMessage(MessageType.TASK_CLAIM, c.peer_id, datetime.now(UTC), {"task": 1}))
        await a._publish_raw(TOPIC_COORDINATION, forged)
        await a._publish_raw(TOPIC_META, b"{not json")
        await eventually(lambda: b.stats["rejected_total"] == 2, "B rejecting both")
        # a good message after the bad ones: once it arrives, the bad ones had their chance to
        await a.publish(message(a, MessageType.TASK_PROGRESS, task=1))
        await eventually(lambda: inbox_c.messages, "the good message at C")

        assert b.stats["rejected"] == {"forged_from": 1, "not_json": 1}
        assert b.stats["topics"][TOPIC_COORDINATION]["rejected"] == 1
        assert b.stats["topics"][TOPIC_META]["rejected"] == 1
        assert [m.type for m, _ in inbox_b.messages] == [MessageType.TASK_PROGRESS]
        # rejected messages are not relayed either: C never saw them
        assert [m.type for m, _ in inbox_c.messages] == [MessageType.TASK_PROGRESS]
        assert c.stats["rejected_total"] == 0


async def test_a_peer_that_restarts_with_its_seed_is_redialed_and_messages_flow_again() -> None:
    seed_b = os.urandom(32)
    async with running() as (a, inbox_a):
        inbox_b = Inbox()
        async with running(seed_b, inbox_b) as (b, _):
            old_id, addr = b.peer_id, b.addrs[0]
            await a.connect(addr)
            await b.publish(message(b, MessageType.AVAILABILITY_BROADCAST, run=1))
            await eventually(lambda: len(inbox_a.messages) == 1, "B's first message")
        await eventually(lambda: a.peers() == [], "A noticing that B stopped")

        listen = addr.rsplit("/p2p/", 1)[0]
        async with running(seed_b, inbox_b, listen=[listen]) as (b2, _):
            assert b2.peer_id == old_id and b2.addrs[0] == addr
            # A redials the known peer by itself
            await eventually(lambda: a.peers() == [old_id], "a redial")
            # both sides have a working pubsub stream again (py-libp2p alone may keep writing to the dead one)
            meshed = {TOPIC_COORDINATION: 1, TOPIC_META: 1}
            await eventually(lambda: a.stats["mesh"] == b2.stats["mesh"] == meshed, "both meshing again")
            await b2.publish(message(b2, MessageType.AVAILABILITY_BROADCAST, run=2))
            await a.publish(message(a, MessageType.META_DISCUSSION, text="welcome back"))
            await eventually(
                lambda: len(inbox_a.messages) == 2 and inbox_b.messages, "messages after restart"
            )
            assert [m.data for m, _ in inbox_a.messages] == [{"run": 1}, {"run": 2}]
            assert inbox_b.messages[0][1] == a.peer_id


async def test_stop_leaves_no_threads_behind() -> None:
    before = set(threading.enumerate())
    async with running() as (a, _), running() as (b, inbox_b):
        await a.connect(b.addrs[0])
        await a.publish(message(a, MessageType.TASK_ANNOUNCEMENT, task=1))
        await eventually(lambda: inbox_b.messages, "one message")
        assert len(set(threading.enumerate()) - before) >= 2  # two trio threads (+ seen-cache sweepers)
    await eventually(lambda: set(threading.enumerate()) <= before, "the node threads to end", timeout=5)
    assert a.peers() == [] and b.peers() == []
    with pytest.raises(P2PError, match="not running"):
        await a.publish(message(a, MessageType.TASK_ANNOUNCEMENT, task=2))


async def test_bad_addresses_and_unreachable_peers_give_one_clear_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(
            P2PError, match=rf"cannot listen on /ip4/127.0.0.1/tcp/{port}: the port is in use"
        ):
            await P2PNode(os.urandom(32), NodeConfig(listen=[f"/ip4/127.0.0.1/tcp/{port}"]), Inbox()).start()
    with pytest.raises(P2PError, match="bad listen address 'tcp:4001'"):
        await P2PNode(os.urandom(32), NodeConfig(listen=["tcp:4001"]), Inbox()).start()

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        free = closed.getsockname()[1]
    stranger = peer_id_from_seed(os.urandom(32))
    async with running() as (a, _):
        with pytest.raises(P2PError, match="bad peer address 'not-an-address'"):
            await a.connect("not-an-address")
        with pytest.raises(P2PError, match="must end in /p2p/<peer id>"):
            await a.connect("/ip4/127.0.0.1/tcp/4001")
        with pytest.raises(P2PError, match="bad peer address"):
            await a.connect("/ip4/127.0.0.1/tcp/4001/p2p/not-a-peer-id")
        with pytest.raises(
            P2PError, match=rf"cannot reach /ip4/127.0.0.1/tcp/{free}/p2p/{stranger}: .*refused"
        ):
            await a.connect(f"/ip4/127.0.0.1/tcp/{free}/p2p/{stranger}")
        with pytest.raises(P2PError, match="own address"):
            await a.connect(a.addrs[0])
        assert a.peers() == []
