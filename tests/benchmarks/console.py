"""Console benchmark: start to first paint against a bare Textual app, key press to repaint under load, and
memory after 100,000 messages. Prints a table, then one JSON document. No assertions.

    python tests/benchmarks/console.py [--quick] [--json-only]

* first paint: fresh interpreters, each running an app headless until its first frame is on screen
  (``call_after_refresh`` from ``on_mount``) — the console and a bare one-label Textual app, alternately.
* key press → repaint: the console runs its real runtime (demo model) while 100 agents' events are published
  at 50 messages per second; a key moves the cursor in the agents table; we time ``press`` until the screen has
  refreshed (Pilot ``pause``).
* memory: 100,000 message events over 300 threads are folded into the console's view and the thread screen
  for one of them is open; peak RSS of the process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

FIRST_PAINT = {
    "bare": """
        import time, sys
        from textual.app import App
        from textual.widgets import Label
        class Bare(App):
            def compose(self):
                yield Label("hello")
            def on_mount(self):
                self.call_after_refresh(self.done)
            def done(self):
                print(time.perf_counter() - START, flush=True); self.exit()
        Bare().run(headless=True)
    """,
    "console": """
        import time, sys, tempfile
        from bzzz_console.config import Settings
        from bzzz_console.tui.app import BzzzApp
        tmp = tempfile.mkdtemp()
        settings = Settings.model_validate({"data_dir": tmp, "store": {"url": f"sqlite:///{tmp}/b.db"}})
        class Timed(BzzzApp):
            def _start(self):
                print(time.perf_counter() - START, flush=True); self.exit()
        Timed(settings, demo=True).run(headless=True)
    """,
}


def first_paint(kind: str) -> float:
    code = "import time; START = time.perf_counter()\n" + textwrap.dedent(FIRST_PAINT[kind])
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, "TERM": "xterm-256color"},
    )
    total = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return total  # interpreter start + imports + first frame: what an operator waits for


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def key_latency(presses: int, agents: int, rate: float) -> dict[str, Any]:
    from textual import events

    from bzzz_console.config import Settings
    from bzzz_console.domain import events as ev
    from bzzz_console.tui.app import BzzzApp

    tmp = tempfile.mkdtemp()
    settings = Settings.model_validate(
        {"data_dir": tmp, "store": {"url": f"sqlite:///{tmp}/b.db"}, "console": {"bell": False}}
    )
    app = BzzzApp(settings, demo=True)
    published = 0
    async with app.run_test(size=(160, 48)) as pilot:
        while app.rt is None or not app.view.status.running:
            await pilot.pause(0.05)
        rt = app.rt

        async def load() -> None:
            nonlocal published
            interval = 1 / rate
            seq: dict[str, int] = {}
            while True:
                i = published % agents
                agent, thread = f"load-{i:03d}", f"load-thread-{i % 30:02d}"
                seq[thread] = seq.get(thread, 0) + 1
                rt.publish(
                    ev.MessagePosted(
                        thread_id=thread,
                        message_id=f"{thread}#{seq[thread]}",
                        seq=seq[thread],
                        author=agent,
                        role="reviewer",
                        message_type="comment",
                        content="load " * 20,
                    )
                )
                rt.publish(
                    ev.AgentStateChanged(
                        agent_id=agent, old="active", new="collaborating", thread_id=thread, reason="load"
                    )
                )
                published += 1
                await asyncio.sleep(interval)

        for i in range(agents):
            rt.publish(ev.AgentRegistered(agent_id=f"load-{i:03d}", role="reviewer", model="gpt-4o-mini"))
            rt.publish(
                ev.ThreadCreated(
                    thread_id=f"load-thread-{i % 30:02d}",
                    task_id=None,
                    project="default",
                    topic=f"load {i % 30}",
                    participants=(f"load-{i:03d}",),
                )
            )
        generator = asyncio.create_task(load())
        await pilot.press("a")
        await pilot.pause(0.5)
        # Measure as a terminal would see it: the key goes in through the driver, and we time until the first
        # frame written after the table's cursor moved (not until the whole process is idle, which a running
        # fleet rarely is).
        frames: list[float] = []
        display = app._display

        def timed_display(screen: Any, renderable: Any) -> None:
            display(screen, renderable)
            frames.append(time.perf_counter())

        app._display = timed_display  # type: ignore[method-assign]
        table = app.screen.query_one("#agents")
        timings = []
        started = time.perf_counter()
        for n in range(presses):
            before = table.cursor_row
            t0 = time.perf_counter()
            app._driver.send_message(events.Key("down" if n % 20 < 10 else "up", None))  # type: ignore[union-attr]
            deadline = t0 + 5
            while table.cursor_row == before and time.perf_counter() < deadline:
                await asyncio.sleep(0.0005)
            moved = time.perf_counter()
            while not (frames and frames[-1] >= moved) and time.perf_counter() < deadline:
                await asyncio.sleep(0.0005)
            timings.append(((frames[-1] if frames else time.perf_counter()) - t0) * 1000)
            await asyncio.sleep(0.02)  # an operator's key repeat, not a flood
        elapsed = time.perf_counter() - started
        generator.cancel()
    return {
        "presses": presses,
        "agents": agents,
        "target_rate_msgs_s": rate,
        "achieved_rate_msgs_s": round(published / elapsed, 1) if elapsed else None,
        "median_ms": round(statistics.median(timings), 2),
        "p95_ms": round(percentile(timings, 0.95), 2),
        "max_ms": round(max(timings), 2),
        "target_p95_ms": 100,
    }


async def memory(messages: int) -> dict[str, Any]:
    from bzzz_console.domain import events as ev
    from bzzz_console.tui.view import FleetView

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    view = FleetView()
    for t in range(300):
        view.apply(
            ev.ThreadCreated(
                thread_id=f"t-{t}", task_id=None, project="p", topic=f"topic {t}", participants=("a", "b")
            )
        )
    for i in range(messages):
        thread = f"t-{i % 300}"
        view.apply(
            ev.MessagePosted(
                thread_id=thread,
                message_id=f"{thread}#{i}",
                seq=i // 300 + 1,
                author=f"agent-{i % 100}",
                role="reviewer",
                message_type="comment",
                content=f"message {i}: " + "lorem ipsum dolor sit amet " * 12,
            )
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kept = sum(len(t) for t in view.transcripts.values())
    return {
        "messages": messages,
        "kept_in_view": kept,
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(peak, 1),
        "target_mb": 400,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="console benchmark")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args()
    rounds = 2 if args.quick else 5
    bare, console = [], []
    for _ in range(rounds):
        bare.append(first_paint("bare"))
        console.append(first_paint("console"))
    paint = {
        "bare_median_s": round(statistics.median(bare), 3),
        "console_median_s": round(statistics.median(console), 3),
        "ratio": round(statistics.median(console) / statistics.median(bare), 2),
        "target_ratio": 2.0,
        "rounds": rounds,
    }
    keys = asyncio.run(key_latency(40 if args.quick else 200, 100, 50.0))
    mem = asyncio.run(memory(20_000 if args.quick else 100_000))
    report = {
        "benchmark": "console",
        "quick": args.quick,
        "first_paint": paint,
        "key_to_repaint": keys,
        "memory": mem,
    }
    if not args.json_only:
        rows = [
            ("start → first paint, console (median s)", paint["console_median_s"], ""),
            ("start → first paint, bare Textual app (median s)", paint["bare_median_s"], ""),
            ("ratio console / bare", paint["ratio"], "≤ 2.0"),
            (
                f"key → repaint p95 (ms), {keys['agents']} agents at {keys['achieved_rate_msgs_s']} msg/s",
                keys["p95_ms"],
                "≤ 100",
            ),
            ("key → repaint median (ms)", keys["median_ms"], ""),
            (f"peak RSS after {mem['messages']:,} messages (MB)", mem["peak_rss_mb"], "≤ 400"),
            ("messages kept in the console's view", mem["kept_in_view"], "bounded"),
        ]
        width = max(len(r[0]) for r in rows)
        print(f"{'metric':<{width}}  {'value':>10}  target")
        for name, value, target in rows:
            print(f"{name:<{width}}  {value!s:>10}  {target}")
        print()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
