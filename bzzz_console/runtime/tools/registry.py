"""Every bzzz tool by name, and ``run_tool``: one implementation for in-process agents (as OpenAI tools) and
MCP clients. ``run_tool`` validates the arguments against the models in :mod:`args` and runs the handler; every
failure comes back as ``{"error": ...}`` naming the field and why, so a bad call never raises into the runtime.
"""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from bzzz_console.domain.llm import ToolSpec
from bzzz_console.runtime.tools.base import Tool, ToolContext, ToolError, ToolOutcome
from bzzz_console.runtime.tools.local import CORE_TOOLS, REQUEST_HUMAN
from bzzz_console.runtime.tools.network import NETWORK_TOOLS

if TYPE_CHECKING:
    from bzzz_console.runtime.runtime import Runtime


@cache
def registry() -> dict[str, Tool]:
    """Every tool by name: the agents' and the MCP clients'."""
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
