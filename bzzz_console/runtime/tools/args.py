"""Arguments of the bzzz tools, with the seed's names, types, defaults and enums (§1.2).

The same models give the JSON Schema the in-process agents see as OpenAI tools and that MCP clients see, and
validate every call; an invalid call gets a tool error naming the field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bzzz_console.domain.threads import PriorityName

ThreadAction = Literal["create", "join", "leave", "list", "summarize"]
DecisionName = Literal[
    "approve", "reject", "reply", "reassign", "raise_budget", "downgrade_model", "terminate", "hand_back"
]


class ToolArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


AS_AGENT = "Outside (MCP) callers: the agent_id you announced with bzzz_announce; requests carry no session"


class AnnounceArgs(ToolArgs):
    agent_id: str = Field(description="Unique agent identifier", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    role: str = Field(
        description="Agent role (architect, reviewer, etc.)", pattern=r"^[a-z][a-z0-9_-]{0,63}$"
    )
    capabilities: list[str] = Field(default_factory=list)
    specialization: str | None = None
    max_tasks: float = Field(3, ge=1, le=100)


class FilterCriteria(ToolArgs):
    expertise: list[str] = Field(default_factory=list, description="Capabilities the agent must have")
    availability: bool | None = Field(None, description="Only agents that can take more work now")
    performance_threshold: float | None = Field(
        None, ge=0, le=1, description="Minimum consensus success rate of the agent's finished threads"
    )


class LookupArgs(ToolArgs):
    semantic_address: str = Field(description="Format: bzzz://agent:role@project:task/path")
    filter_criteria: FilterCriteria | None = None


class GetArgs(ToolArgs):
    address: str = Field(
        description="bzzz:// address naming a thread, task, agent, escalation or subscription"
    )
    include_metadata: bool = True
    max_history: float = Field(10, ge=0, le=500, description="Messages of a thread to return, newest last")


class PostArgs(ToolArgs):
    target_address: str = Field(
        description="A thread (bzzz://*@project/threads/<id>), an agent (bzzz://<agent-id>@*) or every agent "
        "of a role (bzzz://:reviewer@project)"
    )
    message_type: str = Field(
        description="proposal, agree, disagree, question, answer, comment or summary (agree/disagree vote on "
        "the latest proposal)"
    )
    content: dict[str, Any] = Field(description='The message: {"text": "...", "reply_to": "<message id>"?}')
    priority: PriorityName = "medium"
    thread_id: str | None = Field(None, description="Thread to post into when the address does not name one")
    agent_id: str | None = Field(None, description=AS_AGENT)


class ThreadArgs(ToolArgs):
    action: ThreadAction
    thread_id: str | None = None
    participants: list[str] = Field(
        default_factory=list,
        description="Agent ids or roles (create); none needed when you create it as your agent_id: others join",
    )
    topic: str | None = None
    agent_id: str | None = Field(None, description=AS_AGENT)


class SubscribeArgs(ToolArgs):
    event_types: list[str] = Field(
        description="Event kinds, e.g. message_posted, escalation_raised; [] = all"
    )
    filter_address: str | None = Field(None, description="Only events about what this address matches")
    callback_webhook: str | None = Field(
        None,
        description="Also POST each event here, signed with a secret returned once (its host:port must be "
        "on the node's mcp.webhook_hosts)",
    )
    agent_id: str | None = Field(None, description=AS_AGENT)


class RequestHumanArgs(ToolArgs):
    reason: str = Field(min_length=3, max_length=2000, description="What the operator must decide, and why")
    priority: PriorityName = "medium"
    options: list[str] = Field(default_factory=list, max_length=10, description="Choices you see, if any")


class EscalationsArgs(ToolArgs):
    action: Literal["list", "show"] = "list"
    escalation_id: str | None = Field(None, description="For show")
    include_closed: bool = Field(False, description="For list: also answered, expired and cancelled ones")


class DecideArgs(ToolArgs):
    escalation_id: str
    decision: DecisionName
    text: str | None = Field(None, description="reject: the reason; reply: the answer posted to the thread")
    to: str | None = Field(None, description="reassign: an agent id or a role")
    amount_usd: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="raise_budget: how much to add, in USD (finite, at most the node's budgets.max_raise_usd)",
    )
    model: str | None = Field(None, description="downgrade_model: the model (default: next on the ladder)")
    note: str = ""
