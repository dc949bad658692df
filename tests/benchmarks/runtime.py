"""Runtime benchmarks: turn overhead, SQLite message throughput, and a 100-agent fleet's event-loop stalls.

    python tests/benchmarks/runtime.py [--quick] [--json-only] [--server-process]

Prints a table (metric, value, target, ok) and then one JSON document with the same figures; ``--json-only``
prints only the JSON. Nothing here asserts: a missed target shows as ``ok: false`` and the exit status is 0.
Every database lives in a temporary folder that is removed afterwards. No product code is changed: the
instrumentation wraps objects of the running Runtime.

1. Turn overhead: the demo scenario (the three demo tasks, demo latency 0) through a real Runtime and the real
   demo server over HTTP, repeated on fresh databases (after one discarded warm-up run). The demo server runs in
   a child process (its CPU is the model's, not the runtime's); the figure with it in this process is shown too. The backend is
   wrapped to add up the wall time spent inside ``complete`` per turn, ``Conversations._take_turn`` is wrapped
   to time each turn; overhead = turn time - time inside the model calls of that turn.
2. Messages persisted per second on SQLite: ``Store.post_message(..., end_turn=True)``, one commit each, as
   the runtime posts them; the median of three runs.
3. Fleet: 100 agents on 30 tasks, demo latency 20 ms, run until ``wait_idle()`` while a 5 ms ticker on the same
   loop records how late each wake-up is (the loop's stalls), and a watchdog thread samples where the loop's
   thread is while a stall is going on. By default the demo server runs in this process (as the console's demo
   mode does); ``--server-process`` moves it to a child process, so only the runtime's own work is on the GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bzzz_console.app import make_runtime
from bzzz_console.config import Settings
from bzzz_console.demo.team import DEMO_TASKS
from bzzz_console.runtime.runtime import Runtime
from bzzz_console.store.repo import Store
from bzzz_console.store.tables import ThreadRow

TARGET_TURN_OVERHEAD_MS = 2.0
TARGET_MSGS_PER_S = 5_000.0
TARGET_MAX_STALL_MS = 100.0
TICK_S = 0.005
STALL_SAMPLE_MS = 50.0
"""The watchdog records where the loop's thread is while the ticker is this late."""
ERROR_KINDS = ("error", "llm_failed")


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


def rounded(value: float, digits: int = 3) -> float | None:
    return None if math.isnan(value) else round(value, digits)


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
    """The demo tasks, cycled; numbered titles ("... #7") give every thread its own topic."""
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


class EventTally:
    """Drains a bus subscription as a view would, counting events by kind and keeping the first errors."""

    def __init__(self, rt: Runtime) -> None:
        self.counts: Counter[str] = Counter()
        self.errors: list[str] = []
        self._task = asyncio.create_task(self._consume(rt.bus.subscribe()), name="bus consumer")

    async def _consume(self, subscription: Any) -> None:
        async for event in subscription:
            self.counts[event.kind] += 1
            if event.kind in ERROR_KINDS and len(self.errors) < 5:
                where = getattr(event, "where", None) or getattr(event, "thread_id", None) or "?"
                message = getattr(event, "message", None) or getattr(event, "error", "")
                self.errors.append(f"{event.kind} in {where}: {message}"[:300])

    async def finished(self) -> None:
        """The bus closes when the runtime stops; then the subscription ends."""
        await asyncio.wait_for(self._task, 10)

    @property
    def error_count(self) -> int:
        return sum(self.counts.get(kind, 0) for kind in ERROR_KINDS)


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
    """After start: time every turn and the model calls inside it (no product code changes)."""
    rt._backend = TimedBackend(rt.backend)
    original: Callable[..., Any] = rt.conversations._take_turn

    async def timed_turn(*args: Any, **kwargs: Any) -> Any:
        account: list[float] = []
        token = _model_time.set(account)
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            _model_time.reset(token)
            samples.append(TurnSample(elapsed, sum(account), len(account)))

    rt.conversations._take_turn = timed_turn  # type: ignore[method-assign]


async def demo_scenario(
    folder: Path, samples: list[TurnSample], server_url: str | None = None
) -> tuple[Counter[str], EventTally]:
    settings = settings_for(folder, latency_ms=0)
    backend = None
    if server_url is not None:
        from bzzz_console.runtime.llm.provider import ProviderChoice, make_backend

        backend = make_backend(ProviderChoice("demo", server_url, "demo model (child process)"), settings)
    rt = make_runtime(settings, force_demo=True, backend=backend)
    tally = EventTally(rt)
    async with rt:
        instrument(rt, samples)
        add_tasks(rt, len(DEMO_TASKS), numbered=False)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rt.wait_idle(), 120)
        outcomes = Counter(t.status for t in rt.store.threads())
    await tally.finished()
    return outcomes, tally


