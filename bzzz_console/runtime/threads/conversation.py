"""Threads at work: the seed's collaborative review pattern, turn taking, consensus and closing.

One driver task per active thread. Within a thread agents speak in turn (participant order, skipping agents
that cannot speak right now); threads run concurrently. Every step persists first, then publishes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bzzz_console.domain import events as ev
from bzzz_console.domain.lifecycle import AgentState
from bzzz_console.domain.state import Agent, Participant, ThreadState
from bzzz_console.domain.threads import SYSTEM_AUTHOR, MessageType, ThreadMessage, ThreadStatus, Vote
from bzzz_console.runtime.memory import excerpt, make_episodes
from bzzz_console.runtime.threads.membership import Membership
from bzzz_console.runtime.threads.model_watch import ModelWatch
from bzzz_console.runtime.threads.turns import TurnTaking
from bzzz_console.runtime.tools.base import ToolError
from bzzz_console.security.redaction import redactor_for
from bzzz_console.store.repo import new_id
from bzzz_console.store.tables import (
    DecisionRow,
    MessageRow,
    ParticipantRow,
    TaskRow,
    ThreadRow,
)

if TYPE_CHECKING:
    from bzzz_console.runtime.runtime import Runtime


def review_prompt(task: TaskRow, participants: Sequence[Participant]) -> str:
    """The seed's ``buildCollaborativeReviewPrompt``: what the thread is for and how it ends."""
    who = ", ".join(f"{p.agent_id} ({p.role})" for p in participants)
    return (
        f"Collaborative review of task {task.id}: {task.title}\n\n{task.description or '(no description)'}\n\n"
        f"Participants: {who}. Priority: {task.priority}. Work towards one proposal every participant agrees "
        "to; the thread closes when all others agree to the latest proposal. Escalate with request_human when "
        "a decision needs a human."
    )


