"""Builds an MCPServer whose tools are the runtime's own tool registry (same validation, same handlers).

Each MCP tool function gets the signature of its argument model, so the input schema MCP clients see is the
schema in-process agents see; a failed call comes back as ``is_error`` with the message that names the field.
MCP requests carry no session identity, so an outside agent names itself: the ``agent_id`` it announced.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field

from bzzz_console.runtime.tools import Tool, ToolContext, registry, run_tool

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from bzzz_console.runtime.runtime import Runtime

INSTRUCTIONS = (
    "bzzz: a fleet of LLM agents collaborating in threads. Announce yourself with bzzz_announce to take part; "
    "find agents with bzzz_lookup, read threads/tasks/agents/escalations with bzzz_get, post typed messages with "
    "bzzz_post, manage threads with bzzz_thread, and follow events with bzzz_subscribe. Addresses look like "
    "bzzz://agent:role@project:task/threads/<id>."
)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=True)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _signature(tool: Tool, context_type: type) -> inspect.Signature:
    params = []
    for name, field in tool.args.model_fields.items():
        annotation: Any = Annotated[field.annotation, *field.metadata, Field(description=field.description)]
        default = (
            inspect.Parameter.empty if field.is_required() else field.get_default(call_default_factory=True)
        )
        params.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        )
    params.append(inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=context_type))
    return inspect.Signature(params, return_annotation=dict[str, Any])


def _tool_function(rt: Runtime, tool: Tool, readonly: bool) -> Any:
    from mcp.server.mcpserver import Context
    from mcp.server.mcpserver.exceptions import ToolError as MCPToolError

    async def call(**kwargs: Any) -> dict[str, Any]:
        kwargs.pop("ctx")
        arguments = {k: _plain(v) for k, v in kwargs.items() if v is not None}
        context = ToolContext(None, readonly=readonly, via="mcp")
        outcome = await run_tool(rt, context, tool.name, arguments)
        if not outcome.ok:
            raise MCPToolError(str(outcome.result.get("error", "the tool failed")))
        return outcome.result

    call.__name__ = tool.name
    call.__doc__ = tool.description
    signature = _signature(tool, Context)
    call.__signature__ = signature  # type: ignore[attr-defined]
    # MCP reads the schema from the signature and finds the Context parameter through the annotations.
    call.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    call.__annotations__["return"] = signature.return_annotation
    return call


def _strict(tool: Any) -> Any:
    """Refuse unknown arguments, as the in-process path does: a misspelled field is an error that names it,
    not something silently dropped (the SDK's argument models ignore extra fields by default)."""
    meta = tool.fn_metadata
    base = meta.arg_model
    meta.arg_model = type(base.__name__, (base,), {"model_config": {**base.model_config, "extra": "forbid"}})
    tool.parameters = {**tool.parameters, "additionalProperties": False}
    return tool


def build_server(rt: Runtime, *, readonly: bool = False) -> MCPServer:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.tools import Tool as MCPTool
    from mcp.types import ToolAnnotations

    from bzzz_console import __version__

    tools = []
    for tool in registry().values():
        if tool.name == "request_human":  # an in-thread call of the runtime's own agents
            continue
        annotations = ToolAnnotations(
            title=tool.description.split(" (")[0],
            readOnlyHint=tool.read_only,
            destructiveHint=tool.destructive if not tool.read_only else False,
            idempotentHint=tool.read_only,
            openWorldHint=False,
        )
        function = _tool_function(
            rt, tool, readonly or rt.settings.mcp.readonly or rt.settings.security.readonly
        )
        tools.append(
            _strict(
                MCPTool.from_function(
                    function,
                    name=tool.name,
                    description=tool.description,
                    annotations=annotations,
                    structured_output=True,
                )
            )
        )
    return MCPServer("bzzz", instructions=INSTRUCTIONS, version=__version__, tools=tools)
