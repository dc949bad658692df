"""``bzzz-console run --headless``: the runtime with one JSON object per event on stdout.

SIGINT and SIGTERM stop it cleanly: in-flight model calls are cancelled (nothing of an unfinished turn was
written), the store is closed, and ``runtime_stopped`` is the last line.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any, TextIO

from bzzz_console.config import Settings
from bzzz_console.domain.bus import Subscription
from bzzz_console.domain.events import to_json
from bzzz_console.domain.text import json_safe


def seed_demo_tasks(settings: Settings) -> int:
    """Add the demo scenario's three tasks when the database has no task at all; return how many were added."""
    from bzzz_console.app import add_demo_tasks, open_store

    store = open_store(settings)
    try:
        return add_demo_tasks(settings, store)
    finally:
        store.close()


async def _print_events(events: Subscription, out: TextIO) -> None:
    async for event in events:
        out.write(json_safe(to_json(event)) + "\n")  # the same JSON; nothing in it acts on a terminal
        out.flush()


async def run_headless(
    settings: Settings, *, demo: bool, exit_when_idle: bool, out: TextIO = sys.stdout, readonly: bool = False
) -> int:
    """``readonly`` (``run --headless --readonly``): only watch, as a read-only console does (idle at once)."""
    from bzzz_console.app import make_runtime

    if demo and not readonly:
        await asyncio.to_thread(seed_demo_tasks, settings)
    runtime = make_runtime(settings, force_demo=demo, readonly=readonly)
    events = runtime.bus.subscribe(maxsize=100_000)
    printer = asyncio.create_task(_print_events(events, out))
    stop = asyncio.Event()
    output_closed = False

    def printer_done(task: asyncio.Task[None]) -> None:
        # The reader went away (``| head``, ``grep -m1``): stop instead of running on with nobody listening.
        nonlocal output_closed
        if not task.cancelled() and task.exception() is not None:
            output_closed = True
            stop.set()

    printer.add_done_callback(printer_done)
    loop = asyncio.get_running_loop()
    reason = "error"  # start-up failed: still close what was started, and end with runtime_stopped
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await runtime.start()
            waiters: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
            if exit_when_idle:
                waiters.append(asyncio.create_task(runtime.wait_idle()))
            _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            reason = "output closed" if output_closed else "signal" if stop.is_set() else "idle"
        finally:
            await runtime.close(reason)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        events.close()
        await printer
    return 0
