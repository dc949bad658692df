"""Safe decisions and the agent screen, driven with Pilot on the real console (see tests/test_tui.py).

A confirmation says no unless the operator presses Y; decision keys are shifted letters no other screen uses;
only the decisions that can apply are offered, reassign and downgrade pick from lists; the agent's options are
on 1–9; one screen per escalation; a typed draft is not lost to esc; an escalation answered elsewhere updates
the open screen; the agent screen shows the agent and pauses it.
"""

from __future__ import annotations

from pathlib import Path

from test_tui import TINY_BUDGET, console, copy_of, make_settings
from test_tui import _brisk_keys as _brisk_keys  # the Pilot tests' fixtures, shared
from test_tui import escalated_db as escalated_db
from textual.widgets import Input, OptionList, Static

from bzzz_console.domain import commands as cmd
from bzzz_console.domain.lifecycle import AgentState
from bzzz_console.runtime.escalation.checks import reassign_candidates, runtime_view
from bzzz_console.tui.agent_screen import AgentScreen
from bzzz_console.tui.dashboard import DashboardScreen
from bzzz_console.tui.escalation_screen import DECISION_KEYS, EscalationScreen
from bzzz_console.tui.modals import AskText, Confirm, NewTask, Pick
from bzzz_console.tui.tables import FleetTable
from bzzz_console.tui.thread_screen import ThreadScreen
from bzzz_console.tui.view_rows import EscalationView


def _keys_bar(screen: EscalationScreen) -> str:
    return str(screen.query_one("#escalation-keys", Static).content)


