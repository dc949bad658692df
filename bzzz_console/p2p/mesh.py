"""Keeping a node in the BZZZ mesh: dialing a peer and waiting until it is ready on both topics, and redialing the
known peers (bootstrap, connected to once, found by mDNS) while they are disconnected, backing off on failures.

Mixed into :class:`~bzzz_console.p2p.node.P2PNode`; everything here runs in its trio thread.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING

from bzzz_console.p2p.bridge import P2PError, describe, root_cause
from bzzz_console.p2p.wire import TOPIC_COORDINATION, TOPIC_META

if TYPE_CHECKING:
    import trio
    from libp2p.abc import IHost
    from libp2p.peer.id import ID
    from libp2p.peer.peerinfo import PeerInfo
    from libp2p.pubsub.gossipsub import GossipSub
    from libp2p.pubsub.pubsub import Pubsub

    from bzzz_console.p2p.node import NodeConfig

log = logging.getLogger("bzzz_console.p2p.node")  # dial failures are the node's to report, under its name
TOPICS = (TOPIC_COORDINATION, TOPIC_META)


class PeerDialing:
    """The node's dialing; its host, pubsub, router and nursery are set once it runs."""

    config: NodeConfig
    _host: IHost | None
    _pubsub: Pubsub | None
    _router: GossipSub | None
    _nursery: trio.Nursery | None
    _known: dict[ID, PeerInfo]
    _retry: dict[ID, tuple[int, float]]

    async def _connect(self, info: PeerInfo, text: str) -> None:
        import trio

        assert self._host is not None
        if info.peer_id == self._host.get_id():
            raise P2PError(f"{text} is this node's own address")
        network, timeout = self._host.get_network(), self.config.connect_timeout_s
        unblock = getattr(network, "unblock_peer", None)  # the swarm refuses a peer 60 s after a failed dial
        if unblock is not None and info.peer_id not in network.connections:
            unblock(info.peer_id)
        try:
            with trio.fail_after(timeout):
                await self._host.connect(info)
        except trio.TooSlowError:
            raise P2PError(f"cannot reach {text}: no answer within {timeout:g} s") from None
        except Exception as exc:
            root = root_cause(exc)
            reason = root.strerror if isinstance(root, OSError) and root.strerror else describe(exc)
            raise P2PError(f"cannot reach {text}: {reason}") from None
        self._known[info.peer_id] = info
        self._retry.pop(info.peer_id, None)
        await self._wait_ready(info.peer_id, timeout)

    async def _wait_ready(self, peer: ID, timeout: float) -> None:
        """Best effort: the peer's pubsub stream, its subscriptions, and a place in our mesh, on both topics."""
        import trio

        assert self._pubsub is not None and self._router is not None
        with trio.move_on_after(timeout), contextlib.suppress(trio.TooSlowError):
            await self._pubsub.wait_for_peer(peer, timeout)
            for topic in TOPICS:
                await self._pubsub.wait_for_subscription(peer, topic, timeout)
            for topic in TOPICS:
                if len(self._router.mesh.get(topic, ())) < self.config.degree_low:
                    await self._pubsub.wait_for_mesh(peer, topic, min(timeout, 2.0))

    def _remember_and_dial(self, info: PeerInfo) -> None:
        self._known[info.peer_id] = info
        if (
            self._nursery is None
            or self._host is None
            or info.peer_id in self._host.get_network().connections
        ):
            return
        self._retry[info.peer_id] = (self._retry.get(info.peer_id, (0, 0.0))[0], float("inf"))  # in flight
        self._nursery.start_soon(self._dial_quietly, info)

    async def _dial_quietly(self, info: PeerInfo) -> None:
        try:
            await self._connect(info, f"{info.addrs[0] if info.addrs else ''}/p2p/{info.peer_id}")
        except P2PError as exc:
            failures = self._retry.get(info.peer_id, (0, 0.0))[0] + 1
            delay = min(60.0, self.config.redial_s * 2 ** min(failures - 1, 5))
            self._retry[info.peer_id] = (failures, time.monotonic() + delay)
            (log.info if failures == 1 else log.debug)("%s (next try in %.0f s)", exc, delay)

    async def _redial_loop(self) -> None:
        """Known peers (bootstrap, connected to once, found by mDNS) are dialed again while disconnected."""
        import trio

        assert self._host is not None
        while True:
            await trio.sleep(self.config.redial_s)
            connected, now = self._host.get_network().connections, time.monotonic()
            for peer, info in list(self._known.items()):
                if peer in connected:
                    self._retry.pop(peer, None)
                elif self._retry.get(peer, (0, 0.0))[1] <= now:
                    self._remember_and_dial(info)
