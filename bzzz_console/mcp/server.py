"""Builds an MCPServer whose tools are the runtime's own tool registry (same validation, same handlers).

Each MCP tool function gets the signature of its argument model, so the input schema MCP clients see is the
schema in-process agents see; a failed call comes back as ``is_error`` with the message that names the field.
Each tool's output schema is its result model (:mod:`~bzzz_console.runtime.tools.results`), and every result is
checked against it before it leaves.

Who calls is a :class:`~bzzz_console.domain.principals.Principal`: from the bearer token over HTTP (put into the
request's scope by :class:`~bzzz_console.mcp.serve.BearerAuth`), from the command line over stdio. An agent token
acts only as its own agent (``agent_id`` is filled in, and any other id refused) and cannot list or answer
escalations; an operator may do both, and may act as outside agents that no agent token holds.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field

from bzzz_console.domain.principals import Principal, local_operator
from bzzz_console.runtime.tools.base import Tool, ToolContext, ToolError
from bzzz_console.runtime.tools.registry import registry, run_tool

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from bzzz_console.runtime.runtime import Runtime
    from bzzz_console.security.tokens import TokenBook

PRINCIPAL_SCOPE_KEY = "bzzz.principal"
"""Where the HTTP server's bearer-token check leaves the request's principal in the ASGI scope; tools read it."""
OPERATOR_TOOLS = frozenset({"bzzz_escalations", "bzzz_decide"})

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


def _caller(ctx: Any, fixed: Principal | None) -> Principal | None:
    """The request's principal: the one its bearer token named (HTTP), else the one the server was started for."""
    request = getattr(getattr(ctx, "_request_context", None), "request", None)
    scope = getattr(request, "scope", None)
    found = scope.get(PRINCIPAL_SCOPE_KEY) if isinstance(scope, dict) else None
    return found if isinstance(found, Principal) else fixed


def bind_arguments(
    principal: Principal, tool: Tool, arguments: dict[str, Any], bound_agents: set[str]
) -> dict[str, Any]:
    """What a principal may ask for: raises ToolError naming the argument it may not use."""
    claimed = arguments.get("agent_id")
    if principal.kind == "agent":
        if tool.name in OPERATOR_TOOLS:
            raise ToolError(
                f"{tool.name}: this token acts for agent {principal.name}; only operators list and answer "
                "escalations (bzzz-console mcp token --operator)"
            )
        if claimed is not None and claimed != principal.name:
            raise ToolError(f"agent_id: this token acts as {principal.name} only, not as {claimed!r}")
        if "agent_id" in tool.args.model_fields:
            arguments = {**arguments, "agent_id": principal.name}
    elif isinstance(claimed, str) and claimed in bound_agents:
        raise ToolError(f"agent_id: {claimed!r} is held by an agent token; only that token may act as it")
    return arguments


def _tool_function(
    rt: Runtime, tool: Tool, readonly: bool, tokens: TokenBook | None, principal: Principal | None
) -> Any:
    from mcp.server.mcpserver import Context
    from mcp.server.mcpserver.exceptions import ToolError as MCPToolError

    async def call(**kwargs: Any) -> dict[str, Any]:
        who = _caller(kwargs.pop("ctx"), principal)
        if who is None:  # an HTTP request that did not pass BearerAuth: never served
            raise MCPToolError("unauthorized: no principal for this request")
        arguments = {k: _plain(v) for k, v in kwargs.items() if v is not None}
        try:
            arguments = bind_arguments(who, tool, arguments, tokens.bound_agents() if tokens else set())
        except ToolError as exc:
            raise MCPToolError(str(exc)) from None
        context = ToolContext(None, readonly=readonly, via="mcp", principal=who)
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


def _with_output(tool: Any, result: Any) -> Any:
    """The tool's own result model as its output schema (not the generic object of a ``dict`` return type)."""
    from bzzz_console.runtime.tools.results import output_schema

    if result is None:
        raise ValueError(f"{tool.name} declares no result model")
    meta = tool.fn_metadata
    meta.output_model, meta.output_schema, meta.wrap_output = result, output_schema(result), False
    return tool


def _strict(tool: Any) -> Any:
    """Refuse unknown arguments, as the in-process path does: a misspelled field is an error that names it,
    not something silently dropped (the SDK's argument models ignore extra fields by default)."""
    meta = tool.fn_metadata
    base = meta.arg_model
    meta.arg_model = type(base.__name__, (base,), {"model_config": {**base.model_config, "extra": "forbid"}})
    tool.parameters = {**tool.parameters, "additionalProperties": False}
    return tool


def build_server(
    rt: Runtime,
    *,
    readonly: bool = False,
    tokens: TokenBook | None = None,
    principal: Principal | None = None,
) -> MCPServer:
    """``principal``: who every request is (stdio, in memory); unset, each HTTP request's token says it, and a
    server with no ``tokens`` (in memory, for tests and benchmarks) serves the local OS user as operator."""
    if principal is None and tokens is None:
        principal = local_operator("mcp")
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
            rt, tool, readonly or rt.settings.mcp.readonly or rt.settings.security.readonly, tokens, principal
        )
        mcp_tool = MCPTool.from_function(
            function,
            name=tool.name,
            description=tool.description,
            annotations=annotations,
            structured_output=True,
        )
        tools.append(_strict(_with_output(mcp_tool, tool.result)))
    from bzzz_console.mcp.inbox import inbox_tool

    tools.append(_strict(inbox_tool(rt, lambda ctx: _caller(ctx, principal))))
    return MCPServer("bzzz", instructions=INSTRUCTIONS, version=__version__, tools=tools)
