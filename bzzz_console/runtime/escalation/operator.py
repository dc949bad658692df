"""Operator commands applied to a running runtime (the console, the CLI through the store, remote consoles)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bzzz_console.domain import commands as cmd
from bzzz_console.domain import events as ev
from bzzz_console.domain.errors import CommandError
from bzzz_console.domain.lifecycle import AgentState
from bzzz_console.domain.threads import ThreadStatus
from bzzz_console.runtime.tools.base import ToolError
from bzzz_console.store.errors import AlreadyDecided, NotFound

if TYPE_CHECKING:
    from bzzz_console.runtime.runtime import Runtime


DECISIONS = (
    cmd.Approve,
    cmd.Reject,
    cmd.Reply,
    cmd.Reassign,
    cmd.RaiseBudget,
    cmd.DowngradeModel,
    cmd.HandBack,
)


def escalation_of(command: cmd.OperatorCommand) -> str | None:
    """The escalation a command decides, or None for commands that are not decisions."""
    if isinstance(command, DECISIONS) or (isinstance(command, cmd.Terminate) and command.escalation_id):
        return command.escalation_id
    return None


def apply_command(rt: Runtime, command: cmd.OperatorCommand) -> Any:
    if escalation_of(command) is not None:
        return decide(rt, command)  # type: ignore[arg-type]
    if isinstance(command, cmd.Terminate):
        agent = rt.agents.get(command.agent_id)
        if agent is None:
            raise CommandError(f"no agent {command.agent_id!r}")
        if agent.state is AgentState.TERMINATING:
            raise CommandError(f"agent {agent.id} is already terminating")
        for thread_id in list(agent.threads):
            thread = rt.conversations.threads.get(thread_id)
            if thread is not None:
                rt.conversations.remove_participant(thread, agent, "terminated by the operator")
        if agent.state in (AgentState.ACTIVE, AgentState.COLLABORATING):
            rt.transition(agent, AgentState.IDLE, None, "work handed back before termination")
        reason = f"{agent.id} was terminated by {command.operator}"
        for row in rt.store.cancel_escalations(rt.clock.now(), agent_id=agent.id, reason=reason):
            rt.publish(ev.EscalationCancelled(escalation_id=row.id, thread_id=row.thread_id, reason=reason))
            thread = rt.conversations.threads.get(row.thread_id or "")
            if thread is not None and thread.status is ThreadStatus.WAITING_HUMAN:
                rt.conversations.resume_thread(thread, reason)
        rt.transition(agent, AgentState.TERMINATING, None, "terminated by the operator")
        return None
    if isinstance(command, cmd.AddTask):
        if not command.title.strip():
            raise CommandError("a task needs a title")
        from bzzz_console.security.redaction import redactor_for

        redact = redactor_for(rt.settings.security)
        task = rt.store.add_task(
            title=redact.redact(command.title, "store"),
            description=redact.redact(command.description, "store"),
            roles=command.roles,
            priority=command.priority,
            project=command.project,
            source="console",
        )
        rt.task_added(task)
        return task
    if isinstance(command, cmd.PostHumanMessage):
        try:
            return rt.conversations.post_human(command.thread_id, command.text, command.operator)
        except ToolError as exc:
            raise CommandError(str(exc)) from None
    if isinstance(command, cmd.Pause | cmd.Resume):
        agent = rt.agents.get(command.agent_id)
        if agent is None:
            raise CommandError(f"no agent {command.agent_id!r}")
        agent.paused = isinstance(command, cmd.Pause)
        rt.store.set_agent_state(agent.id, agent.state.value, paused=agent.paused)
        rt.publish(
            ev.AgentStateChanged(
                agent_id=agent.id,
                old=agent.state.value,
                new=agent.state.value,
                reason="paused by operator" if agent.paused else "resumed",
            )
        )
        for thread_id in agent.threads:
            thread = rt.conversations.threads.get(thread_id)
            if thread is not None:
                rt.conversations.wake(thread)
        return None
    raise CommandError(f"{command.kind!r} is not handled by this runtime")


def decide(rt: Runtime, command: cmd.Decision, extra: dict[str, Any] | None = None) -> Any:
    """Check and apply a decision on one of this node's escalations; ``extra`` is kept in the decision record
    (a remote decider's peer and signature)."""
    from bzzz_console.domain.decisions import InvalidDecision
    from bzzz_console.runtime.escalation.checks import check_decidable_here, runtime_view, validate
    from bzzz_console.runtime.escalation.decisions import DecisionError

    mirror = rt.store.get_escalation(command.escalation_id or "")
    check_decidable_here(
        mirror, elsewhere="answer it while this node is connected to the network ([p2p] enabled)"
    )
    try:  # its form, and what apply would trip over: refused here, before anything is recorded
        validate(command, mirror, runtime_view(rt), rt.settings)
    except InvalidDecision as exc:
        raise CommandError(str(exc), exc.field) from None
    from bzzz_console.security.authority import NotAllowed

    try:
        return rt.escalations.decide(command, extra)
    except NotAllowed as exc:
        raise CommandError(str(exc)) from None
    except DecisionError as exc:  # recorded, failed to apply: the escalation is open again (apply_row)
        raise CommandError(str(exc)) from None
    except (AlreadyDecided, NotFound) as exc:
        # args[0], not str(): stripping quotes off str() ate the closing quote of "no escalation 'x'"
        raise CommandError(exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)) from None
