"""The agent lifecycle, exactly as the seed's state diagram (§2.2) draws it.

    [*] → Initializing → Idle → Active ⇄ Collaborating
    Active → Idle (task complete) · Active → Escalating → Active | Terminating · Idle → Terminating → [*]

Anything else raises :class:`IllegalTransition`, so a bug in the scheduler shows up as an error instead of an
agent silently sitting in a state the operator cannot reason about.
"""

from __future__ import annotations

from enum import StrEnum


class AgentState(StrEnum):
    INITIALIZING = "initializing"
    IDLE = "idle"
    ACTIVE = "active"
    COLLABORATING = "collaborating"
    ESCALATING = "escalating"
    TERMINATING = "terminating"


ALLOWED_TRANSITIONS: dict[AgentState, frozenset[AgentState]] = {
    AgentState.INITIALIZING: frozenset({AgentState.IDLE}),
    AgentState.IDLE: frozenset({AgentState.ACTIVE, AgentState.TERMINATING}),
    AgentState.ACTIVE: frozenset({AgentState.COLLABORATING, AgentState.IDLE, AgentState.ESCALATING}),
    AgentState.COLLABORATING: frozenset({AgentState.ACTIVE}),
    AgentState.ESCALATING: frozenset({AgentState.ACTIVE, AgentState.TERMINATING}),
    AgentState.TERMINATING: frozenset(),
}


class IllegalTransition(RuntimeError):
    def __init__(self, agent_id: str, current: AgentState, target: AgentState) -> None:
        allowed = ", ".join(sorted(s.value for s in ALLOWED_TRANSITIONS[current])) or "none (final state)"
        super().__init__(
            f"agent {agent_id}: illegal lifecycle transition {current.value} → {target.value} "
            f"(allowed from {current.value}: {allowed})"
        )
        self.agent_id = agent_id
        self.current = current
        self.target = target


def check_transition(agent_id: str, current: AgentState, target: AgentState) -> AgentState:
    """Return ``target`` when the seed's diagram allows ``current → target``; raise otherwise."""
    if target not in ALLOWED_TRANSITIONS[current]:
        raise IllegalTransition(agent_id, current, target)
    return target


def path_to(current: AgentState, target: AgentState) -> list[AgentState]:
    """The shortest legal sequence of states leading from ``current`` to ``target`` (excluding ``current``).

    The scheduler uses it to walk, e.g., Collaborating → Active → Idle when a thread closes, so every
    intermediate state is really entered (and published) rather than skipped.
    """
    if current == target:
        return []
    frontier: list[list[AgentState]] = [[current]]
    seen = {current}
    while frontier:
        route = frontier.pop(0)
        for nxt in sorted(ALLOWED_TRANSITIONS[route[-1]], key=lambda s: s.value):
            if nxt in seen:
                continue
            if nxt == target:
                return [*route[1:], nxt]
            seen.add(nxt)
            frontier.append([*route, nxt])
    raise IllegalTransition("?", current, target)
