"""The operator console driven with Textual's Pilot: the real BzzzApp, the real runtime, the demo model, a tmp db.

Every flow is driven with keys, as an operator would, and every outcome is read back from the runtime and the
store, not from the screen. The demo team plays its usual story: two threads reach consensus and reviewer-1 asks
a human about "Review the schema migration for the audit table" (an "Agent Request" escalation).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import textual.app
from rich.console import Console
from textual.command import CommandList, CommandPalette
from textual.notifications import Notify
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Input, Static

from bzzz_console.app import make_runtime
from bzzz_console.cli.headless import seed_demo_tasks
from bzzz_console.config import Settings
from bzzz_console.domain import commands as cmd
from bzzz_console.domain import events as ev
from bzzz_console.domain.bus import Subscription
from bzzz_console.domain.lifecycle import AgentState
from bzzz_console.domain.principals import os_user
from bzzz_console.runtime.runtime import Runtime
from bzzz_console.store.tables import EscalationRow
from bzzz_console.tui.agent_screen import AgentScreen
from bzzz_console.tui.app import BzzzApp
from bzzz_console.tui.dashboard import DashboardScreen
from bzzz_console.tui.escalation_screen import EscalationScreen
from bzzz_console.tui.help_screen import HelpScreen
from bzzz_console.tui.modals import AskText, Confirm, NewTask, Pick
from bzzz_console.tui.tables import FleetTable
from bzzz_console.tui.thread_screen import MessageItem, ThreadScreen

SIZE = (160, 48)
DISPUTE = "Review the schema migration for the audit table"
WAIT_S = 30.0
"""Upper bound of every wait: a failing test says what it waited for instead of hanging (never a duration check)."""


@pytest.fixture(autouse=True)
def _brisk_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys as fast as the app takes them.

    After every key, Pilot waits until the whole *process* looks idle (CPU time barely moving for 20 ms), up to a
    second. The runtime shares the process with the console and is seldom that idle, so a key costs ~100 ms and a
    typed word a second. The keys still go through the driver, the bindings and the focused widget, in order, and
    Pilot still waits for the screen's widgets to handle their messages; each test waits for outcomes with
    :meth:`ConsoleRun.until`. (``textual.app.wait_for_idle`` is what ``App._press_keys`` calls; if Textual renames
    it, this fails loudly instead of silently going slow.)
    """

    async def brisk(min_sleep: float = 0, max_sleep: float = 1) -> None:
        await asyncio.sleep(0.005)  # stays: Pilot's pause after a key, shortened; outcomes are waited for

    monkeypatch.setattr(textual.app, "wait_for_idle", brisk)


