"""``bzzz_inbox``: escalations put to an operator's MCP client as elicitations, answered there.

On the current MCP protocol (2026-07-28) a server may not send requests of its own; an elicitation travels as an
``InputRequiredResult`` of a tool call (SEP-2322): the client shows the form, then calls the tool again with the
answer and the ``request_state`` it was given. So an operator's client calls ``bzzz_inbox``: it waits (up to
``wait_s``) for an open escalation this node decides, and returns it as a form — the decisions that apply, a text
field, the options the agent gave. The answer comes back to the same tool and is applied through ``bzzz_decide``,
as that operator's decision, with every check the other surfaces have. Whichever surface answers first wins: an
answer that arrives after another operator (or the console, the CLI, a peer, the deadline) decided gets the
outcome instead.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bzzz_console.domain.principals import Principal
from bzzz_console.domain.text import inert, inert_line
from bzzz_console.runtime.tools.base import ToolContext
from bzzz_console.runtime.tools.registry import run_tool

if TYPE_CHECKING:
    from bzzz_console.runtime.runtime import Runtime
    from bzzz_console.store.tables import EscalationRow

FORM = "decision"
"""The key of the one elicitation in an inbox round."""
POLL_S = 0.25
ELICITED_DECISIONS = ("approve", "reject", "reply", "raise_budget", "hand_back", "terminate")
"""What the form offers (reassign and downgrade need a name the form cannot list well: use bzzz_decide)."""


class InboxResult(BaseModel):
    """What became of this round: ``empty`` (nothing waited within ``wait_s``), ``decided``, ``approval
    recorded`` (two-person rule: one of two), ``declined`` (the operator dismissed the form), ``already answered``
    (another surface decided first: ``detail`` says who), ``refused`` (``detail`` says why)."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["empty", "decided", "approval recorded", "declined", "already answered", "refused"]
    escalation_id: str | None = None
    detail: str = ""


def decidable(row: EscalationRow) -> bool:
    return row.state == "open" and not row.origin_peer and not row.context.get("read_only")


def decisions_for(row: EscalationRow) -> list[str]:
    needs_agent = {"hand_back", "terminate"}
    return [d for d in ELICITED_DECISIONS if row.agent_id or d not in needs_agent]


def form_for(row: EscalationRow) -> tuple[str, dict[str, Any]]:
    """(message, requested schema) of the elicitation: plain text (the reason is an agent's words) and a flat
    form of primitive fields, as the spec asks of elicitation schemas."""
    deadline = row.deadline.isoformat(timespec="seconds") if row.deadline else "none"
    message = (
        f"[{row.priority}] {inert_line(row.rule, 60)} — escalation {row.id}\n{inert(row.reason)[:1500]}\n"
        f"thread {row.thread_id or '-'} · agent {row.agent_id or '-'} · deadline {deadline} · "
        f"then: {row.default_action}"
    )
    properties: dict[str, Any] = {
        "decision": {"type": "string", "title": "Decision", "enum": decisions_for(row)},
        "text": {"type": "string", "title": "Reply, or the reason of a rejection"},
        "amount_usd": {"type": "number", "title": "raise_budget: USD to add", "exclusiveMinimum": 0},
    }
    options = [inert_line(str(o), 200) for o in row.context.get("options", []) if str(o).strip()]
    if options:  # the agent's own options: picking one answers with it (as a reply)
        properties["option"] = {"type": "string", "title": "One of the agent's options", "enum": options}
    return message, {"type": "object", "properties": properties, "required": ["decision"]}


async def next_escalation(rt: Runtime, wait_s: float) -> EscalationRow | None:
    """The most urgent open escalation this node decides, waiting for one up to ``wait_s``."""
    from bzzz_console.domain.threads import URGENCY

    deadline = time.monotonic() + wait_s
    while True:
        rows = [r for r in rt.store.escalations("open") if decidable(r)]
        if rows:
            return min(rows, key=lambda r: (URGENCY.get(r.priority, 9), r.created_at))
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(POLL_S)


