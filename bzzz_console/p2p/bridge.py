"""Trio in its own thread, called from asyncio; and the py-libp2p plumbing that needs care.

py-libp2p runs on trio only, the console on asyncio. The trio thread runs one ``main`` coroutine: it sets up
libp2p, calls :meth:`TrioThread.ready` with the nursery for calls from asyncio, then awaits ``wait_stop()``.

- asyncio → trio, with a result: :meth:`TrioThread.call` (``run_sync_soon`` spawns the coroutine in that nursery,
  a ``concurrent.futures.Future`` carries the result back, awaited through ``asyncio.wrap_future``);
- trio → asyncio: :meth:`TrioThread.deliver` (``loop.call_soon_threadsafe``).

Failures inside trio (nested exception groups, py-libp2p's ``MultiError``) become one :class:`P2PError` naming
the cause: no caller ever sees an ``ExceptionGroup``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    import trio
    from libp2p.abc import IHost, INetStream
    from libp2p.peer.id import ID
    from libp2p.peer.peerinfo import PeerInfo
    from libp2p.pubsub.gossipsub import GossipSub
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.pubsub.pubsub import Pubsub
    from multiaddr import Multiaddr

T = TypeVar("T")


class P2PError(RuntimeError):
    """A peer-to-peer operation failed; the message says what and why, in one line."""


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """The errors inside an exception group, or inside py-libp2p's ``MultiError`` (``.errors``)."""
    inner = exc.exceptions if isinstance(exc, BaseExceptionGroup) else getattr(exc, "errors", None)
    if isinstance(inner, list | tuple) and inner and all(isinstance(e, BaseException) for e in inner):
        for each in inner:
            yield from _leaves(each)
    else:
        yield exc


def _first_leaf(exc: BaseException) -> BaseException | None:
    cancelled = ("Cancelled", "CancelledError", "GeneratorExit")
    return next((leaf for leaf in _leaves(exc) if type(leaf).__name__ not in cancelled), None)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def root_cause(exc: BaseException) -> BaseException:
    """The deepest cause of an exception (through groups, ``raise … from`` and implicit context)."""
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        leaf = _first_leaf(current)
        if leaf is None:
            break
        exc, current = leaf, leaf.__cause__ or (None if leaf.__suppress_context__ else leaf.__context__)
    return exc


def describe(exc: BaseException) -> str:
    """One line for an exception or exception group: its first real error, and that error's root cause."""
    leaf = _first_leaf(exc)
    if leaf is None:
        return "cancelled: the node is stopping"
    if isinstance(leaf, P2PError):
        return str(leaf)
    text, root = _one_line(leaf), root_cause(leaf)
    cause = root.strerror if isinstance(root, OSError) and root.strerror else _one_line(root)
    return text if root is leaf or cause in text else f"{text} ({cause})"


class TrioThread:
    """One trio event loop in a daemon thread, with calls to it from one asyncio loop."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failure: str | None = None
        """Why the trio side ended on its own (``None`` while it runs or after a clean stop)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._stop: trio.Event | None = None
        self._stop_asked = False
        self._was_ready = False
        self._ready: asyncio.Future[None] | None = None
        self._done: asyncio.Future[None] | None = None

    @property
    def running(self) -> bool:
        return self._nursery is not None and self._thread is not None and self._thread.is_alive()

    # ---- asyncio side -------------------------------------------------------------------------------------

    async def start(self, main: Callable[[TrioThread], Awaitable[None]], timeout: float) -> None:
        """Start the thread and wait until ``main`` called :meth:`ready`; P2PError if it failed first."""
        if self._thread is not None:
            raise P2PError(f"{self.name} was already started")
        self._loop = loop = asyncio.get_running_loop()
        self._ready, self._done = loop.create_future(), loop.create_future()
        self._thread = threading.Thread(target=self._thread_main, args=(main,), name=self.name, daemon=True)
        self._thread.start()
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except TimeoutError:
            await self.stop(timeout=5.0)
            raise P2PError(f"{self.name} did not start within {timeout:g} s") from None
        except BaseException:
            await self.stop(timeout=5.0)
            raise

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn(*args)`` in the trio thread and return its result; failures come back as P2PError."""
        token, nursery = self._token, self._nursery
        if token is None or nursery is None:
            raise P2PError(self.failure or f"{self.name} is not running")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        async def task() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = await fn(*args)
            except BaseException as exc:
                future.set_exception(P2PError(describe(exc)))
                if not isinstance(exc, Exception):
                    raise  # trio.Cancelled (the node is stopping) must reach trio
            else:
                future.set_result(result)

        try:
            token.run_sync_soon(nursery.start_soon, task)
        except RuntimeError:  # trio.RunFinishedError: the thread ended meanwhile
            raise P2PError(self.failure or f"{self.name} is not running") from None
        return await asyncio.wrap_future(future)

    async def stop(self, timeout: float = 10.0) -> None:
        """Ask ``main`` to return and wait for the thread to end (idempotent)."""
        thread, done = self._thread, self._done
        if thread is None or done is None:
            return
        self._stop_asked = True  # seen by the thread if its stop event does not exist yet
        token, stop = self._token, self._stop
        if token is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # already finished
                token.run_sync_soon(stop.set)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(done), timeout)
        thread.join(timeout=1.0)

    # ---- trio side ----------------------------------------------------------------------------------------

    def ready(self, nursery: trio.Nursery) -> None:
        """Called by ``main`` once it is up: calls from asyncio now run in ``nursery``."""
        self._nursery, self._was_ready = nursery, True
        self._post(self._resolve, self._ready, None)

    async def wait_stop(self) -> None:
        assert self._stop is not None
        await self._stop.wait()

    def deliver(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the asyncio loop, soon (never blocks the trio side)."""
        self._post(callback, *args)

    def _post(self, callback: Callable[..., object], *args: Any) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the asyncio loop is closed: nobody to tell
                self._loop.call_soon_threadsafe(callback, *args)

    @staticmethod
    def _resolve(future: asyncio.Future[None] | None, error: BaseException | None) -> None:
        if future is None or future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    def _thread_main(self, main: Callable[[TrioThread], Awaitable[None]]) -> None:
        error: P2PError | None = None
        try:
            import trio

            async def root() -> None:
                self._token, self._stop = trio.lowlevel.current_trio_token(), trio.Event()
                if self._stop_asked:
                    self._stop.set()
                await main(self)

            trio.run(root)
        except BaseException as exc:
            error = P2PError(describe(exc))
        finally:
            self._nursery = self._token = None
            if error is not None and self._was_ready:
                self.failure = f"{self.name} stopped: {error}"
            early = P2PError(f"{self.name} stopped before it was ready")
            self._post(self._resolve, self._ready, error or early)
            self._post(self._resolve, self._done, None)