def make_settings(tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    data: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "store": {"url": f"sqlite:///{tmp_path / 'bzzz.db'}"},
        "demo": {"latency_ms": 0, "seed": 7},
        "runtime": {"poll_interval_s": 0.05},
        "console": {"bell": False},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return Settings.model_validate(data)


@dataclass
class ConsoleRun:
    """A running console under Pilot, with what it told the operator and what the runtime published."""

    app: BzzzApp
    pilot: Pilot[int]
    notices: list[str] = field(default_factory=list)
    events: Subscription | None = None

    @property
    def rt(self) -> Runtime:
        assert self.app.rt is not None, "the runtime is not running"
        return self.app.rt

    async def until(self, predicate: Callable[[], object], what: str, timeout: float = WAIT_S) -> None:
        """Let the app run until ``predicate()`` holds; fail naming ``what`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await self.pilot.pause(0.02)

    async def shows(self, screen: type[Screen[Any]], what: str) -> None:
        """Wait until a ``screen`` is on top and mounted (composed, its on_mount done)."""
        await self.until(lambda: isinstance(self.app.screen, screen) and self.app.screen.is_mounted, what)

    async def press(self, *keys: str) -> None:
        await self.pilot.press(*keys)

    async def type(self, text: str) -> None:
        await self.pilot.press(*text)

    async def pick(self, value: str) -> None:
        """In a Pick dialog, move to the choice ``value`` with the arrow keys and press enter."""
        from textual.widgets import OptionList

        options = self.app.screen.query_one(OptionList)
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert value in ids, ids
        for _ in range(len(ids) + 1):
            if options.highlighted is not None and ids[options.highlighted] == value:
                break
            await self.press("down")
        await self.press("enter")

    def published(self) -> list[ev.Event]:
        assert self.events is not None
        return self.events.drain()

    # -- the demo's escalation ---------------------------------------------------------------------------
    async def escalation(self, rule: str = "Agent Request") -> EscalationRow:
        """Wait for an open escalation of ``rule``, shown in the escalations pane; return its stored row."""
        await self.until(
            lambda: (
                any(e.rule == rule for e in self.app.view.open_escalations())
                and self._escalations_table().row_count > 0
            ),
            f"an open {rule!r} escalation in the escalations pane",
        )
        [shown] = [e for e in self.app.view.open_escalations() if e.rule == rule][:1]
        row = self.rt.store.get_escalation(shown.id)
        assert row is not None and row.state == "open"
        return row

    def _escalations_table(self) -> FleetTable:
        return self.app.screen.query_one("#escalations", FleetTable)

    async def open_escalation(self, escalation_id: str) -> EscalationScreen:
        """Focus the escalations pane (``e``), move to the row and open it (``enter``)."""
        await self.shows(DashboardScreen, "the dashboard")
        await self.press("e")
        table = self._escalations_table()
        assert self.app.screen.focused is table
        await self.until(lambda: escalation_id in table._shown, f"{escalation_id} in the escalations pane")
        await self.select(table, escalation_id)
        await self.press("enter")
        await self.shows(EscalationScreen, "the escalation screen")
        screen = self.app.screen
        assert isinstance(screen, EscalationScreen) and screen.escalation_id == escalation_id
        return screen

    async def select(self, table: FleetTable, key: str) -> None:
        """Move the focused table's cursor to the row of ``key`` with the arrow keys."""
        assert self.app.screen.focused is table
        for _ in range(table.row_count):
            if table.selected == key:
                return
            await self.press("down" if table._shown.index(key) > table.cursor_row else "up")
        assert table.selected == key

    async def answered(self, escalation_id: str) -> EscalationRow:
        """Wait until the decision is recorded and the escalation screen went back to the dashboard."""
        await self.shows(DashboardScreen, "back on the dashboard")
        row = self.rt.store.get_escalation(escalation_id)
        assert row is not None and row.state == "answered", row
        assert row.answered_by == os_user()  # the OS user, never a made-up name
        await self.until(
            lambda: self.app.view.escalations[escalation_id].state == "answered",
            "the escalation shown as answered",
        )
        assert escalation_id not in self._escalations_table()._shown
        return row

    def resumed_by(self, agent_id: str, kind: str, events: list[ev.Event]) -> bool:
        return any(
            isinstance(e, ev.AgentStateChanged)
            and e.agent_id == agent_id
            and e.old == AgentState.ESCALATING.value
            and e.reason == f"decision: {kind}"
            for e in events
        )

    def thread_row(self, thread_id: str) -> Any:
        return self.rt.store.get_thread(thread_id)


@pytest.fixture(scope="session")
def escalated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database the demo already played out on: two threads closed, reviewer-1 waiting on a human.

    Most flows start from a copy of it — the console opened on an existing fleet, as after a restart — so they
    do not wait for the conversation each time; the live flow (the escalation arriving while the console is
    open) is covered by the approve, reassign and budget tests and by the snapshots.
    """
    folder = tmp_path_factory.mktemp("escalated")
    settings = make_settings(folder)
    seed_demo_tasks(settings)

    async def play() -> None:
        async with make_runtime(settings, force_demo=True) as rt:
            await asyncio.wait_for(rt.wait_idle(), WAIT_S)
            assert [(e.rule, e.agent_id) for e in rt.store.escalations("open")] == [
                ("Agent Request", "reviewer-1")
            ]

    # in a thread of its own: this must not touch the event loop of the test that first asks for it
    with ThreadPoolExecutor(1) as worker:
        worker.submit(asyncio.run, play()).result()
    path = folder / "bzzz.db"
    assert path.is_file() and not path.with_name("bzzz.db-wal").exists()
    return path


def copy_of(escalated_db: Path, tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    """Settings on a fresh copy of :func:`escalated_db`."""
    shutil.copy(escalated_db, tmp_path / "bzzz.db")
    return make_settings(tmp_path, **sections)


@contextlib.asynccontextmanager
async def console(
    settings: Settings, *, seed: bool = True, readonly: bool = False
) -> AsyncIterator[ConsoleRun]:
    if seed:
        seed_demo_tasks(settings)
    notices: list[str] = []

    def hook(message: object) -> None:
        if isinstance(message, Notify):
            notices.append(f"{message.notification.title}: {message.notification.message}")

    app = BzzzApp(settings, demo=True, readonly=readonly)
    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        c = ConsoleRun(app, pilot, notices)
        await c.until(lambda: app.rt is not None and app.view.status.running, "the runtime to start")
        assert app.failed is None
        c.events = c.rt.bus.subscribe(maxsize=100_000)
        yield c


# -- answering escalations ------------------------------------------------------------------------------------


async def test_approve_resumes_reviewer_and_the_thread_closes_with_consensus(tmp_path: Path) -> None:
    async with console(make_settings(tmp_path)) as c:
        esc = await c.escalation()
        assert esc.agent_id == "reviewer-1"
        assert c.thread_row(esc.thread_id or "").topic.endswith(DISPUTE)
        assert c.rt.agents["reviewer-1"].state is AgentState.ESCALATING
        screen = await c.open_escalation(esc.id)
        assert screen.escalation_id == esc.id
        await c.press("A")  # approve is confirmed too: Y says yes
        await c.shows(Confirm, "the confirmation")
        await c.press("Y")
        row = await c.answered(esc.id)
        assert row.decision is not None and row.decision["kind"] == "approve"
        assert c.resumed_by("reviewer-1", "approve", c.published())
        assert c.rt.agents["reviewer-1"].state is not AgentState.ESCALATING
        await c.until(lambda: c.thread_row(esc.thread_id or "").status == "closed", "the thread to close")
        thread = c.thread_row(esc.thread_id or "")
        assert thread.outcome == "consensus"
        await c.until(lambda: c.app.view.agents["reviewer-1"].state != "escalating", "reviewer-1 row updated")
        assert any("approve applied" in n for n in c.notices)


async def test_reject_asks_a_reason_and_the_team_revises(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        esc = await c.escalation()
        await c.open_escalation(esc.id)
        await c.press("R")
        await c.shows(AskText, "the reason prompt")
        await c.type("window")
        await c.press("enter")
        row = await c.answered(esc.id)
        assert row.decision == {"kind": "reject", "by": os_user(), "reason": "window", "surface": "console"}
        assert c.resumed_by("reviewer-1", "reject", c.published())
        await c.until(lambda: c.thread_row(esc.thread_id or "").status == "closed", "the thread to close")
        messages = c.rt.store.messages(esc.thread_id or "")
        ruling = [m for m in messages if m.role == "human"]
        assert ruling and "Reason: window" in ruling[0].content
        revised = [m for m in messages if m.type == "proposal" and m.seq > ruling[0].seq]
        assert revised and "as the operator decided" in revised[0].content
        assert c.thread_row(esc.thread_id or "").outcome == "consensus"


async def test_reply_posts_the_typed_text_and_the_agent_resumes(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        esc = await c.escalation()
        await c.open_escalation(esc.id)
        await c.press("M")
        await c.shows(AskText, "the reply prompt")
        await c.type("split it")
        await c.press("enter")
        row = await c.answered(esc.id)
        assert row.decision is not None and row.decision["kind"] == "reply"
        assert row.decision["text"] == "split it"
        assert c.resumed_by("reviewer-1", "reply", c.published())
        human = [m for m in c.rt.store.messages(esc.thread_id or "") if m.role == "human"]
        assert [m.content for m in human] == ["split it"]
        assert human[0].author == os_user()
        await c.until(lambda: c.thread_row(esc.thread_id or "").status == "closed", "the thread to close")


async def test_reassign_hands_the_seat_to_reviewer_2(tmp_path: Path) -> None:
    # One agent per role and thread, so reviewer-2 is not already in the disputed thread and can take over.
    settings = make_settings(tmp_path, runtime={"max_agents_per_role": 1})
    async with console(settings) as c:
        esc = await c.escalation()
        assert esc.agent_id == "reviewer-1"
        await c.open_escalation(esc.id)
        await c.press("S")
        await c.shows(Pick, "the reassign picker")
        await c.pick("reviewer-2")
        await c.shows(Confirm, "the confirmation")
        await c.press("Y")
        row = await c.answered(esc.id)
        assert row.decision is not None and (row.decision["kind"], row.decision["to"]) == (
            "reassign",
            "reviewer-2",
        )
        members = {p.agent_id for p in c.rt.store.participants(esc.thread_id)}
        assert "reviewer-2" in members and "reviewer-1" not in members
        assert c.rt.agents["reviewer-1"].state is not AgentState.ESCALATING
        assert esc.thread_id not in c.rt.agents["reviewer-1"].threads
        await c.until(lambda: c.thread_row(esc.thread_id or "").status == "closed", "the thread to close")
        authors = {m.author for m in c.rt.store.messages(esc.thread_id or "") if m.seq > 1}
        assert "reviewer-2" in authors


async def test_downgrade_asks_to_confirm_and_switches_the_model(tmp_path: Path, escalated_db: Path) -> None:
    # reviewer-1 runs gpt-4o-mini; give it a rung below so the switch is visible.
    ladder = {"gpt-4o": "gpt-4o-mini", "gpt-4o-mini": "gpt-4.1-nano"}
    async with console(copy_of(escalated_db, tmp_path, optimizer={"model_ladder": ladder})) as c:
        esc = await c.escalation()
        assert c.rt.agents["reviewer-1"].model == "gpt-4o-mini"
        await c.open_escalation(esc.id)
        await c.press("D")
        await c.shows(Pick, "the model picker")
        await c.pick("gpt-4.1-nano")
        await c.shows(Confirm, "the confirmation")
        await c.press("n")  # no: nothing is decided
        await c.shows(EscalationScreen, "back on the escalation")
        assert (stored := c.rt.store.get_escalation(esc.id)) is not None and stored.state == "open"
        await c.press("D")
        await c.shows(Pick, "the model picker")
        await c.pick("gpt-4.1-nano")
        await c.shows(Confirm, "the confirmation")
        await c.press("Y")
        row = await c.answered(esc.id)
        assert row.decision is not None and row.decision["kind"] == "downgrade_model"
        assert c.rt.agents["reviewer-1"].model == "gpt-4.1-nano"
        assert {a.id: a.model for a in c.rt.store.agents()}["reviewer-1"] == "gpt-4.1-nano"
        assert c.resumed_by("reviewer-1", "downgrade_model", c.published())
        await c.until(lambda: c.thread_row(esc.thread_id or "").status == "closed", "the thread to close")


async def test_terminate_asks_to_confirm_and_stops_the_agent(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        esc = await c.escalation()
        await c.open_escalation(esc.id)
        await c.press("X")
        await c.shows(Confirm, "the confirmation")
        await c.press("escape")  # escape says no as well
        await c.shows(EscalationScreen, "back on the escalation")
        assert (stored := c.rt.store.get_escalation(esc.id)) is not None and stored.state == "open"
        await c.press("X")
        await c.shows(Confirm, "the confirmation")
        await c.press("Y")
        row = await c.answered(esc.id)
        assert row.decision is not None and row.decision["kind"] == "terminate"
        assert c.rt.agents["reviewer-1"].state is AgentState.TERMINATING
        assert "reviewer-1" not in {p.agent_id for p in c.rt.store.participants(esc.thread_id)}
        await c.until(lambda: c.app.view.agents["reviewer-1"].state == "terminating", "the agents pane")


async def test_cancelled_prompts_decide_nothing(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        esc = await c.escalation()
        await c.open_escalation(esc.id)
        for key, prompt in (("R", AskText), ("S", Pick)):
            await c.press(key)
            await c.shows(prompt, f"the prompt of {key!r}")
            await c.press("escape")
            await c.shows(EscalationScreen, "back on the escalation")
        await c.press("R")
        await c.shows(AskText, "the reason prompt")
        await c.press("enter")  # an empty reason is no rejection
        await c.shows(EscalationScreen, "back on the escalation")
        assert (stored := c.rt.store.get_escalation(esc.id)) is not None and stored.state == "open"
        assert c.rt.agents["reviewer-1"].state is AgentState.ESCALATING
        await c.press("escape")
        await c.shows(DashboardScreen, "back on the dashboard")


async def test_the_dashboard_catches_up_with_what_changed_while_another_screen_was_shown(
    tmp_path: Path, escalated_db: Path
) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        esc = await c.escalation()
        await c.open_escalation(esc.id)
        dashboard = next(s for s in c.app.screen_stack if isinstance(s, DashboardScreen))
        agents = dashboard.query_one("#agents", FleetTable)
        assert "Escalating" in str(agents._cells["reviewer-1"][2])
        # answered elsewhere (another console, the CLI): the agent ends in a state that no longer changes
        await c.rt.submit(cmd.Terminate(agent_id="reviewer-1", escalation_id=esc.id, operator="elsewhere"))
        await c.until(lambda: c.app.view.agents["reviewer-1"].state == "terminating", "the agent terminated")
        for agent_id in c.rt.agents:  # a quiet fleet: no later event would repaint the pane by chance
            if agent_id != "reviewer-1":
                await c.rt.submit(cmd.Pause(agent_id=agent_id, operator="elsewhere"))
        await c.until(lambda: not any(t.in_turn for t in c.rt.conversations.threads.values()), "turns to end")
        others = [a for a in c.app.view.agents.values() if a.id != "reviewer-1"]
        await c.until(lambda: all(a.paused for a in others), "the pauses in the view")
        await c.pilot.pause(0.3)  # the console drains events in 50 ms batches: let the last batch land
        assert "Escalating" in str(agents._cells["reviewer-1"][2])  # hidden panes are not repainted
        await c.press("escape")
        await c.shows(DashboardScreen, "back on the dashboard")
        await c.until(
            lambda: "Terminating" in str(agents._cells["reviewer-1"][2]), "the agents pane caught up"
        )


# -- budget escalations: raise the budget, hand back ------------------------------------------------------------

TINY_BUDGET = {"thread_usd": 0.001}
"""A thread budget the demo's first model calls exceed: "Budget Breach" fires and the agent waits."""


async def test_raise_budget_asks_an_amount_and_the_agent_goes_on(tmp_path: Path) -> None:
    async with console(make_settings(tmp_path, budgets=TINY_BUDGET)) as c:
        esc = await c.escalation("Budget Breach")
        assert esc.context["options"] == ["raise_budget", "downgrade_model", "hand_back", "terminate"]
        scope = esc.context["budget"]
        before = c.rt.budgets.limit(scope["scope"], scope["key"])
        await c.open_escalation(esc.id)
        await c.press("B")
        await c.shows(AskText, "the amount prompt")
        await c.type("2.5")
        await c.press("enter")
        row = await c.answered(esc.id)
        assert row.decision is not None and row.decision["kind"] == "raise_budget"
        assert row.decision["amount_usd"] == 2.5
        assert c.rt.budgets.limit(scope["scope"], scope["key"]) == pytest.approx((before or 0) + 2.5)
        assert c.resumed_by(esc.agent_id or "", "raise_budget", c.published())


async def test_raise_budget_refuses_what_is_not_an_amount(tmp_path: Path) -> None:
    async with console(make_settings(tmp_path, budgets=TINY_BUDGET)) as c:
        esc = await c.escalation("Budget Breach")
        await c.open_escalation(esc.id)
        await c.press("B")
        await c.shows(AskText, "the amount prompt")
        await c.type("lots")
        await c.press("enter")
        await c.until(lambda: any("not an amount" in n for n in c.notices), "a notice about the amount")
        assert (stored := c.rt.store.get_escalation(esc.id)) is not None and stored.state == "open"


async def test_hand_back_asks_to_confirm_and_closes_the_thread_as_partial(tmp_path: Path) -> None:
    async with console(make_settings(tmp_path, budgets=TINY_BUDGET)) as c:
        esc = await c.escalation("Budget Breach")
        await c.open_escalation(esc.id)
        await c.press("H")
        await c.shows(Confirm, "the confirmation")
        await c.press("Y")
        row = await c.answered(esc.id)
        assert row.decision is not None and row.decision["kind"] == "hand_back"
        assert c.resumed_by(esc.agent_id or "", "hand_back", c.published())
        thread_id = esc.thread_id or ""
        await c.until(lambda: c.thread_row(thread_id).status == "closed", "the handed-back thread to close")
        assert c.thread_row(thread_id).outcome == "partial"
        await c.until(lambda: c.app.view.threads[thread_id].status == "closed", "the threads pane")


# -- read-only ------------------------------------------------------------------------------------------------


async def test_readonly_console_refuses_decisions_posts_and_tasks(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path), readonly=True) as c:
        esc = await c.escalation()
        assert "READ-ONLY" in str(c.app.screen.query_one("#status", Static).content)
        screen = await c.open_escalation(esc.id)
        assert "read-only" in str(screen.query_one("#escalation-keys", Static).content)
        await c.press("A")
        await c.until(lambda: any("read-only" in n for n in c.notices), "a read-only notice")
        for key in ("R", "D", "X"):  # no prompt opens either
            await c.press(key)
            await c.pilot.pause()
            assert isinstance(c.app.screen, EscalationScreen)
        stored = c.rt.store.get_escalation(esc.id)
        assert stored is not None and stored.state == "open" and stored.decision is None
        assert c.app.view.agents["reviewer-1"].state == AgentState.ESCALATING.value  # as the store has it
        await c.press("o")  # watching is allowed: o opens the escalation's thread
        await c.shows(ThreadScreen, "the thread")
        assert isinstance(c.app.screen, ThreadScreen) and c.app.screen.thread_id == esc.thread_id
        before = len(c.notices)
        await c.press("i")
        await c.until(lambda: len(c.notices) > before, "a notice")
        assert "read-only" in c.notices[-1]
        assert not c.app.screen.query_one("#post", Input).display
        await c.press("escape")
        await c.shows(EscalationScreen, "back on the escalation")
        await c.press("escape")
        await c.shows(DashboardScreen, "the dashboard")
        before = len(c.notices)
        await c.press("n")
        await c.until(lambda: len(c.notices) > before, "a notice")
        assert "read-only" in c.notices[-1] and not isinstance(c.app.screen, NewTask)
        assert [e.state for e in c.rt.store.escalations()] == ["open"]


