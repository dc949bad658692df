"""The seed's core tools, offered to in-process agents and MCP clients alike: post, get, lookup, request_human."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bzzz_console.domain.addresses import SemanticAddress
from bzzz_console.domain.threads import MessageType
from bzzz_console.runtime.tools.args import GetArgs, LookupArgs, PostArgs, RequestHumanArgs
from bzzz_console.runtime.tools.base import (
    AGENT_MESSAGE_TYPES,
    Tool,
    ToolContext,
    ToolError,
    ToolOutcome,
    message_text,
    need_agent,
    parse_address,
)
from bzzz_console.runtime.tools.directory import describe, describe_agents, lookup_agents
from bzzz_console.runtime.tools.results import GetResult, HumanRequested, LookupResult, PostResult

if TYPE_CHECKING:
    from bzzz_console.runtime.runtime import Runtime


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
    history, metadata = int(args.max_history), args.include_metadata
    if address.target is not None:
        return ToolOutcome(describe(rt, address.target, history, metadata), ok=True)
    if address.task not in (None, "*"):  # bzzz://*@project:<task>
        return ToolOutcome(describe(rt, ("tasks", address.task), history, metadata), ok=True)
    return ToolOutcome(describe_agents(rt, address, metadata), ok=True)


async def _lookup(rt: Runtime, ctx: ToolContext, args: LookupArgs) -> ToolOutcome:
    address = parse_address(args.semantic_address, "semantic_address")
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
    Tool("bzzz_post", "Post events or messages to BZZZ addresses", PostArgs, _post, result=PostResult),
    Tool(
        "bzzz_get",
        "Retrieve content from BZZZ semantic addresses",
        GetArgs,
        _get,
        read_only=True,
        result=GetResult,
    ),
    Tool(
        "bzzz_lookup",
        "Discover agents and resources using semantic addressing",
        LookupArgs,
        _lookup,
        read_only=True,
        result=LookupResult,
    ),
)
REQUEST_HUMAN = Tool(
    "request_human",
    "Escalate to a human operator when the team cannot decide on its own",
    RequestHumanArgs,
    _request_human,
    result=HumanRequested,
)
