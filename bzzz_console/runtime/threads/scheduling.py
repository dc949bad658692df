"""Scheduling: restoring unfinished threads at start, picking up tasks (also those other processes wrote) when
agents have capacity, and knowing when no agent can make progress. Mixed into :class:`Runtime`."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from bzzz_console.domain import events as ev
from bzzz_console.domain.lifecycle import AgentState
from bzzz_console.domain.state import Participant, ThreadState
from bzzz_console.domain.threads import URGENCY, ThreadStatus
from bzzz_console.runtime.tools.base import ToolError
from bzzz_console.store.repo import to_message
from bzzz_console.store.tables import TaskRow

if TYPE_CHECKING:
    from bzzz_console.config import Settings
    from bzzz_console.domain.state import Agent
    from bzzz_console.runtime.threads.conversation import Conversations
    from bzzz_console.store.repo import Store


class Scheduling:
    """Needs from the runtime: its store, agents, conversations, settings, publish and transition."""

    settings: Settings
    agents: dict[str, Agent]
    conversations: Conversations
    _busy: set[str]
    _inbox_ran: bool
    _schedulable_pending: bool
    _announced_tasks: set[str]
    _idle: asyncio.Event
    _inbox_wake: asyncio.Event

    @property
    def store(self) -> Store:
        raise NotImplementedError

    def publish(self, event: ev.Event) -> None:
        raise NotImplementedError

    def transition(self, agent: Agent, target: AgentState, thread_id: str | None, reason: str) -> None:
        raise NotImplementedError

    # -- threads and tasks ------------------------------------------------------------------------------
    def _restore_threads(self) -> None:
        """Bring back every thread that was not finished: a restart resumes where the last run stopped."""
        participants: dict[str, list[Participant]] = {}
        for p in self.store.participants():
            participants.setdefault(p.thread_id, []).append(Participant(p.agent_id, p.role))
        for row in self.store.threads():
            if row.status not in (ThreadStatus.ACTIVE.value, ThreadStatus.WAITING_HUMAN.value):
                continue
            task = self.store.get_task(row.task_id) if row.task_id else None
            thread = ThreadState(
                id=row.id,
                project=row.project,
                topic=row.topic,
                status=ThreadStatus(row.status),
                participants=participants.get(row.id, []),
                messages=[to_message(m) for m in self.store.messages(row.id)],
                turn_count=row.turn_count,
                created_at=row.created_at,
                task_id=row.task_id,
                task=dict(row.shared_context.get("task_details", {})) if task else {},
            )
            self.conversations.threads[row.id] = thread
            for member in thread.participants:
                agent = self.agents.get(member.agent_id)
                if agent is not None:
                    agent.threads.add(row.id)
                    agent.working[row.id] = {"task": thread.task, "notes": []}
        for agent in self.agents.values():  # reconcile states a crash may have left half-way
            if agent.state in (AgentState.ESCALATING, AgentState.TERMINATING, AgentState.INITIALIZING):
                continue
            if not agent.threads and agent.state in (AgentState.ACTIVE, AgentState.COLLABORATING):
                self.transition(agent, AgentState.IDLE, None, "restored: no open thread")
            elif agent.threads:
                self.transition(agent, AgentState.COLLABORATING, None, "restored: thread resumed")
        for thread in self.conversations.threads.values():
            if thread.status is ThreadStatus.ACTIVE:
                self.conversations.start_driver(thread)

    async def _inbox_loop(self) -> None:
        """Pick up tasks (also those written by other processes) whenever there is capacity."""
        interval = self.settings.runtime.poll_interval_s
        while True:
            try:
                await self._schedule_pending()
            except Exception as exc:  # a database hiccup must not end scheduling: report and retry
                self.publish(ev.ErrorRaised(where="inbox", message=f"{type(exc).__name__}: {exc}"))
            self._inbox_ran = True
            self._update_idle()
            self._inbox_wake.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that races with the event,
            # and close() would then wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._inbox_wake.wait()

    async def _schedule_pending(self) -> None:
        pending = sorted(
            self.store.tasks("pending"), key=lambda t: (URGENCY.get(t.priority, 9), t.created_at)
        )
        self._schedulable_pending = False
        for task in pending:
            self._announce(task)
            try:
                thread = self.conversations.start_task(task)
            except ToolError as exc:
                self.store.set_task_status(task.id, "blocked")
                self.publish(ev.TaskStatusChanged(task_id=task.id, status="blocked", reason=str(exc)))
                continue
            if thread is not None:
                await asyncio.sleep(0)  # starting a thread is several commits: let the loop breathe between

    def _announce(self, task: TaskRow) -> None:
        if task.id not in self._announced_tasks:
            self._announced_tasks.add(task.id)
            self.publish(
                ev.TaskAdded(
                    task_id=task.id,
                    project=task.project,
                    title=task.title,
                    roles=tuple(task.roles),
                    priority=task.priority,
                )
            )

    def capacity_changed(self) -> None:
        self._inbox_wake.set()

    def task_added(self, task: TaskRow) -> None:
        """A task the operator just added: announced, and the fleet is no longer idle until it is taken."""
        self._announce(task)
        self._idle.clear()
        self.capacity_changed()

    # -- idleness -----------------------------------------------------------------------------------------
    def mark_busy(self, thread_id: str) -> None:
        self._busy.add(thread_id)
        self._idle.clear()

    def mark_waiting(self, thread_id: str) -> None:
        self._busy.discard(thread_id)
        self._update_idle()

    def _update_idle(self) -> None:
        idle = (
            self._inbox_ran
            and not self._busy
            and not self._schedulable_pending
            and not self._inbox_wake.is_set()
        )
        if idle and not self._idle.is_set():
            self._idle.set()
            threads = self.conversations.threads.values()
            self.publish(
                ev.RuntimeIdle(
                    open_threads=sum(1 for t in threads if t.status is ThreadStatus.ACTIVE),
                    waiting_on_human=sum(1 for t in threads if t.status is ThreadStatus.WAITING_HUMAN),
                )
            )
        elif not idle:
            self._idle.clear()

    async def wait_idle(self) -> None:
        """Return once no agent can make progress: threads are closed, stalled or waiting on a human."""
        while True:
            await self._idle.wait()
            await asyncio.sleep(0)  # let a wake-up that raced with the idle signal clear it again
            if self._idle.is_set():
                return
