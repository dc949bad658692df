"""Runtime benchmarks: turn overhead, SQLite message throughput, and a 100-agent fleet's event-loop stalls.

    python tests/benchmarks/runtime.py [--quick] [--json-only]

Prints a table (metric, value, target, ok) and then one JSON document with the same figures; ``--json-only``
prints only the JSON. Nothing here asserts: a missed target shows as ``ok: false``, and the exit status is 0.
Every database lives in a temporary folder that is removed afterwards.

1. Turn overhead: the demo scenario (the three demo tasks, demo latency 0) through a real Runtime and the real
   demo server over HTTP. The backend is wrapped to add up the wall time spent inside ``complete`` per turn,
   and ``Conversations._take_turn`` is wrapped to time each turn; overhead = turn time - model time.
2. Messages persisted per second on SQLite: ``Store.post_message(..., end_turn=True)``, one commit each, as
   the runtime posts them; the median of three runs.
3. Fleet: 100 agents on 30 tasks, demo latency 20 ms, run until idle while a 5 ms ticker on the same loop
   records how late each wake-up is (the event loop's stalls).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bzzz_console.config import Settings
from bzzz_console.runtime.demo import DEMO_TASKS
from bzzz_console.runtime.runtime import Runtime
from bzzz_console.store.repo import Store
from bzzz_console.store.tables import ThreadRow

TARGET_TURN_OVERHEAD_MS = 2.0
TARGET_MSGS_PER_S = 5_000.0
TARGET_MAX_STALL_MS = 100.0
TICK_S = 0.005


@dataclass(frozen=True)
class Sizes:
    warmup_runs: int
    min_turns: int
    max_runs: int
    messages: int
    persist_runs: int
    fleet: dict[str, int]
    fleet_tasks: int
    fleet_latency_ms: float
    fleet_timeout_s: float


FULL = Sizes(
    warmup_runs=1,
    min_turns=60,
    max_runs=12,
    messages=5_000,
    persist_runs=3,
    fleet={"architect": 40, "reviewer": 40, "documentation": 20},
    fleet_tasks=30,
    fleet_latency_ms=20,
    fleet_timeout_s=300,
)
QUICK = Sizes(
    warmup_runs=1,
    min_turns=15,
    max_runs=4,
    messages=1_000,
    persist_runs=3,
    fleet={"architect": 8, "reviewer": 8, "documentation": 4},
    fleet_tasks=6,
    fleet_latency_ms=20,
    fleet_timeout_s=60,
)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def settings_for(folder: Path, *, latency_ms: float, fleet: dict[str, int] | None = None) -> Settings:
    runtime: dict[str, Any] = {"poll_interval_s": 0.1}
    if fleet is not None:
        runtime["fleet"] = fleet
    return Settings.model_validate(
        {
            "data_dir": str(folder / "data"),
            "store": {"url": f"sqlite:///{folder / 'bzzz.db'}"},
            "demo": {"latency_ms": latency_ms, "seed": 7},
            "runtime": runtime,
        }
    )


def add_tasks(rt: Runtime, count: int, *, numbered: bool) -> None:
    for i in range(count):
        task = DEMO_TASKS[i % len(DEMO_TASKS)]
        rt.store.add_task(
            title=f"{task['title']} #{i + 1}" if numbered else task["title"],
            description=task["description"],
            roles=task["roles"],
            priority=task["priority"],
            project="default",
        )
    rt.capacity_changed()


# -- 1. turn overhead -------------------------------------------------------------------------------------
_model_time: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("model_time", default=None)


class TimedBackend:
    """Delegates to the real backend and adds each call's wall time to the current turn's account."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def complete(self, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await self.inner.complete(**kwargs)
        finally:
            account = _model_time.get()
            if account is not None:
                account.append(time.perf_counter() - started)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(frozen=True)
class TurnSample:
    turn_s: float
    model_s: float
    calls: int

    @property
    def overhead_ms(self) -> float:
        return (self.turn_s - self.model_s) * 1000


def instrument(rt: Runtime, samples: list[TurnSample]) -> None:
    rt._backend = TimedBackend(rt.backend)
    original: Callable[..., Any] = rt.conversations._take_turn

    async def timed_turn(thread: Any, agent: Any) -> None:
        account: list[float] = []
        token = _model_time.set(account)
        started = time.perf_counter()
        try:
            await original(thread, agent)
        finally:
            elapsed = time.perf_counter() - started
            _model_time.reset(token)
            samples.append(TurnSample(elapsed, sum(account), len(account)))

    rt.conversations._take_turn = timed_turn  # type: ignore[method-assign]


async def demo_scenario(folder: Path, samples: list[TurnSample]) -> dict[str, int]:
    rt = Runtime(settings_for(folder, latency_ms=0), force_demo=True)
    async with rt:
        instrument(rt, samples)
        add_tasks(rt, len(DEMO_TASKS), numbered=False)
        await asyncio.wait_for(rt.wait_idle(), 120)
        return dict(Counter(t.status for t in rt.store.threads()))


