"""In-memory working state of agents and threads (the store holds the durable truth; this is its live view)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bzzz_console.domain.lifecycle import AgentState
from bzzz_console.domain.specs import AgentSpec
from bzzz_console.domain.threads import ThreadMessage, ThreadStatus


@dataclass
class Agent:
    id: str
    spec: AgentSpec
    model: str
    state: AgentState
    origin: str = "local"
    paused: bool = False
    threads: set[str] = field(default_factory=set)
    inbox: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    """Messages addressed to the agent itself (bzzz_post to its address or role); read at its next turn."""
    working: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Working memory per thread: the task at hand and what the agent learned from tools during it."""

    @property
    def role(self) -> str:
        return self.spec.role

    @property
    def load(self) -> int:
        return len(self.threads)

    @property
    def can_speak(self) -> bool:
        return (
            self.origin == "local"
            and not self.paused
            and self.state
            in (
                AgentState.ACTIVE,
                AgentState.COLLABORATING,
            )
        )

    @property
    def can_join(self) -> bool:
        return (
            not self.paused
            and self.load < self.spec.max_tasks
            and self.state in (AgentState.IDLE, AgentState.ACTIVE, AgentState.COLLABORATING)
        )

    @property
    def picked_automatically(self) -> bool:
        """Free, and chosen by role: another node's agent joins a thread here only when it is named (its turns
        travel over the network), never as the least loaded of a role."""
        return self.can_join and self.origin != "remote"


def unavailable(agent: Agent) -> str:
    """Why an agent cannot take part in one more thread (``not agent.can_join``)."""
    if agent.paused:
        return "is paused"
    if agent.state not in (AgentState.IDLE, AgentState.ACTIVE, AgentState.COLLABORATING):
        return f"is {agent.state.value}"
    return f"is at its limit of {agent.spec.max_tasks} threads (max_tasks)"


@dataclass
class Participant:
    agent_id: str
    role: str


@dataclass
class ThreadState:
    id: str
    project: str
    topic: str
    status: ThreadStatus
    participants: list[Participant]
    messages: list[ThreadMessage]
    turn_count: int
    created_at: datetime
    task_id: str | None = None
    task: dict[str, Any] = field(default_factory=dict)
    consecutive_failures: int = 0
    last_model_error: str | None = None
    """The last failed model call's error in this thread, shown with any escalation about it."""
    calls: deque[tuple[datetime, bool]] = field(default_factory=lambda: deque(maxlen=50))
    """(when, ok) of recent model calls, for the error-rate rule."""
    in_turn: bool = False
    db_failures: int = 0
    """Turns in a row lost to a database error (locked, gone): the retry waits longer each time."""
    finalizing: str | None = None
    """Agent that writes the final answer of a handed-back thread; the thread closes as partial after it."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def participant_ids(self) -> list[str]:
        return [p.agent_id for p in self.participants]

    def role_of(self, agent_id: str) -> str:
        return next((p.role for p in self.participants if p.agent_id == agent_id), "?")