async def bench_turn_overhead(root: Path, sizes: Sizes, *, server_process: bool = True) -> dict[str, Any]:
    """The model server runs in a child process by default: in this process its thread would take the GIL in
    the middle of the runtime's turns, and the model's own CPU time would be counted as runtime overhead."""
    with contextlib.ExitStack() as stack:
        url = (
            stack.enter_context(demo_server_process(settings_for(root, latency_ms=0)))
            if server_process
            else None
        )
        result = await _turn_overhead(root, sizes, url)
    return {**result, "demo_server": "child process" if server_process else "in process"}


async def _turn_overhead(root: Path, sizes: Sizes, url: str | None) -> dict[str, Any]:
    for i in range(sizes.warmup_runs):  # first imports, schema builds and connections are not counted
        await demo_scenario(root / f"warmup-{i}-{url is None}", [], url)
    samples: list[TurnSample] = []
    runs: list[int] = []
    outcomes: Counter[str] = Counter()
    errors: list[str] = []
    error_count = 0
    while len(samples) < sizes.min_turns and len(runs) < sizes.max_runs:
        before = len(samples)
        run_outcomes, tally = await demo_scenario(root / f"turns-{len(runs)}-{url is None}", samples, url)
        outcomes.update(run_outcomes)
        error_count += tally.error_count
        errors.extend(tally.errors[: 5 - len(errors)])
        runs.append(len(samples) - before)
    overhead = [s.overhead_ms for s in samples]
    model_ms = [s.model_s * 1000 for s in samples if s.calls]
    median = statistics.median(overhead) if overhead else math.nan
    return {
        "median_ms": rounded(median),
        "p95_ms": rounded(percentile(overhead, 95)),
        "max_ms": rounded(max(overhead, default=math.nan)),
        "turns": len(samples),
        "runs": len(runs),
        "turns_per_run": runs,
        "warmup_runs": sizes.warmup_runs,
        "model_calls": sum(s.calls for s in samples),
        "model_median_ms_per_turn": rounded(statistics.median(model_ms)) if model_ms else None,
        "thread_outcomes": dict(outcomes),
        "errors": error_count,
        "first_errors": errors,
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
        gc.collect()
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
class StallWatch:
    """A 5 ms ticker on the loop (how late is each wake-up?) and a watchdog thread that notes, while the loop is
    late by more than STALL_SAMPLE_MS, the innermost project frames of the loop's thread and the library they
    called into. The watchdog only runs when the loop's thread releases the GIL (I/O, every 5 ms switch), so its
    samples say where the time goes, roughly, not exactly."""

    def __init__(self) -> None:
        self.phase = "startup"
        self.lateness: dict[str, list[float]] = {"startup": [], "run": [], "shutdown": []}
        self.sites: Counter[str] = Counter()
        self._last_wake = time.perf_counter()
        self._stop = threading.Event()
        self._loop_thread = threading.get_ident()
        self._watchdog = threading.Thread(target=self._watch, name="stall watchdog", daemon=True)
        self._ticker: asyncio.Task[None] | None = None

    async def __aenter__(self) -> StallWatch:
        self._ticker = asyncio.create_task(self._tick(), name="stall ticker")
        self._watchdog.start()
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._ticker is not None:
            await self._ticker
        self._watchdog.join(timeout=5)

    async def _tick(self) -> None:
        while not self._stop.is_set():
            began, started = self.phase, time.perf_counter()
            await asyncio.sleep(TICK_S)
            self._last_wake = now = time.perf_counter()
            # a stall that spans a phase change counts under both names, e.g. "startup→run"
            phase = began if began == self.phase else f"{began}→{self.phase}"
            self.lateness.setdefault(phase, []).append(max(0.0, now - started - TICK_S) * 1000)

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            if (time.perf_counter() - self._last_wake) * 1000 < STALL_SAMPLE_MS + TICK_S * 1000:
                continue
            frame = sys._current_frames().get(self._loop_thread)
            if frame is None:
                continue
            stack = traceback.extract_stack(frame)
            ours = [i for i, f in enumerate(stack) if "bzzz_console" in f.filename]
            if not ours:
                self.sites["(outside bzzz_console)"] += 1
                continue
            where = " < ".join(f"{Path(stack[i].filename).stem}.{stack[i].name}" for i in reversed(ours[-2:]))
            below = stack[ours[-1] + 1].filename if ours[-1] + 1 < len(stack) else ""
            library = below.split("site-packages/")[1].split("/")[0] if "site-packages/" in below else ""
            self.sites[f"{where} [{library}]" if library else where] += 1

    @property
    def all_lateness(self) -> list[float]:
        return [x for values in self.lateness.values() for x in values]


SERVER_PROCESS = """
import sys
from bzzz_console.demo.team import DemoResponder
from bzzz_console.demo.scripted_server import ScriptedServer
server = ScriptedServer(DemoResponder(int(sys.argv[1])), latency_s=float(sys.argv[2])).start()
print(server.base_url, flush=True)
sys.stdin.read()
server.stop()
"""


@contextlib.contextmanager
def demo_server_process(settings: Settings) -> Iterator[str]:
    """The demo model in a child process: its CPU no longer competes with the runtime for the GIL."""
    args = [str(settings.demo.seed), str(settings.demo.latency_ms / 1000)]
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER_PROCESS, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def bench_fleet(root: Path, sizes: Sizes, *, server_process: bool = False) -> dict[str, Any]:
    settings = settings_for(root / "fleet", latency_ms=sizes.fleet_latency_ms, fleet=sizes.fleet)
    with contextlib.ExitStack() as stack:
        backend = None
        if server_process:
            from bzzz_console.runtime.llm.provider import ProviderChoice, make_backend

            url = stack.enter_context(demo_server_process(settings))
            backend = make_backend(ProviderChoice("demo", url, "demo model (child process)"), settings)
        async with StallWatch() as watch:
            rt = make_runtime(settings, force_demo=True, backend=backend)
            tally = EventTally(rt)
            started = time.perf_counter()
            async with rt:
                startup_s = time.perf_counter() - started
                watch.phase = "run"
                run_started, cpu_started = time.perf_counter(), time.process_time()
                # as `bzzz-console task add` would: written by another writer, picked up by the runtime's inbox
                await asyncio.to_thread(add_tasks, rt, sizes.fleet_tasks, numbered=True)
                timed_out = False
                try:
                    await asyncio.wait_for(rt.wait_idle(), sizes.fleet_timeout_s)
                except TimeoutError:
                    timed_out = True
                wall_s = time.perf_counter() - run_started
                cpu_s = time.process_time() - cpu_started
                threads = rt.store.threads()
                tasks = rt.store.tasks()
                watch.phase = "shutdown"
                shutdown_started = time.perf_counter()
            shutdown_s = time.perf_counter() - shutdown_started
            await tally.finished()

    statuses = Counter(t.status for t in threads)
    task_statuses = Counter(t.status for t in tasks)
    finished = (
        not timed_out
        and len(threads) == sizes.fleet_tasks
        and statuses.get("active", 0) == 0
        and task_statuses.get("pending", 0) == 0
    )
    everything = watch.all_lateness
    max_stall = max(everything, default=math.nan)
    calls = tally.counts.get("llm_called", 0)
    return {
        "agents": sum(sizes.fleet.values()),
        "fleet": sizes.fleet,
        "tasks": sizes.fleet_tasks,
        "demo_latency_ms": sizes.fleet_latency_ms,
        "demo_server": "child process" if server_process else "in process",
        "threads": len(threads),
        "threads_closed": statuses.get("closed", 0),
        "threads_waiting_human": statuses.get("waiting_human", 0),
        "threads_stalled": statuses.get("stalled", 0),
        "threads_active": statuses.get("active", 0),
        "tasks_pending": task_statuses.get("pending", 0),
        "messages": sum(t.message_count for t in threads),
        "model_calls": calls,
        "events": sum(tally.counts.values()),
        "errors": tally.error_count,
        "first_errors": tally.errors,
        "timed_out": timed_out,
        "finished_all": finished,
        "wall_s": round(wall_s, 3),
        "process_cpu_s": round(cpu_s, 3),
        "cpu_ms_per_model_call": round(cpu_s * 1000 / calls, 2) if calls else None,
        "startup_s": round(startup_s, 3),
        "shutdown_s": round(shutdown_s, 3),
        "tick_ms": TICK_S * 1000,
        "ticks": len(everything),
        "max_stall_ms": rounded(max_stall, 2),
        "p99_stall_ms": rounded(percentile(everything, 99), 2),
        "median_stall_ms": rounded(statistics.median(everything), 2) if everything else None,
        "max_stall_ms_by_phase": {k: round(max(v), 2) if v else None for k, v in watch.lateness.items()},
        "stalls_over_50ms": sum(1 for x in everything if x > 50),
        "stalls_over_100ms": sum(1 for x in everything if x > 100),
        "stall_sites": dict(watch.sites.most_common(6)),
        "target_max_stall_ms": TARGET_MAX_STALL_MS,
        "ok": finished and max_stall <= TARGET_MAX_STALL_MS,
    }


# -- output -----------------------------------------------------------------------------------------------
def rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    t, p, f = result["turn_overhead"], result["sqlite_persist"], result["fleet"]

    def ok(flag: bool) -> str:
        return "yes" if flag else "NO"

    threads = f"{f['threads_closed']} closed / {f['threads_waiting_human']} waiting_human / "
    threads += f"{f['threads_stalled']} stalled / {f['threads_active']} active of {f['tasks']}"
    by_phase = ", ".join(f"{k} {v}" for k, v in f["max_stall_ms_by_phase"].items())
    out = [
        ("turn overhead, median (ms)", f"{t['median_ms']}", f"≤ {t['target_median_ms']:g}", ok(t["ok"])),
        ("turn overhead, p95 (ms)", f"{t['p95_ms']}", "", ""),
        (
            "  same, demo server in this process (median)",
            f"{t['with_server_in_process']['median_ms']}",
            "",
            "",
        ),
        ("turns measured (runs)", f"{t['turns']} ({t['runs']})", "", ""),
        ("model time per turn, median (ms)", str(t["model_median_ms_per_turn"]), "", ""),
        (
            "SQLite messages persisted/s",
            f"{p['msgs_per_s']:,}",
            f"≥ {p['target_msgs_per_s']:,.0f}",
            ok(p["ok"]),
        ),
        ("  runs (msgs/s)", ", ".join(f"{r:,}" for r in p["runs_msgs_per_s"]), "", ""),
        (
            f"fleet: {f['agents']} agents / {f['tasks']} tasks, max stall (ms)",
            f"{f['max_stall_ms']}",
            f"≤ {f['target_max_stall_ms']:g}",
            ok(f["ok"]),
        ),
        ("  max stall by phase (ms)", by_phase, "", ""),
        ("  p99 stall (ms); stalls > 100 ms", f"{f['p99_stall_ms']}; {f['stalls_over_100ms']}", "", ""),
        ("  threads", threads, "all finished", ok(f["finished_all"])),
        ("  messages / model calls", f"{f['messages']} / {f['model_calls']}", "", ""),
        (
            "  wall time to idle (s); CPU ms per call",
            f"{f['wall_s']:.2f}; {f['cpu_ms_per_model_call']}",
            "",
            "",
        ),
        ("  start-up / shutdown (s)", f"{f['startup_s']:.2f} / {f['shutdown_s']:.2f}", "", ""),
        ("  demo server", f["demo_server"], "", ""),
    ]
    errors = t["errors"] + f["errors"]
    if errors:
        first = (t["first_errors"] + f["first_errors"])[0]
        out.append(("errors raised (first)", f"{errors}: {first[:80]}", "0", "NO"))
    return out


def print_table(result: dict[str, Any]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text is enough
        for metric, value, target, ok in rows(result):
            print(f"{metric:<48} {value:>40} {target:>14} {ok:>4}")
        return
    table = Table(title=f"bzzz-console runtime benchmark{' (quick)' if result['quick'] else ''}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_column("ok", justify="center")
    for row in rows(result):
        table.add_row(*row)
    Console(width=140).print(table)
    sites = result["fleet"]["stall_sites"]
    if sites:
        print("where the loop was during stalls (watchdog samples):")
        for site, count in sites.items():
            print(f"  {count:4}  {site}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bzzz-console runtime benchmarks (print, never assert)")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--json-only", action="store_true", help="print only the JSON document")
    parser.add_argument(
        "--server-process", action="store_true", help="fleet: run the demo model server in a child process"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory(prefix="bzzz-bench-") as tmp:
        root = Path(tmp)
        turn = asyncio.run(bench_turn_overhead(root, sizes))
        turn_shared = asyncio.run(bench_turn_overhead(root, sizes, server_process=False))
        turn["with_server_in_process"] = {k: turn_shared[k] for k in ("median_ms", "p95_ms", "turns")}
        persist = bench_persist(root, sizes)
        fleet = asyncio.run(bench_fleet(root, sizes, server_process=args.server_process))
    result = {
        "benchmark": "runtime",
        "quick": args.quick,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg_1m": {
            "before": load_before,
            "after": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
        "turn_overhead": turn,
        "sqlite_persist": persist,
        "fleet": fleet,
        "elapsed_s": round(time.perf_counter() - started, 2),
    }
    if not args.json_only:
        print_table(result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