class Conversations(TurnTaking, Membership):
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.threads: dict[str, ThreadState] = {}
        self._drivers: dict[str, asyncio.Task[None]] = {}
        self.watches: dict[tuple[str, str], ModelWatch] = {}
        self.unusable: dict[str, str] = {}

    # -- starting work ------------------------------------------------------------------------------------
    def select_agents(self, task: TaskRow) -> list[Participant] | None:
        """Up to N agents per required role, best capability match first, then least loaded.

        None when some role has no agent free right now (the task waits); raises ToolError when a role has no
        agent at all on this node (the task cannot ever start here).
        """
        text = f"{task.title} {task.description}".lower()
        chosen: list[Participant] = []
        for role in task.roles:
            of_role = [a for a in self.rt.agents.values() if a.spec.answers_to(role) and a.origin == "local"]
            if not of_role:
                raise ToolError(
                    f"no agent with role {role!r} on this node (roles: {', '.join(self.rt.roles())})"
                )
            free = [a for a in of_role if a.can_join and a.id not in {p.agent_id for p in chosen}]
            if not free:
                return None

            def score(agent: Agent) -> tuple[int, int, str]:
                matches = sum(1 for cap in agent.spec.capabilities if any(w in text for w in cap.split("_")))
                return (-matches, agent.load, agent.id)

            for agent in sorted(free, key=score)[: self.rt.settings.runtime.max_agents_per_role]:
                chosen.append(Participant(agent.id, agent.role))
        return chosen

    def start_task(self, task: TaskRow) -> ThreadState | None:
        participants = self.select_agents(task)
        if participants is None:
            return None
        thread_id = f"review-{task.id.removeprefix('task-')}"
        opening = self._redact_store(review_prompt(task, participants))
        row = ThreadRow(
            id=thread_id,
            task_id=task.id,
            project=task.project,
            topic=f"Collaborative Review: {task.title}",
            created_at=self.rt.clock.now(),  # the rules measure a thread's age on the runtime's clock
            shared_context={
                "task_details": {
                    "id": task.id,
                    "title": task.title,
                    "description": task.description,
                    "priority": task.priority,
                },
                "review_criteria": ["correctness", "security", "operability", "clarity"],
                "required_roles": list(task.roles),
            },
        )
        opening_row = MessageRow(
            id=f"{thread_id}#1",
            thread_id=thread_id,
            seq=1,
            author=SYSTEM_AUTHOR,
            role="system",
            type=MessageType.SYSTEM.value,
            content=opening,
        )
        self.rt.store.create_thread(
            row,
            [
                ParticipantRow(thread_id=thread_id, agent_id=p.agent_id, role=p.role, position=i)
                for i, p in enumerate(participants)
            ],
            opening_row,
        )
        from bzzz_console.store.repo import to_message

        thread = ThreadState(
            id=thread_id,
            project=task.project,
            topic=row.topic,
            status=ThreadStatus.ACTIVE,
            participants=participants,
            messages=[to_message(opening_row)],
            turn_count=0,
            created_at=row.created_at,
            task_id=task.id,
            task=dict(row.shared_context["task_details"]),
        )
        self.threads[thread_id] = thread
        self.rt.publish(ev.TaskStatusChanged(task_id=task.id, status="in_progress"))
        self.rt.publish(
            ev.ThreadCreated(
                thread_id=thread_id,
                task_id=task.id,
                project=task.project,
                topic=row.topic,
                participants=tuple(thread.participant_ids),
            )
        )
        self.publish_message(thread.messages[0])
        for p in participants:
            self.join(self.rt.agents[p.agent_id], thread)
        self.start_driver(thread)
        return thread

    def join(self, agent: Agent, thread: ThreadState) -> None:
        agent.threads.add(thread.id)
        agent.working[thread.id] = {"task": thread.task, "notes": []}
        if agent.state is AgentState.IDLE:
            self.rt.transition(agent, AgentState.ACTIVE, thread.id, "task assigned")
        if len(thread.participants) > 1 and agent.state is AgentState.ACTIVE:
            self.rt.transition(agent, AgentState.COLLABORATING, thread.id, "multi-agent context")

    def leave(self, agent: Agent, thread: ThreadState) -> None:
        agent.threads.discard(thread.id)
        agent.working.pop(thread.id, None)
        if not agent.threads and agent.state in (AgentState.ACTIVE, AgentState.COLLABORATING):
            self.rt.transition(agent, AgentState.IDLE, thread.id, "task complete")

    # -- messages -----------------------------------------------------------------------------------------
    def _redact_store(self, text: str) -> str:
        """What is stored (and shown, and read by outside agents) without the kinds of ``security.redact_store``
        and without any live API key."""
        return redactor_for(self.rt.settings.security).redact(text, "store")

    def publish_message(self, m: ThreadMessage) -> None:
        self.rt.publish(
            ev.MessagePosted(
                thread_id=m.thread_id,
                message_id=m.id,
                seq=m.seq,
                author=m.author,
                role=m.role,
                message_type=m.type.value,
                content=m.content,
                reply_to=m.reply_to,
                tokens=m.tokens,
                model=m.model,
            )
        )

    def _active_thread(self, thread_id: str) -> ThreadState:
        thread = self.threads.get(thread_id)
        if thread is None:
            raise ToolError(f"thread {thread_id!r} is not open on this node")
        return thread

    async def post_from_agent(
        self,
        agent_id: str,
        thread_id: str,
        type: MessageType,
        text: str,
        *,
        reply_to: str | None = None,
        ends_turn: bool = False,
    ) -> ThreadMessage:
        thread = self._active_thread(thread_id)
        if agent_id not in thread.participant_ids:
            raise ToolError(f"{agent_id} is not a participant of thread {thread_id}")
        if thread.status is not ThreadStatus.ACTIVE:
            raise ToolError(f"thread {thread_id} is {thread.status.value}; it takes no agent messages now")
        agent = self.rt.agents[agent_id]
        text = self._redact_store(text)
        message = self.rt.store.post_message(
            thread_id,
            author=agent_id,
            role=agent.role,
            type=type.value,
            content=text,
            reply_to=reply_to,
            tokens=len(text) // 4,
            model=agent.model,
            end_turn=ends_turn,
            at=self.rt.clock.now(),  # progress, objections: the rules read these times on the runtime's clock
        )
        thread.messages.append(message)
        if ends_turn:
            thread.turn_count += 1
        self.publish_message(message)
        if ends_turn and agent.origin != "local":
            self.wake(thread)  # an outside agent spoke in its turn: the next one may go on
        return message

    def post_human(self, thread_id: str, text: str, operator: str, *, wake: bool = True) -> ThreadMessage:
        """An operator's message: it goes into every participant's context from their next turn on."""
        thread = self._active_thread(thread_id)
        text = self._redact_store(text)
        message = self.rt.store.post_message(
            thread_id,
            author=operator,
            role="human",
            type=MessageType.HUMAN.value,
            content=text,
            at=self.rt.clock.now(),
        )
        thread.messages.append(message)
        self.publish_message(message)
        if wake:
            self.wake(thread)
        return message

    # -- endings ------------------------------------------------------------------------------------------
    async def request_human(
        self, agent_id: str, thread_id: str, reason: str, priority: str, options: Sequence[str]
    ) -> str:
        """The agent's own call for a human: an escalation under the rules file's request_human rule."""
        thread = self._active_thread(thread_id)
        if thread.status is not ThreadStatus.ACTIVE:
            raise ToolError(f"thread {thread_id} is {thread.status.value}; it is already waiting")
        rule = self.rt.escalations.rule_for_request()
        reason, options = self._redact_store(reason), [self._redact_store(o) for o in options]
        escalation_id = self.rt.escalations.raise_for(
            thread, self.rt.agents[agent_id], rule, reason, priority=priority, options=options, turns=1
        )
        return escalation_id

    def _close_on_consensus(self, thread: ThreadState, vote: Vote) -> None:
        proposal = next(m for m in thread.messages if m.id == vote.proposal_id)
        agreed = tuple(sorted(vote.agreed))
        summary = (
            f"Decision: {proposal.content}\n\nProposed by {proposal.author}; agreed by {', '.join(agreed)}."
        )
        decision = DecisionRow(
            id=new_id("dec"),
            kind="consensus",
            thread_id=thread.id,
            summary=summary,
            made_by=proposal.author,
            data={"proposal_id": proposal.id, "agreed_by": list(agreed)},
        )
        self.finish(thread, ThreadStatus.CLOSED, "consensus", "done", summary, decision, vote)
        self.rt.publish(
            ev.ConsensusReached(
                thread_id=thread.id, proposal_id=proposal.id, proposer=proposal.author, agreed_by=agreed
            )
        )
        self.rt.publish(
            ev.DecisionLogged(
                thread_id=thread.id,
                decision_id=decision.id,
                summary=excerpt(proposal.content, 200),
                made_by=proposal.author,
            )
        )

    def _finish_partial(self, thread: ThreadState) -> None:
        summary = next((m for m in reversed(thread.messages) if m.type is MessageType.SUMMARY), None)
        text = summary.content if summary else "The work was handed back without a final answer."
        self.finish(
            thread, ThreadStatus.CLOSED, "partial", "done", f"Partial result (budget): {text}", None, None
        )

    def _stall(self, thread: ThreadState, reason: str) -> None:
        self.finish(
            thread, ThreadStatus.STALLED, "stalled", "blocked", f"Thread stalled: {reason}.", None, None
        )

    def finish(
        self,
        thread: ThreadState,
        status: ThreadStatus,
        outcome: str,
        task_status: str,
        summary: str,
        decision: DecisionRow | None,
        vote: Vote | None,
    ) -> None:
        for key in [k for k in self.watches if k[1] == thread.id]:  # kept while the thread runs, no longer
            del self.watches[key]
        message_type = MessageType.DECISION if decision is not None else MessageType.SUMMARY
        closing = {"author": SYSTEM_AUTHOR, "role": "system", "type": message_type.value, "content": summary}
        episodes = make_episodes(thread, outcome, summary, vote)
        message = self.rt.store.close_thread(
            thread.id,
            status=status.value,
            outcome=outcome,
            task_status=task_status,
            closing=closing,
            decision=decision,
            episodes=episodes,
        )
        thread.status = status
        if message is not None:
            thread.messages.append(message)
            self.publish_message(message)
        self.rt.publish(ev.ThreadStatusChanged(thread_id=thread.id, status=status.value, reason=outcome))
        if thread.task_id:
            self.rt.publish(ev.TaskStatusChanged(task_id=thread.task_id, status=task_status, reason=outcome))
        for episode in episodes:
            self.rt.episodes.forget(episode.agent_id, episode.project)
            self.rt.publish(
                ev.EpisodeRecorded(
                    agent_id=episode.agent_id, project=episode.project, thread_id=thread.id, outcome=outcome
                )
            )
        # The thread ended another way: nothing is left for a human to decide, so escalations still waiting on
        # it are cancelled rather than left open forever.
        for row in self.rt.store.cancel_escalations(self.rt.clock.now(), thread_id=thread.id, reason=outcome):
            self.rt.publish(ev.EscalationCancelled(escalation_id=row.id, thread_id=thread.id, reason=outcome))
        for p in thread.participants:  # closed or stalled, the thread no longer holds its agents' capacity
            agent = self.rt.agents.get(p.agent_id)
            if agent is not None:
                self.leave(agent, thread)
        self.threads.pop(thread.id, None)
        self.rt.capacity_changed()
