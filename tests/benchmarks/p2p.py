"""P2P benchmarks: two real libp2p nodes on 127.0.0.1. Prints a table, then one JSON document. No assertions.

    python tests/benchmarks/p2p.py [--quick] [--json-only] [--same-process] [-n MESSAGES]

Node A runs in this process, node B in a child process (as two consoles would), each in its own trio thread
bridged to its asyncio loop. B writes ``<seq> <perf_counter>`` for each message its ``on_message`` receives;
``perf_counter`` is the system-wide monotonic clock, so one-way times across the two processes are comparable.
``--same-process`` runs B in this process too (both nodes then share one GIL).

1. Start and connect: wall time of ``P2PNode.start()`` (libp2p already imported) and of ``connect()`` (dial,
   Noise, yamux, pubsub streams, subscriptions and mesh on both topics).
2. One-way latency, one message in flight: A publishes, B's ``on_message`` (on B's asyncio loop) notes the
   arrival, the next message leaves when the previous one arrived. Median and p95 of arrival - just before
   ``publish()``, and of the ``publish()`` call itself.
3. Throughput: A publishes N messages and B counts what arrives, (a) one ``await publish()`` after the other and
   (b) pipelined, up to 64 ``publish()`` calls outstanding. With back-pressure (the node waits while the peer's
   outbound queue is nearly full) nothing should be dropped: ``dropped`` = sent - received once nothing arrived
   for 5 s, next to the node's counters (back-pressure waits, sends made with a full queue, B's rejections).
   B's admission rate limit is raised for this run (its default, 50 messages/s per author, is for real fleets);
   gossipsub's flood limit keeps its default (1000/s per topic).
4. Cross-node escalation round trip (:mod:`p2p_escalation`): two runtimes, an escalation raised on A answered by
   code on B, until A's agent is active again (target p95 ≤ 300 ms), and B's answer until A confirmed it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from bzzz_console.p2p.node import NodeConfig, P2PNode
from bzzz_console.p2p.wire import MessageType, WireMessage

WINDOW = 64
DRAIN_IDLE_S = 5.0
CONFIG = NodeConfig(rate_per_s=1e6, burst=1e6)


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"median_ms": None, "p95_ms": None, "min_ms": None, "max_ms": None, "n": 0}
    return {
        "median_ms": round(statistics.median(samples), 3),
        "p95_ms": round(percentile(samples, 0.95), 3),
        "min_ms": round(min(samples), 3),
        "max_ms": round(max(samples), 3),
        "n": len(samples),
    }


class Inbox:
    """B's arrivals: sequence number → perf_counter at ``on_message``."""

    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}
        self.event = asyncio.Event()

    def record(self, seq: int, when: float) -> None:
        self.arrivals[seq] = when
        self.event.set()

    async def wait_for(self, count: int, idle_s: float = DRAIN_IDLE_S, seq: int | None = None) -> None:
        """Until ``count`` messages (or message ``seq``) arrived, or none arrived for ``idle_s``."""
        while len(self.arrivals) < count and (seq is None or seq not in self.arrivals):
            self.event.clear()
            try:
                await asyncio.wait_for(self.event.wait(), idle_s)
            except TimeoutError:
                return


class LocalPeer:
    """Node B in this process."""

    def __init__(self, inbox: Inbox) -> None:
        self.node = P2PNode(
            os.urandom(32), CONFIG, lambda m, _: inbox.record(m.data["seq"], time.perf_counter())
        )
        self.addr = ""

    async def start(self) -> None:
        await self.node.start()
        self.addr = self.node.addrs[0]

    async def stats(self) -> dict[str, Any]:
        return self.node.stats

    async def stop(self) -> None:
        await self.node.stop()


