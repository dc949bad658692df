"""Snapshots of the console's main screens with the demo team, a frozen clock and deterministic ids.

Regenerate after an intended change of the screens: ``pytest tests/test_tui_snapshots.py --snapshot-update``,
then look at the SVGs under ``tests/__snapshots__/test_tui_snapshots/`` (or at the HTML report a failing run
writes) before committing them.

What would otherwise change from run to run is pinned here, not masked:

* time — the console's clock (``bzzz_console.tui.clock.now``), the runtime's clock, event and row timestamps all
  read one frozen instant, so ages, countdowns, message times and the spend-per-minute series are fixed;
* ids — task, escalation, decision and episode ids come from ``secrets.token_hex``; here from counters;
* the node name (the host name) and the database path in the status line;
* the demo conversation — the scripted model is a pure function of the prompt; with ids fixed and no lessons
  from other threads in the prompts (``episodes_in_prompt = 0``: which thread closes first is a race), every
  prompt, token count and cost is the same each run; the disputed task starts after the other two threads
  closed, so the spend recorded with its escalation does not depend on which call of another thread finished
  first;
* toasts — their timeouts run on the real clock, so they are cleared before the picture is taken.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from bzzz_console.config import Settings
from bzzz_console.demo.team import DEMO_TASKS
from bzzz_console.domain import commands as cmd
from bzzz_console.store.repo import Store
from bzzz_console.tui import clock
from bzzz_console.tui.app import BzzzApp
from bzzz_console.tui.dashboard import DashboardScreen
from bzzz_console.tui.escalation_screen import EscalationScreen
from bzzz_console.tui.tables import FleetTable
from bzzz_console.tui.thread_screen import ThreadScreen

SIZE = (160, 48)
FROZEN = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
WAIT_S = 30.0
DISPUTE = "Review the schema migration for the audit table"


class _FrozenMeta(type):
    # isinstance(x, datetime) keeps working in the modules whose ``datetime`` is replaced
    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, datetime)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, datetime)


class FrozenDatetime(datetime, metaclass=_FrozenMeta):
    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return FROZEN if tz is not None else FROZEN.replace(tzinfo=None)


WALL_CLOCKS = (
    "bzzz_console.domain.events",  # Event.at
    "bzzz_console.store.tables",  # now_utc(): row timestamps
    "bzzz_console.domain.clock",  # SystemClock: thread ages, deadlines, message times
    "bzzz_console.views.spend",  # "today"
)


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """Settings for a demo run whose every clock, id and path is the same each time."""
    import bzzz_console.store.repo as repo

    monkeypatch.setattr(clock, "now", lambda: FROZEN)
    for name in WALL_CLOCKS:
        __import__(name)
        monkeypatch.setattr(sys.modules[name], "datetime", FrozenDatetime)
    counters: defaultdict[str, Iterator[int]] = defaultdict(lambda: itertools.count(1))

    def new_id(prefix: str, nbytes: int = 4) -> str:
        return f"{prefix}-{next(counters[prefix]):0{2 * nbytes}x}"  # as long as the real ones

    import bzzz_console.runtime.runtime  # noqa: F401  (loads every module that took new_id by name)

    original = repo.new_id
    for module in list(sys.modules.values()):
        if (
            getattr(module, "__name__", "").startswith("bzzz_console")
            and getattr(module, "new_id", None) is original
        ):
            monkeypatch.setattr(module, "new_id", new_id)
    monkeypatch.chdir(tmp_path)  # a relative database path: the status line shows the same text each run
    return Settings.model_validate(
        {
            "data_dir": "data",
            "store": {"url": "sqlite:///bzzz.db"},
            "demo": {"latency_ms": 0, "seed": 7},
            "runtime": {"poll_interval_s": 0.05, "episodes_in_prompt": 0},
            "console": {"bell": False},
        }
    )


def demo_app(settings: Settings) -> BzzzApp:
    """The console on the demo team; the two tasks that end in consensus are waiting (see :func:`settled`)."""
    from bzzz_console.app import make_runtime

    store = Store.open(settings.database_url())
    try:
        for task in DEMO_TASKS:
            if task["title"] != DISPUTE:
                store.add_task(project=settings.runtime.project, source="demo", **task)
    finally:
        store.close()
    runtime = make_runtime(settings, force_demo=True)
    runtime.node_id = "node-1"  # not this machine's host name
    return BzzzApp(settings, demo=True, runtime=runtime)


async def _until(pilot: Pilot[Any], predicate: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def settled(pilot: Pilot[Any]) -> BzzzApp:
    """The demo played out: reviewer-1's escalation is open, every other thread is closed, nothing runs.

    The disputed task is added once the other two threads have closed: when they run side by side, how much of
    their spend is in the escalation's budget lines (spend so far, today and per agent) depends on which model
    call finishes first.
    """
    app: BzzzApp = pilot.app  # type: ignore[assignment]
    await _until(
        pilot,
        lambda: app.rt is not None and [t.status for t in app.view.threads.values()] == ["closed", "closed"],
        "the two consensus threads",
    )
    assert app.rt is not None
    [dispute] = [t for t in DEMO_TASKS if t["title"] == DISPUTE]
    await app.rt.submit(cmd.AddTask(project=app.settings.runtime.project, operator="operator", **dispute))
    await _until(pilot, lambda: app.view.open_escalations(), "the escalation")
    await asyncio.wait_for(app.rt.wait_idle(), WAIT_S)
    await _until(
        pilot,
        lambda: (
            sorted(t.status for t in app.view.threads.values()) == ["closed", "closed", "waiting_human"]
            and app.view.agents["reviewer-1"].state == "escalating"
        ),
        "the console to show the settled fleet",
    )
    await pilot.pause(0.2)  # one more refresh window of the console
    app.clear_notifications()
    return app


async def _select(pilot: Pilot[Any], table: FleetTable, key: str) -> None:
    for _ in range(table.row_count):
        if table.selected == key:
            return
        await pilot.press("down" if table._shown.index(key) > table.cursor_row else "up")
    assert table.selected == key


def test_dashboard_after_the_demo_settled(frozen: Settings, snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = await settled(pilot)
        assert isinstance(app.screen, DashboardScreen)

    assert snap_compare(demo_app(frozen), terminal_size=SIZE, run_before=run_before)


def test_escalation_screen(frozen: Settings, snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = await settled(pilot)
        await pilot.press("e", "enter")
        await _until(
            pilot,
            lambda: isinstance(app.screen, EscalationScreen) and app.screen.is_mounted,
            "the escalation screen",
        )
        app.clear_notifications()

    assert snap_compare(demo_app(frozen), terminal_size=SIZE, run_before=run_before)


def test_thread_screen_of_the_disputed_thread(frozen: Settings, snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = await settled(pilot)
        [disputed] = [t.id for t in app.view.threads.values() if t.status == "waiting_human"]
        await pilot.press("t")
        await _select(pilot, app.screen.query_one("#threads", FleetTable), disputed)
        await pilot.press("enter")
        await _until(
            pilot, lambda: isinstance(app.screen, ThreadScreen) and app.screen.is_mounted, "the thread screen"
        )
        screen = app.screen
        assert isinstance(screen, ThreadScreen) and screen.thread_id == disputed
        await _until(
            pilot,
            lambda: len(screen.query_one("#transcript").children) == app.view.threads[disputed].messages,
            "the whole transcript",
        )
        app.clear_notifications()

    assert snap_compare(demo_app(frozen), terminal_size=SIZE, run_before=run_before)
