"""The bzzz tools: one implementation for in-process agents (as OpenAI tools) and for MCP clients.

``run_tool`` validates the arguments against the models in :mod:`tool_args` and runs the handler; every failure
comes back as ``{"error": ...}`` naming the field and why, so a bad call never raises into the runtime.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from bzzz_console.domain.addresses import AddressError, SemanticAddress
from bzzz_console.domain.llm import ToolSpec
from bzzz_console.domain.principals import Principal
from bzzz_console.domain.threads import MessageType
from bzzz_console.runtime.tool_args import (
    FilterCriteria,
    GetArgs,
    LookupArgs,
    PostArgs,
    RequestHumanArgs,
    ToolArgs,
)

if TYPE_CHECKING:
    from bzzz_console.runtime.runtime import Runtime

__all__ = [
    "FilterCriteria",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolOutcome",
    "agent_tool_specs",
    "run_tool",
]
AGENT_MESSAGE_TYPES = ("proposal", "agree", "disagree", "question", "answer", "comment", "summary")


class ToolError(Exception):
    """A tool call that cannot be carried out; the message is returned to the caller as the tool's result."""


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Who is calling: an in-process agent inside a thread, or an MCP client (its announced agent, if any)."""

    agent_id: str | None
    thread_id: str | None = None
    readonly: bool = False
    via: str = "agent"
    """agent (in-process, OpenAI tools) or mcp."""
    principal: Principal | None = None
    """MCP: who the token (or the stdio command line) says is calling; None for in-process agents."""


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
    args: type[ToolArgs]
    handler: Handler
    read_only: bool = False
    destructive: bool = False

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.args.model_json_schema())


def parse_address(text: str, field: str) -> SemanticAddress:
    try:
        return SemanticAddress.parse(text)
    except AddressError as exc:
        raise ToolError(f"{field}: {exc}") from None


def need_agent(rt: Runtime, ctx: ToolContext, tool: str, claimed: str | None = None) -> str:
    """Who acts: the in-process agent whose turn it is, or the outside agent an MCP caller announced."""
    if ctx.via == "agent" and ctx.agent_id is not None:
        return ctx.agent_id
    if claimed is None:
        raise ToolError(f"agent_id: {tool} needs the agent_id you announced with bzzz_announce")
    agent = rt.agents.get(claimed)
    if agent is None:
        raise ToolError(f"agent_id: {claimed!r} is not announced; call bzzz_announce first")
    if agent.origin == "local":
        raise ToolError(
            f"agent_id: {claimed!r} is one of this node's own agents; act as the agent you announced"
        )
    return claimed


def message_text(content: dict[str, Any]) -> tuple[str, str | None]:
    text = content.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ToolError('content.text: required, a non-empty string (e.g. {"text": "I propose ..."})')
    reply_to = content.get("reply_to")
    if reply_to is not None and not isinstance(reply_to, str):
        raise ToolError("content.reply_to: must be a message id (a string)")
    return text.strip(), reply_to


async def _post(rt: Runtime, ctx: ToolContext, args: PostArgs) -> ToolOutcome:
    author = need_agent(rt, ctx, "bzzz_post", args.agent_id)
    if args.message_type not in AGENT_MESSAGE_TYPES:
        raise ToolError(f"message_type: {args.message_type!r} is not one of {', '.join(AGENT_MESSAGE_TYPES)}")
    text, reply_to = message_text(args.content)
    address = parse_address(args.target_address, "target_address")
    thread_id = args.thread_id
    named_by = "thread_id" if thread_id is not None else None  # the argument that chose the thread, if any
    if address.target is not None:
        kind, ident = address.target
        if kind == "agents":
            return _deliver(rt, author, address, args, text)
        if kind != "threads":
            raise ToolError(f"target_address: a message goes to a thread, an agent or a role, not to /{kind}")
        thread_id, named_by = ident, "target_address"
    elif thread_id is None and (address.agent not in (None, "*") or address.role not in (None, "*")):
        return _deliver(rt, author, address, args, text)
    thread_id = thread_id or ctx.thread_id
    if thread_id is None:
        raise ToolError("target_address: names no thread, agent or role, and no thread_id was given")
    ends_turn = thread_id == ctx.thread_id or rt.conversations.is_turn_of(author, thread_id)
    try:
        message = await rt.conversations.post_from_agent(
            author, thread_id, MessageType(args.message_type), text, reply_to=reply_to, ends_turn=ends_turn
        )
    except ToolError as exc:  # "thread 'x' is not open on this node": say which argument named that thread
        if named_by is None:
            raise
        raise ToolError(f"{named_by}: {exc}") from None
    result = {"status": "posted", "message_id": message.id, "thread_id": thread_id, "seq": message.seq}
    return ToolOutcome(result, ok=True, ends_turn=thread_id == ctx.thread_id)


def _deliver(rt: Runtime, author: str, address: SemanticAddress, args: PostArgs, text: str) -> ToolOutcome:
    """A message to an agent (or every agent of a role): it reads it at the top of its next turn."""
    targets = [
        a
        for a in rt.agents.values()
        if a.id != author and any(address.matches_agent(a.id, name) for name in (a.role, *a.spec.aliases))
    ]
    if not targets:
        raise ToolError(f"target_address: no agent matches {address.format()}")
    for agent in targets:
        agent.inbox.append(f"[{author} · {args.message_type} · {args.priority}] {text}")
    return ToolOutcome(
        {"status": "delivered", "delivered_to": [a.id for a in targets], "count": len(targets)}, ok=True
    )


async def _get(rt: Runtime, ctx: ToolContext, args: GetArgs) -> ToolOutcome:
    address = parse_address(args.address, "address")
    if address.target is None:
        raise ToolError("address: must name a thing, e.g. bzzz://*@project/threads/<id> or /tasks/<id>")
    from bzzz_console.runtime.directory import describe

    return ToolOutcome(describe(rt, address.target, int(args.max_history), args.include_metadata), ok=True)


async def _lookup(rt: Runtime, ctx: ToolContext, args: LookupArgs) -> ToolOutcome:
    address = parse_address(args.semantic_address, "semantic_address")
    from bzzz_console.runtime.directory import lookup_agents

    matches = lookup_agents(rt, address, args.filter_criteria)
    return ToolOutcome({"address": address.format(), "matches": matches, "count": len(matches)}, ok=True)


async def _request_human(rt: Runtime, ctx: ToolContext, args: RequestHumanArgs) -> ToolOutcome:
    author = need_agent(rt, ctx, "request_human")
    if ctx.thread_id is None:
        raise ToolError("request_human can only be called from within a thread")
    escalation_id = await rt.conversations.request_human(
        author, ctx.thread_id, args.reason, args.priority, args.options
    )
    result = {
        "status": "escalated",
        "escalation_id": escalation_id,
        "note": "Wait: the thread resumes when the operator decides.",
    }
    return ToolOutcome(result, ok=True, ends_turn=True)


CORE_TOOLS = (
    Tool("bzzz_post", "Post events or messages to BZZZ addresses", PostArgs, _post),
    Tool("bzzz_get", "Retrieve content from BZZZ semantic addresses", GetArgs, _get, read_only=True),
    Tool(
        "bzzz_lookup",
        "Discover agents and resources using semantic addressing",
        LookupArgs,
        _lookup,
        read_only=True,
    ),
)
REQUEST_HUMAN = Tool(
    "request_human",
    "Escalate to a human operator when the team cannot decide on its own",
    RequestHumanArgs,
    _request_human,
)


@cache
def registry() -> dict[str, Tool]:
    """Every tool by name: the agents' and the MCP clients'."""
    from bzzz_console.runtime.tools_network import NETWORK_TOOLS

    return {t.name: t for t in (*CORE_TOOLS, REQUEST_HUMAN, *NETWORK_TOOLS)}


AGENT_TOOL_NAMES = ("bzzz_post", "bzzz_get", "bzzz_lookup", "request_human")


@cache
def agent_tool_specs() -> tuple[ToolSpec, ...]:
    """The tools in-process agents are offered; JSON Schema generation is slow, so it runs once per process."""
    return tuple(registry()[name].spec for name in AGENT_TOOL_NAMES)


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
    tools = registry()
    allowed = AGENT_TOOL_NAMES if ctx.via == "agent" else tuple(n for n in tools if n != "request_human")
    tool = tools.get(name) if name in allowed else None
    if tool is None:
        return ToolOutcome({"error": f"unknown tool {name!r}; available: {', '.join(allowed)}"}, ok=False)
    if ctx.readonly and tool.destructive:
        return ToolOutcome({"error": f"{name} is refused: this server is read-only"}, ok=False)
    try:
        data = json.loads(raw_arguments or "{}") if isinstance(raw_arguments, str) else raw_arguments
    except json.JSONDecodeError as exc:
        return ToolOutcome(
            {"error": f"arguments of {name} are not valid JSON: {exc.msg} at column {exc.colno}"}, ok=False
        )
    except (ValueError, RecursionError) as exc:  # nested too deep, or an integer too long to read
        return ToolOutcome({"error": f"arguments of {name} are not valid JSON: {exc}"}, ok=False)
    if not isinstance(data, dict):
        return ToolOutcome({"error": f"arguments of {name} must be a JSON object"}, ok=False)
    try:
        args = tool.args.model_validate(data)
    except ValidationError as exc:
        return ToolOutcome({"error": describe_validation_error(name, exc)}, ok=False)
    try:
        return await tool.handler(rt, ctx, args)
    except ToolError as exc:
        return ToolOutcome({"error": str(exc)}, ok=False)