async def test_a_fresh_confirmation_says_no_to_enter(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        esc = await c.escalation()
        await c.open_escalation(esc.id)
        for key in ("X", "A", "H"):  # terminate, approve (confirmed too), hand back
            await c.press(key)
            await c.shows(Confirm, f"the confirmation of {key}")
            assert c.app.screen.focused is not None and c.app.screen.focused.id == "no"
            await c.press("enter")
            await c.shows(EscalationScreen, "back on the escalation")
        assert (stored := c.rt.store.get_escalation(esc.id)) is not None and stored.state == "open"
        assert stored.decision is None
        assert c.rt.agents["reviewer-1"].state is AgentState.ESCALATING


async def test_keys_mean_one_thing_per_screen(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        esc = await c.escalation()
        dashboard = c.app.screen
        decision_keys = {key for key, _, _ in DECISION_KEYS}
        for screen_class in (DashboardScreen, ThreadScreen, AgentScreen):
            keys = {k.strip() for b in screen_class.BINDINGS for k in b.key.split(",")}  # type: ignore[union-attr]
            assert not keys & decision_keys, screen_class
        # on the dashboard a shifted decision key decides nothing; a focuses the Agents pane
        await c.press("A", "X")
        await c.pilot.pause()
        assert c.app.screen is dashboard
        await c.press("a")
        assert c.app.screen.focused is dashboard.query_one("#agents", FleetTable)
        # on the escalation screen the dashboard's and thread's letters decide nothing either
        screen = await c.open_escalation(esc.id)
        for key in ("a", "x", "n", "y", "r", "m", "d", "h", "s", "b", "p"):
            await c.press(key)
            await c.pilot.pause()
            assert c.app.screen is screen, key
        assert (stored := c.rt.store.get_escalation(esc.id)) is not None and stored.state == "open"
        bar = _keys_bar(screen)
        assert " A " in bar and "approve" in bar and " X " in bar and "terminate" in bar


async def test_only_the_decisions_that_apply_are_offered(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        esc = await c.escalation()
        screen = await c.open_escalation(esc.id)
        # reviewer-1 runs gpt-4o-mini, which has no cheaper model on the default ladder: no downgrade
        assert c.rt.agents["reviewer-1"].model not in c.app.settings.optimizer.model_ladder
        assert "downgrade" not in screen.offered and "downgrade" not in _keys_bar(screen)
        await c.press("D")
        await c.pilot.pause()
        assert c.app.screen is screen
        # reassign offers the agents that can take the seat: none already in the thread
        seats = set(c.rt.conversations.threads[esc.thread_id or ""].participant_ids)
        offered = screen.offered.get("reassign", [])
        assert offered == reassign_candidates(esc.thread_id, esc.agent_id, runtime_view(c.rt))
        assert not set(offered) & seats
        if offered:
            await c.press("S")
            await c.shows(Pick, "the reassign picker")
            options = c.app.screen.query_one(OptionList)
            assert [options.get_option_at_index(i).id for i in range(options.option_count)] == offered
            await c.press("escape")
            await c.shows(EscalationScreen, "back on the escalation")
        # an escalation about no agent: nothing to terminate, hand back, downgrade or reassign
        c.app.view.escalations["esc-noagent"] = EscalationView(
            "esc-noagent", esc.thread_id, None, "Consensus Failure", "no agent", "medium"
        )
        await c.press("escape")
        await c.shows(DashboardScreen, "the dashboard")
        c.app.open_escalation("esc-noagent")
        await c.shows(EscalationScreen, "the agentless escalation")
        other = c.app.screen
        assert isinstance(other, EscalationScreen) and other.escalation_id == "esc-noagent"
        assert set(other.offered) == {"approve", "reject", "reply", "raise_budget"}
        assert "terminate" not in _keys_bar(other)
        await c.press("X")
        await c.pilot.pause()
        assert c.app.screen is other


async def test_downgrade_picks_from_the_model_ladder(tmp_path: Path, escalated_db: Path) -> None:
    ladder = {"gpt-4o-mini": "gpt-4.1-nano", "gpt-4.1-nano": "gpt-5-nano"}
    async with console(copy_of(escalated_db, tmp_path, optimizer={"model_ladder": ladder})) as c:
        esc = await c.escalation()
        await c.open_escalation(esc.id)
        await c.press("D")
        await c.shows(Pick, "the model picker")
        options = c.app.screen.query_one(OptionList)
        assert [options.get_option_at_index(i).id for i in range(options.option_count)] == [
            "gpt-4.1-nano",
            "gpt-5-nano",
        ]
        assert "next cheaper" in str(options.get_option_at_index(0).prompt)
        await c.pick("gpt-5-nano")
        await c.shows(Confirm, "the confirmation")
        await c.press("Y")
        await c.shows(DashboardScreen, "back on the dashboard")
        row = c.rt.store.get_escalation(esc.id)
        assert row is not None and row.decision is not None
        assert (row.decision["kind"], row.decision["model"]) == ("downgrade_model", "gpt-5-nano")
        assert c.rt.agents["reviewer-1"].model == "gpt-5-nano"


async def test_the_agents_options_are_on_number_keys(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        esc = await c.escalation()
        assert esc.context["options"][2] == "split the migration"
        screen = await c.open_escalation(esc.id)
        assert "1–3" in _keys_bar(screen)
        await c.press("9")  # no ninth option: nothing happens
        await c.pilot.pause()
        assert c.app.screen is screen
        await c.press("3")  # a free-text option: a reply, filled in, sent with enter
        await c.shows(AskText, "the reply prompt")
        assert c.app.screen.query_one("#answer", Input).value == "split the migration"
        await c.press("enter")
        row = await c.answered(esc.id)
        assert row.decision is not None and row.decision["kind"] == "reply"
        assert row.decision["text"] == "split the migration"


async def test_an_option_naming_a_decision_starts_it(tmp_path: Path) -> None:
    async with console(make_settings(tmp_path, budgets=TINY_BUDGET)) as c:
        esc = await c.escalation("Budget Breach")
        assert esc.context["options"] == ["raise_budget", "downgrade_model", "hand_back", "terminate"]
        await c.open_escalation(esc.id)
        await c.press("1")  # raise_budget: asks the amount
        await c.shows(AskText, "the amount prompt")
        await c.press("escape")
        await c.shows(EscalationScreen, "back on the escalation")
        await c.press("4")  # terminate: confirmed
        await c.shows(Confirm, "the confirmation")
        await c.press("escape")
        await c.shows(EscalationScreen, "back on the escalation")
        assert (stored := c.rt.store.get_escalation(esc.id)) is not None and stored.state == "open"


async def test_one_screen_per_escalation(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        esc = await c.escalation()
        await c.press("e")
        await c.press("enter", "enter")
        await c.shows(EscalationScreen, "the escalation screen")
        c.app.open_escalation(esc.id)  # the palette, a toast's link: the same screen
        await c.pilot.pause(0.2)
        assert [type(s).__name__ for s in c.app.screen_stack].count("EscalationScreen") == 1
        await c.press("o")
        await c.shows(ThreadScreen, "the thread")
        c.app.open_escalation(esc.id)  # back to the one already open, not a second
        await c.until(lambda: isinstance(c.app.screen, EscalationScreen), "the escalation again")
        assert [type(s).__name__ for s in c.app.screen_stack].count("EscalationScreen") == 1


async def test_a_typed_draft_survives_esc(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        esc = await c.escalation()
        await c.open_escalation(esc.id)
        await c.press("M")
        await c.shows(AskText, "the reply prompt")
        await c.type("draft")
        await c.press("escape")
        await c.shows(Confirm, "discard?")
        await c.press("enter")  # no: keep it
        await c.shows(AskText, "the reply prompt again")
        assert c.app.screen.query_one("#answer", Input).value == "draft"
        await c.press("escape")
        await c.shows(Confirm, "discard?")
        await c.press("Y")
        await c.shows(EscalationScreen, "back on the escalation")
        assert (stored := c.rt.store.get_escalation(esc.id)) is not None and stored.state == "open"
        # the thread's post box: the same
        await c.press("o")
        await c.shows(ThreadScreen, "the thread")
        await c.press("i")
        box = c.app.screen.query_one("#post", Input)
        await c.type("hold on")
        await c.press("escape")
        await c.shows(Confirm, "discard?")
        await c.press("n")
        await c.shows(ThreadScreen, "the thread again")
        assert box.display and box.value == "hold on"
        await c.press("escape")
        await c.shows(Confirm, "discard?")
        await c.press("Y")
        await c.shows(ThreadScreen, "the thread again")
        assert not box.display and box.value == ""
        await c.press("escape")
        await c.shows(EscalationScreen, "back on the escalation")
        assert not any(m.role == "human" for m in c.rt.store.messages(esc.thread_id or ""))


async def test_an_escalation_answered_elsewhere_updates_the_open_screen(
    tmp_path: Path, escalated_db: Path
) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        esc = await c.escalation()
        screen = await c.open_escalation(esc.id)
        assert "approve" in screen.offered
        await c.rt.submit(cmd.Approve(escalation_id=esc.id, operator="bob"))  # another console, the CLI
        await c.until(lambda: any("Answered elsewhere" in n for n in c.notices), "a toast")
        assert c.app.screen is screen and screen.offered == {}
        assert "nothing left to decide" in _keys_bar(screen)
        head = str(screen.query_one("#escalation-head", Static).content)
        assert "deadline in" not in head and "answered" in head
        await c.press("A")
        await c.pilot.pause()
        assert c.app.screen is screen  # no confirmation: approve is gone
        row = c.rt.store.get_escalation(esc.id)
        assert row is not None and row.answered_by == "bob"


async def test_post_is_not_offered_on_a_closed_thread(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        await c.until(lambda: len(c.app.view.threads) == 3, "three threads")
        closed = next(t.id for t in c.app.view.threads.values() if t.status == "closed")
        c.app.open_thread(closed)
        await c.shows(ThreadScreen, "the closed thread")
        assert not any(b.binding.action == "compose_message" for b in c.app.active_bindings.values())
        await c.press("i")
        await c.pilot.pause()
        assert not c.app.screen.query_one("#post", Input).display


async def test_pause_acts_on_the_focused_agents_pane_only(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        esc = await c.escalation()
        await c.press("e", "p")  # the escalations pane is focused: no agent of another pane is paused
        await c.until(lambda: any("focus the Agents pane" in n for n in c.notices), "a hint")
        assert not any(a.paused for a in c.rt.agents.values())
        # a terminated agent cannot be paused
        await c.rt.submit(cmd.Terminate(agent_id="reviewer-1", escalation_id=esc.id, operator="elsewhere"))
        await c.until(lambda: c.app.view.agents["reviewer-1"].state == "terminating", "the agent terminated")
        await c.press("a")
        await c.select(c.app.screen.query_one("#agents", FleetTable), "reviewer-1")
        await c.press("p")
        await c.until(lambda: any("nothing to pause" in n for n in c.notices), "a refusal")
        assert not c.rt.agents["reviewer-1"].paused


async def test_the_agent_screen_shows_the_agent_and_pauses_it(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        esc = await c.escalation()
        agents = c.app.screen.query_one("#agents", FleetTable)
        await c.until(lambda: agents._shown[:1] == ["reviewer-1"], "the escalating agent listed first")
        await c.press("a", "enter")  # the first row: reviewer-1
        await c.shows(AgentScreen, "the agent screen")
        screen = c.app.screen
        assert isinstance(screen, AgentScreen) and screen.agent_id == "reviewer-1"
        text = "".join(str(w.content) for w in screen.query(Static))
        assert "waiting for an operator" in text and esc.id in text and (esc.thread_id or "") in text
        assert "gpt-4o-mini" in text and "State history" in text
        await c.press("p")
        await c.until(lambda: c.rt.agents["reviewer-1"].paused, "reviewer-1 paused")
        await c.until(lambda: "PAUSED" in str(screen.query_one("#agent-head", Static).content), "PAUSED")
        history = str(screen.query_one("#agent-history", Static).content)
        assert "paused by operator" in history
        await c.press("p")
        await c.until(lambda: not c.rt.agents["reviewer-1"].paused, "reviewer-1 resumed")
        await c.press("e")  # its escalation
        await c.shows(EscalationScreen, "the escalation")
        assert isinstance(c.app.screen, EscalationScreen) and c.app.screen.escalation_id == esc.id
        await c.press("escape")
        await c.shows(AgentScreen, "back on the agent")
        await c.press("escape", "n")  # n on the dashboard is a new task, never a decision
        await c.shows(NewTask, "the new-task form")
        assert (stored := c.rt.store.get_escalation(esc.id)) is not None and stored.state == "open"


async def test_answered_elsewhere_while_a_reply_is_typed(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        esc = await c.escalation()
        screen = await c.open_escalation(esc.id)
        await c.press("M")
        await c.shows(AskText, "the reply prompt")
        await c.type("too late")
        await c.rt.submit(cmd.Reject(escalation_id=esc.id, reason="no", operator="bob"))
        await c.until(lambda: any("Answered elsewhere" in n for n in c.notices), "a toast over the dialog")
        assert screen.offered == {}
        await c.press("enter")
        await c.until(
            lambda: any("already answered (reject by bob)" in n for n in c.notices), "who answered, not applied"
        )
        assert c.app.screen is screen
        row = c.rt.store.get_escalation(esc.id)
        assert row is not None and row.answered_by == "bob" and row.decision is not None
        assert row.decision["kind"] == "reject"
        assert not any(m.content == "too late" for m in c.rt.store.messages(esc.thread_id or ""))
