"""What each bzzz tool returns, as pydantic models: the MCP server publishes them as the tools' output schemas
and checks every result against them; the handlers build plain dicts of exactly these fields.

A tool with several kinds of answer (``bzzz_get`` of a thread, a task, an agent …) returns one of several
models, told apart by one field (``kind``, ``action`` or ``status``). A field a handler leaves out is left out of
the result too (e.g. ``metadata`` with ``include_metadata: false``), never sent as ``null``; every model refuses
fields it does not declare, so the schema says all a client can get.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    model_serializer,
)


class Result(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_serializer(mode="wrap")
    def _only_what_was_given(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        for name, info in type(self).model_fields.items():
            if name not in self.model_fields_set:
                data.pop(name, None)
                data.pop(info.alias or name, None)
        return data


# -- agents -------------------------------------------------------------------------------------------------------
class AgentCard(Result):
    agent_id: str
    role: str
    state: str
    model: str
    capabilities: list[str]
    load: int = Field(description="Threads it takes part in")
    max_tasks: int
    available: bool = Field(description="Whether it can join one more thread now")
    address: str = Field(description="Its bzzz:// address (bzzz_get reads it)")
    origin: str = Field(
        description="local (runs on this node), remote (another node) or mcp (an outside agent)"
    )


class AgentMetadata(Result):
    threads: list[str]
    origin: str
    consensus_rate: float | None = Field(description="Share of its finished threads that reached consensus")


class AgentView(AgentCard):
    kind: Literal["agent"]
    metadata: AgentMetadata | None = None


class AgentsView(Result):
    kind: Literal["agents"]
    address: str
    matches: list[AgentCard]
    count: int


# -- threads --------------------------------------------------------------------------------------------------------
class MessageItem(Result):
    id: str
    from_: str = Field(alias="from")
    role: str
    type: str
    content: str


class ThreadMetadata(Result):
    project: str
    task_id: str | None
    turns: int
    message_count: int
    created_at: str
    participants: list[str]


class ThreadView(Result):
    kind: Literal["thread"]
    thread_id: str
    topic: str
    status: str
    messages: list[MessageItem]
    metadata: ThreadMetadata | None = None


class ThreadInfo(Result):
    thread_id: str
    topic: str
    status: str
    project: str
    message_count: int
    participants: list[str]


class ThreadList(Result):
    action: Literal["list"]
    threads: list[ThreadInfo]
    count: int


class ThreadChanged(ThreadInfo):
    action: Literal["created", "joined"]


class ThreadLeft(Result):
    action: Literal["left"]
    thread_id: str


class ThreadSummary(Result):
    action: Literal["summarize"]
    thread_id: str
    topic: str
    status: str
    outcome: str | None
    latest_proposal: str | None
    agreed: list[str]
    disagreed: list[str]
    pending: list[str]
    decisions: list[str]
    open_questions: list[str]
    human_messages: list[str]
    message_counts: dict[str, int]


# -- tasks ------------------------------------------------------------------------------------------------------------
class NetworkTaskInfo(Result):
    """A task a Go BZZZ node announced: its identity and what it carries."""

    origin: Literal["go"]
    repository: str
    number: int
    url: str | None = None
    labels: list[str]
    difficulty: str | None
    task_type: str | None
    estimated_hours: float | None
    required_skills: list[str]
    depends_on: list[str] = Field(description="Dependencies and blockers, as repository#number")
    waiting_for: list[str] = Field(description="Those not done here: the task is blocked while any is left")
    scenario: str | None
    announcer: str | None
    announcements: int


class TaskView(Result):
    kind: Literal["task"]
    task_id: str
    title: str
    description: str
    roles: list[str]
    priority: str
    status: str
    project: str
    thread_id: str | None
    source: str
    network: NetworkTaskInfo | None = None


# -- escalations and subscriptions ----------------------------------------------------------------------------------
class EscalationSummary(Result):
    id: str
    thread_id: str | None
    agent_id: str | None
    rule: str
    reason: str
    priority: str
    state: str
    created_at: str | None
    deadline: str | None
    origin_peer: str | None = Field(description="The node that raised it, when that is another node")


class EscalationView(EscalationSummary):
    kind: Literal["escalation"]
    default_action: str
    decision: dict[str, Any] | None
    read_only: str | None = Field(None, description="Why no decision can be given (e.g. a Go node's)")
    context: dict[str, Any] | None = None


class SubscriptionView(Result):
    kind: Literal["subscription"]
    subscription_id: str
    events: list[dict[str, Any]]
    remaining: int
    dropped: int
    webhook: str | None
    webhook_delivered: int
    webhook_failed: int


# -- the tools' results --------------------------------------------------------------------------------------------
class Announced(Result):
    status: Literal["announced"]
    agent_id: str
    state: str
    address: str
    message: str


class LookupResult(Result):
    address: str
    matches: list[AgentCard]
    count: int


class Posted(Result):
    status: Literal["posted"]
    message_id: str
    thread_id: str
    seq: int


class Delivered(Result):
    status: Literal["delivered"]
    delivered_to: list[str]
    count: int


class Subscribed(Result):
    status: Literal["subscribed"]
    subscription_id: str
    address: str
    event_types: list[str]
    webhook: str | None
    read_with: str
    webhook_secret: str | None = Field(None, description="Shown once, only when a webhook was given")
    webhook_signature: str | None = None


class EscalationList(Result):
    action: Literal["list"]
    escalations: list[EscalationSummary]
    count: int


class EscalationShown(EscalationSummary):
    action: Literal["show"]
    default_action: str
    context: dict[str, Any]
    decision: dict[str, Any] | None
    answered_by: str | None
    read_only: str | None = None


class Decided(Result):
    status: Literal["decided"]
    escalation_id: str
    decision: str
    by: str
    state: Literal["answered"]


class ApprovalRecorded(Result):
    status: Literal["approval recorded"]
    escalation_id: str
    decision: str
    by: str
    state: Literal["open"]
    approvals: list[str]
    message: str


class HumanRequested(Result):
    status: Literal["escalated"]
    escalation_id: str
    note: str


GetResult = Annotated[
    ThreadView | TaskView | AgentView | AgentsView | EscalationView | SubscriptionView,
    Field(discriminator="kind"),
]
PostResult = Annotated[Posted | Delivered, Field(discriminator="status")]
ThreadResult = Annotated[
    ThreadList | ThreadChanged | ThreadLeft | ThreadSummary, Field(discriminator="action")
]
EscalationsResult = Annotated[EscalationList | EscalationShown, Field(discriminator="action")]
DecideResult = Annotated[Decided | ApprovalRecorded, Field(discriminator="status")]


def _plain_schema(node: Any) -> Any:
    """Without pydantic's ``discriminator`` keyword (an OpenAPI extension some JSON Schema validators refuse in
    strict mode): ``oneOf`` with a ``const`` in each branch already says which is which."""
    if isinstance(node, dict):
        return {k: _plain_schema(v) for k, v in node.items() if k != "discriminator"}
    if isinstance(node, list):
        return [_plain_schema(v) for v in node]
    return node


def output_schema(result: Any) -> dict[str, Any]:
    """The JSON Schema of a tool's result, an object at the root as MCP requires."""
    schema = _plain_schema(TypeAdapter(result).json_schema())
    return {"type": "object", **schema}
