"""The runtime on the network: one :class:`~bzzz_console.p2p.node.P2PNode` joined to one Runtime.

Outbound, a bus tap (never a bounded queue that could drop) turns runtime events into wire messages, sent in
order by one sender task: the fleet's capabilities at start and on change, its load every
``p2p.availability_interval_s``, agent states (coalesced once a second), this node's escalations and their
outcomes, claims on network tasks, and the messages of threads shared with other nodes' agents. Inbound, each
admitted message is handled on the asyncio loop: other nodes' agents become ``remote`` agents here (visible to
``bzzz_lookup``, invited by name, named ``<agent>.<last 6 of the peer id>``), their escalations are mirrored
(:mod:`~bzzz_console.p2p.escalation_sync`), shared threads followed (:mod:`~bzzz_console.p2p.threads`) and announced
tasks taken on (:mod:`~bzzz_console.p2p.tasks`); what Go BZZZ nodes say is read by :mod:`~bzzz_console.p2p.gonodes`
and :mod:`~bzzz_console.p2p.gometa`. Nothing is dropped silently: what a handler cannot use is counted by message
type and reason (:meth:`Network.refuse`, logged once per pair), and a handler that fails is counted and shown; it
never stops the node or the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bzzz_console.domain import events as ev
from bzzz_console.domain.threads import ThreadStatus
from bzzz_console.p2p.agents import RemoteAgents
from bzzz_console.p2p.escalation_sync import EscalationSync
from bzzz_console.p2p.gometa import GoMeta, IssueTopics, summary_of
from bzzz_console.p2p.gonodes import Unusable
from bzzz_console.p2p.node import NodeConfig, P2PError, P2PNode
from bzzz_console.p2p.tasks import TaskExchange
from bzzz_console.p2p.threads import ThreadSync
from bzzz_console.p2p.wire import MessageType, WireMessage

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from bzzz_console.domain.state import Agent
    from bzzz_console.p2p.host import Host

log = logging.getLogger(__name__)
STATE_BATCH = 20
"""More agent state changes than this in a second go out as one availability broadcast instead."""


@dataclass
class RemoteNode:
    peer_id: str
    last_seen: float = field(default_factory=time.monotonic)
    agents: dict[str, str] = field(default_factory=dict)
    """Their agent id → our name for it."""
    availability: dict[str, Any] = field(default_factory=dict)


class Network:
    def __init__(self, rt: Host) -> None:
        self.rt = rt
        self.settings = rt.settings.p2p
        self.node: P2PNode | None = None
        self.peer_id = ""
        self.key: Ed25519PrivateKey | None = None
        self.nodes: dict[str, RemoteNode] = {}
        self.received_by_type: Counter[str] = Counter()
        self.handler_errors = 0
        self.dropped: Counter[str] = Counter()
        """Messages admitted by the node but refused by their handler (e.g. ``bad_signature``), by reason."""
        self.unusable: Counter[tuple[str, str]] = Counter()
        """What peers sent that could not be used, by (message type, reason); the last detail of each beside."""
        self.unusable_detail: dict[tuple[str, str], str] = {}
        self.go = GoMeta(self)
        self.issue_topics = IssueTopics()
        self.agents = RemoteAgents(self)
        self.escalations = EscalationSync(self)
        self.tasks = TaskExchange(self)
        self.threads = ThreadSync(self)
        self._outbox: asyncio.Queue[tuple[MessageType, dict[str, Any]]] = asyncio.Queue()
        self._loops: list[asyncio.Task[None]] = []
        self._untap: Callable[[], None] | None = None
        self._states: dict[str, Agent] = {}
        self._capabilities_due = False
        self._last_status: tuple[Any, ...] | None = None
        self._errors_shown: dict[str, float] = {}
        self._reachable: set[str] = set()

    # -- lifecycle ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the node and join the network; P2PError (one line) if it cannot listen or start."""
        from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

        from bzzz_console.security.nodekey import load_or_create_node_key

        self.key = await asyncio.to_thread(load_or_create_node_key, self.rt.settings)
        seed = self.key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        s = self.settings
        config = NodeConfig(
            listen=list(s.listen),
            bootstrap=list(s.peers),
            mdns=s.mdns,
            rate_per_s=s.rate_per_s,
            burst=2 * s.rate_per_s,
        )
        self.node = P2PNode(seed, config, self._on_message)
        self.peer_id = self.node.peer_id
        await self.node.start()
        self._untap = self.rt.bus.tap(self._on_event)
        self.threads.start()
        self._loops = [
            asyncio.create_task(self._sender(), name="p2p sender"),
            asyncio.create_task(self._periodic(), name="p2p periodic"),
        ]
        self.queue(MessageType.CAPABILITY_BROADCAST, self.capabilities())
        self.queue(MessageType.AVAILABILITY_BROADCAST, self.availability())
        self._publish_status()  # says at once where this node listens

    async def stop(self) -> None:
        if self._untap is not None:
            self._untap()
        if self._loops:  # what is queued (an outcome just decided, a claim) still leaves, briefly
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.join(), 2.0)
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops = []
        await self.threads.stop()
        self.escalations.close()
        if self.node is not None:
            await self.node.stop()

    @property
    def running(self) -> bool:
        return self.node is not None and bool(self._loops)

    # -- sending ------------------------------------------------------------------------------------------
    def queue(self, kind: MessageType, data: dict[str, Any]) -> None:
        """Send soon, in order, without waiting (from a bus tap or a handler)."""
        self._outbox.put_nowait((kind, data))

    async def send(self, kind: MessageType, data: dict[str, Any]) -> None:
        """Send now and wait until it left this node; P2PError if it cannot."""
        if self.node is None:
            raise P2PError("the network is not running")
        await self.node.publish(WireMessage(kind, self.peer_id, datetime.now(UTC), data))

    async def _sender(self) -> None:
        while True:
            kind, data = await self._outbox.get()
            try:
                await self.send(kind, data)
            except P2PError as exc:
                self.show_error(f"cannot send {kind.value}: {exc}")
            finally:
                self._outbox.task_done()

    def refuse(self, kind: str, reason: str, detail: str, author: str) -> None:
        """Part of a peer's message cannot be used: counted by type and reason, logged the first time per pair."""
        key = (kind, reason)
        self.unusable[key] += 1
        self.unusable_detail[key] = detail[:300]
        level = logging.WARNING if self.unusable[key] == 1 else logging.DEBUG
        log.log(level, "unusable %s from %s (%s): %s", kind, author, reason, detail)

    def shown(self, kind: str, author: str, summary: str) -> None:
        """A message nobody here acts on, shown to the operator in the network view."""
        self.rt.publish(ev.NetworkMessage(type=kind, sender=author, summary=summary[:200]))

    def show_error(self, message: str) -> None:
        """Log every failure; show the operator each distinct one at most once a minute."""
        log.warning("%s", message)
        now = time.monotonic()
        if now - self._errors_shown.get(message, -1e9) >= 60:
            self._errors_shown[message] = now
            self.rt.publish(ev.ErrorRaised(where="network", message=message))

    # -- what this node tells the others ------------------------------------------------------------------
    def local_agents(self) -> list[Agent]:
        return [a for a in self.rt.agents.values() if a.origin == "local"]

    def capabilities(self) -> dict[str, Any]:
        agents = self.local_agents()
        return {
            "node_id": self.peer_id,
            "capabilities": sorted({c for a in agents for c in a.spec.capabilities}),
            "models": sorted({a.model for a in agents}),
            "agents": [
                {
                    "id": a.id,
                    "role": a.role,
                    "capabilities": list(a.spec.capabilities),
                    "max_tasks": a.spec.max_tasks,
                    "model": a.model,
                    "state": a.state.value,
                    "specialization": a.spec.description[:200],
                }
                for a in agents[:200]  # keeps the message well under 64 KiB
            ],
        }

    def availability(self) -> dict[str, Any]:
        agents = self.local_agents()
        busy = sum(1 for a in agents if a.threads)
        capacity = sum(a.spec.max_tasks for a in agents)
        load = sum(a.load for a in agents)
        return {
            "node_id": self.peer_id,
            "available_for_work": any(a.can_join for a in agents),
            "current_tasks": len(
                [t for t in self.rt.conversations.threads.values() if t.status is not ThreadStatus.CLOSED]
            ),
            "max_tasks": capacity,
            "load": round(load / capacity, 3) if capacity else 1.0,
            "busy_agents": busy,
            "status": "ready" if busy < len(agents) else "busy",
            "agents": [{"id": a.id, "state": a.state.value, "threads": len(a.threads)} for a in agents[:200]],
        }

    def _on_event(self, event: ev.Event) -> None:
        """Bus tap: quick, and never raises into the runtime's publish."""
        try:
            if isinstance(event, ev.AgentStateChanged):
                agent = self.rt.agents.get(event.agent_id)
                if agent is not None and agent.origin == "local":
                    self._states[agent.id] = agent
            elif isinstance(event, ev.AgentRegistered) and event.origin == "local":
                self._capabilities_due = True
            else:
                self.escalations.on_event(event)
                self.tasks.on_event(event)
                self.threads.on_event(event)
        except Exception:
            log.exception("the network could not forward %s", getattr(event, "kind", event))

    async def _periodic(self) -> None:
        next_availability = time.monotonic() + self.settings.availability_interval_s
        while True:
            await asyncio.sleep(1.0)
            try:
                assert self.node is not None
                await self.issue_topics.sync(self.node)
                self._greet_new_peers()
                self._flush_states()
                if self._capabilities_due:
                    self._capabilities_due = False
                    self.queue(MessageType.CAPABILITY_BROADCAST, self.capabilities())
                if time.monotonic() >= next_availability:
                    next_availability = time.monotonic() + self.settings.availability_interval_s
                    self.queue(MessageType.AVAILABILITY_BROADCAST, self.availability())
                self._publish_status()
            except Exception as exc:  # keep broadcasting through a hiccup
                self.show_error(f"periodic broadcast failed: {type(exc).__name__}: {exc}")

    def _greet_new_peers(self) -> None:
        """A peer that just joined both topics (new, or back after a restart) missed what we sent before."""
        assert self.node is not None
        reachable = self.node.subscribed_peers()
        new, self._reachable = reachable - self._reachable, reachable
        if new:
            self.queue(MessageType.CAPABILITY_BROADCAST, self.capabilities())
            self.queue(MessageType.AVAILABILITY_BROADCAST, self.availability())
            self.escalations.greet()

    def _flush_states(self) -> None:
        changed, self._states = list(self._states.values()), {}
        if len(changed) > STATE_BATCH:  # a busy fleet: one message instead of a flood the peers would refuse
            self.queue(MessageType.AVAILABILITY_BROADCAST, self.availability())
            return
        for agent in changed:
            thread = next(iter(sorted(agent.threads)), None)
            data = {"agent_id": agent.id, "role": agent.role, "state": agent.state.value, "thread_id": thread}
            self.queue(MessageType.AGENT_STATE, data)

    def _publish_status(self) -> None:
        if self.node is None:
            return
        stats = self.node.stats
        remote = sum(len(n.agents) for n in self.nodes.values())
        status = (
            stats["peers"],
            remote,
            stats["rate_in_per_s"],
            stats["rate_out_per_s"],
            stats["rejected_total"],
        )
        if status != self._last_status:
            self._last_status = status
            self.rt.publish(
                ev.NetworkStatus(
                    peer_id=self.peer_id,
                    addrs=tuple(self.node.addrs),
                    peers=status[0],
                    remote_agents=remote,
                    rate_in_per_s=status[2],
                    rate_out_per_s=status[3],
                    rejected=status[4],
                )
            )

    # -- what the others tell us --------------------------------------------------------------------------
    def _on_message(self, message: WireMessage, author: str) -> None:
        self.received_by_type[message.type.value] += 1
        node = self.nodes.get(author)
        if node is None:
            node = self.nodes[author] = RemoteNode(author)
        node.last_seen = time.monotonic()
        try:
            handler = self._handlers().get(message.type)
            if handler is not None:
                handler(message.data, author)
            else:
                self.shown(message.type.value, author, summary_of(message.data))
        except Unusable as exc:
            self.refuse(message.type.value, exc.reason, exc.detail, author)
        except Exception as exc:
            self.handler_errors += 1
            self.refuse(message.type.value, "could_not_handle", f"{type(exc).__name__}: {exc}", author)
            self.show_error(
                f"a {message.type.value} from {author} could not be handled: {type(exc).__name__}: {exc}"
            )

    def _handlers(self) -> dict[MessageType, Callable[[dict[str, Any], str], None]]:
        return {
            MessageType.CAPABILITY_BROADCAST: self.agents.on_capabilities,
            MessageType.AVAILABILITY_BROADCAST: self.agents.on_availability,
            MessageType.AGENT_STATE: self.agents.on_agent_state,
            MessageType.ESCALATION_TRIGGER: self.escalations.on_trigger,
            MessageType.ESCALATION_DECISION: self.escalations.on_decision,
            MessageType.TASK_ANNOUNCEMENT: self.tasks.on_announcement,
            MessageType.TASK_CLAIM: self.tasks.on_claim,
            MessageType.THREAD_MESSAGE: self.threads.on_message,
            MessageType.META_DISCUSSION: self.go.on_meta_discussion,
            MessageType.TASK_HELP_REQUEST: self.go.on_help_request,
            MessageType.TASK_HELP_RESPONSE: self.go.on_help_response,
        }

    # -- for the console and `status` ---------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Peers, topics, rates and rejections, as plain data."""
        stats = self.node.stats if self.node is not None else {}
        connected = set(self.node.peers()) if self.node is not None else set()
        now = time.monotonic()
        peers = [
            {
                "peer_id": peer,
                "connected": peer in connected,
                "agents": len(node.agents),
                "load": node.availability.get("load"),
                "status": node.availability.get("status"),
                "last_seen_s": round(now - node.last_seen, 1),
            }
            for peer, node in sorted(self.nodes.items())
        ]
        peers += [
            {"peer_id": p, "connected": True, "agents": 0, "load": None, "status": None, "last_seen_s": None}
            for p in sorted(connected - set(self.nodes))
        ]
        rejected = Counter(stats.get("rejected", {})) + self.dropped
        return {
            **stats,
            "rejected": dict(rejected),
            "rejected_total": sum(rejected.values()),
            "addrs": list(self.node.addrs) if self.node is not None else [],
            "peer_list": peers,
            "received_by_type": dict(self.received_by_type),
            "handler_errors": self.handler_errors,
            "unusable": [
                {
                    "type": kind,
                    "reason": reason,
                    "count": n,
                    "detail": self.unusable_detail.get((kind, reason)),
                }
                for (kind, reason), n in sorted(self.unusable.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            "go_nodes": [{"peer_id": peer, **seen} for peer, seen in sorted(self.go.nodes.items())],
            "network_tasks": self.tasks.shown(),
        }