async def answer(rt: Runtime, who: Principal, escalation_id: str, content: dict[str, Any]) -> InboxResult:
    """Apply the form's answer as ``who``'s decision, through ``bzzz_decide`` (its checks, its audit)."""
    decision = str(content.get("decision") or "")
    text = content.get("option") or content.get("text")
    arguments: dict[str, Any] = {"escalation_id": escalation_id, "decision": decision}
    if decision == "approve" and content.get("option"):
        decision = arguments["decision"] = "reply"  # an agent option picked: it is the answer
    if text:
        arguments["text" if decision in ("reply", "reject") else "note"] = str(text)
    if decision == "raise_budget" and content.get("amount_usd") is not None:
        arguments["amount_usd"] = content["amount_usd"]
    row = rt.store.get_escalation(escalation_id)
    if row is not None and row.state != "open":  # another surface was first: the outcome, not an error
        by = f" by {row.answered_by}" if row.answered_by else ""
        return InboxResult(status="already answered", escalation_id=escalation_id, detail=f"{row.state}{by}")
    outcome = await run_tool(rt, ToolContext(None, via="mcp", principal=who), "bzzz_decide", arguments)
    if outcome.ok:
        status = "approval recorded" if outcome.result.get("status") == "approval recorded" else "decided"
        return InboxResult(
            status=status, escalation_id=escalation_id, detail=str(outcome.result.get("by", ""))
        )
    error = str(outcome.result.get("error", "refused"))
    if "already" in error:
        return InboxResult(status="already answered", escalation_id=escalation_id, detail=error)
    return InboxResult(status="refused", escalation_id=escalation_id, detail=error)


def inbox_tool(rt: Runtime, caller: Any) -> Any:
    """The MCP tool; ``caller(ctx)`` gives the request's principal (None: not authenticated)."""
    from mcp.server.mcpserver import Context
    from mcp.server.mcpserver.exceptions import ToolError as MCPToolError
    from mcp.server.mcpserver.tools import Tool as MCPTool
    from mcp.types import ToolAnnotations
    from mcp_types import ElicitRequest, ElicitRequestFormParams, InputRequiredResult

    async def bzzz_inbox(
        ctx: Context,
        wait_s: Annotated[
            float, Field(ge=0, le=300, description="How long to wait for an escalation, s")
        ] = 30.0,
    ) -> InboxResult | InputRequiredResult:
        who = caller(ctx)
        if who is None or not who.is_operator:
            raise MCPToolError(
                "bzzz_inbox: only an operator answers escalations (bzzz-console mcp token --operator)"
            )
        responses = ctx.input_responses
        if responses and ctx.request_state:  # the second leg: the operator's answer to the form
            reply = responses.get(FORM)
            if reply is None or getattr(reply, "action", None) != "accept":
                return InboxResult(status="declined", escalation_id=ctx.request_state)
            return await answer(rt, who, ctx.request_state, dict(getattr(reply, "content", None) or {}))
        row = await next_escalation(rt, wait_s)
        if row is None:
            return InboxResult(status="empty")
        message, schema = form_for(row)
        form = ElicitRequest(params=ElicitRequestFormParams(message=message, requested_schema=schema))
        return InputRequiredResult(input_requests={FORM: form}, request_state=row.id)

    # The SDK reads the schema from the annotations; under ``from __future__ import annotations`` they are strings
    # naming what is imported here, in this function: give it the objects.
    bzzz_inbox.__annotations__ = {
        "ctx": Context,
        "wait_s": Annotated[float, Field(ge=0, le=300, description="How long to wait for an escalation, s")],
        "return": InboxResult | InputRequiredResult,
    }
    return MCPTool.from_function(
        bzzz_inbox,
        name="bzzz_inbox",
        description=(
            "Wait for the next open escalation and answer it in a form (elicitation); the answer is this "
            "operator's decision. Operators only."
        ),
        annotations=ToolAnnotations(
            title="Answer escalations",
            readOnlyHint=False,
            destructiveHint=True,
            idempotentHint=False,
            openWorldHint=False,
        ),
        structured_output=True,
    )
