"""The escalation engine: rules raise escalations, operators (or deadlines) decide, the runtime resumes agents.

A decision is recorded once in the store (:meth:`EscalationQueries.claim_decision`, an atomic UPDATE), then
*applied* by the runtime that owns the waiting agent. A decision recorded by another process — the
``escalations answer`` CLI, another console on a shared database — is picked up by the timer loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bzzz_console.domain import commands as cmd
from bzzz_console.domain import events as ev
from bzzz_console.domain.decisions import decision_record
from bzzz_console.domain.lifecycle import AgentState
from bzzz_console.domain.state import Agent, ThreadState
from bzzz_console.domain.text import usd
from bzzz_console.domain.threads import MessageType, ThreadStatus, disagreement_count, tally
from bzzz_console.resources import agents_dir
from bzzz_console.runtime.memory import excerpt
from bzzz_console.runtime.rules import Rule, ThreadFacts, load_rules, matching
from bzzz_console.store.repo import new_id
from bzzz_console.store.tables import EscalationRow, utc

if TYPE_CHECKING:
    from bzzz_console.runtime.runtime import Runtime

PROGRESS = (MessageType.PROPOSAL, MessageType.AGREE, MessageType.ANSWER, MessageType.DECISION)
ONCE_PER_THREAD_EXEMPT = frozenset({"request_human", "model_trouble", "budget", "error_rate"})
RAISED_BY_THE_RUNTIME = frozenset({"request_human", "model_trouble"})
"""Conditions the runtime itself establishes (an agent's request, a model of no use): never evaluated as facts."""


class Escalations:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        folder = rt.settings.runtime.agents_dir or agents_dir()
        self.rules: list[Rule] = load_rules(rt.settings.escalation.rules_file or folder / "escalation.toml")
        from bzzz_console.security.authority import check_two_person_names

        check_two_person_names(rt.settings.escalation, (rule.name for rule in self.rules))
        self._fired: set[tuple[str, str]] = set()
        self._timer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._fired = self.rt.store.fired_rules()
        self.apply_recorded()  # decisions made while this node was down (CLI, other consoles) apply now
        self._timer = asyncio.create_task(self._timer_loop(), name="escalation timer")

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer

    # -- raising ------------------------------------------------------------------------------------------
    def facts(self, thread: ThreadState, agent: Agent | None, requested: bool = False) -> ThreadFacts:
        messages = thread.messages
        progress = [m.created_at for m in messages if m.type in PROGRESS]
        first_objection = next((m.created_at for m in messages if m.type is MessageType.DISAGREE), None)
        return ThreadFacts(
            created_at=utc(thread.created_at),
            last_progress_at=utc(max(progress, default=thread.created_at)),
            disagreements=disagreement_count(messages),
            first_disagreement_at=utc(first_objection) if first_objection else None,
            resolved=tally(thread.participant_ids, messages).reached,
            calls=tuple(thread.calls),
            budget_fraction=self.rt.budgets.breach_share(agent, thread.id),
            requested=requested,
        )

    def check(self, thread: ThreadState, subject: Agent | None) -> str | None:
        """Evaluate the rules for a thread (before a turn, after a message, on the timer); raise what fires."""
        now = self.rt.clock.now()
        for rule in matching(self.rules, self.facts(thread, subject), now):
            if rule.kinds & RAISED_BY_THE_RUNTIME:
                continue
            once = not (rule.kinds & ONCE_PER_THREAD_EXEMPT)
            if once and (rule.name, thread.id) in self._fired:
                continue
            if any(
                e.rule == rule.name and e.thread_id == thread.id and e.state == "open"
                for e in self.rt.store.escalations("open")
            ):
                continue
            return self.raise_for(thread, subject, rule, self._reason(rule, thread, subject))
        return None

    def _reason(self, rule: Rule, thread: ThreadState, subject: Agent | None) -> str:
        kinds = rule.kinds
        if "budget" in kinds:
            state = self.rt.budgets.tightest(subject, thread.id)
            if state is not None:
                return (
                    f"{state.scope} budget {state.key} breached: {usd(state.spent_usd)} of {usd(state.limit_usd)} "
                    f"spent; {subject.id if subject else 'the agent'} is paused with a reserve for a final answer"
                )
        if "error_rate" in kinds:
            failed = sum(1 for _, ok in thread.calls if not ok)
            return f"{failed} of the last {len(thread.calls)} model calls in {thread.id} failed"
        if "disagreement_count" in kinds:
            return f"consensus failure: {disagreement_count(thread.messages)} objections and no resolution in {thread.id}"
        return f"{rule.name}: {thread.topic}"

    def raise_for(
        self,
        thread: ThreadState,
        agent: Agent | None,
        rule: Rule,
        reason: str,
        *,
        priority: str | None = None,
        options: Sequence[str] = (),
        turns: int = 0,
        model_error: str | None = None,
    ) -> str:
        """Persist an escalation (and the thread's pause, the agent's state) in one commit; then publish."""
        now = self.rt.clock.now()
        if agent is not None and agent.state not in (AgentState.ACTIVE, AgentState.COLLABORATING):
            agent = None  # already escalating elsewhere: the thread waits on the escalation alone
        context: dict[str, Any] = {
            "excerpt": [
                f"#{m.seq} {m.author} [{m.type.value}]: {excerpt(m.content, 200)}"
                for m in thread.messages[-6:]
            ],
            "agent_state": agent.state.value if agent else None,
            "spend": [
                {"scope": b.scope, "key": b.key, "spent_usd": round(b.spent_usd, 6), "limit_usd": b.limit_usd}
                for b in self.rt.budgets.states(agent, thread.id)
            ],
            "options": list(options or rule.options),
            "topic": thread.topic,
        }
        if (
            model_error or thread.last_model_error
        ):  # what the server last said: every model escalation shows it
            context["model_error"] = model_error or thread.last_model_error
        tight = self.rt.budgets.tightest(agent, thread.id)
        if "budget" in rule.kinds and tight is not None:
            context["budget"] = {"scope": tight.scope, "key": tight.key}
        row = EscalationRow(
            id=new_id("esc"),
            thread_id=thread.id,
            agent_id=agent.id if agent else None,
            rule=rule.name,
            reason=reason,
            priority=priority or rule.effective_priority,
            default_action=rule.on_expiry,
            context=context,
            created_at=now,
            deadline=now + rule.deadline,
        )
        route = self.rt.route_to(agent, AgentState.ESCALATING) if agent else []
        self.rt.store.raise_escalation(
            row,
            thread_status=ThreadStatus.WAITING_HUMAN.value,
            turns=turns,
            agent_state=AgentState.ESCALATING.value if agent else None,
        )
        thread.turn_count += turns
        self._fired.add((rule.name, thread.id))
        thread.status = ThreadStatus.WAITING_HUMAN
        if agent is not None:
            self.rt.transition_published(agent, route, thread.id, f"escalated: {rule.name}")
        self.rt.publish(
            ev.ThreadStatusChanged(thread_id=thread.id, status=thread.status.value, reason=reason)
        )
        self.rt.publish(
            ev.EscalationRaised(
                escalation_id=row.id,
                thread_id=thread.id,
                agent_id=row.agent_id,
                rule=rule.name,
                reason=reason,
                priority=row.priority,
                deadline=row.deadline,
            )
        )
        self._run_actions(rule, thread)
        return row.id

    def rule_for_request(self) -> Rule:
        return self.rule_for("request_human")

    def rule_for(self, kind: str) -> Rule:
        """The rules file's rule for a condition the runtime raises itself, or a built-in one without it."""
        found = next((r for r in self.rules if kind in r.kinds), None)
        if found is not None:
            return found
        if kind == "model_trouble":
            return Rule("Model Trouble", (), (), "high", timedelta(hours=1), "hold")
        return Rule("Agent Request", (), (), "medium", timedelta(hours=1), "hold")

    def _run_actions(self, rule: Rule, thread: ThreadState) -> None:
        conv = self.rt.conversations
        for action in rule.actions:
            if action.type == "escalate_to_architect":
                conv.invite(thread, lambda a: a.spec.answers_to("architect"), "escalated to an architect")
            elif action.type == "request_expert":
                conv.invite(
                    thread, _has_any(action.expertise), f"expert requested: {', '.join(action.expertise)}"
                )
            elif action.type == "create_decision_thread":
                roles = [p.removeprefix("senior_") for p in action.participants] or ["architect"]
                self.rt.store.add_task(
                    title=f"Decide: {thread.topic.split(': ', 1)[-1]}",
                    description="The thread "
                    + thread.id
                    + " could not agree. Objections so far:\n"
                    + "\n".join(
                        f"- {m.author}: {excerpt(m.content, 200)}"
                        for m in thread.messages
                        if m.type is MessageType.DISAGREE
                    ),
                    roles=roles,
                    priority=rule.effective_priority,
                    project=thread.project,
                    source="escalation",
                )
                self.rt.capacity_changed()

    # -- deciding -----------------------------------------------------------------------------------------
    def decide(self, command: cmd.Decision, extra: dict[str, Any] | None = None) -> EscalationRow:
        """Record an operator's decision (exactly once) and apply it. Under the two-person rule the first
        operator's decision is recorded and the row comes back still open. Raises AlreadyDecided (and its
        ApprovalRefused), NotFound, or authority.NotAllowed."""
        from bzzz_console.security.authority import approvals_needed, check_may_decide
        from bzzz_console.store.errors import NotFound

        escalation = self.rt.store.get_escalation(command.escalation_id or "")
        if escalation is None:
            raise NotFound(f"no escalation {command.escalation_id!r}")
        check_may_decide(self.rt.settings, escalation, command.operator)
        decision = {**decision_record(command), **(extra or {})}
        row, approvals = self.rt.store.approve(
            escalation.id,
            decision,
            command.operator,
            decision["by"],
            self.rt.clock.now(),
            needed=approvals_needed(self.rt.settings.escalation, escalation),
            applying=True,
        )
        if approvals:
            self.rt.publish(
                ev.EscalationApproval(
                    escalation_id=row.id,
                    decision=command.kind,
                    approvals=tuple(a.shown_as for a in approvals),
                    needed=approvals_needed(self.rt.settings.escalation, escalation),
                )
            )
            return row
        self.apply_row(row)
        return row

    def apply_recorded(self) -> None:
        """Apply every recorded but unapplied decision (ours, another process's, or a deadline's)."""
        from bzzz_console.runtime.escalation.decisions import DecisionError

        for row in self.rt.store.decisions_to_apply():
            if self.rt.store.mark_applied(row.id):
                with contextlib.suppress(DecisionError):  # reopened and reported; the others still apply
                    self.apply_row(row)

    def apply_row(self, row: EscalationRow) -> None:
        """Carry out a recorded decision. Should that fail, for whatever reason, the node goes on: the escalation
        reopens with the failure kept in its context (``escalations show`` and the console say what failed), a
        ``decision_failed`` event (audited) and an error are published, and DecisionError tells the decider.
        Left answered, it would hold the agent and its thread for good, and answering again would be refused."""
        from bzzz_console.domain.decisions import failure_note
        from bzzz_console.runtime.escalation.decisions import DecisionError, apply_decision

        try:
            apply_decision(self.rt, row)
        except Exception as exc:
            decision = row.decision or {}
            error = str(exc) if isinstance(exc, DecisionError) else f"{type(exc).__name__}: {exc}"
            failure = {
                "kind": str(decision.get("kind", "?")),
                "by": str(decision.get("by") or row.answered_by or "?"),
                "error": error[:1000],
                "at": self.rt.clock.now().isoformat(timespec="seconds"),
            }
            self.rt.store.reopen_escalation(row.id, failure, self.rt.clock.now())
            self.rt.publish(
                ev.DecisionFailed(
                    escalation_id=row.id,
                    thread_id=row.thread_id,
                    agent_id=row.agent_id,
                    decision=failure["kind"],
                    by=failure["by"],
                    error=failure["error"],
                )
            )
            note = f"{failure_note(failure)}; escalation {row.id} is open again"
            self.rt.publish(ev.ErrorRaised(where=f"escalation {row.id}", message=note))
            raise DecisionError(note) from exc

    async def _timer_loop(self) -> None:
        interval = self.rt.settings.escalation.check_interval_s
        while True:
            try:
                self.tick()
            except Exception as exc:  # keep the engine alive through a database hiccup; show the error
                self.rt.publish(
                    ev.ErrorRaised(where="escalation timer", message=f"{type(exc).__name__}: {exc}")
                )
            await asyncio.sleep(interval)

    def tick(self) -> None:
        """One pass of the timer: expire overdue escalations, apply decisions from elsewhere, time-based rules."""
        now = self.rt.clock.now()
        for row in self.rt.store.escalations("open"):
            if row.origin_peer:
                continue  # another node's escalation: its owner expires it and tells us
            if row.deadline is not None and utc(row.deadline) <= now and self.rt.store.expire(row.id, now):
                self.rt.publish(
                    ev.EscalationExpired(
                        escalation_id=row.id, thread_id=row.thread_id, default_action=row.default_action
                    )
                )
        self.apply_recorded()
        for thread in list(self.rt.conversations.threads.values()):
            if thread.status is ThreadStatus.ACTIVE and not thread.in_turn:
                self.check(thread, self.rt.conversations.speaker_of(thread))


def _has_any(expertise: Sequence[str]) -> Callable[[Agent], bool]:
    wanted = set(expertise)
    return lambda agent: bool(wanted & set(agent.spec.capabilities))