class ChildPeer:
    """Node B in a child process (``p2p.py --peer``), talking over its stdin/stdout."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox, self.addr = inbox, ""
        self.proc: asyncio.subprocess.Process | None = None
        self.replies: asyncio.Queue[str] = asyncio.Queue()
        self.reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--peer", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        self.reader = asyncio.create_task(self._read())
        self.addr = await asyncio.wait_for(self.replies.get(), 60)

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := (await self.proc.stdout.readline()).decode():
            if line[0].isdigit():
                seq, when = line.split()
                self.inbox.record(int(seq), float(when))
            else:
                await self.replies.put(line.split(" ", 1)[1].strip())

    async def stats(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"stats\n")
        result: dict[str, Any] = json.loads(await asyncio.wait_for(self.replies.get(), 30))
        return result

    async def stop(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"quit\n")
        await asyncio.wait_for(self.proc.wait(), 30)
        if self.reader is not None:
            await self.reader


async def peer_main() -> None:
    """The child: node B, its arrivals on stdout, commands (``stats``, ``quit``) on stdin."""
    out = sys.stdout

    def arrived(message: WireMessage, _: str) -> None:
        out.write(f"{message.data['seq']} {time.perf_counter()!r}\n")
        out.flush()

    node = P2PNode(os.urandom(32), CONFIG, arrived)
    await node.start()
    print("ADDR", node.addrs[0], flush=True)
    commands = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    while (line := (await commands.readline()).strip()) not in (b"quit", b""):
        if line == b"stats":
            print("STATS", json.dumps(node.stats), flush=True)
    await node.stop()


def message(sender: P2PNode, seq: int, run: str) -> WireMessage:
    return WireMessage(MessageType.TASK_PROGRESS, sender.peer_id, datetime.now(UTC), {"seq": seq, "run": run})


async def latency(a: P2PNode, inbox: Inbox, n: int, base: int) -> dict[str, Any]:
    one_way, calls, lost = [], [], 0
    for seq in range(base, base + n):
        started = time.perf_counter()
        await a.publish(message(a, seq, "latency"))
        calls.append((time.perf_counter() - started) * 1000)
        await inbox.wait_for(sys.maxsize, 5.0, seq)
        if seq in inbox.arrivals:
            one_way.append((inbox.arrivals[seq] - started) * 1000)
        else:
            lost += 1
    return {"one_way": summary(one_way), "publish_call": summary(calls), "lost": lost}


async def throughput(
    a: P2PNode, b: LocalPeer | ChildPeer, inbox: Inbox, n: int, base: int, window: int
) -> dict[str, Any]:
    before_a, before_b, already = a.stats, await b.stats(), len(inbox.arrivals)
    started = time.perf_counter()
    if window <= 1:
        for seq in range(base, base + n):
            await a.publish(message(a, seq, "sequential"))
    else:
        slots = asyncio.Semaphore(window)

        async def one(seq: int) -> None:
            async with slots:
                await a.publish(message(a, seq, "pipelined"))

        await asyncio.gather(*(one(seq) for seq in range(base, base + n)))
    sent_s = time.perf_counter() - started
    await inbox.wait_for(already + n)
    got = [t for seq, t in inbox.arrivals.items() if base <= seq < base + n]
    after_a, after_b = a.stats, await b.stats()
    return {
        "messages": n,
        "received": len(got),
        "dropped": n - len(got),
        "msgs_per_s": round(len(got) / (max(got) - started), 1) if got else 0.0,
        "publish_msgs_per_s": round(n / sent_s, 1),
        "backpressure_waits": after_a["backpressure_waits"] - before_a["backpressure_waits"],
        "queue_full_sends": after_a["queue_full_sends"] - before_a["queue_full_sends"],
        "rejected": after_b["rejected_total"] - before_b["rejected_total"],
        "window": window,
    }


def escalation_round_trip(samples: int, out: TextIO = sys.stdout) -> dict[str, Any]:
    """Cross-node escalation round trip through two real Runtimes (see :mod:`p2p_escalation`)."""
    try:  # run as a script, this folder is on sys.path; imported as a package module, it is not
        from p2p_escalation import escalation_round_trip as measure
    except ImportError:
        from tests.benchmarks.p2p_escalation import escalation_round_trip as measure

    raw = measure(samples)
    result = {
        "round_trip": summary(raw["round_trip"]),
        "answer_confirmed": summary(raw["answer_confirmed"]),
        "stores_agree": raw["stores_agree"],
        "target_p95_ms": 300,
    }
    p95 = result["round_trip"]["p95_ms"]
    result["ok"] = p95 is not None and p95 <= 300 and raw["stores_agree"]
    header = (
        f"{'cross-node escalation':<32} {'median ms':>10} {'p95 ms':>10} {'min ms':>9} {'max ms':>9} {'n':>6}"
    )
    print(header, file=out)
    print("-" * len(header), file=out)
    for name, key in (
        ("raised on A → A's agent active", "round_trip"),
        ("B answers → A confirmed", "answer_confirmed"),
    ):
        f = result[key]
        if f["n"]:
            print(
                f"{name:<32} {f['median_ms']:>10.3f} {f['p95_ms']:>10.3f} {f['min_ms']:>9.3f} {f['max_ms']:>9.3f} {f['n']:>6}",
                file=out,
            )
    print(
        f"target p95 ≤ 300 ms: {'ok' if result['ok'] else 'MISSED'}; both stores agree: {raw['stores_agree']}",
        file=out,
    )
    return result


async def run(n_latency: int, n_throughput: int, same_process: bool) -> dict[str, Any]:
    warm = P2PNode(os.urandom(32), CONFIG, lambda m, s: None)
    await warm.start()  # imports libp2p (not part of the start figure)
    await warm.stop()
    inbox = Inbox()
    a = P2PNode(os.urandom(32), CONFIG, lambda m, s: None)
    b = LocalPeer(inbox) if same_process else ChildPeer(inbox)
    started = time.perf_counter()
    await a.start()
    start_ms = (time.perf_counter() - started) * 1000
    await b.start()
    try:
        started = time.perf_counter()
        await a.connect(b.addr)
        connect_ms = (time.perf_counter() - started) * 1000
        await latency(a, inbox, min(20, n_latency), 0)  # warm-up
        return {
            "peer": "same process" if same_process else "child process",
            "start_ms": round(start_ms, 2),
            "connect_ms": round(connect_ms, 2),
            "latency": await latency(a, inbox, n_latency, 1_000_000),
            "sequential": await throughput(a, b, inbox, n_throughput, 2_000_000, 1),
            "pipelined": await throughput(a, b, inbox, n_throughput, 3_000_000, WINDOW),
        }
    finally:
        await a.stop()
        await b.stop()


def print_table(result: dict[str, Any]) -> None:
    print(
        f"bzzz-console P2P: two libp2p nodes on 127.0.0.1 (gossipsub, Noise, yamux), peer in {result['peer']}"
    )
    print(f"start {result['start_ms']:.1f} ms, connect {result['connect_ms']:.1f} ms")
    header = f"{'latency':<32} {'median ms':>10} {'p95 ms':>10} {'min ms':>9} {'max ms':>9} {'n':>6}"
    print(header)
    print("-" * len(header))
    for name, key in (("one-way (publish → on_message)", "one_way"), ("publish() call", "publish_call")):
        f = result["latency"][key]
        if f["n"]:
            print(
                f"{name:<32} {f['median_ms']:>10.3f} {f['p95_ms']:>10.3f} {f['min_ms']:>9.3f} "
                f"{f['max_ms']:>9.3f} {f['n']:>6}"
            )
    header = f"{'throughput':<32} {'msgs/s':>10} {'sent/s':>10} {'dropped':>9} {'waits':>9} {'n':>6}"
    print(header)
    print("-" * len(header))
    for name in ("sequential", "pipelined"):
        f = result[name]
        label = name if name == "sequential" else f"pipelined (window {f['window']})"
        print(
            f"{label:<32} {f['msgs_per_s']:>10.1f} {f['publish_msgs_per_s']:>10.1f} {f['dropped']:>9} "
            f"{f['backpressure_waits']:>9} {f['messages']:>6}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bzzz-console P2P benchmark (print, never assert)")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--json-only", action="store_true", help="print only the JSON document")
    parser.add_argument("--same-process", action="store_true", help="run node B in this process too")
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("-n", type=int, default=3000, help="messages per throughput run (default 3000)")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # a benchmark prints figures, not libp2p's connection chatter
    if args.peer:
        asyncio.run(peer_main())
        return 0
    n_latency, n_throughput = (50, 300) if args.quick else (300, args.n)
    started = time.perf_counter()
    figures = asyncio.run(run(n_latency, n_throughput, args.same_process))
    result = {
        "benchmark": "p2p",
        "quick": args.quick,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        **figures,
        "elapsed_s": round(time.perf_counter() - started, 2),
    }
    if not args.json_only:
        print_table(result)
    result["escalation"] = escalation_round_trip(
        5 if args.quick else 30, sys.stderr if args.json_only else sys.stdout
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
