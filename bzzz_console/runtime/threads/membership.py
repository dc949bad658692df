"""Who takes part in a thread: invitations (experts, architects, outside agents), seats handed over by the
operator, agents leaving, and resuming after a decision. Mixed into :class:`Conversations`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bzzz_console.domain import events as ev
from bzzz_console.domain.lifecycle import AgentState
from bzzz_console.domain.state import Agent, Participant, ThreadState, unavailable
from bzzz_console.domain.threads import SYSTEM_AUTHOR, MessageType, ThreadMessage, ThreadStatus
from bzzz_console.runtime.tools.base import ToolError
from bzzz_console.store.repo import new_id, to_message
from bzzz_console.store.tables import MessageRow, ParticipantRow, ThreadRow

if TYPE_CHECKING:
    from bzzz_console.runtime.runtime import Runtime


class Membership:
    rt: Runtime
    threads: dict[str, ThreadState]

    # provided by Conversations
    def join(self, agent: Agent, thread: ThreadState) -> None:
        raise NotImplementedError

    def leave(self, agent: Agent, thread: ThreadState) -> None:
        raise NotImplementedError

    def wake(self, thread: ThreadState) -> None:
        raise NotImplementedError

    def start_driver(self, thread: ThreadState) -> None:
        raise NotImplementedError

    def _stall(self, thread: ThreadState, reason: str) -> None:
        raise NotImplementedError

    def publish_message(self, m: ThreadMessage) -> None:
        raise NotImplementedError

    def is_turn_of(self, agent_id: str, thread_id: str) -> bool:
        thread = self.threads.get(thread_id)
        speaker = self.speaker_of(thread) if thread is not None else None
        return speaker is not None and speaker.id == agent_id

    def create_thread(self, topic: str, participants: Sequence[str], creator: str | None) -> ThreadState:
        """A thread without a task (bzzz_thread create): named agents, or the least loaded agent of a role. One is
        enough to open it (the creator alone, others join later); it waits for a second before any turn, since
        consensus needs two."""
        chosen: list[Agent] = []
        for i, name in enumerate(([creator] if creator else []) + list(participants)):
            agent = self.rt.agents.get(name)
            if agent is not None and not agent.can_join:
                raise ToolError(
                    f"{'agent_id' if creator and i == 0 else 'participants'}: {name} {unavailable(agent)}"
                )
            if agent is None:
                free = [
                    a
                    for a in self.rt.agents.values()
                    if a.spec.answers_to(name) and a.picked_automatically and a not in chosen
                ]
                agent = min(free, key=lambda a: (a.load, a.id), default=None)
            if agent is None:
                raise ToolError(f"participants: no free agent or role {name!r}")
            if agent not in chosen:
                chosen.append(agent)
        if not chosen:
            raise ToolError("participants: name at least one agent or role (or create it as your agent_id)")
        thread_id = new_id("thread")
        members = [Participant(a.id, a.role) for a in chosen]
        opening = MessageRow(
            id=f"{thread_id}#1",
            thread_id=thread_id,
            seq=1,
            author=creator or SYSTEM_AUTHOR,
            role="system",
            type=MessageType.SYSTEM.value,
            content=f"Thread opened by {creator or 'the operator'}: {topic}",
        )
        row = ThreadRow(
            id=thread_id,
            project=self.rt.settings.runtime.project,
            topic=topic,
            shared_context={"created_by": creator},
        )
        self.rt.store.create_thread(
            row,
            [
                ParticipantRow(thread_id=thread_id, agent_id=m.agent_id, role=m.role, position=i)
                for i, m in enumerate(members)
            ],
            opening,
        )
        thread = ThreadState(
            id=thread_id,
            project=row.project,
            topic=topic,
            status=ThreadStatus.ACTIVE,
            participants=members,
            messages=[to_message(opening)],
            turn_count=0,
            created_at=row.created_at,
        )
        self.threads[thread_id] = thread
        self.rt.publish(
            ev.ThreadCreated(
                thread_id=thread_id,
                task_id=None,
                project=row.project,
                topic=topic,
                participants=tuple(thread.participant_ids),
            )
        )
        self.publish_message(thread.messages[0])
        for agent in chosen:
            self.join(agent, thread)
        self.start_driver(thread)
        return thread

    def speaker_of(self, thread: ThreadState) -> Agent | None:
        if not thread.participants:
            return None
        return self.rt.agents.get(thread.participants[thread.turn_count % len(thread.participants)].agent_id)

    def invite(self, thread: ThreadState, wanted: Callable[[Agent], bool], reason: str) -> Agent | None:
        """Bring one more agent into a thread (an architect, an expert): the least loaded that fits."""
        free = [
            a
            for a in self.rt.agents.values()
            if wanted(a) and a.picked_automatically and a.id not in thread.participant_ids
        ]
        agent = min(free, key=lambda a: (a.load, a.id), default=None)
        if agent is None:
            self.rt.publish(
                ev.ErrorRaised(where=f"thread {thread.id}", message=f"{reason}: no free agent fits")
            )
            return None
        self.add_participant(thread, agent, reason)
        return agent

    def add_participant(self, thread: ThreadState, agent: Agent, reason: str) -> None:
        self.rt.store.add_participant(thread.id, agent.id, agent.role)
        thread.participants.append(Participant(agent.id, agent.role))
        self.join(agent, thread)
        self.rt.publish(
            ev.ParticipantsChanged(
                thread_id=thread.id,
                participants=tuple(thread.participant_ids),
                reason=f"{agent.id} joined: {reason}",
            )
        )
        if thread.status is ThreadStatus.ACTIVE:
            self.start_driver(thread)  # a thread opened alone was waiting for a second participant

    def replace_participant(self, thread: ThreadState, old: Agent, new: Agent) -> None:
        self.rt.store.replace_participant(thread.id, old.id, new.id, new.role)
        thread.participants = [
            Participant(new.id, new.role) if p.agent_id == old.id else p for p in thread.participants
        ]
        self._release(old, thread, "reassigned by the operator")
        self.join(new, thread)
        self.rt.publish(
            ev.ParticipantsChanged(
                thread_id=thread.id,
                participants=tuple(thread.participant_ids),
                reason=f"{old.id} reassigned to {new.id}",
            )
        )

    def remove_participant(self, thread: ThreadState, agent: Agent, reason: str) -> None:
        self.rt.store.remove_participant(thread.id, agent.id)
        thread.participants = [p for p in thread.participants if p.agent_id != agent.id]
        agent.threads.discard(thread.id)
        agent.working.pop(thread.id, None)
        self.rt.publish(
            ev.ParticipantsChanged(
                thread_id=thread.id,
                participants=tuple(thread.participant_ids),
                reason=f"{agent.id} left: {reason}",
            )
        )
        if not thread.participants:
            self._stall(thread, "no participant left")
        elif thread.status is ThreadStatus.ACTIVE:
            self.start_driver(thread)  # the one whose turn it was may have left: the next speaker goes on

    def _release(self, agent: Agent, thread: ThreadState, reason: str) -> None:
        """An escalated agent handing its seat over: back to work elsewhere, or idle."""
        if agent.state is AgentState.ESCALATING:
            self.rt.transition(agent, AgentState.ACTIVE, thread.id, reason)
        self.leave(agent, thread)
        if agent.threads and agent.state is AgentState.ACTIVE:
            self.rt.transition(agent, AgentState.COLLABORATING, None, "back to its other threads")

    def resume_agent(self, agent: Agent, reason: str) -> None:
        self.rt.transition(agent, AgentState.ACTIVE, None, reason)
        if any(
            len(t.participants) > 1 for t in (self.threads.get(i) for i in agent.threads) if t is not None
        ):
            self.rt.transition(agent, AgentState.COLLABORATING, None, "multi-agent context")
        for thread_id in agent.threads:
            thread = self.threads.get(thread_id)
            if thread is not None:
                self.wake(thread)

    def resume_thread(self, thread: ThreadState, reason: str) -> None:
        self.rt.store.set_thread_status_only(thread.id, ThreadStatus.ACTIVE.value)
        thread.status = ThreadStatus.ACTIVE
        thread.calls.clear()  # a fresh start for the error-rate rule
        self.rt.publish(
            ev.ThreadStatusChanged(thread_id=thread.id, status=thread.status.value, reason=reason)
        )
        self.start_driver(thread)
