"""What the read tools see: ``bzzz_get`` describes an addressed thing, ``bzzz_lookup`` finds agents."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bzzz_console.domain.addresses import SemanticAddress
from bzzz_console.runtime.model import Agent
from bzzz_console.runtime.tools import FilterCriteria, ToolError
from bzzz_console.store.repo import NotFound

if TYPE_CHECKING:
    from bzzz_console.runtime.runtime import Runtime


def describe(
    rt: Runtime, target: tuple[str, str], max_history: int, include_metadata: bool
) -> dict[str, Any]:
    kind, ident = target
    try:
        if kind == "threads":
            row = rt.store.get_thread(ident)
            messages = rt.store.messages(ident, last=max_history) if max_history else []
            out: dict[str, Any] = {
                "thread_id": row.id,
                "topic": row.topic,
                "status": row.status,
                "messages": [
                    {"id": m.id, "from": m.author, "role": m.role, "type": m.type, "content": m.content}
                    for m in messages
                ],
            }
            if include_metadata:
                out["metadata"] = {
                    "project": row.project,
                    "task_id": row.task_id,
                    "turns": row.turn_count,
                    "message_count": row.message_count,
                    "created_at": row.created_at.isoformat(),
                    "participants": [p.agent_id for p in rt.store.participants(ident)],
                }
            return out
        if kind == "tasks":
            task = rt.store.get_task(ident)
            return {
                "task_id": task.id,
                "title": task.title,
                "description": task.description,
                "roles": task.roles,
                "priority": task.priority,
                "status": task.status,
                "project": task.project,
                "thread_id": task.thread_id,
            }
        if kind == "agents":
            agent = rt.agents.get(ident)
            if agent is None:
                raise NotFound(f"no agent {ident!r}")
            return agent_info(agent)
    except NotFound as exc:
        raise ToolError(f"address: {exc}") from None
    raise ToolError(f"address: /{kind} cannot be read yet")


def agent_info(agent: Agent) -> dict[str, Any]:
    return {
        "agent_id": agent.id,
        "role": agent.role,
        "state": agent.state.value,
        "model": agent.model,
        "capabilities": list(agent.spec.capabilities),
        "load": agent.load,
        "max_tasks": agent.spec.max_tasks,
        "available": agent.can_join,
        "address": f"bzzz://{agent.id}:{agent.role}@*",
    }


def lookup_agents(
    rt: Runtime, address: SemanticAddress, criteria: FilterCriteria | None
) -> list[dict[str, Any]]:
    found = []
    for agent in rt.agents.values():
        if not any(address.matches_agent(agent.id, name) for name in (agent.role, *agent.spec.aliases)):
            continue
        if criteria is not None:
            if criteria.availability and not agent.can_join:
                continue
            if criteria.expertise and not set(criteria.expertise) <= set(agent.spec.capabilities):
                continue
        found.append(agent_info(agent))
    return found
