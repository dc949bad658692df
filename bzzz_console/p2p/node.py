"""A libp2p gossipsub node on both BZZZ topics, driven from asyncio (see ``docs/wire-format.md``).

It runs in its own trio thread (:mod:`bzzz_console.p2p.bridge`, whose helpers explain each libp2p setting), set up
to interoperate with the go-libp2p BZZZ nodes and to lose nothing silently: Noise only, strict signing, an Ed25519
identity from the node key seed (a stable peer id), gossipsub 1.1/1.0, identify, one connection per peer, our
heartbeat and flood limit, one topic per message, back-pressure on publish (py-libp2p drops what overflows a
peer's 32-RPC queue), each incoming message checked by :class:`~bzzz_console.p2p.validation.Admission` before it
is delivered or relayed (rejections are counted), sequence numbers from the time in ns (a restarted node is not
taken for a replay of its earlier messages), no log output on stderr, nothing left running after ``stop()``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bzzz_console.p2p.bridge import (
    P2PError,
    TrioThread,
    dialable_addrs,
    direct_pubsub,
    new_host,
    new_router,
    parse_listen,
    parse_peer_addr,
    peer_id_from_seed,
    route_libp2p_logs,
    watch_mdns,
)
from bzzz_console.p2p.mesh import TOPICS, PeerDialing
from bzzz_console.p2p.validation import Admission
from bzzz_console.p2p.wire import WireError, WireMessage, encode

if TYPE_CHECKING:
    import trio
    from libp2p.abc import IHost
    from libp2p.peer.id import ID
    from libp2p.peer.peerinfo import PeerInfo
    from libp2p.pubsub.gossipsub import GossipSub
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.pubsub.pubsub import Pubsub

__all__ = ["TOPICS", "NodeConfig", "P2PError", "P2PNode", "peer_id_from_seed"]

log = logging.getLogger(__name__)
RATE_WINDOW_S = 10.0


@dataclass(frozen=True)
class NodeConfig:
    listen: list[str] = field(default_factory=lambda: ["/ip4/127.0.0.1/tcp/0"])
    bootstrap: list[str] = field(default_factory=list)
    """Full ``/ip4/…/tcp/N/p2p/<id>`` addresses, dialed at start and redialed whenever disconnected."""
    mdns: bool = False
    heartbeat_s: float = 1.0
    rate_per_s: float = 50.0
    """Admission: messages per second per signed author (token bucket), and its burst."""
    burst: float = 100.0
    router_rate_per_s: float = 1000.0
    """gossipsub's own per-peer, per-topic flood limit (it drops silently above it, our publishes included)."""
    degree: int = 6
    degree_low: int = 4
    degree_high: int = 12
    connect_timeout_s: float = 10.0
    start_timeout_s: float = 30.0
    redial_s: float = 2.0
    """How often known peers (bootstrap, connected to, found by mDNS) are redialed when disconnected."""
    queue_high_water: int = 24
    """Publishing waits while a peer's outbound queue holds this many RPCs (of 32)."""
    backpressure_timeout_s: float = 10.0


