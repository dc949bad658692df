"""Runtime events: frozen values the runtime publishes after the state they describe is persisted.

Every event has a ``kind`` literal, so a union of them is a tagged union: the TUI routes on ``kind``, the headless
CLI prints ``to_json(event)`` one per line, and tests match on types.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    at: datetime = field(default_factory=_now)


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeStarted(Event):
    kind: Literal["runtime_started"] = "runtime_started"
    node: str
    database: str
    provider: str
    demo: bool
    agents: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeIdle(Event):
    """No agent can make progress: every thread is closed, stalled or waiting on a human."""

    kind: Literal["runtime_idle"] = "runtime_idle"
    open_threads: int
    waiting_on_human: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeStopped(Event):
    kind: Literal["runtime_stopped"] = "runtime_stopped"
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRegistered(Event):
    kind: Literal["agent_registered"] = "agent_registered"
    agent_id: str
    role: str
    model: str
    origin: str = "local"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStateChanged(Event):
    kind: Literal["agent_state_changed"] = "agent_state_changed"
    agent_id: str
    old: str
    new: str
    thread_id: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskAdded(Event):
    kind: Literal["task_added"] = "task_added"
    task_id: str
    project: str
    title: str
    roles: tuple[str, ...]
    priority: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStatusChanged(Event):
    kind: Literal["task_status_changed"] = "task_status_changed"
    task_id: str
    status: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreadCreated(Event):
    kind: Literal["thread_created"] = "thread_created"
    thread_id: str
    task_id: str | None
    project: str
    topic: str
    participants: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class MessagePosted(Event):
    kind: Literal["message_posted"] = "message_posted"
    thread_id: str
    message_id: str
    seq: int
    author: str
    role: str
    message_type: str
    content: str
    reply_to: str | None = None
    tokens: int = 0
    model: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCalled(Event):
    kind: Literal["tool_called"] = "tool_called"
    agent_id: str
    thread_id: str | None
    tool: str
    ok: bool
    summary: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LLMCalled(Event):
    kind: Literal["llm_called"] = "llm_called"
    agent_id: str
    thread_id: str | None
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float | None
    """None when the model is not in the pricing table: unknown, never zero."""
    latency_ms: float
    attempts: int
    estimated: bool = False
    """The server sent no token counts: these (and the cost) are estimated from the text."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LLMRetry(Event):
    kind: Literal["llm_retry"] = "llm_retry"
    agent_id: str
    thread_id: str | None
    attempt: int
    delay_s: float
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LLMFailed(Event):
    kind: Literal["llm_failed"] = "llm_failed"
    agent_id: str
    thread_id: str | None
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsensusReached(Event):
    kind: Literal["consensus_reached"] = "consensus_reached"
    thread_id: str
    proposal_id: str
    proposer: str
    agreed_by: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionLogged(Event):
    kind: Literal["decision_logged"] = "decision_logged"
    thread_id: str
    decision_id: str
    summary: str
    made_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreadStatusChanged(Event):
    kind: Literal["thread_status_changed"] = "thread_status_changed"
    thread_id: str
    status: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationRaised(Event):
    kind: Literal["escalation_raised"] = "escalation_raised"
    escalation_id: str
    thread_id: str | None
    agent_id: str | None
    rule: str
    reason: str
    priority: str
    deadline: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationAnswered(Event):
    kind: Literal["escalation_answered"] = "escalation_answered"
    escalation_id: str
    thread_id: str | None
    agent_id: str | None
    decision: str
    """approve, reject, reply, reassign, raise_budget, downgrade_model, terminate or hand_back."""
    by: str
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationApproval(Event):
    """Two-person rule: one operator's decision is recorded and waits for a second, distinct operator."""

    kind: Literal["escalation_approval"] = "escalation_approval"
    escalation_id: str
    decision: str
    approvals: tuple[str, ...]
    """Who approved so far, first first."""
    needed: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionFailed(Event):
    """A recorded decision could not be carried out: the escalation is open again, waiting for another answer."""

    kind: Literal["decision_failed"] = "decision_failed"
    escalation_id: str
    thread_id: str | None
    agent_id: str | None
    decision: str
    by: str
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationExpired(Event):
    """The deadline passed unanswered: recorded as expired (never as a rejection); the default action ran."""

    kind: Literal["escalation_expired"] = "escalation_expired"
    escalation_id: str
    thread_id: str | None
    default_action: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationCancelled(Event):
    """Nothing is left to decide (its thread ended another way)."""

    kind: Literal["escalation_cancelled"] = "escalation_cancelled"
    escalation_id: str
    thread_id: str | None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetWarning(Event):
    kind: Literal["budget_warning"] = "budget_warning"
    scope: str
    """global, agent or thread."""
    key: str
    share: float
    """The warning threshold that was crossed (0.8, 0.95 …); 1.0 means breached."""
    spent_usd: float
    limit_usd: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipantsChanged(Event):
    kind: Literal["participants_changed"] = "participants_changed"
    thread_id: str
    participants: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextCompressed(Event):
    kind: Literal["context_compressed"] = "context_compressed"
    agent_id: str
    thread_id: str
    full_tokens: int
    sent_tokens: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EpisodeRecorded(Event):
    kind: Literal["episode_recorded"] = "episode_recorded"
    agent_id: str
    project: str
    thread_id: str
    outcome: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorRaised(Event):
    """Something failed that the operator should see; the runtime carried on."""

    kind: Literal["error"] = "error"
    where: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkStatus(Event):
    """The P2P node's state, published when it changed (at most once a second)."""

    kind: Literal["network_status"] = "network_status"
    peer_id: str
    addrs: tuple[str, ...]
    """Where other nodes reach this one (``--peer`` takes one of these)."""
    peers: int
    """Connected peers."""
    remote_agents: int
    rate_in_per_s: float
    rate_out_per_s: float
    rejected: int
    """Messages dropped by admission so far, all reasons together."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkMessage(Event):
    """A message from another node that agents do not act on (meta discussion, help requests, v1 traffic)."""

    kind: Literal["network_message"] = "network_message"
    type: str
    sender: str
    summary: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EventsDropped(Event):
    """A slow subscriber's queue overflowed: this many events were dropped for it (and only for it)."""

    kind: Literal["events_dropped"] = "events_dropped"
    count: int


RuntimeEvent = (
    RuntimeStarted
    | RuntimeIdle
    | RuntimeStopped
    | AgentRegistered
    | AgentStateChanged
    | TaskAdded
    | TaskStatusChanged
    | ThreadCreated
    | MessagePosted
    | ToolCalled
    | LLMCalled
    | LLMRetry
    | LLMFailed
    | ConsensusReached
    | DecisionLogged
    | ThreadStatusChanged
    | EscalationRaised
    | EscalationAnswered
    | EscalationApproval
    | EscalationExpired
    | EscalationCancelled
    | DecisionFailed
    | BudgetWarning
    | ParticipantsChanged
    | ContextCompressed
    | EpisodeRecorded
    | ErrorRaised
    | NetworkStatus
    | NetworkMessage
    | EventsDropped
)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def to_dict(event: Event) -> dict[str, Any]:
    """The event as JSON-ready data, ``kind`` first."""
    data: dict[str, Any] = {"kind": getattr(event, "kind")}  # noqa: B009 (every concrete event has one)
    for f in fields(event):
        if f.name != "kind":
            data[f.name] = _plain(getattr(event, f.name))
    return data


def to_json(event: Event) -> str:
    return json.dumps(to_dict(event), ensure_ascii=False, separators=(",", ":"))