# ---- py-libp2p plumbing (called in the trio thread, after libp2p is imported) ---------------------------------


def peer_id_from_seed(seed: bytes) -> str:
    """The libp2p peer id (``12D3KooW…``) of the Ed25519 key with this 32-byte seed, without loading libp2p."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from bzzz_console.p2p.signing import peer_id_of

    if len(seed) != 32:
        raise P2PError(f"the node key seed must be 32 bytes, got {len(seed)}")
    public = (
        Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    return peer_id_of(public)


def parse_peer_addr(text: str) -> PeerInfo:
    """``/ip4/…/tcp/N/p2p/<id>`` → PeerInfo; P2PError naming the address otherwise."""
    import multiaddr
    from libp2p.peer.peerinfo import info_from_p2p_addr

    try:
        addr = multiaddr.Multiaddr(text.strip())
        if addr.get_peer_id() is None:
            raise ValueError("it must end in /p2p/<peer id>")
        return info_from_p2p_addr(addr)
    except Exception as exc:
        raise P2PError(f"bad peer address {text!r}: {_one_line(exc)}") from None


def _port_taken(host: str, port: int) -> str | None:
    """Why a plain socket cannot bind there: libp2p binds with SO_REUSEPORT and would share another node's port."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
    return None


def parse_listen(texts: list[str]) -> list[Multiaddr]:
    """TCP listen addresses; P2PError for a malformed one or a fixed port that another socket holds."""
    import multiaddr

    addrs = []
    for text in texts:
        try:
            addr = multiaddr.Multiaddr(text)
            ip, port = addr.protocols()[0].code, int(addr.value_for_protocol("tcp"))
            host = str(addr.value_for_protocol(ip))
        except Exception as exc:
            hint = "e.g. /ip4/0.0.0.0/tcp/4001"
            raise P2PError(f"bad listen address {text!r}: {_one_line(exc)} ({hint})") from None
        if port and (reason := _port_taken(host, port)):
            raise P2PError(f"cannot listen on {text}: {reason}")
        addrs.append(addr)
    return addrs


class _Forward(logging.Handler):
    target = logging.getLogger("bzzz_console.p2p.libp2p")

    def emit(self, record: logging.LogRecord) -> None:
        self.target.log(record.levelno, "%s: %s", record.name, record.getMessage())


def route_libp2p_logs() -> None:
    """py-libp2p's logger has no handler and does not propagate, so Python prints its warnings to stderr (and
    garbles the TUI): forward WARNING and above to ``bzzz_console.p2p.libp2p``. Call after importing libp2p."""
    source = logging.getLogger("libp2p")
    if not any(isinstance(h, _Forward) for h in source.handlers):
        source.addHandler(_Forward(logging.WARNING))  # its auto-connector logs INFO chatter on its own level
        source.propagate = False