async def bench_turn_overhead(root: Path, sizes: Sizes) -> dict[str, Any]:
    for i in range(sizes.warmup_runs):  # first imports, first schema builds, first connections: not counted
        await demo_scenario(root / f"warmup-{i}", [])
    samples: list[TurnSample] = []
    runs: list[int] = []
    outcomes: Counter[str] = Counter()
    while len(samples) < sizes.min_turns and len(runs) < sizes.max_runs:
        before = len(samples)
        outcomes.update(await demo_scenario(root / f"turns-{len(runs)}", samples))
        runs.append(len(samples) - before)
    overhead = [s.overhead_ms for s in samples]
    model_ms = [s.model_s * 1000 for s in samples if s.calls]
    median = statistics.median(overhead) if overhead else math.nan
    return {
        "median_ms": round(median, 3),
        "p95_ms": round(percentile(overhead, 95), 3),
        "max_ms": round(max(overhead, default=math.nan), 3),
        "turns": len(samples),
        "runs": len(runs),
        "turns_per_run": runs,
        "warmup_runs": sizes.warmup_runs,
        "model_calls": sum(s.calls for s in samples),
        "model_median_ms_per_turn": round(statistics.median(model_ms), 3) if model_ms else None,
        "thread_outcomes": dict(outcomes),
        "target_median_ms": TARGET_TURN_OVERHEAD_MS,
        "ok": median <= TARGET_TURN_OVERHEAD_MS,
    }


# -- 2. messages persisted per second ---------------------------------------------------------------------
def persist_once(folder: Path, count: int) -> float:
    folder.mkdir(parents=True, exist_ok=True)
    store = Store.open(f"sqlite:///{folder / 'persist.db'}")
    try:
        store.create_thread(ThreadRow(id="bench", project="default", topic="benchmark thread"), [], None)
        texts = [
            f"Message {i}: I agree with the latest proposal; the failure modes are covered and the "
            "rollout plan keeps a way back. Let's record it." + " detail" * (i % 7)
            for i in range(count)
        ]
        started = time.perf_counter()
        for text in texts:
            store.post_message(
                "bench",
                author="architect-1",
                role="architect",
                type="comment",
                content=text,
                tokens=len(text) // 4,
                model="gpt-4o",
                end_turn=True,
            )
        elapsed = time.perf_counter() - started
    finally:
        store.close()
    return count / elapsed


def bench_persist(root: Path, sizes: Sizes) -> dict[str, Any]:
    rates = [persist_once(root / f"persist-{i}", sizes.messages) for i in range(sizes.persist_runs)]
    median = statistics.median(rates)
    return {
        "msgs_per_s": round(median),
        "runs_msgs_per_s": [round(r) for r in rates],
        "messages_per_run": sizes.messages,
        "median_us_per_msg": round(1e6 / median, 1),
        "target_msgs_per_s": TARGET_MSGS_PER_S,
        "ok": median >= TARGET_MSGS_PER_S,
    }


# -- 3. fleet and event-loop stalls -----------------------------------------------------------------------
async def bench_fleet(root: Path, sizes: Sizes) -> dict[str, Any]:
    phase = "startup"
    lateness: dict[str, list[float]] = {"startup": [], "run": [], "shutdown": []}
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(TICK_S)
            lateness[phase].append(max(0.0, time.perf_counter() - started - TICK_S) * 1000)

    event_counts: Counter[str] = Counter()

    async def consume(subscription: Any) -> None:  # a view draining the bus, as the console does
        async for event in subscription:
            event_counts[event.kind] += 1

    monitor = asyncio.create_task(ticker(), name="stall monitor")
    await asyncio.sleep(0)
    settings = settings_for(root / "fleet", latency_ms=sizes.fleet_latency_ms, fleet=sizes.fleet)
    rt = Runtime(settings, force_demo=True)
    consumer = asyncio.create_task(consume(rt.bus.subscribe()), name="bus consumer")
    started = time.perf_counter()
    async with rt:
        startup_s = time.perf_counter() - started
        phase = "run"
        run_started = time.perf_counter()
        add_tasks(rt, sizes.fleet_tasks, numbered=True)
        timed_out = False
        try:
            await asyncio.wait_for(rt.wait_idle(), sizes.fleet_timeout_s)
        except TimeoutError:
            timed_out = True
        wall_s = time.perf_counter() - run_started
        threads = rt.store.threads()
        tasks = rt.store.tasks()
        phase = "shutdown"
        shutdown_started = time.perf_counter()
    shutdown_s = time.perf_counter() - shutdown_started
    stop.set()
    await monitor
    await consumer

    statuses = Counter(t.status for t in threads)
    task_statuses = Counter(t.status for t in tasks)
    finished = (
        not timed_out
        and len(threads) == sizes.fleet_tasks
        and statuses.get("active", 0) == 0
        and task_statuses.get("pending", 0) == 0
    )
    everything = [x for values in lateness.values() for x in values]
    max_stall = max(everything, default=math.nan)
    return {
        "agents": sum(sizes.fleet.values()),
        "fleet": sizes.fleet,
        "tasks": sizes.fleet_tasks,
        "demo_latency_ms": sizes.fleet_latency_ms,
        "threads": len(threads),
        "threads_closed": statuses.get("closed", 0),
        "threads_waiting_human": statuses.get("waiting_human", 0),
        "threads_stalled": statuses.get("stalled", 0),
        "threads_active": statuses.get("active", 0),
        "tasks_pending": task_statuses.get("pending", 0),
        "messages": sum(t.message_count for t in threads),
        "model_calls": event_counts.get("llm_called", 0),
        "events": sum(event_counts.values()),
        "events_dropped_markers": event_counts.get("events_dropped", 0),
        "timed_out": timed_out,
        "finished_all": finished,
        "wall_s": round(wall_s, 3),
        "startup_s": round(startup_s, 3),
        "shutdown_s": round(shutdown_s, 3),
        "tick_ms": TICK_S * 1000,
        "ticks": len(everything),
        "max_stall_ms": round(max_stall, 2),
        "p99_stall_ms": round(percentile(everything, 99), 2),
        "median_stall_ms": round(statistics.median(everything), 2) if everything else None,
        "max_stall_ms_by_phase": {
            k: round(max(v), 2) if v else None for k, v in lateness.items()
        },
        "p99_stall_ms_run": round(percentile(lateness["run"], 99), 2),
        "stalls_over_50ms": sum(1 for x in everything if x > 50),
        "target_max_stall_ms": TARGET_MAX_STALL_MS,
        "ok": finished and max_stall <= TARGET_MAX_STALL_MS,
    }