async def test_readonly_console_watches_and_runs_nothing(tmp_path: Path) -> None:
    """Pending tasks, the demo model, a read-only console: nothing is picked up, no model is called, no agent
    of its own is registered, and the READ-ONLY marker is on the status line."""
    settings = make_settings(tmp_path)
    async with console(settings, readonly=True) as c:  # seeds the demo's three pending tasks first
        pending = {t.id for t in c.rt.store.tasks("pending")}
        assert len(pending) == 3
        await c.until(lambda: c.rt._idle.is_set(), "the watching runtime to settle")
        for _ in range(10):  # several inbox intervals (0.05 s): a runtime that schedules would have started
            await c.pilot.pause(0.05)
        assert {t.id for t in c.rt.store.tasks("pending")} == pending
        assert c.rt.store.threads() == []
        assert c.rt.agents == {} and c.rt.store.agents() == []
        assert not any(a.state == AgentState.COLLABORATING.value for a in c.app.view.agents.values())
        published = c.published()
        assert not [
            e for e in published if isinstance(e, ev.LLMCalled | ev.ThreadCreated | ev.AgentRegistered)
        ]
        with c.rt.store.engine.connect() as conn:
            from sqlalchemy import text

            assert conn.execute(text("SELECT COUNT(*) FROM token_usage")).scalar() == 0
        assert c.rt._demo_server is None and c.rt._backend is None  # nothing to call a model with
        status = str(c.app.screen.query_one("#status", Static).content)
        assert "READ-ONLY" in status and "no model calls" in status and "DEMO" not in status, status
        with pytest.raises(Exception, match="read-only"):
            await c.rt.submit(cmd.AddTask(project="default", operator="x", title="t", roles=("reviewer",)))