def new_host(seed: bytes, listen: list[Multiaddr], *, mdns: bool, dial_timeout_s: float) -> IHost:
    """A host with the Ed25519 key of ``seed``, Noise only, yamux (mplex as fallback), one connection per peer."""
    from libp2p import create_yamux_muxer_option
    from libp2p import new_host as libp2p_new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
    from libp2p.network.config import ConnectionConfig
    from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_ID
    from libp2p.security.noise.transport import Transport as Noise

    keys = create_new_key_pair(seed)
    return libp2p_new_host(
        key_pair=keys,
        sec_opt={NOISE_ID: Noise(keys, noise_privkey=create_x25519_key_pair().private_key)},
        muxer_opt=create_yamux_muxer_option(),
        listen_addrs=listen,
        enable_mDNS=mdns,
        connection_config=ConnectionConfig(max_connections_per_peer=1, dial_timeout=dial_timeout_s),
    )


def dialable_addrs(host: IHost) -> list[str]:
    """Full listen addresses (``…/p2p/<id>``); a wildcard (0.0.0.0) becomes this machine's interface addresses."""
    from libp2p.utils.address_validation import expand_wildcard_address

    own = f"/p2p/{host.get_id()}"
    return [f"{a}{own}" for t in host.get_transport_addrs() for a in expand_wildcard_address(t)]


def new_router(degree: int, low: int, high: int, heartbeat_s: float, rate_per_s: float) -> GossipSub:
    """gossipsub /meshsub/1.1.0 and 1.0.0, standard ids every implementation speaks (py's 1.3.0+ are its own;
    with 1.2.0 py sends an IDONTWANT RPC per received message, go only above 1 KB: half our throughput), our
    heartbeat (adaptive gossip would stretch it to ≥ 60 s), and the per-topic flood limit (default 10/s) set."""
    from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub

    return GossipSub(
        protocols=[PROTOCOL_ID_V11, PROTOCOL_ID],
        degree=degree,
        degree_low=low,
        degree_high=high,
        heartbeat_initial_delay=0.1,
        heartbeat_interval=cast(int, heartbeat_s),  # annotated int, used as trio.sleep's seconds
        adaptive_gossip_enabled=False,
        spam_protection_enabled=True,
        max_messages_per_topic_per_second=rate_per_s,
    )


def watch_mdns(own: ID, dial: Callable[[PeerInfo], None]) -> Callable[[], None]:
    """mDNS only fills the peerstore, on zeroconf's thread: ``dial`` what it finds in the trio thread."""
    import trio
    from libp2p.discovery.events.peerDiscovery import peerDiscovery

    token = trio.lowlevel.current_trio_token()

    def found(info: PeerInfo) -> None:
        if info.peer_id != own:
            with contextlib.suppress(RuntimeError):  # trio has finished
                token.run_sync_soon(dial, info)

    peerDiscovery.register_peer_discovered_handler(found)
    return lambda: peerDiscovery.unregister_peer_discovered_handler(found)


def direct_pubsub(host: IHost, router: GossipSub, deliver: Callable[[rpc_pb2.Message], None]) -> Pubsub:
    """py-libp2p's Pubsub (strict signing), but each new message goes to ``deliver`` (which must not block), not
    to a 32-slot channel that drops on overflow; and a peer that reconnects within ~0.1 s (a quick restart) gets
    a fresh stream. py-libp2p 0.8.1 hears of a disconnect 0.1 s late and then ignores it if the peer is back: it
    keeps writing into the dead stream, whose failure makes it forget the peer's new subscriptions for good."""
    from libp2p.pubsub.pubsub import Pubsub

    class DirectPubsub(Pubsub):
        def notify_subscriptions(self, publish_message: rpc_pb2.Message) -> None:
            deliver(publish_message)

        async def _handle_new_peer(self, peer_id: ID) -> None:
            old = self.peers.get(peer_id)
            stale = old is not None and bool(getattr(old.muxed_conn, "is_closed", False))
            if stale:  # drop the dead stream, keep subscriptions (they may already be the new connection's)
                del self.peers[peer_id]
                if (queue := self.peer_queues.pop(peer_id, None)) is not None:
                    queue.close()
                self.router.remove_peer(peer_id)
            await super()._handle_new_peer(peer_id)
            regraft = getattr(self.router, "on_peer_subscribed", None)
            if stale and regraft is not None and peer_id in self.peers:
                for topic, peers in list(self.peer_topics.items()):
                    if peer_id in peers and topic in self.topic_ids:
                        await regraft(peer_id, topic)

        async def write_msg(self, stream: INetStream, rpc_msg: rpc_pb2.RPC) -> bool:
            registered = self.peers.get(stream.muxed_conn.peer_id)
            if registered is None or registered is not stream:
                return False  # a replaced stream's last writes: its failure must not tear down the new one
            return await super().write_msg(registered, rpc_msg)

    return DirectPubsub(host, router, strict_signing=True, seen_ttl=120)
