"""Threads, messages and tasks as plain values, and the consensus rule the seed describes.

Consensus: every participant other than the proposer has agreed to the *latest* proposal. A newer proposal
resets the vote; a later ``disagree`` withdraws an earlier ``agree``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal


class MessageType(StrEnum):
    PROPOSAL = "proposal"
    AGREE = "agree"
    DISAGREE = "disagree"
    QUESTION = "question"
    ANSWER = "answer"
    COMMENT = "comment"
    DECISION = "decision"
    SUMMARY = "summary"
    HUMAN = "human"
    SYSTEM = "system"


class ThreadStatus(StrEnum):
    ACTIVE = "active"
    WAITING_HUMAN = "waiting_human"
    """An agent of the thread has asked a human and the thread is paused until an answer arrives."""
    STALLED = "stalled"
    """The turn limit was reached without consensus; nothing more happens without an operator."""
    CLOSED = "closed"


class TaskStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    BLOCKED = "blocked"
    FAILED = "failed"


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


PRIORITIES: tuple[str, ...] = tuple(Priority)
"""Task and escalation priorities, lowest first (``max(…, key=PRIORITIES.index)`` is the most urgent)."""
PriorityName = Literal["low", "medium", "high", "urgent"]
"""The same four, for typed arguments (a Literal must spell them; the test suite checks they agree)."""
URGENCY = {name: rank for rank, name in enumerate(reversed(PRIORITIES))}
"""Sort key, most urgent first: urgent 0 … low 3."""


SYSTEM_AUTHOR = "system"
HUMAN_ROLE = "human"


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    id: str
    thread_id: str
    seq: int
    author: str
    role: str
    type: MessageType
    content: str
    created_at: datetime
    reply_to: str | None = None
    tokens: int = 0
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Vote:
    """The state of the vote on the latest proposal of a thread."""

    proposal_id: str | None
    proposer: str | None
    agreed: frozenset[str]
    disagreed: frozenset[str]
    pending: frozenset[str]

    @property
    def reached(self) -> bool:
        return self.proposal_id is not None and not self.pending and not self.disagreed


def tally(participants: Iterable[str], messages: Sequence[ThreadMessage]) -> Vote:
    """Count the votes of ``participants`` on the latest proposal in ``messages`` (in thread order)."""
    voters = set(participants)
    index = next(
        (i for i in range(len(messages) - 1, -1, -1) if messages[i].type is MessageType.PROPOSAL), None
    )
    if index is None:
        return Vote(None, None, frozenset(), frozenset(), frozenset(voters))
    latest = messages[index]
    others = voters - {latest.author}
    position: dict[str, MessageType] = {}
    for message in messages[index + 1 :]:
        if message.author in others and message.type in (MessageType.AGREE, MessageType.DISAGREE):
            position[message.author] = message.type
    agreed = frozenset(a for a, t in position.items() if t is MessageType.AGREE)
    disagreed = frozenset(a for a, t in position.items() if t is MessageType.DISAGREE)
    return Vote(latest.id, latest.author, agreed, disagreed, frozenset(others - agreed - disagreed))


def disagreement_count(messages: Iterable[ThreadMessage]) -> int:
    return sum(1 for m in messages if m.type is MessageType.DISAGREE)