async def test_security_readonly_setting_watches_too(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, security={"readonly": True})
    async with console(settings) as c:
        assert c.app.readonly and c.rt.readonly and c.app.view.status.readonly
        await c.until(lambda: c.rt._idle.is_set(), "the watching runtime to settle")
        assert len(c.rt.store.tasks("pending")) == 3 and c.rt.agents == {}


async def test_the_panes_say_starting_until_the_runtime_is_ready(tmp_path: Path) -> None:
    """Paint first: the dashboard is on screen before the store is opened (migrations, demo tasks), its panes
    saying "starting…"; once the runtime runs they no longer do."""
    settings = make_settings(tmp_path)
    seen: list[tuple[bool, list[str]]] = []

    class Watched(BzzzApp):
        def _start(self) -> None:  # right after the first frame
            titles = [str(p.border_subtitle) for p in self.screen.query("Pane")]
            seen.append(((tmp_path / "bzzz.db").exists(), titles))
            super()._start()

    app = Watched(settings, demo=True, demo_tasks=True)
    async with app.run_test(size=SIZE) as pilot:
        c = ConsoleRun(app, pilot)
        await c.until(lambda: app.rt is not None and app.view.status.running, "the runtime to start")
        await c.until(lambda: len(app.rt.store.tasks()) == 3 if app.rt else False, "the demo tasks")  # type: ignore[union-attr]
        [(db_existed, titles)] = seen
        assert not db_existed and titles and all(t == "starting…" for t in titles), titles
        await c.until(
            lambda: all(str(p.border_subtitle) != "starting…" for p in app.screen.query("Pane")),
            "the panes to stop saying starting…",
        )


