"""``bzzz-console escalations …``: operator commands that work on the store directly.

A decision made here is recorded in the database (exactly once); a node that runs the waiting agent applies it
within its check interval (0.5 s by default).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import Annotated, Any

import typer

from bzzz_console.cli.common import ConfigOption, DbOption, JsonOption

escalations_app = typer.Typer(help="List, inspect and answer escalations.", no_args_is_help=True)


@escalations_app.command("list")
def escalations_list(
    show_all: Annotated[
        bool, typer.Option("--all", help="Also answered, expired and cancelled ones.")
    ] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Escalations waiting for a decision (most urgent first)."""
    from bzzz_console.cli import common
    from bzzz_console.domain.threads import URGENCY
    from bzzz_console.views.reports import escalation_summary

    with common.errors():
        store = common.open_db(config, db, read_only=True)
        rows = [e for e in store.escalations() if show_all or e.state == "open"]
        store.close()
        rows.sort(key=lambda e: (e.state != "open", URGENCY.get(e.priority, 9), e.created_at))
        data = [escalation_summary(e) for e in rows]
        if as_json:
            sys.stdout.write(json.dumps(data, indent=2) + "\n")
        else:
            common.table(
                data, ["id", "priority", "state", "rule", "agent_id", "thread_id", "deadline", "reason"]
            )


@escalations_app.command("show")
def escalations_show(
    escalation_id: str, as_json: JsonOption = False, db: DbOption = None, config: ConfigOption = None
) -> None:
    """Everything an operator needs to decide: reason, thread excerpt, agent state, spend, options, deadline."""
    from bzzz_console.cli import common

    with common.errors():
        store = common.open_db(config, db, read_only=True)
        row = store.get_escalation(escalation_id)
        store.close()
        if row is None:
            common.fail(f"no escalation {escalation_id!r}")
        from bzzz_console.domain.decisions import failure_note
        from bzzz_console.views.reports import escalation_summary

        data = {
            **escalation_summary(row),
            "default_action": row.default_action,
            "context": row.context,
            "decision": row.decision,
            "answered_by": row.answered_by,
            "last_error": failure_note(row.context.get("last_error")),
        }
        if as_json:
            sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
            return
        from bzzz_console.domain.text import inert, inert_line, usd

        def one(value: object) -> str:  # every field is data (agents, peers, MCP clients): shown inert
            return inert_line(str(value))

        lines = [
            f"{one(row.id)}  [{one(row.priority)}] {one(row.state)}  rule: {one(row.rule)}",
            f"thread {one(row.thread_id)}  agent {one(row.agent_id)} ({one(row.context.get('agent_state'))})",
            f"deadline {data['deadline']} — then: {one(row.default_action)}",
            "",
            inert(row.reason),
            "",
        ]
        lines += [f"  {one(line)}" for line in row.context.get("excerpt", [])]
        for budget in row.context.get("spend", []):
            lines.append(
                f"spend {one(budget['scope'])} {one(budget['key'])}: {usd(budget['spent_usd'], 4)} of "
                f"{usd(budget['limit_usd'])}"
            )
        if row.context.get("model_error"):  # what the model server last said, in its own words
            lines.append(f"model error: {one(row.context['model_error'])}")
        if row.context.get("options"):
            lines.append("options: " + ", ".join(one(o) for o in row.context["options"]))
        if row.decision:
            lines.append(f"decision: {json.dumps(row.decision)} by {one(row.answered_by)}")
        if data["last_error"] and row.state == "open":  # answered again since: the failure is history
            lines.append(one(data["last_error"]) + " — the escalation is open again")
        typer.echo("\n".join(lines))


