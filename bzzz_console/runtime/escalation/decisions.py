"""Carrying out a recorded decision: the thread hears about it, the agent resumes (or is replaced, downgraded,
stopped), budgets move. Runs once per escalation (guarded by ``mark_applied``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bzzz_console.domain import events as ev
from bzzz_console.domain.lifecycle import AgentState
from bzzz_console.domain.text import usd
from bzzz_console.domain.threads import ThreadStatus
from bzzz_console.store.tables import EscalationRow

if TYPE_CHECKING:
    from bzzz_console.domain.state import Agent, ThreadState
    from bzzz_console.runtime.runtime import Runtime


class DecisionError(RuntimeError):
    """A decision that cannot be carried out as asked (e.g. reassigning to an unknown agent)."""


def describe(row: EscalationRow, decision: dict[str, Any], agent_id: str | None) -> str:
    kind = decision.get("kind", "hold")
    head = f"Operator decision on {row.id} ({row.rule})"
    if decision.get("expired"):
        return f"The deadline of {row.id} ({row.rule}) passed without an answer; the default action '{kind}' applies."
    note = f" Note: {decision['note']}" if decision.get("note") else ""
    texts = {
        "approve": f"{head}: approved.{note}",
        "reject": f"{head}: rejected. Reason: {decision.get('reason', '')}{note}",
        "reply": f"{decision.get('text', '')}{note}",
        "reassign": f"{head}: {agent_id or 'the work'} is reassigned to {decision.get('to')}.{note}",
        "raise_budget": f"{head}: budget raised by {usd(decision.get('amount_usd', 0), 2)}; carry on.{note}",
        "downgrade_model": f"{head}: {agent_id} continues on a cheaper model ({decision.get('model')}).{note}",
        "terminate": f"{head}: {agent_id} is stopped.{note}",
        "hand_back": f"{head}: hand back the partial work. {agent_id}, post your final answer now as a summary.{note}",
    }
    return texts.get(kind, f"{head}: {kind}.{note}")


def apply_decision(rt: Runtime, row: EscalationRow) -> None:
    decision = dict(row.decision or {})
    kind = decision.get("kind", "hold")
    if kind == "hold":
        return
    conv = rt.conversations
    thread = conv.threads.get(row.thread_id or "")
    agent = rt.agents.get(row.agent_id or "")
    if kind in ("reassign", "terminate", "downgrade_model", "hand_back") and agent is None:
        # refused up front when it was recorded; the agent went away since (or the record predates that check)
        raise DecisionError(f"agent {row.agent_id or '(none)'} is not on this node: nothing to {kind}")
    if kind == "downgrade_model" and agent is not None:
        model = decision.get("model") or rt.settings.optimizer.model_ladder.get(agent.model, agent.model)
        decision["model"] = model
        agent.model = model
        rt.store.set_agent_model(agent.id, model)
    budget = row.context.get("budget") or {}
    if kind in ("downgrade_model", "hand_back") and budget:
        rt.budgets.release_reserve(budget.get("scope", "thread"), budget.get("key", row.thread_id or "*"))
    if kind == "raise_budget":
        scope = row.context.get("budget", {}) or {"scope": "thread", "key": row.thread_id}
        rt.budgets.raise_limit(
            scope.get("scope", "thread"),
            scope.get("key", row.thread_id or "*"),
            float(decision.get("amount_usd", 0)),
            decision.get("by", "operator"),
        )
    if kind == "reassign" and agent is not None and thread is not None:
        _reassign(rt, thread, agent, str(decision.get("to", "")))
    elif kind == "terminate" and agent is not None:
        _terminate(rt, agent)
    elif kind == "hand_back" and thread is not None and agent is not None:
        thread.finalizing = agent.id
    # The agent resumes first (it is what the operator waits to see); the thread hears about the decision before
    # its driver runs again, since nothing here yields to the event loop.
    if (
        agent is not None
        and agent.state is AgentState.ESCALATING
        and not _still_waiting(rt, agent_id=agent.id)
    ):
        conv.resume_agent(agent, f"decision: {kind}")
    if thread is not None:
        conv.post_human(
            thread.id, describe(row, decision, row.agent_id), decision.get("by", "operator"), wake=False
        )
        if thread.status is ThreadStatus.WAITING_HUMAN and not _still_waiting(rt, thread_id=thread.id):
            conv.resume_thread(thread, f"decision on {row.id}: {kind}")
    if decision.get("expired"):
        return  # EscalationExpired was published by the timer; an expiry is never shown as an answer
    rt.publish(
        ev.EscalationAnswered(
            escalation_id=row.id,
            thread_id=row.thread_id,
            agent_id=row.agent_id,
            decision=kind,
            by=decision.get("by", "operator"),
            detail=str(
                decision.get("reason")
                or decision.get("text")
                or decision.get("to")
                or decision.get("model")
                or decision.get("amount_usd")
                or ""
            ),
        )
    )


def _still_waiting(rt: Runtime, *, agent_id: str | None = None, thread_id: str | None = None) -> bool:
    """Another escalation (open, or expired and held) still needs a human for this agent or thread."""
    return rt.store.count_waiting(agent_id=agent_id, thread_id=thread_id) > 0


def replacement_for(rt: Runtime, thread: ThreadState, to: str) -> Agent | None:
    """The agent that would take a seat: the one named, or the least loaded free agent of the role."""
    replacement = rt.agents.get(to)
    if replacement is None:
        candidates = [
            a
            for a in rt.agents.values()
            if a.spec.answers_to(to) and a.picked_automatically and a.id not in thread.participant_ids
        ]
        replacement = min(candidates, key=lambda a: (a.load, a.id), default=None)
    if replacement is None or replacement.id in thread.participant_ids or not replacement.can_join:
        return None
    return replacement


def _reassign(rt: Runtime, thread: ThreadState, agent: Agent, to: str) -> None:
    conv = rt.conversations
    replacement = replacement_for(rt, thread, to)
    if replacement is None:  # checked when recorded, but agents got busy since (or a CLI could not see it)
        raise DecisionError(f"no free agent {to!r} can take over from {agent.id} in {thread.id}")
    conv.replace_participant(thread, agent, replacement)


def _terminate(rt: Runtime, agent: Agent) -> None:
    conv = rt.conversations
    for thread_id in list(agent.threads):
        thread = conv.threads.get(thread_id)
        if thread is not None:
            conv.remove_participant(thread, agent, "terminated by the operator")
    rt.transition(agent, AgentState.TERMINATING, None, "terminated by the operator")
