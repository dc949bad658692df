"""The bzzz tools agents call, one implementation for in-process agents (OpenAI tools) and, later, MCP clients.

Arguments are pydantic models: their JSON Schema is what the model sees, and validation errors come back to the
caller as a tool error that names the field and why — a bad call never raises into the runtime.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bzzz_console.domain.addresses import AddressError, SemanticAddress
from bzzz_console.domain.llm import ToolSpec
from bzzz_console.domain.threads import MessageType

if TYPE_CHECKING:
    from bzzz_console.runtime.runtime import Runtime

AGENT_MESSAGE_TYPES = ("proposal", "agree", "disagree", "question", "answer", "comment", "summary")
PriorityName = Literal["low", "medium", "high", "urgent"]


class ToolError(Exception):
    """A tool call that cannot be carried out; the message is returned to the caller as the tool's result."""


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PostArgs(_Args):
    target_address: str = Field(description="Where to post, e.g. bzzz://*@project/threads/<thread_id>")
    message_type: Literal["proposal", "agree", "disagree", "question", "answer", "comment", "summary"] = (
        Field(description="The kind of message; agree/disagree vote on the latest proposal")
    )
    content: dict[str, Any] = Field(
        description='The message, e.g. {"text": "..."}; "reply_to" may name a message id'
    )
    priority: PriorityName = "medium"
    thread_id: str | None = Field(None, description="Thread to post into when the address does not name one")


class GetArgs(_Args):
    address: str = Field(description="bzzz:// address naming a thread, task or agent")
    include_metadata: bool = True
    max_history: int = Field(10, ge=0, le=200, description="Messages of a thread to return, newest last")


class FilterCriteria(_Args):
    expertise: list[str] = Field(default_factory=list, description="Capabilities the agent must have")
    availability: bool | None = Field(None, description="Only agents that can take more work")
    performance_threshold: float | None = Field(
        None, ge=0, le=1, description="Minimum consensus success rate"
    )


class LookupArgs(_Args):
    semantic_address: str = Field(description="Format: bzzz://agent:role@project:task/path")
    filter_criteria: FilterCriteria | None = None


class RequestHumanArgs(_Args):
    reason: str = Field(min_length=3, max_length=2000, description="What the operator must decide, and why")
    priority: PriorityName = "medium"
    options: list[str] = Field(default_factory=list, max_length=10, description="Choices you see, if any")


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Who is calling: an in-process agent inside a thread, or an outside client (agent_id of its announce)."""

    agent_id: str
    thread_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    result: dict[str, Any]
    ok: bool
    ends_turn: bool = False


Handler = Callable[["Runtime", ToolContext, Any], Awaitable[ToolOutcome]]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    args: type[_Args]
    handler: Handler

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.args.model_json_schema())


def _address(text: str, field: str) -> SemanticAddress:
    try:
        return SemanticAddress.parse(text)
    except AddressError as exc:
        raise ToolError(f"{field}: {exc}") from None


async def _post(rt: Runtime, ctx: ToolContext, args: PostArgs) -> ToolOutcome:
    address = _address(args.target_address, "target_address")
    thread_id = args.thread_id
    if address.target is not None:
        kind, ident = address.target
        if kind != "threads":
            raise ToolError(f"target_address: can only post to a thread (/threads/<id>), not to /{kind}")
        thread_id = ident
    if thread_id is None:
        thread_id = ctx.thread_id
    if thread_id is None:
        raise ToolError("target_address: names no thread and no thread_id was given")
    text = args.content.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ToolError('content.text: required, a non-empty string (e.g. {"text": "I propose ..."})')
    reply_to = args.content.get("reply_to")
    message = await rt.conversations.post_from_agent(
        ctx.agent_id,
        thread_id,
        MessageType(args.message_type),
        text.strip(),
        reply_to=reply_to if isinstance(reply_to, str) else None,
        ends_turn=thread_id == ctx.thread_id,
    )
    return ToolOutcome(
        {"status": "posted", "message_id": message.id, "thread_id": thread_id, "seq": message.seq},
        ok=True,
        ends_turn=thread_id == ctx.thread_id,
    )


async def _get(rt: Runtime, ctx: ToolContext, args: GetArgs) -> ToolOutcome:
    address = _address(args.address, "address")
    if address.target is None:
        raise ToolError("address: must name a thing, e.g. bzzz://*@project/threads/<id> or /tasks/<id>")
    from bzzz_console.runtime.directory import describe

    return ToolOutcome(describe(rt, address.target, args.max_history, args.include_metadata), ok=True)


async def _lookup(rt: Runtime, ctx: ToolContext, args: LookupArgs) -> ToolOutcome:
    address = _address(args.semantic_address, "semantic_address")
    from bzzz_console.runtime.directory import lookup_agents

    matches = lookup_agents(rt, address, args.filter_criteria)
    return ToolOutcome({"address": address.format(), "matches": matches, "count": len(matches)}, ok=True)


async def _request_human(rt: Runtime, ctx: ToolContext, args: RequestHumanArgs) -> ToolOutcome:
    if ctx.thread_id is None:
        raise ToolError("request_human can only be called from within a thread")
    escalation_id = await rt.conversations.request_human(
        ctx.agent_id, ctx.thread_id, args.reason, args.priority, args.options
    )
    return ToolOutcome(
        {
            "status": "escalated",
            "escalation_id": escalation_id,
            "note": "Wait: the thread resumes when the operator decides.",
        },
        ok=True,
        ends_turn=True,
    )


AGENT_TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool("bzzz_post", "Post events or messages to BZZZ addresses", PostArgs, _post),
        Tool("bzzz_get", "Retrieve content from BZZZ semantic addresses", GetArgs, _get),
        Tool("bzzz_lookup", "Discover agents and resources using semantic addressing", LookupArgs, _lookup),
        Tool(
            "request_human",
            "Escalate to a human operator when the team cannot decide on its own",
            RequestHumanArgs,
            _request_human,
        ),
    )
}


@cache
def agent_tool_specs() -> tuple[ToolSpec, ...]:
    """The tools as the model sees them; JSON Schema generation is slow, so it runs once per process."""
    return tuple(t.spec for t in AGENT_TOOLS.values())


def describe_validation_error(tool: str, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(arguments)"
        problems.append(f"{where}: {err['msg']}")
    return f"invalid arguments for {tool}: " + "; ".join(problems)


async def run_tool(
    rt: Runtime, ctx: ToolContext, name: str, raw_arguments: str | dict[str, Any]
) -> ToolOutcome:
    """Validate and run one call; every failure becomes ``{"error": ...}`` with ``ok=False``."""
    tool = AGENT_TOOLS.get(name)
    if tool is None:
        return ToolOutcome({"error": f"unknown tool {name!r}; available: {', '.join(AGENT_TOOLS)}"}, ok=False)
    try:
        data = json.loads(raw_arguments or "{}") if isinstance(raw_arguments, str) else raw_arguments
    except json.JSONDecodeError as exc:
        return ToolOutcome(
            {"error": f"arguments of {name} are not valid JSON: {exc.msg} at column {exc.colno}"}, ok=False
        )
    try:
        args = tool.args.model_validate(data)
    except ValidationError as exc:
        return ToolOutcome({"error": describe_validation_error(name, exc)}, ok=False)
    try:
        return await tool.handler(rt, ctx, args)
    except ToolError as exc:
        return ToolOutcome({"error": str(exc)}, ok=False)