# -- output -----------------------------------------------------------------------------------------------
def rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    t, p, f = result["turn_overhead"], result["sqlite_persist"], result["fleet"]

    def ok(flag: bool) -> str:
        return "yes" if flag else "NO"

    finished = f"{f['threads_closed']} closed / {f['threads_waiting_human']} waiting_human / "
    finished += f"{f['threads_stalled']} stalled / {f['threads_active']} active of {f['tasks']}"
    stall_phases = ", ".join(f"{k} {v}" for k, v in f["max_stall_ms_by_phase"].items())
    return [
        ("turn overhead, median (ms)", f"{t['median_ms']:.3f}", f"≤ {t['target_median_ms']:g}", ok(t["ok"])),
        ("turn overhead, p95 (ms)", f"{t['p95_ms']:.3f}", "", ""),
        ("turns measured (runs)", f"{t['turns']} ({t['runs']})", "", ""),
        ("model time per turn, median (ms)", str(t["model_median_ms_per_turn"]), "", ""),
        ("SQLite messages persisted/s", f"{p['msgs_per_s']:,}", f"≥ {p['target_msgs_per_s']:,.0f}", ok(p["ok"])),
        ("  runs (msgs/s)", ", ".join(f"{r:,}" for r in p["runs_msgs_per_s"]), "", ""),
        (
            f"fleet: {f['agents']} agents / {f['tasks']} tasks, max stall (ms)",
            f"{f['max_stall_ms']:.2f}",
            f"≤ {f['target_max_stall_ms']:g}",
            ok(f["ok"]),
        ),
        ("  max stall by phase (ms)", stall_phases, "", ""),
        ("  p99 stall (ms)", f"{f['p99_stall_ms']:.2f}", "", ""),
        ("  threads", finished, "all finished", ok(f["finished_all"])),
        ("  messages / model calls", f"{f['messages']} / {f['model_calls']}", "", ""),
        ("  wall time to idle (s)", f"{f['wall_s']:.2f}", "", ""),
        ("  start-up / shutdown (s)", f"{f['startup_s']:.2f} / {f['shutdown_s']:.2f}", "", ""),
    ]


def print_table(result: dict[str, Any]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text is enough
        for metric, value, target, ok in rows(result):
            print(f"{metric:<48} {value:>36} {target:>14} {ok:>4}")
        return
    table = Table(title=f"bzzz-console runtime benchmark{' (quick)' if result['quick'] else ''}")
    for name, justify in (("metric", "left"), ("value", "right"), ("target", "right"), ("ok", "center")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows(result):
        table.add_row(*row)
    Console(width=130).print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--json-only", action="store_true", help="print only the JSON document")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bzzz-bench-") as tmp:
        root = Path(tmp)
        turn = asyncio.run(bench_turn_overhead(root, sizes))
        persist = bench_persist(root, sizes)
        fleet = asyncio.run(bench_fleet(root, sizes))
    result = {
        "benchmark": "runtime",
        "quick": args.quick,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "turn_overhead": turn,
        "sqlite_persist": persist,
        "fleet": fleet,
        "elapsed_s": round(time.perf_counter() - started, 2),
    }
    if not args.json_only:
        print_table(result)
    print(json.dumps(result))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
