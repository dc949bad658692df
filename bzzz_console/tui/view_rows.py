"""What the console shows of each agent, thread, message and escalation, and of spend and the node's status:
plain dataclasses, kept up to date by :class:`~bzzz_console.tui.view.FleetView` from the runtime's events.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bzzz_console.tui import clock

SPEND_BUCKETS = 60
HISTORY_LIMIT = 30
"""State changes kept per agent."""


@dataclass
class AgentRowView:
    id: str
    role: str
    state: str = "initializing"
    model: str = ""
    thread: str | None = None
    tokens: int = 0
    cost: float = 0.0
    cost_unknown: bool = False
    paused: bool = False
    reason: str = ""
    origin: str = "local"
    """``remote``: another node's agent (networking on)."""
    model_call: str = ""
    """The model call in trouble, live: "retry 2: no answer within 60s …" or "failed: …"; cleared by the next
    call that works."""
    tokens_estimated: bool = False
    """Some of ``tokens`` were estimated (the server sent no counts)."""
    history: deque[tuple[datetime, str, str]] = field(default_factory=lambda: deque(maxlen=HISTORY_LIMIT))
    """(when, state, why) of the agent's last state changes, oldest first (the agent screen)."""
    last_call: str = ""
    """The last model call that worked: "gpt-4o-mini · 1,234 tokens · $0.0012 · 09:30:01"."""


@dataclass
class ThreadRowView:
    id: str
    topic: str
    status: str = "active"
    participants: tuple[str, ...] = ()
    messages: int = 0
    cost: float = 0.0
    created_at: datetime = field(default_factory=lambda: clock.now())
    task_id: str | None = None
    consensus: str = ""
    model_call: str = ""
    """As on the agent row: the thread's model call retrying or failed, live."""


@dataclass
class MessageView:
    seq: int
    author: str
    role: str
    type: str
    content: str
    at: datetime


@dataclass
class EscalationView:
    id: str
    thread_id: str | None
    agent_id: str | None
    rule: str
    reason: str
    priority: str
    state: str = "open"
    created_at: datetime = field(default_factory=lambda: clock.now())
    deadline: datetime | None = None
    default_action: str = "hold"
    context: dict[str, Any] = field(default_factory=dict)
    decision: str = ""
    approvals: str = ""
    """Two-person rule: "approve: 1 of 2 approvals (alice)" while a second operator is awaited."""


@dataclass
class SpendView:
    total: float = 0.0
    today: float = 0.0
    daily_limit: float | None = None
    unknown_calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    by_model: dict[str, float] = field(default_factory=dict)
    by_agent: dict[str, float] = field(default_factory=dict)
    agent_limits: dict[str, float | None] = field(default_factory=dict)
    series: deque[float] = field(default_factory=lambda: deque([0.0] * SPEND_BUCKETS, maxlen=SPEND_BUCKETS))
    """Spend per minute over the last hour, oldest first (the sparkline)."""
    started: datetime = field(default_factory=lambda: clock.now())
    warnings: list[str] = field(default_factory=list)
    unknown_models: set[str] = field(default_factory=set)
    """Models without a price: their cost is shown as unknown, never as $0."""

    def rate_per_hour(self, now: datetime) -> float:
        minutes = max(1.0, min(60.0, (now - self.started).total_seconds() / 60))
        recent = list(self.series)[-int(minutes) :]
        return sum(recent) / minutes * 60

    def runway_hours(self, now: datetime) -> float | None:
        """When the daily budget runs out at the current rate (None: no limit or no spend)."""
        rate = self.rate_per_hour(now)
        if self.daily_limit is None or rate <= 0:
            return None
        return max(0.0, (self.daily_limit - self.today) / rate)


@dataclass
class StatusView:
    node: str = "starting…"
    database: str = ""
    provider: str = ""
    demo: bool = False
    peers: int = 0
    readonly: bool = False
    running: bool = False
    mcp: str = ""
    """The MCP HTTP endpoint this console serves, if any."""
    signed_in: str = ""
    """Under ``serve``: the operator this browser session decides as (a terminal console leaves it empty)."""
    peer_id: str = ""
    """This node's peer id once its P2P node runs (networking on), else empty."""
