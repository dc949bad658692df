"""Console benchmark: launch to first paint against a bare Textual app, key press to repaint under load, and
memory after 100,000 messages. Prints a table, then one JSON document. No assertions.

    python tests/benchmarks/console.py [--quick] [--paint-only] [--rounds N] [--json-only]

* first paint: in a real pseudo-terminal (120×40), the time from launching a program to its first frame being
  written — the installed ``bzzz-console --demo`` on a fresh database and on an existing one (the demo played
  out by ``run --headless --demo --exit-when-idle``), and a bare one-label Textual app, in turn, in the same run;
  medians of several rounds and the ratio to the bare app. Each program is quit with ctrl+q once it has painted.
  Both run with compiled bytecode, as an installed program does (pip compiles it at install, and Python caches
  it at the first run): ``PYTHONDONTWRITEBYTECODE`` is dropped and bytecode goes to a cache folder of the run
  (``PYTHONPYCACHEPREFIX``), filled by one unmeasured launch of each program. Else the console's own modules, in
  an editable checkout, would be compiled from source at every launch while Textual's come compiled.
* key press → repaint: the console runs its real runtime (demo model) while 100 agents' events are published
  at 50 messages per second; a key moves the cursor in the agents table; we time ``press`` until the screen has
  refreshed (Pilot ``pause``).
* memory: 100,000 message events over 300 threads are folded into the console's view and the thread screen
  for one of them is open; peak RSS of the process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import pty
import resource
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINT = Path(sys.executable).with_name("bzzz-console")
COLUMNS, ROWS = 120, 40

BARE_APP = textwrap.dedent(
    """
    from textual.app import App
    from textual.widgets import Label

    class Bare(App):
        def compose(self):
            yield Label("bare-app-painted")

    Bare().run()
    """
)
BARE_MARKER = b"bare-app-painted"
CONSOLE_MARKER = b"bzzz-console"
"""The status line's first word; the console writes nothing to the terminal before its first frame."""


def _controlling_tty() -> None:  # in the child: the pty is its terminal, as in a terminal emulator
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def launch_to_paint(argv: list[str], marker: bytes, env: dict[str, str], timeout: float = 60.0) -> float:
    """Seconds from launching ``argv`` in a new pty until ``marker`` is written to it; then quit with ctrl+q."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT, preexec_fn=_controlling_tty
    )
    os.close(slave)
    seen, painted = b"", None
    deadline = started + timeout
    try:
        while painted is None:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.perf_counter()))
            if not ready:
                raise RuntimeError(f"{argv[0]} did not paint within {timeout} s: {seen[-2000:]!r}")
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child ended (EIO)
                raise RuntimeError(f"{argv[0]} ended before painting: {seen[-2000:]!r}") from None
            now = time.perf_counter()
            seen = seen[-len(marker) :] + chunk
            if marker in seen:
                painted = now - started
        os.write(master, b"\x11")  # ctrl+q
        quit_by = time.perf_counter() + 20
        while proc.poll() is None and time.perf_counter() < quit_by:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                with contextlib.suppress(OSError):
                    os.read(master, 65536)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        os.close(master)
    return painted


def first_paint(rounds: int) -> dict[str, Any]:
    """Bare app, console on a fresh database, console on an existing one — in turn, ``rounds`` times."""
    folder = Path(tempfile.mkdtemp(prefix="bzzz-paint-"))
    env = {
        k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY" and not k.startswith(("BZZZ_", "TMUX"))
    }
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        (folder / var.lower()).mkdir()
        env[var] = str(folder / var.lower())
    env.update(TERM="xterm-256color", COLUMNS=str(COLUMNS), LINES=str(ROWS))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    bare_script = folder / "bare.py"
    bare_script.write_text(BARE_APP)
    existing = folder / "existing.db"
    subprocess.run(  # the demo played out: threads, messages, an open escalation
        [
            str(ENTRY_POINT),
            "run",
            "--headless",
            "--demo",
            "--exit-when-idle",
            "--db",
            f"sqlite:///{existing}",
        ],
        env=env,
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=300,
    )
    times: dict[str, list[float]] = {"bare": [], "fresh": [], "existing": []}
    launch_to_paint([sys.executable, str(bare_script)], BARE_MARKER, env)  # warm-up: bytecode and file caches
    launch_to_paint([str(ENTRY_POINT), "--demo", "--db", f"sqlite:///{existing}"], CONSOLE_MARKER, env)
    for n in range(rounds):
        times["bare"].append(launch_to_paint([sys.executable, str(bare_script)], BARE_MARKER, env))
        fresh = f"sqlite:///{folder / f'fresh-{n}.db'}"
        times["fresh"].append(
            launch_to_paint([str(ENTRY_POINT), "--demo", "--db", fresh], CONSOLE_MARKER, env)
        )
        old = f"sqlite:///{existing}"
        times["existing"].append(
            launch_to_paint([str(ENTRY_POINT), "--demo", "--db", old], CONSOLE_MARKER, env)
        )
    shutil.rmtree(folder, ignore_errors=True)
    bare = statistics.median(times["bare"])
    out: dict[str, Any] = {"rounds": rounds, "terminal": f"{COLUMNS}x{ROWS} pty", "target_ratio": 1.5}
    out["bytecode"] = "compiled (cached by a warm-up launch of each)"
    out["bare_median_s"] = round(bare, 3)
    for case in ("fresh", "existing"):
        median = statistics.median(times[case])
        out[f"console_{case}_db_median_s"] = round(median, 3)
        out[f"ratio_{case}_db"] = round(median / bare, 2)
    out["samples_s"] = {k: [round(v, 3) for v in vs] for k, vs in times.items()}
    return out


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
    parser.add_argument("--paint-only", action="store_true", help="only launch → first paint")
    parser.add_argument("--rounds", type=int, help="first-paint rounds (default 7, --quick 3)")
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args()
    paint = first_paint(args.rounds or (3 if args.quick else 7))
    report: dict[str, Any] = {"benchmark": "console", "quick": args.quick, "first_paint": paint}
    rows = [
        ("launch → first paint, bare Textual app (median s)", paint["bare_median_s"], ""),
        (
            "launch → first paint, bzzz-console --demo, fresh db (median s)",
            paint["console_fresh_db_median_s"],
            "",
        ),
        ("  ratio to the bare app", paint["ratio_fresh_db"], "≤ 1.5"),
        (
            "launch → first paint, bzzz-console --demo, existing db (median s)",
            paint["console_existing_db_median_s"],
            "",
        ),
        ("  ratio to the bare app", paint["ratio_existing_db"], "≤ 1.5"),
    ]
    if not args.paint_only:
        keys = asyncio.run(key_latency(40 if args.quick else 200, 100, 50.0))
        mem = asyncio.run(memory(20_000 if args.quick else 100_000))
        report.update(key_to_repaint=keys, memory=mem)
        rows += [
            (
                f"key → repaint p95 (ms), {keys['agents']} agents at {keys['achieved_rate_msgs_s']} msg/s",
                keys["p95_ms"],
                "≤ 100",
            ),
            ("key → repaint median (ms)", keys["median_ms"], ""),
            (f"peak RSS after {mem['messages']:,} messages (MB)", mem["peak_rss_mb"], "≤ 400"),
            ("messages kept in the console's view", mem["kept_in_view"], "bounded"),
        ]
    if not args.json_only:
        width = max(len(r[0]) for r in rows)
        print(f"{'metric':<{width}}  {'value':>10}  target")
        for name, value, target in rows:
            print(f"{name:<{width}}  {value!s:>10}  {target}")
        print()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
