"""The tools that let outside agents take part (announce, thread, subscribe) and let another operator decide
(escalations, decide). Same registry and validation as the agents' tools (see :mod:`tools`)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bzzz_console.domain import commands as cmd
from bzzz_console.domain.lifecycle import AgentState
from bzzz_console.domain.state import unavailable
from bzzz_console.domain.threads import MessageType, ThreadStatus, tally
from bzzz_console.runtime.memory import excerpt
from bzzz_console.runtime.tools.args import (
    AnnounceArgs,
    DecideArgs,
    EscalationsArgs,
    SubscribeArgs,
    ThreadArgs,
)
from bzzz_console.runtime.tools.base import (
    Tool,
    ToolContext,
    ToolError,
    ToolOutcome,
    need_agent,
    parse_address,
)
from bzzz_console.runtime.tools.results import (
    Announced,
    DecideResult,
    EscalationsResult,
    Subscribed,
    ThreadResult,
)

if TYPE_CHECKING:
    from bzzz_console.runtime.runtime import Runtime


async def _announce(rt: Runtime, ctx: ToolContext, args: AnnounceArgs) -> ToolOutcome:
    if args.max_tasks != int(args.max_tasks):
        raise ToolError("max_tasks: must be a whole number")
    existing = rt.agents.get(args.agent_id)
    if existing is not None and existing.origin == "local":
        raise ToolError(f"agent_id: {args.agent_id!r} is one of this node's own agents; choose another id")
    agent = rt.register_external(
        args.agent_id,
        args.role,
        list(args.capabilities),
        args.specialization,
        int(args.max_tasks),
        origin="mcp",
    )
    return ToolOutcome(
        {
            "status": "announced",
            "agent_id": agent.id,
            "state": agent.state.value,
            "address": f"bzzz://{agent.id}:{agent.role}@*",
            "message": f"Agent {agent.id} ({agent.role}) announced to the network",
        },
        ok=True,
    )


def _thread_info(rt: Runtime, thread_id: str) -> dict[str, Any]:
    row = rt.store.get_thread(thread_id)
    return {
        "thread_id": row.id,
        "topic": row.topic,
        "status": row.status,
        "project": row.project,
        "message_count": row.message_count,
        "participants": [p.agent_id for p in rt.store.participants(row.id)],
    }


async def _thread(rt: Runtime, ctx: ToolContext, args: ThreadArgs) -> ToolOutcome:
    conv = rt.conversations
    if args.action == "list":
        threads = [_thread_info(rt, t.id) for t in rt.store.threads()]
        return ToolOutcome({"action": "list", "threads": threads, "count": len(threads)}, ok=True)
    if args.action == "create":
        if not args.topic or not args.topic.strip():
            raise ToolError("topic: required to create a thread")
        creator = (
            need_agent(rt, ctx, "bzzz_thread", args.agent_id) if args.agent_id or ctx.via == "agent" else None
        )
        created = conv.create_thread(args.topic.strip(), args.participants, creator)
        return ToolOutcome({**_thread_info(rt, created.id), "action": "created"}, ok=True)
    if not args.thread_id:
        raise ToolError(f"thread_id: required for {args.action}")
    thread = conv.threads.get(args.thread_id)
    if args.action == "summarize":
        return ToolOutcome({"action": "summarize", **_summary(rt, args.thread_id)}, ok=True)
    agent_id = need_agent(rt, ctx, "bzzz_thread", args.agent_id)
    if thread is None or thread.status is ThreadStatus.CLOSED:
        raise ToolError(f"thread_id: {args.thread_id!r} is not an open thread on this node")
    agent = rt.agents[agent_id]
    if args.action == "join":
        if agent_id in thread.participant_ids:
            raise ToolError(f"{agent_id} already takes part in {thread.id}")
        if not agent.can_join:
            raise ToolError(f"agent_id: {agent_id} {unavailable(agent)}")
        conv.add_participant(thread, agent, "joined by itself")
        return ToolOutcome({**_thread_info(rt, thread.id), "action": "joined"}, ok=True)
    if agent_id not in thread.participant_ids:
        raise ToolError(f"{agent_id} does not take part in {thread.id}")
    conv.remove_participant(thread, agent, "left by itself")
    if not agent.threads and agent.state in (AgentState.ACTIVE, AgentState.COLLABORATING):
        rt.transition(agent, AgentState.IDLE, thread.id, "left its last thread")
    return ToolOutcome({"action": "left", "thread_id": thread.id}, ok=True)


def _summary(rt: Runtime, thread_id: str) -> dict[str, Any]:
    """What the thread has settled and what is open, without a model call."""
    from bzzz_console.store.errors import NotFound
    from bzzz_console.store.repo import to_message

    try:
        row = rt.store.get_thread(thread_id)
    except NotFound:
        raise ToolError(f"thread_id: no thread {thread_id!r}") from None
    messages = [to_message(m) for m in rt.store.messages(thread_id)]
    participants = [p.agent_id for p in rt.store.participants(thread_id)]
    vote = tally(participants, messages)
    latest = next((m for m in reversed(messages) if m.type is MessageType.PROPOSAL), None)
    answered = {m.reply_to for m in messages if m.type is MessageType.ANSWER}
    counts: dict[str, int] = {}
    for m in messages:
        counts[m.type.value] = counts.get(m.type.value, 0) + 1
    return {
        "thread_id": row.id,
        "topic": row.topic,
        "status": row.status,
        "outcome": row.outcome,
        "latest_proposal": excerpt(latest.content, 400) if latest else None,
        "agreed": sorted(vote.agreed),
        "disagreed": sorted(vote.disagreed),
        "pending": sorted(vote.pending),
        "decisions": [excerpt(m.content, 400) for m in messages if m.type is MessageType.DECISION],
        "open_questions": [
            excerpt(m.content, 200)
            for m in messages
            if m.type is MessageType.QUESTION and m.id not in answered
        ],
        "human_messages": [excerpt(m.content, 200) for m in messages if m.type is MessageType.HUMAN],
        "message_counts": counts,
    }


async def _subscribe(rt: Runtime, ctx: ToolContext, args: SubscribeArgs) -> ToolOutcome:
    from bzzz_console.domain.events import RuntimeEvent
    from bzzz_console.runtime.subscriptions import SIGNATURE_HEADER, check_webhook, resolves_locally

    known = {t.__dataclass_fields__["kind"].default for t in RuntimeEvent.__args__}
    unknown = sorted(set(args.event_types) - known)
    if unknown:
        raise ToolError(f"event_types: unknown {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    address = parse_address(args.filter_address, "filter_address") if args.filter_address else None
    webhook = None
    own = rt.subscriptions.own_ports
    if args.callback_webhook:
        try:
            webhook = check_webhook(args.callback_webhook, rt.settings.mcp.webhook_hosts, own)
        except ValueError as exc:
            raise ToolError(str(exc)) from None
        if await resolves_locally(webhook, own):
            raise ToolError(f"callback_webhook: {webhook!r} resolves to this node's own MCP server")
    sub = rt.subscriptions.add(args.agent_id or ctx.agent_id, args.event_types, address, webhook)
    result: dict[str, Any] = {
        "status": "subscribed",
        "subscription_id": sub.id,
        "address": sub.address,
        "event_types": sorted(sub.event_types) or ["*"],
        "webhook": webhook,
        "read_with": f'bzzz_get {{"address": "{sub.address}"}}',
    }
    if sub.secret is not None:  # shown here once: bzzz_get never returns it, nothing logs or stores it
        result["webhook_secret"] = sub.secret
        result["webhook_signature"] = (
            f"{SIGNATURE_HEADER}: v1=hex(HMAC-SHA256(webhook_secret, X-Bzzz-Timestamp + '.' + body)); "
            "refuse timestamps older than 5 minutes"
        )
    return ToolOutcome(result, ok=True)


async def _escalations(rt: Runtime, ctx: ToolContext, args: EscalationsArgs) -> ToolOutcome:
    from bzzz_console.views.reports import escalation_summary

    if args.action == "show":
        if not args.escalation_id:
            raise ToolError("escalation_id: required for show")
        row = rt.store.get_escalation(args.escalation_id)
        if row is None:
            raise ToolError(f"escalation_id: no escalation {args.escalation_id!r}")
        return ToolOutcome(
            {
                "action": "show",
                **escalation_summary(row),
                "default_action": row.default_action,
                "context": row.context,
                "decision": row.decision,
                "answered_by": row.answered_by,
                "read_only": (row.context or {}).get("read_only"),
            },
            ok=True,
        )
    rows = [e for e in rt.store.escalations() if args.include_closed or e.state == "open"]
    listed = [escalation_summary(e) for e in rows]
    return ToolOutcome({"action": "list", "escalations": listed, "count": len(rows)}, ok=True)


async def _decide(rt: Runtime, ctx: ToolContext, args: DecideArgs) -> ToolOutcome:
    from bzzz_console.domain.errors import CommandError

    if ctx.principal is None or not ctx.principal.is_operator:  # the MCP layer refuses agents first; be sure
        raise ToolError("bzzz_decide: only an operator may answer escalations")
    who = ctx.principal.name
    ident, kind = args.escalation_id, args.decision
    command: cmd.Decision
    if kind == "approve":
        command = cmd.Approve(escalation_id=ident, note=args.note, operator=who)
    elif kind == "reject":
        command = cmd.Reject(escalation_id=ident, reason=args.text or args.note, operator=who)
    elif kind == "reply":
        command = cmd.Reply(escalation_id=ident, text=args.text or "", operator=who)
    elif kind == "reassign":
        command = cmd.Reassign(escalation_id=ident, to=args.to or "", operator=who)
    elif kind == "raise_budget":
        if args.amount_usd is None:  # also what a client's NaN or Infinity arrives as: JSON has neither
            raise ToolError("amount_usd: required for raise_budget (a finite amount of USD above 0)")
        command = cmd.RaiseBudget(escalation_id=ident, amount_usd=args.amount_usd, operator=who)
    elif kind == "downgrade_model":
        command = cmd.DowngradeModel(escalation_id=ident, model=args.model, operator=who)
    elif kind == "hand_back":
        command = cmd.HandBack(escalation_id=ident, operator=who)
    else:
        command = cmd.Terminate(agent_id="", escalation_id=ident, operator=who)
    command = replace(command, surface=ctx.principal.via)  # "mcp token <id>", "mcp-stdio"
    try:
        row = await rt.submit(command)
    except CommandError as exc:  # named like the other argument errors: "amount_usd: …"
        raise ToolError(f"{exc.field}: {exc}" if exc.field else str(exc)) from None
    if row.state == "open":  # the two-person rule: recorded, waiting for a second operator
        approvals = [a.shown_as for a in rt.store.approvals(row.id)]
        return ToolOutcome(
            {
                "status": "approval recorded",
                "escalation_id": row.id,
                "decision": kind,
                "by": who,
                "state": "open",
                "approvals": approvals,
                "message": f"{len(approvals)} of 2 approvals: a second operator must give the same decision",
            },
            ok=True,
        )
    return ToolOutcome(
        {"status": "decided", "escalation_id": row.id, "decision": kind, "by": who, "state": "answered"},
        ok=True,
    )


NETWORK_TOOLS = (
    Tool(
        "bzzz_announce",
        "Announce agent presence and capabilities on the BZZZ network",
        AnnounceArgs,
        _announce,
        result=Announced,
    ),
    Tool(
        "bzzz_thread",
        "Manage threaded conversations between agents",
        ThreadArgs,
        _thread,
        result=ThreadResult,
    ),
    Tool(
        "bzzz_subscribe",
        "Subscribe to real-time events from BZZZ network",
        SubscribeArgs,
        _subscribe,
        result=Subscribed,
    ),
    Tool(
        "bzzz_escalations",
        "List escalations waiting for a human, or show one with its context",
        EscalationsArgs,
        _escalations,
        read_only=True,
        result=EscalationsResult,
    ),
    Tool(
        "bzzz_decide",
        "Answer an escalation as the operator (approve, reject, reply, reassign, raise budget, "
        "downgrade model, terminate, hand back); applied once",
        DecideArgs,
        _decide,
        destructive=True,
        result=DecideResult,
    ),
)