class P2PNode(PeerDialing):
    """One libp2p host in gossipsub on both BZZZ topics; every public method is called from the asyncio loop.

    ``on_message(message, signed_author)`` runs on the asyncio loop for each admitted message from another peer.
    """

    def __init__(
        self, seed: bytes, config: NodeConfig, on_message: Callable[[WireMessage, str], None]
    ) -> None:
        self.peer_id = peer_id_from_seed(seed)
        self.config = config
        self.addrs: list[str] = []
        self._seed = bytes(seed)
        self._on_message = on_message
        self._admission = Admission(rate_per_s=config.rate_per_s, burst=config.burst)
        self._lock = threading.Lock()  # the counters below are written in the trio thread, read in asyncio's
        self._count: Counter[tuple[str, str]] = Counter()  # (published|received|rejected|…, topic)
        self._times: dict[str, deque[float]] = {"in": deque(), "out": deque()}
        self._own_sends: dict[str, deque[float]] = {topic: deque() for topic in TOPICS}
        self._admitted: dict[bytes, tuple[WireMessage, str]] = {}
        self._known: dict[ID, PeerInfo] = {}
        self._retry: dict[ID, tuple[int, float]] = {}  # failures, next dial (monotonic)
        self._bridge: TrioThread | None = None
        self._host: IHost | None = None
        self._pubsub: Pubsub | None = None
        self._router: GossipSub | None = None
        self._nursery: trio.Nursery | None = None
        self._publish_lock: trio.Lock | None = None

    async def start(self) -> None:
        """Listen, join both topics, dial the bootstrap peers (in the background); P2PError if it cannot."""
        if self._bridge is not None:
            raise P2PError("the node was already started (make a new P2PNode to start again)")
        self._bridge = TrioThread(f"bzzz-p2p-{self.peer_id[-6:]}")
        await self._bridge.start(self._main, self.config.start_timeout_s)

    async def stop(self) -> None:
        if self._bridge is not None:
            await self._bridge.stop()

    async def connect(self, multiaddr: str) -> None:
        """Dial ``/ip4/…/tcp/N/p2p/<id>`` and wait (best effort) until it is ready for messages on both topics."""
        bridge = self._running_bridge()
        await bridge.call(self._connect, parse_peer_addr(multiaddr), multiaddr.strip())

    async def publish(self, message: WireMessage) -> None:
        """Sign and send to the message's one topic, after waiting for room (back-pressure)."""
        try:
            if message.sender != self.peer_id:  # every receiver would reject it as forged_from
                raise WireError("forged_from", f"from is {message.sender!r}, not this node ({self.peer_id})")
            raw = encode(message)
        except WireError as exc:
            raise P2PError(f"cannot publish {message.type.value}: {exc}") from None
        await self._running_bridge().call(self._publish, message.topic, raw)

    def peers(self) -> list[str]:
        """The peer ids this node is connected to."""
        if self._host is None or self._nursery is None:
            return []
        for _ in range(3):
            with contextlib.suppress(RuntimeError):  # the dict changed size while the trio thread connected
                return sorted(str(peer) for peer in tuple(self._host.get_network().connections))
        return []

    def subscribed_peers(self) -> set[str]:
        """Peers subscribed to both BZZZ topics: a message published now reaches them."""
        pubsub = self._pubsub
        if pubsub is None or self._nursery is None:
            return set()
        for _ in range(3):
            with contextlib.suppress(RuntimeError):  # changed size while the trio thread updated it
                sets = [set(pubsub.peer_topics.get(topic, ())) for topic in TOPICS]
                return {str(peer) for peer in set.intersection(*sets)}
        return set()

    def topics_with_peers(self) -> set[str]:
        """Every topic some connected peer is subscribed to (the BZZZ ones, and e.g. Go's issue topics)."""
        pubsub = self._pubsub
        if pubsub is None or self._nursery is None:
            return set()
        for _ in range(3):
            with contextlib.suppress(RuntimeError):  # changed size while the trio thread updated it
                return {t for t, peers in list(pubsub.peer_topics.items()) if peers}
        return set()

    async def join_topic(self, topic: str) -> None:
        """Subscribe to one more topic; its messages are admitted and delivered like the BZZZ topics'."""

        async def join() -> None:
            pubsub = self._pubsub
            assert pubsub is not None
            self._own_sends.setdefault(topic, deque())
            pubsub.set_topic_validator(topic, self._validate, False)
            await pubsub.subscribe(topic)

        await self._running_bridge().call(join)

    async def leave_topic(self, topic: str) -> None:
        async def leave() -> None:
            pubsub = self._pubsub
            assert pubsub is not None
            await pubsub.unsubscribe(topic)
            pubsub.remove_topic_validator(topic)

        await self._running_bridge().call(leave)

    @property
    def stats(self) -> dict[str, Any]:
        now, router = time.monotonic(), self._router
        with self._lock:
            count, rejected = Counter(self._count), Counter(self._admission.rejected)
            rates = {}
            for direction, times in self._times.items():
                while times and times[0] < now - RATE_WINDOW_S:
                    times.popleft()
                rates[f"rate_{direction}_per_s"] = round(len(times) / RATE_WINDOW_S, 3)
        return {
            "peer_id": self.peer_id,
            "peers": len(self.peers()),
            "published": sum(count["published", t] for t in TOPICS),
            "received": sum(count["received", t] for t in TOPICS),
            "rejected": dict(rejected),
            "rejected_total": sum(rejected.values()),
            "topics": {t: {k: count[k, t] for k in ("published", "received", "rejected")} for t in TOPICS},
            **rates,
            "backpressure_waits": count["backpressure_waits", ""],
            "queue_full_sends": count["queue_full_sends", ""],
            "mesh": {t: len(router.mesh.get(t, ())) for t in TOPICS} if router is not None else {},
        }

    def _running_bridge(self) -> TrioThread:
        bridge = self._bridge
        if bridge is None or not bridge.running:
            raise P2PError((bridge.failure if bridge else None) or "the node is not running")
        return bridge

    def _deliver(self, message: WireMessage, author: str) -> None:
        try:
            self._on_message(message, author)
        except Exception:
            log.exception("on_message failed for %s from %s", message.type.value, author)

    # ---- trio side -----------------------------------------------------------------------------------------

    async def _main(self, bridge: TrioThread) -> None:
        import trio

        cfg = self.config
        listen = parse_listen(cfg.listen)
        bootstrap = [parse_peer_addr(text) for text in cfg.bootstrap]
        from libp2p.tools.anyio_service import background_trio_service

        route_libp2p_logs()
        host = new_host(self._seed, listen, mdns=cfg.mdns, dial_timeout_s=cfg.connect_timeout_s)
        router = new_router(
            cfg.degree, cfg.degree_low, cfg.degree_high, cfg.heartbeat_s, cfg.router_rate_per_s
        )
        pubsub = direct_pubsub(host, router, self._on_pubsub_message)
        pubsub.counter = time.time_ns()
        self._host, self._router, self._pubsub, self._publish_lock = host, router, pubsub, trio.Lock()
        unwatch: Callable[[], None] | None = None
        try:
            async with (
                host.run(listen),
                background_trio_service(pubsub),
                background_trio_service(router),
                trio.open_nursery() as nursery,
            ):
                listening = set(host.get_network().listeners)
                for addr in listen:
                    if str(addr) not in listening:
                        raise P2PError(f"cannot listen on {addr}: the address is not available here")
                await pubsub.wait_until_ready()
                for topic in TOPICS:
                    pubsub.set_topic_validator(topic, self._validate, False)
                    await pubsub.subscribe(topic)
                self.addrs = dialable_addrs(host)
                self._nursery = nursery
                for info in bootstrap:
                    self._remember_and_dial(info)
                if cfg.mdns:
                    unwatch = watch_mdns(self._own_id(), self._remember_and_dial)
                nursery.start_soon(self._redial_loop)
                bridge.ready(nursery)
                await bridge.wait_stop()
                nursery.cancel_scope.cancel()
                with trio.move_on_after(5):
                    await host.close()  # closes the connections (leaving the context alone leaks sockets)
        finally:
            self._nursery = None
            if unwatch is not None:
                unwatch()
            pubsub.seen_messages.stop()  # its sweeper is a thread that would outlive us

    def _validate(self, forwarder: ID, msg: rpc_pb2.Message) -> bool:
        """Topic validator: runs before a message is delivered or relayed; False drops it (and is counted)."""
        try:
            from libp2p.peer.id import ID

            author, key = ID(msg.from_id), msg.from_id + msg.seqno
            if author == self._own_id() or key in self._admitted:
                return True  # our own publish, or the same message checked for another of its topics
            with self._lock:
                try:
                    message = self._admission.admit(msg.data, str(author))
                except WireError as exc:
                    self._count.update(("rejected", topic) for topic in msg.topicIDs)
                    level = logging.INFO if self._admission.rejected[exc.reason] <= 3 else logging.DEBUG
                    log.log(level, "rejected a message from %s (via %s): %s", author, forwarder, exc)
                    return False
            self._admitted[key] = (message, str(author))
            while len(self._admitted) > 1024:  # admitted but never delivered (seen meanwhile): forget
                self._admitted.pop(next(iter(self._admitted)))
            return True
        except Exception:
            log.exception("the validator failed; the message is dropped")
            return False

    def _on_pubsub_message(self, msg: rpc_pb2.Message) -> None:
        """Each new message on a subscribed topic (ours included), in the trio thread; must not block."""
        from libp2p.peer.id import ID

        author = ID(msg.from_id)
        if author == self._own_id():
            return
        admitted = self._admitted.pop(msg.from_id + msg.seqno, None)
        with self._lock:
            if admitted is None:  # pubsub skipped the validator (its validation cache): admit here
                try:
                    admitted = (self._admission.admit(msg.data, str(author)), str(author))
                except WireError:
                    self._count.update(("rejected", topic) for topic in msg.topicIDs)
                    return
            self._count.update(("received", topic) for topic in msg.topicIDs)
            self._tick("in")
        assert self._bridge is not None
        self._bridge.deliver(self._deliver, *admitted)

    def _own_id(self) -> ID:
        assert self._host is not None
        return self._host.get_id()

    async def _publish(self, topic: str, raw: bytes) -> None:
        assert self._pubsub is not None and self._publish_lock is not None
        async with self._publish_lock:  # trio's lock is fair: messages leave in the order they were given
            await self._wait_for_room(topic)
            await self._pubsub.publish(topic, raw)
        self._own_sends[topic].append(time.monotonic())
        with self._lock:
            self._count["published", topic] += 1
            self._tick("out")

    def _tick(self, direction: str) -> None:
        """One message in or out, for the rates (call with the lock held)."""
        times, now = self._times[direction], time.monotonic()
        times.append(now)
        while times[0] < now - RATE_WINDOW_S:
            times.popleft()

    async def _wait_for_room(self, topic: str) -> None:
        """Back-pressure: no peer's outbound queue nearly full, and our rate under gossipsub's per-topic limit."""
        import trio

        assert self._pubsub is not None
        cfg, sends = self.config, self._own_sends[topic]
        deadline, waited = time.monotonic() + cfg.backpressure_timeout_s, False
        while True:
            now = time.monotonic()
            while sends and sends[0] <= now - 1.0:
                sends.popleft()
            full = [str(p) for p, q in self._pubsub.peer_queues.items() if len(q) >= cfg.queue_high_water]
            if not full and len(sends) < max(1, int(cfg.router_rate_per_s) - 1):
                break
            if now > deadline:
                self._count_event("queue_full_sends")
                log.warning("peer(s) %s do not drain their queue; publishing anyway", ", ".join(full))
                break
            waited = True
            await trio.sleep(0.002)
        if waited:
            self._count_event("backpressure_waits")

    def _count_event(self, name: str) -> None:
        with self._lock:
            self._count[name, ""] += 1

    async def _publish_raw(self, topic: str, raw: bytes) -> None:
        """Test hook: sign and send arbitrary bytes (a forged ``from``, bad JSON), bypassing the encoder."""
        await self._running_bridge().call(self._publish, topic, raw)