async def test_a_database_that_cannot_be_opened_is_shown_in_the_console(tmp_path: Path) -> None:
    """Found only after the first paint (here: not a database at all): one line on the status line and a toast,
    and the console stays up."""
    (tmp_path / "bzzz.db").write_bytes(b"this is not a database" * 100)
    notices: list[str] = []

    def hook(message: object) -> None:
        if isinstance(message, Notify):
            notices.append(f"{message.notification.title}: {message.notification.message}")

    app = BzzzApp(make_settings(tmp_path), demo=True)
    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        c = ConsoleRun(app, pilot, notices)
        await c.until(lambda: app.failed is not None, "the start-up error")
        assert "\n" not in app.failed  # type: ignore[operator]
        assert app.is_running and app.rt is None
        await c.until(lambda: any("could not start" in n for n in notices), "a toast")
        status = str(app.screen.query_one("#status", Static).content)
        assert "not started" in status
        assert all(str(p.border_subtitle) == "not started" for p in app.screen.query("Pane"))


# -- dashboard: filter, palette, panes ----------------------------------------------------------------------


async def test_filter_narrows_the_focused_table_and_escape_restores_it(
    tmp_path: Path, escalated_db: Path
) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        threads = c.app.screen.query_one("#threads", FleetTable)
        await c.until(lambda: threads.row_count == 3, "three threads")
        await c.press("t")
        assert c.app.screen.focused is threads
        await c.press("slash")
        box = c.app.screen.query_one("#filter", Input)
        assert box.display and box.has_focus
        await c.type("rate")
        await c.until(lambda: threads.row_count == 1, "the filtered threads table")
        [only] = threads._shown
        assert c.app.view.threads[only].topic.endswith("Design the rate limiter for the public API")
        await c.press("escape")
        await c.until(lambda: threads.row_count == 3, "all threads again")
        assert not box.display and box.value == "" and c.app.screen.focused is threads
        # the filter belongs to the focused table: agents by role
        agents = c.app.screen.query_one("#agents", FleetTable)
        await c.press("a", "slash")
        await c.type("viewer")  # the role column (thread ids start with "review-")
        await c.until(lambda: agents.row_count == 2, "the two reviewers")
        assert threads.row_count == 3
        await c.press("enter")  # enter keeps the filter and goes back to the table
        assert c.app.screen.focused is agents and agents.row_count == 2
        await c.press("escape")
        await c.until(lambda: agents.row_count == 5, "all agents again")


