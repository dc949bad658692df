"""What the read tools see: ``bzzz_get`` describes an addressed thing, ``bzzz_lookup`` finds agents.

``bzzz_get`` reads every address the other tools hand out: a path names one thread, task, agent, escalation or
subscription; an address without one names agents (``bzzz://<agent>@*`` and ``bzzz://<agent>:<role>@*``, as
``bzzz_announce`` and ``bzzz_lookup`` return them, are that agent's card; a role or a wildcard lists the agents it
matches), or with a task segment (``bzzz://*@project:<task>``) that task. The shapes are in :mod:`results`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bzzz_console.domain.addresses import SemanticAddress
from bzzz_console.domain.state import Agent
from bzzz_console.runtime.tools.args import FilterCriteria
from bzzz_console.runtime.tools.base import ToolError
from bzzz_console.store.errors import NotFound

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
                "kind": "thread",
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
            found: dict[str, Any] = {
                "kind": "task",
                "task_id": task.id,
                "title": task.title,
                "description": task.description,
                "roles": task.roles,
                "priority": task.priority,
                "status": task.status,
                "project": task.project,
                "thread_id": task.thread_id,
                "source": task.source,
            }
            if task.details.get("origin") == "go":
                found["network"] = go_task_info(task.details)
            return found
        if kind == "agents":
            agent = rt.agents.get(ident)
            if agent is None:
                raise NotFound(f"no agent {ident!r}")
            info: dict[str, Any] = {"kind": "agent", **agent_info(agent)}
            if include_metadata:
                info["metadata"] = {
                    "threads": sorted(agent.threads),
                    "origin": agent.origin,
                    "consensus_rate": consensus_rates(rt).get(agent.id),
                }
            return info
        if kind == "escalations":
            escalation = rt.store.get_escalation(ident)
            if escalation is None:
                raise NotFound(f"no escalation {ident!r}")
            from bzzz_console.views.reports import escalation_summary

            shown: dict[str, Any] = {
                "kind": "escalation",
                **escalation_summary(escalation),
                "default_action": escalation.default_action,
                "decision": escalation.decision,
                "read_only": (escalation.context or {}).get("read_only"),
            }
            if include_metadata:
                shown["context"] = escalation.context
            return shown
        if kind == "subscriptions":
            try:
                return {"kind": "subscription", **rt.subscriptions.take(ident, max_history)}
            except KeyError:
                raise NotFound(f"no subscription {ident!r} on this node") from None
    except NotFound as exc:
        raise ToolError(f"address: {exc}") from None
    raise ToolError(f"address: /{kind} names nothing that can be read")


def describe_agents(rt: Runtime, address: SemanticAddress, include_metadata: bool) -> dict[str, Any]:
    """An address without a path: one agent's card when it names an agent by id, else the agents it matches."""
    agent = rt.agents.get(address.agent or "")
    if agent is not None and any(
        address.matches_agent(agent.id, n) for n in (agent.role, *agent.spec.aliases)
    ):
        return describe(rt, ("agents", agent.id), 0, include_metadata)
    matches = lookup_agents(rt, address, None)
    if not matches:
        raise ToolError(f"address: no agent matches {address.format()}")
    return {"kind": "agents", "address": address.format(), "matches": matches, "count": len(matches)}


def go_task_info(details: dict[str, Any]) -> dict[str, Any]:
    """What a Go BZZZ task carries, from the task's details (``p2p/gonodes.py`` writes them)."""
    deps = [*details.get("dependencies", []), *details.get("blocked_by", [])]
    labels = {f"{d.get('repository')}#{d.get('task_number')}" for d in deps if isinstance(d, dict)}
    hours = details.get("estimated_hours")
    return {
        "origin": "go",
        "repository": str(details.get("repository", "")),
        "number": int(details.get("number", 0)),
        "url": details.get("url") or None,
        "labels": list(details.get("labels", [])),
        "difficulty": details.get("difficulty"),
        "task_type": details.get("task_type"),
        "estimated_hours": float(hours) if isinstance(hours, int | float) else None,
        "required_skills": list(details.get("required_skills", [])),
        "depends_on": sorted(labels),
        "waiting_for": list(details.get("waiting_for", [])),
        "scenario": details.get("scenario"),
        "announcer": details.get("announcer"),
        "announcements": int(details.get("announcements", 0)),
    }


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
        "origin": agent.origin,
    }


def consensus_rates(rt: Runtime) -> dict[str, float]:
    """Per agent: the share of its finished threads that ended in consensus (its 'performance')."""
    from collections import Counter

    finished: Counter[str] = Counter()
    agreed: Counter[str] = Counter()
    outcomes = {t.id: t.outcome for t in rt.store.threads() if t.outcome}
    for p in rt.store.participants():
        if p.thread_id in outcomes:
            finished[p.agent_id] += 1
            agreed[p.agent_id] += outcomes[p.thread_id] == "consensus"
    return {agent: agreed[agent] / n for agent, n in finished.items()}


def lookup_agents(
    rt: Runtime, address: SemanticAddress, criteria: FilterCriteria | None
) -> list[dict[str, Any]]:
    found = []
    rates = consensus_rates(rt) if criteria is not None and criteria.performance_threshold is not None else {}
    for agent in rt.agents.values():
        if not any(address.matches_agent(agent.id, name) for name in (agent.role, *agent.spec.aliases)):
            continue
        if criteria is not None:
            if criteria.availability and not agent.can_join:
                continue
            if criteria.expertise and not set(criteria.expertise) <= set(agent.spec.capabilities):
                continue
            threshold = criteria.performance_threshold
            if threshold is not None and rates.get(agent.id, 0.0) < threshold:
                continue  # an agent with no finished thread has no track record yet: it does not qualify
        found.append(agent_info(agent))
    return found
