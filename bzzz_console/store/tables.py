"""sqlmodel tables: the durable truth of agents, tasks, threads, messages, escalations, spend and memory.

Times are stored in UTC (SQLite drops the offset; :func:`utc` puts it back when reading). Lists and maps are JSON
columns, readable from both SQLite and PostgreSQL. Schema changes go through the Alembic migrations beside this
module, never ``create_all``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Column, DateTime, Index, Text, UniqueConstraint, false, text
from sqlmodel import Field, SQLModel


def now_utc() -> datetime:
    return datetime.now(UTC)


def utc(value: datetime) -> datetime:
    """Times read back from SQLite are naive; they were written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _when(**kw: Any) -> Any:
    return Field(default_factory=now_utc, sa_column=Column(DateTime(timezone=True), nullable=False, **kw))


def _json(default: Any) -> Any:
    return Field(default_factory=default, sa_column=Column(JSON, nullable=False))


class AgentRow(SQLModel, table=True):
    __tablename__ = "agents"
    id: str = Field(primary_key=True, max_length=64)
    role: str = Field(index=True, max_length=64)
    model: str = Field(max_length=128)
    state: str = Field(max_length=32)
    origin: str = Field(default="local", max_length=16)
    """local (runs here), remote (another node), mcp (announced by an outside client)."""
    node_id: str | None = Field(default=None, max_length=128)
    capabilities: list[str] = _json(list)
    max_tasks: int = 2
    paused: bool = False
    created_at: datetime = _when()
    updated_at: datetime = _when()


class TaskRow(SQLModel, table=True):
    __tablename__ = "tasks"
    id: str = Field(primary_key=True, max_length=64)
    project: str = Field(index=True, max_length=64)
    title: str = Field(max_length=500)
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    roles: list[str] = _json(list)
    priority: str = Field(default="medium", max_length=16)
    status: str = Field(default="pending", index=True, max_length=16)
    source: str = Field(default="cli", max_length=16)
    thread_id: str | None = Field(default=None, max_length=64)
    details: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default=text("'{}'"))
    )
    """What a task from the network carries beyond title and description: for a Go BZZZ task its repository and
    number (its identity), labels, difficulty, estimate, skills, dependencies and blockers (``p2p/gonodes.py``)."""
    created_at: datetime = _when()
    updated_at: datetime = _when()


class ThreadRow(SQLModel, table=True):
    __tablename__ = "threads"
    id: str = Field(primary_key=True, max_length=64)
    task_id: str | None = Field(default=None, index=True, max_length=64)
    project: str = Field(index=True, max_length=64)
    topic: str = Field(max_length=500)
    status: str = Field(default="active", index=True, max_length=16)
    turn_count: int = 0
    """Agent turns taken; with the participant order it names whose turn is next, so a restart resumes."""
    message_count: int = 0
    shared_context: dict[str, Any] = _json(dict)
    auto_close: bool = True
    outcome: str | None = Field(default=None, max_length=32)
    created_at: datetime = _when()
    last_activity: datetime = _when()
    closed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class ParticipantRow(SQLModel, table=True):
    __tablename__ = "participants"
    thread_id: str = Field(primary_key=True, max_length=64)
    agent_id: str = Field(primary_key=True, max_length=64)
    role: str = Field(max_length=64)
    position: int = 0
    status: str = Field(default="joined", max_length=16)
    joined_at: datetime = _when()


class MessageRow(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("thread_id", "seq", name="uq_messages_thread_seq"),)
    id: str = Field(primary_key=True, max_length=96)
    thread_id: str = Field(index=True, max_length=64)
    seq: int
    author: str = Field(max_length=64)
    role: str = Field(max_length=64)
    type: str = Field(max_length=16)
    content: str = Field(sa_column=Column(Text, nullable=False))
    reply_to: str | None = Field(default=None, max_length=96)
    tokens: int = 0
    model: str | None = Field(default=None, max_length=128)
    created_at: datetime = _when()


class DecisionRow(SQLModel, table=True):
    """The decision log: consensus outcomes of threads and operator decisions on escalations."""

    __tablename__ = "decisions"
    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)
    thread_id: str | None = Field(default=None, index=True, max_length=64)
    escalation_id: str | None = Field(default=None, index=True, max_length=64)
    summary: str = Field(sa_column=Column(Text, nullable=False))
    made_by: str = Field(max_length=128)
    data: dict[str, Any] = _json(dict)
    created_at: datetime = _when()


