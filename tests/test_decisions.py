"""Decisions are validated before they are recorded, on every path, and applying one can't wedge anything.

The paths: the console (``rt.submit``), the installed ``escalations answer`` command, MCP ``bzzz_decide`` through
the real ``mcp`` client, and (in test_p2p_runtime) a peer's signed request. The apply failures are real ones: a
database trigger makes the budgets table refuse writes, as a broken or read-only table would.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import eventually
from mcp import Client
from sqlalchemy import text
from test_escalations import CHEAP, TINY, Node, acli, breached, budget_script, escalated_script, node, post

from bzzz_console.config import ConfigError, load_settings
from bzzz_console.domain import commands as cmd
from bzzz_console.domain import events as ev
from bzzz_console.domain.decisions import InvalidDecision, check_amount
from bzzz_console.domain.errors import CommandError
from bzzz_console.domain.lifecycle import AgentState
from bzzz_console.mcp.server import build_server
from bzzz_console.security.audit import read_entries
from bzzz_console.store.repo import Store
from bzzz_console.store.tables import BudgetRow, EscalationRow

# What was seen: nan accepted and stored as a NULL limit, inf and 1e308 as "Infinity" (not JSON).
BAD_AMOUNTS = (math.nan, math.inf, -math.inf, -1.0, 0.0, 1e308, 100.01)
BAD_ON_THE_COMMAND_LINE = ("nan", "inf", "-inf", "-1", "0", "1e308", "100.01")


def budgets_refuse_writes(n: Node) -> None:
    """The budgets table refuses every write from now on (a real database failure inside apply)."""
    with n.rt.store.session() as s:
        for op in ("INSERT", "UPDATE"):
            s.execute(
                text(
                    f"CREATE TRIGGER budgets_frozen_{op.lower()} BEFORE {op} ON budgets "
                    "BEGIN SELECT RAISE(ABORT, 'budgets are frozen'); END"
                )
            )
        s.commit()


def budgets_accept_writes(n: Node) -> None:
    with n.rt.store.session() as s:
        for op in ("insert", "update"):
            s.execute(text(f"DROP TRIGGER budgets_frozen_{op}"))
        s.commit()


def budget_rows(n: Node) -> list[BudgetRow]:
    from sqlmodel import select

    with n.rt.store.session() as s:
        return list(s.exec(select(BudgetRow)))


def still_open(n: Node, escalation_id: str) -> EscalationRow:
    row = n.rt.store.get_escalation(escalation_id)
    assert row is not None and row.state == "open" and row.decision is None and not row.applied
    return row


def agentless_escalation(n: Node, thread_id: str) -> str:
    """An escalation about a thread with no agent (raised while its agent was busy elsewhere)."""
    row = EscalationRow(
        id="esc-no-agent",
        thread_id=thread_id,
        agent_id=None,
        rule="Long Running Thread",
        reason="the thread has run for two hours",
    )
    n.rt.store.raise_escalation(row, thread_status=None)
    return row.id


# -- the pure part -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [*BAD_AMOUNTS, True, "5"])
def test_an_amount_must_be_a_finite_positive_number_under_the_cap(amount: Any) -> None:
    with pytest.raises(InvalidDecision) as caught:
        check_amount(amount, 100.0)
    assert caught.value.field == "amount_usd"
    assert check_amount(100, 100.0) == 100.0 and check_amount(0.01, 100.0) == 0.01


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-5.0"])
def test_max_raise_usd_is_checked_when_the_settings_load(tmp_path: Path, value: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[budgets]\nmax_raise_usd = {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="max_raise_usd"):
        load_settings(path, environ={})
    path.write_text("[budgets]\nmax_raise_usd = 250.0\n", encoding="utf-8")
    assert load_settings(path, environ={}).budgets.max_raise_usd == 250.0


def test_the_store_records_no_decision_that_is_not_plain_json_and_reopens_one_that_failed(
    tmp_path: Path,
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'bzzz.db'}")
    try:
        now = datetime.now(UTC)
        row = EscalationRow(id="esc-1", rule="r", reason="why", deadline=now - timedelta(minutes=1))
        store.raise_escalation(row, thread_status=None)
        for amount in (math.nan, math.inf):
            with pytest.raises(ValueError, match="not plain JSON"):
                store.claim_decision("esc-1", {"kind": "raise_budget", "amount_usd": amount}, "ann", now)
        assert store.get_escalation("esc-1").state == "open"  # type: ignore[union-attr]
        store.claim_decision("esc-1", {"kind": "approve", "by": "ann"}, "ann", now, applying=True)
        failure = {"kind": "approve", "by": "ann", "error": "boom"}
        reopened = store.reopen_escalation("esc-1", failure, now)
        assert reopened is not None and reopened.state == "open" and reopened.decision is None
        assert reopened.context["last_error"] == failure and not reopened.applied
        assert reopened.deadline is None  # passed: kept, it would expire (and maybe fail again) at once
        assert store.reopen_escalation("esc-1", failure, now) is None  # open already: nothing to reopen
        again = store.claim_decision("esc-1", {"kind": "reject", "by": "bo"}, "bo", now)  # answerable again
        assert again.state == "answered" and again.decision == {"kind": "reject", "by": "bo"}
    finally:
        store.close()


# -- amounts, on every path ------------------------------------------------------------------------------------------


async def test_bad_amounts_are_refused_by_the_console_and_nothing_is_recorded(tmp_path: Path) -> None:
    script = budget_script(architect_1=[post("comment", "Carrying on.", CHEAP)])
    script.add("reviewer-1", post("agree", "Agreed.", CHEAP))
    async with node(tmp_path, script, budgets=TINY) as n:
        thread_id, esc = await breached(n)
        for amount in BAD_AMOUNTS:
            with pytest.raises(CommandError) as caught:
                await n.rt.submit(cmd.RaiseBudget(escalation_id=esc.id, amount_usd=amount, operator="ops"))
            assert caught.value.field == "amount_usd", amount
            assert "raise the budget by" in str(caught.value)
            still_open(n, esc.id)
        assert "at most $100.00" in str(caught.value)  # the last one: over the cap, which it names
        assert budget_rows(n) == [] and n.rt.agents["architect-1"].state is AgentState.ESCALATING
        await n.rt.submit(cmd.RaiseBudget(escalation_id=esc.id, amount_usd=0.01, operator="ops"))
        assert n.rt.budgets.limit("thread", thread_id) == pytest.approx(0.0105)


async def test_bad_amounts_are_refused_by_bzzz_decide(tmp_path: Path) -> None:
    async with node(tmp_path, budget_script(), budgets=TINY) as n:
        _, esc = await breached(n)
        async with Client(build_server(n.rt)) as client:
            for amount in (*BAD_AMOUNTS, None):
                args = {"escalation_id": esc.id, "decision": "raise_budget", "amount_usd": amount}
                result = await client.call_tool("bzzz_decide", args)
                message = result.content[0].text  # type: ignore[union-attr]
                assert result.is_error and "amount_usd" in message, (amount, message)
                still_open(n, esc.id)
        assert budget_rows(n) == []


@pytest.mark.slow
async def test_bad_amounts_are_refused_by_escalations_answer(tmp_path: Path) -> None:
    async with node(tmp_path, budget_script(), budgets=TINY) as n:
        _, esc = await breached(n)
        for value in BAD_ON_THE_COMMAND_LINE:
            done = await acli(tmp_path, "escalations", "answer", esc.id, "--raise-budget", value)
            assert done.returncode == 2, (value, done.stdout, done.stderr)
            assert "--raise-budget: raise the budget by" in done.stderr and "Traceback" not in done.stderr
        shown = await acli(tmp_path, "escalations", "show", esc.id, "--json")
        assert shown.returncode == 0, shown.stderr
        data = json.loads(shown.stdout)
        assert (data["state"], data["decision"], data["answered_by"]) == ("open", None, None)
        assert budget_rows(n) == []


# -- decisions that cannot apply, refused up front on every path -------------------------------------------------


IMPOSSIBLE = {
    # name: (the console's command, bzzz_decide's arguments, escalations answer's options, the reason)
    "downgrade, no cheaper model": (
        lambda esc: cmd.DowngradeModel(escalation_id=esc),
        {"decision": "downgrade_model"},
        ("--downgrade", "next"),
        "no cheaper model than gpt-4o-mini",
    ),
    "downgrade to an unpriced model": (
        lambda esc: cmd.DowngradeModel(escalation_id=esc, model="mystery-model"),
        {"decision": "downgrade_model", "model": "mystery-model"},
        ("--downgrade", "mystery-model"),
        "not in the pricing table",
    ),
    "reassign to a participant": (
        lambda esc: cmd.Reassign(escalation_id=esc, to="architect-1"),
        {"decision": "reassign", "to": "architect-1"},
        ("--reassign", "architect-1"),
        "architect-1 is already in it",
    ),
    "reassign to nobody": (
        lambda esc: cmd.Reassign(escalation_id=esc, to="ghost"),
        {"decision": "reassign", "to": "ghost"},
        ("--reassign", "ghost"),
        "no agent or role 'ghost'",
    ),
    "terminate, no agent": (
        lambda esc: cmd.Terminate(agent_id="", escalation_id=esc),
        {"decision": "terminate"},
        ("--terminate",),
        "not about an agent",
    ),
}


async def test_decisions_that_cannot_apply_are_refused_up_front_on_every_path(tmp_path: Path) -> None:
    async with node(tmp_path, escalated_script()) as n:
        thread_id = await n.start_task()
        reviewers = n.open_escalation().id  # reviewer-1 (on gpt-4o-mini, the ladder's bottom) asks a human
        agentless = agentless_escalation(n, thread_id)
        async with Client(build_server(n.rt)) as client:
            for name, (command, arguments, options, reason) in IMPOSSIBLE.items():
                esc = agentless if name == "terminate, no agent" else reviewers
                with pytest.raises(CommandError, match=reason):
                    await n.rt.submit(command(esc))
                result = await client.call_tool("bzzz_decide", {"escalation_id": esc, **arguments})
                message = result.content[0].text  # type: ignore[union-attr]
                assert result.is_error and reason in message, (name, message)
                done = await acli(tmp_path, "escalations", "answer", esc, *options)
                assert done.returncode == 2 and reason in done.stderr, (name, done.stderr)
                assert f"{options[0]}: " in done.stderr  # names the option to fix
                still_open(n, esc)
        assert [p.agent_id for p in n.rt.store.participants(thread_id)] == ["architect-1", "reviewer-1"]
        assert n.rt.agents["reviewer-1"].state is AgentState.ESCALATING
        assert n.rt.agents["reviewer-1"].model == "gpt-4o-mini"


# -- a decision that fails to apply reopens its escalation ---------------------------------------------------------


def decision_failed_entries(n: Node) -> list[Any]:
    return [e for e in read_entries(n.rt.store) if e.type == "decision_failed"]


async def test_a_decision_that_fails_to_apply_reopens_and_a_second_answer_applies(tmp_path: Path) -> None:
    script = budget_script(architect_1=[post("comment", "Carrying on.", CHEAP)])
    script.add("reviewer-1", post("agree", "Agreed.", CHEAP))
    async with node(tmp_path, script, budgets=TINY) as n:
        thread_id, esc = await breached(n)
        budgets_refuse_writes(n)
        with pytest.raises(CommandError, match=r"could not be applied: .*budgets are frozen") as caught:
            await n.rt.submit(cmd.RaiseBudget(escalation_id=esc.id, amount_usd=0.01, operator="ops"))
        assert "open again" in str(caught.value)
        # the node goes on: the escalation waits again, saying what failed; nothing was half-applied
        row = still_open(n, esc.id)
        assert (
            row.context["last_error"]["kind"] == "raise_budget" and row.context["last_error"]["by"] == "ops"
        )
        assert "budgets are frozen" in row.context["last_error"]["error"]
        assert n.rt.agents["architect-1"].state is AgentState.ESCALATING
        assert n.thread(thread_id).status == "waiting_human"
        [failed] = n.of(ev.DecisionFailed)
        assert (failed.escalation_id, failed.decision, failed.by) == (esc.id, "raise_budget", "ops")
        assert any(
            e.where == f"escalation {esc.id}" and "open again" in e.message for e in n.of(ev.ErrorRaised)
        )
        assert not n.of(ev.EscalationAnswered)
        [entry] = await eventually(lambda: decision_failed_entries(n), "the audit entry")
        assert (
            entry.author == "system" and entry.data["by"] == "ops" and entry.data["escalation_id"] == esc.id
        )
        assert n.rt.escalations._timer is not None and not n.rt.escalations._timer.done()
        # once the table takes writes again, answering again is accepted and applied
        budgets_accept_writes(n)
        answered = await n.rt.submit(cmd.RaiseBudget(escalation_id=esc.id, amount_usd=0.01, operator="ops"))
        assert answered.state == "answered"
        assert n.rt.agents["architect-1"].state is not AgentState.ESCALATING
        await n.idle()
        assert n.thread(thread_id).outcome == "consensus"


async def test_a_recorded_decision_that_fails_to_apply_reopens_instead_of_wedging(tmp_path: Path) -> None:
    """What was seen: the decision was recorded (by a CLI in another process), the node failed applying it, and
    the escalation read "answered" for good. Here the record predates validation (an amount that is text)."""
    script = budget_script(architect_1=[post("comment", "Carrying on.", CHEAP)])
    script.add("reviewer-1", post("agree", "Agreed.", CHEAP))
    async with node(tmp_path, script, budgets=TINY) as n:
        thread_id, esc = await breached(n)
        stale = {"kind": "raise_budget", "by": "old-cli", "amount_usd": "ten"}
        n.rt.store.claim_decision(esc.id, stale, "old-cli", n.clock.now())
        n.rt.escalations.tick()  # the timer pass that applies decisions from elsewhere
        row = still_open(n, esc.id)
        assert "ValueError" in row.context["last_error"]["error"]
        assert [e.decision for e in n.of(ev.DecisionFailed)] == ["raise_budget"]
        n.rt.escalations.tick()  # reopened once, not retried on every pass
        assert len(n.of(ev.DecisionFailed)) == 1
        await n.rt.submit(cmd.RaiseBudget(escalation_id=esc.id, amount_usd=0.01, operator="ops"))
        await n.idle()
        assert n.thread(thread_id).outcome == "consensus"


@pytest.mark.slow
async def test_a_cli_decision_that_fails_on_the_node_reopens_shows_why_and_can_be_answered_again(
    tmp_path: Path,
) -> None:
    script = budget_script(architect_1=[post("comment", "Carrying on.", CHEAP)])
    script.add("reviewer-1", post("agree", "Agreed.", CHEAP))
    async with node(tmp_path, script, budgets=TINY) as n:
        thread_id, esc = await breached(n)
        budgets_refuse_writes(n)
        done = await acli(tmp_path, "escalations", "answer", esc.id, "--raise-budget", "0.01")
        assert done.returncode == 0, done.stderr
        n.rt.escalations.tick()
        still_open(n, esc.id)
        shown = await acli(tmp_path, "escalations", "show", esc.id)
        assert shown.returncode == 0, shown.stderr
        assert " open " in shown.stdout.splitlines()[0]
        assert "the last decision (raise_budget by " in shown.stdout and "budgets are frozen" in shown.stdout
        await eventually(lambda: decision_failed_entries(n), "the audit entry")
        budgets_accept_writes(n)
        again = await acli(tmp_path, "escalations", "answer", esc.id, "--raise-budget", "0.01")
        assert again.returncode == 0, again.stderr
        n.rt.escalations.tick()
        row = n.rt.store.get_escalation(esc.id)
        assert row is not None and row.state == "answered" and row.applied
        assert n.rt.budgets.limit("thread", thread_id) == pytest.approx(0.0105)
        await n.idle()
        assert n.thread(thread_id).outcome == "consensus"