@escalations_app.command("answer")
def escalations_answer(
    escalation_id: str,
    approve: Annotated[bool, typer.Option("--approve", help="Approve: the agent goes on.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="Reject (give the reason with --note).")] = False,
    reply: Annotated[
        str | None, typer.Option("--reply", help="Answer in words: posted to the thread.")
    ] = None,
    reassign: Annotated[
        str | None, typer.Option("--reassign", help="Hand the work to this agent id or role.")
    ] = None,
    raise_budget: Annotated[
        float | None, typer.Option("--raise-budget", help="Raise the breached budget by USD.")
    ] = None,
    downgrade: Annotated[
        str | None, typer.Option("--downgrade", help="Switch the agent to MODEL ('next' = ladder).")
    ] = None,
    hand_back: Annotated[
        bool, typer.Option("--hand-back", help="Budget: final answer from the reserve, then close.")
    ] = False,
    terminate: Annotated[bool, typer.Option("--terminate", help="Stop the agent.")] = False,
    note: Annotated[
        str, typer.Option("--note", help="A note recorded with the decision (the reason of --reject).")
    ] = "",
    operator: Annotated[
        str | None,
        typer.Option(
            "--operator",
            help="A label shown next to your OS user (default: escalation.operator); the OS user is recorded.",
        ),
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Decide an escalation. Exactly one of the decision options; a decision is applied once."""
    from bzzz_console.cli import common
    from bzzz_console.domain import commands as cmd

    chosen = [
        name
        for name, on in (
            ("--approve", approve),
            ("--reject", reject),
            ("--reply", reply is not None),
            ("--reassign", reassign is not None),
            ("--raise-budget", raise_budget is not None),
            ("--downgrade", downgrade is not None),
            ("--hand-back", hand_back),
            ("--terminate", terminate),
        )
        if on
    ]
    if len(chosen) != 1:
        common.fail(
            "give exactly one of --approve, --reject, --reply TEXT, --reassign TO, --raise-budget USD, "
            f"--downgrade MODEL, --hand-back, --terminate (got {', '.join(chosen) or 'none'})",
            2,
        )
    with common.errors():
        settings = common.read_settings(config, db)
        if settings.security.readonly:
            common.fail("read-only: decisions are refused on this machine (security.readonly is set)", 2)
        from bzzz_console.domain.principals import os_user

        who = os_user()
        label = operator if operator is not None else settings.escalation.operator
        command: cmd.Decision
        if approve:
            command = cmd.Approve(escalation_id=escalation_id, note=note, operator=who, label=label)
        elif reject:
            command = cmd.Reject(escalation_id=escalation_id, reason=note, operator=who, label=label)
        elif reply is not None:
            command = cmd.Reply(escalation_id=escalation_id, text=reply, operator=who, label=label)
        elif reassign is not None:
            command = cmd.Reassign(escalation_id=escalation_id, to=reassign, operator=who, label=label)
        elif raise_budget is not None:
            command = cmd.RaiseBudget(
                escalation_id=escalation_id, amount_usd=raise_budget, operator=who, label=label
            )
        elif downgrade is not None:
            command = cmd.DowngradeModel(
                escalation_id=escalation_id,
                model=None if downgrade == "next" else downgrade,
                operator=who,
                label=label,
            )
        elif hand_back:
            command = cmd.HandBack(escalation_id=escalation_id, operator=who, label=label)
        else:
            command = cmd.Terminate(agent_id="", escalation_id=escalation_id, operator=who, label=label)
        command = replace(command, surface="cli")
        from bzzz_console.cli import common
        from bzzz_console.domain.decisions import InvalidDecision, decision_record
        from bzzz_console.runtime.escalation.checks import check_decidable_here, store_view, validate
        from bzzz_console.security.authority import NotAllowed, approvals_needed, check_may_decide
        from bzzz_console.store.errors import AlreadyDecided
        from bzzz_console.store.tables import now_utc

        store = common.open_store(settings, read_only=False, create=False)
        try:
            mirror = store.get_escalation(escalation_id)
            check_decidable_here(  # the runtime's own check; its CommandError is one line and exit 1
                mirror,
                elsewhere="answer it in a console (or with bzzz_decide over MCP) of a node connected to the "
                "network",
            )
            if mirror is None:
                common.fail(f"no escalation {escalation_id!r}")
            check_may_decide(settings, mirror, who)
            try:  # a running node's rules, on the store's state (the node checks again on apply)
                validate(command, mirror, store_view(store, settings), settings)
            except InvalidDecision as exc:  # names the option to fix; exit 2, nothing recorded
                common.fail(f"{'--note' if reject else chosen[0]}: {exc}", 2)
            record = decision_record(command)
            needed = approvals_needed(settings.escalation, mirror)
            row, approvals = store.approve(escalation_id, record, who, record["by"], now_utc(), needed=needed)
        except (AlreadyDecided, NotAllowed) as exc:
            common.fail(str(exc))
        else:
            if not approvals:
                _audit_decision(settings, store, row, row.answered_by or who)
        finally:
            store.close()
        from bzzz_console.domain.text import inert_line as one  # names and ids are data

        if approvals:
            typer.echo(
                f"{one(row.id)}: {command.kind} recorded as {len(approvals)} of {needed} approvals "
                f"({', '.join(one(a.shown_as) for a in approvals)}); a second operator must give the same "
                "decision"
            )
            return
        typer.echo(
            f"{one(row.id)}: {command.kind} recorded by {one(row.answered_by or '')}; the node running "
            f"{one(row.agent_id or 'the thread')} applies it within a second"
        )


def _audit_decision(settings: Any, store: Any, row: Any, who: str) -> None:
    """The decision's signed audit entry. The decision itself is already recorded (once): a failure here is a
    warning, not an error that would invite answering again."""
    from bzzz_console.security.audit import record_decision

    try:
        record_decision(settings, store, row, row.decision or {}, who)
    except Exception as exc:
        typer.echo(
            f"bzzz-console: warning: the decision is recorded, but not in the audit trail: {exc}", err=True
        )