class EscalationRow(SQLModel, table=True):
    __tablename__ = "escalations"
    id: str = Field(primary_key=True, max_length=64)
    thread_id: str | None = Field(default=None, index=True, max_length=64)
    agent_id: str | None = Field(default=None, index=True, max_length=64)
    rule: str = Field(max_length=128)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    priority: str = Field(default="medium", max_length=16)
    state: str = Field(default="open", index=True, max_length=16)
    default_action: str = Field(default="hold", max_length=16)
    context: dict[str, Any] = _json(dict)
    created_at: datetime = _when()
    deadline: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    answered_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    answered_by: str | None = Field(default=None, max_length=128)
    decision: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """What was decided (kind, text, note …), or for an expired one the default action that was applied."""
    applied: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    """Whether the runtime has carried the decision out (a CLI in another process only records it)."""
    origin_peer: str | None = Field(default=None, max_length=128)
    """The peer id of the node that raised it and owns its agent; None = raised here. Another node's escalation
    is a mirror: answering it asks the owner, who applies the decision once and tells every node the outcome."""


class ApprovalRow(SQLModel, table=True):
    """Two-person rule: a decision one operator gave on an escalation that needs a second, distinct operator."""

    __tablename__ = "escalation_approvals"
    __table_args__ = (UniqueConstraint("escalation_id", "operator", name="uq_approval_operator"),)
    id: int | None = Field(default=None, primary_key=True)
    escalation_id: str = Field(index=True, max_length=64)
    operator: str = Field(max_length=128)
    """Who approved (the identity that must differ between the two), without any label."""
    shown_as: str = Field(max_length=200)
    decision: dict[str, Any] = _json(dict)
    at: datetime = _when()


class TokenUsageRow(SQLModel, table=True):
    __tablename__ = "token_usage"
    __table_args__ = (Index("ix_token_usage_at", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _when()
    agent_id: str = Field(index=True, max_length=64)
    thread_id: str | None = Field(default=None, index=True, max_length=64)
    task_id: str | None = Field(default=None, max_length=64)
    model: str = Field(max_length=128)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    latency_ms: float = 0.0
    attempts: int = 1
    context_full_tokens: int = 0
    """Estimated prompt tokens of the whole thread history, before the optimizer (for the compression ratio)."""
    context_sent_tokens: int = 0
    """Estimated prompt tokens of the history actually sent."""
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    """Set for a call that failed for good: it counts towards the error rate, with the tokens it cost (if any)."""
    estimated: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    """The server sent no token counts: the tokens (and the cost) were estimated from the text."""


class BudgetRow(SQLModel, table=True):
    """An operator's budget for a scope, overriding the configured one (``raise budget`` writes here)."""

    __tablename__ = "budgets"
    scope: str = Field(primary_key=True, max_length=16)
    """``global`` (per day), ``agent`` (per day) or ``thread`` (its lifetime)."""
    key: str = Field(primary_key=True, max_length=64)
    """The agent or thread id; ``*`` for the global budget."""
    limit_usd: float
    updated_at: datetime = _when()
    updated_by: str = Field(default="operator", max_length=128)


class EpisodeRow(SQLModel, table=True):
    __tablename__ = "episodes"
    id: str = Field(primary_key=True, max_length=64)
    agent_id: str = Field(index=True, max_length=64)
    project: str = Field(index=True, max_length=64)
    thread_id: str = Field(max_length=64)
    topic: str = Field(max_length=500)
    participants: list[str] = _json(list)
    summary: str = Field(sa_column=Column(Text, nullable=False))
    outcome: str = Field(max_length=32)
    lessons: list[str] = _json(list)
    created_at: datetime = _when()


class AuditRow(SQLModel, table=True):
    """Hash-chained audit trail; ``signature`` is the node key's Ed25519 signature of ``hash``."""

    __tablename__ = "audit"
    idx: int = Field(primary_key=True)
    at: datetime = _when()
    author: str = Field(max_length=128)
    type: str = Field(max_length=64)
    data: dict[str, Any] = _json(dict)
    hash: str = Field(max_length=128)
    prev_hash: str = Field(max_length=128)
    signature: str | None = Field(default=None, max_length=256)