async def test_palette_goes_to_a_thread_by_id(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        await c.until(lambda: len(c.app.view.threads) == 3, "three threads")
        target = next(
            t.id for t in c.app.view.threads.values() if t.topic.endswith("Document the MCP tool surface")
        )
        await c.press("ctrl+p")
        await c.shows(CommandPalette, "the command palette")
        await c.type(target)
        options = c.app.screen.query_one(CommandList)
        await c.until(
            lambda: (
                options.option_count > 0
                and f"Go to thread {target}" in str(options.get_option_at_index(0).prompt)
            ),
            "the thread as the first hit",
        )
        await c.press("enter")
        await c.shows(ThreadScreen, "the thread screen")
        assert isinstance(c.app.screen, ThreadScreen) and c.app.screen.thread_id == target


async def test_enter_on_a_thread_opens_it_and_the_operator_posts_and_copies(
    tmp_path: Path, escalated_db: Path
) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        esc = await c.escalation()
        thread_id = esc.thread_id or ""
        await c.press("t")
        table = c.app.screen.query_one("#threads", FleetTable)
        assert table._shown[0] == thread_id  # the thread waiting on a human sorts first
        await c.select(table, thread_id)
        await c.press("enter")
        await c.shows(ThreadScreen, "the thread screen")
        screen = c.app.screen
        assert isinstance(screen, ThreadScreen) and screen.thread_id == thread_id
        listing = screen.query_one("#transcript")
        await c.until(lambda: len(listing.children) == len(c.rt.store.messages(thread_id)), "the transcript")
        # y copies the highlighted (newest) message
        await c.press("y")
        newest = c.rt.store.messages(thread_id)[-1]
        assert c.app.clipboard == newest.content
        # i opens the box at the bottom, enter posts as a human
        await c.press("i")
        box = screen.query_one("#post", Input)
        assert box.display and box.has_focus
        await c.type("hold on")
        await c.press("enter")
        await c.until(
            lambda: any(m.role == "human" for m in c.rt.store.messages(thread_id)), "the human message stored"
        )
        [human] = [m for m in c.rt.store.messages(thread_id) if m.role == "human"]
        assert (human.content, human.author, human.type) == ("hold on", os_user(), "human")
        assert not box.display and box.value == ""
        await c.until(
            lambda: any(
                isinstance(item, MessageItem) and item.message.role == "human" for item in listing.children
            ),
            "the human message in the transcript",
        )
        await c.press("escape")
        await c.shows(DashboardScreen, "the dashboard")


async def test_enter_on_an_agent_opens_it_and_o_its_thread(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        esc = await c.escalation()
        await c.press("a")
        agents = c.app.screen.query_one("#agents", FleetTable)
        await c.select(agents, "reviewer-1")
        await c.press("enter")
        await c.shows(AgentScreen, "the agent screen")
        assert isinstance(c.app.screen, AgentScreen) and c.app.screen.agent_id == "reviewer-1"
        await c.press("o")
        await c.shows(ThreadScreen, "the thread screen")
        assert isinstance(c.app.screen, ThreadScreen) and c.app.screen.thread_id == esc.thread_id


async def test_pause_and_resume_the_selected_agent(tmp_path: Path) -> None:
    async with console(make_settings(tmp_path), seed=False) as c:
        agents = c.app.screen.query_one("#agents", FleetTable)
        await c.until(lambda: agents.row_count == 5, "the fleet")
        await c.press("a")
        await c.select(agents, "architect-2")
        await c.press("p")
        await c.until(lambda: c.rt.agents["architect-2"].paused, "architect-2 paused")
        assert {a.id: a.paused for a in c.rt.store.agents()}["architect-2"]
        await c.until(lambda: c.app.view.agents["architect-2"].paused, "the agents pane")
        await c.press("p")
        await c.until(lambda: not c.rt.agents["architect-2"].paused, "architect-2 resumed")
        await c.until(lambda: not c.app.view.agents["architect-2"].paused, "the agents pane")


async def test_new_task_from_the_dashboard(tmp_path: Path) -> None:
    async with console(make_settings(tmp_path), seed=False) as c:
        await c.press("n")
        await c.shows(NewTask, "the new-task form")
        await c.type("Runbook")
        await c.press("enter")
        await c.shows(DashboardScreen, "back on the dashboard")
        await c.until(lambda: c.rt.store.count_tasks() == 1, "the task stored")
        [task] = c.rt.store.tasks()
        assert (task.title, tuple(task.roles), task.priority) == (
            "Runbook",
            ("architect", "reviewer"),
            "medium",
        )
        assert any("Task added" in n for n in c.notices)
        await c.until(lambda: len(c.app.view.threads) == 1, "a thread for the task")


# -- help, keymap, quit -----------------------------------------------------------------------------------------


def _text_of(screen: Any) -> str:
    """The text of a screen's Static widgets (the help is a Rich table in one of them)."""
    buffer = io.StringIO()
    out = Console(width=200, file=buffer)
    for static in screen.query(Static):
        out.print(static.content)
    return buffer.getvalue()


async def test_help_lists_keys_and_binding_ids_of_the_screen_below(
    tmp_path: Path, escalated_db: Path
) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        await c.press("question_mark")
        await c.shows(HelpScreen, "the help")
        text = _text_of(c.app.screen)
        for binding_id in (
            "dashboard.escalations",
            "dashboard.filter",
            "dashboard.pause",
            "app.quit",
            "app.help",
        ):
            assert binding_id in text
        assert "escalation.approve" not in text
        await c.press("escape")
        esc = await c.escalation()
        await c.open_escalation(esc.id)
        await c.press("question_mark")
        await c.shows(HelpScreen, "the help")
        text = _text_of(c.app.screen)
        for key, binding_id in (
            ("A", "escalation.approve"),
            ("X", "escalation.terminate"),
            ("o", "escalation.thread"),
        ):
            assert binding_id in text
            assert any(line.split()[:1] == [key] and binding_id in line for line in text.splitlines()), text
        await c.press("question_mark")
        await c.shows(EscalationScreen, "the help closed")


async def test_keys_remapped_in_settings_decide(tmp_path: Path, escalated_db: Path) -> None:
    settings = copy_of(
        escalated_db, tmp_path, console={"keys": {"escalation.approve": "V"}, "confirm_approve": False}
    )
    async with console(settings) as c:
        esc = await c.escalation()
        await c.open_escalation(esc.id)
        await c.press("A")  # the old key does nothing now
        await c.pilot.pause()
        assert (stored := c.rt.store.get_escalation(esc.id)) is not None and stored.state == "open"
        await c.press("question_mark")
        await c.shows(HelpScreen, "the help")
        assert any(
            line.split()[:1] == ["V"] and "escalation.approve" in line
            for line in _text_of(c.app.screen).splitlines()
        )
        await c.press("escape")
        await c.shows(EscalationScreen, "the help closed")
        await c.press("V")  # console.confirm_approve = false: no confirmation
        row = await c.answered(esc.id)
        assert row.decision is not None and row.decision["kind"] == "approve"


async def test_ctrl_q_quits_and_closes_the_runtime(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        rt = c.rt
        stopped = rt.bus.subscribe()
        await c.escalation()
        await c.press("e", "enter")  # from any screen
        await c.shows(EscalationScreen, "the escalation screen")
        await c.press("ctrl+q")
        await c.until(lambda: c.app.return_code is not None, "the app to exit")
        assert c.app.return_code == 0
        assert c.app.rt is None
        last = stopped.drain()[-1]
        assert isinstance(last, ev.RuntimeStopped) and last.reason == "console closed"
        assert stopped.closed  # the bus is closed: nothing runs on
    # the store was closed cleanly: a new store opens the same db and the escalation is still there
    from bzzz_console.store.repo import Store

    store = Store.open(make_settings(tmp_path).database_url())
    try:
        assert [e.state for e in store.escalations()] == ["open"]
    finally:
        store.close()
