"""What every bzzz tool is made of: the tool record, its call context and outcome, the error a handler raises, and
the argument helpers they share. The tools themselves are in :mod:`local` (the seed's four) and :mod:`network`;
:mod:`registry` lists them all and runs a call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bzzz_console.domain.addresses import AddressError, SemanticAddress
from bzzz_console.domain.llm import ToolSpec
from bzzz_console.domain.principals import Principal
from bzzz_console.runtime.tools.args import ToolArgs

if TYPE_CHECKING:
    from bzzz_console.runtime.runtime import Runtime


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
    result: Any = None
    """The model (or the union of models) of what it returns: the MCP output schema (:mod:`results`)."""

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
