"""Whether a well-formed decision can be carried out on this node, checked before it is recorded.

A decision that is recorded but cannot apply leaves the escalation answered and the agent waiting for good, so
what apply would trip over is refused up front: a downgrade with no cheaper model, a terminate or reassign on an
escalation with no agent, a reassign to an agent that is busy, unknown or already in the thread. The rules are
written once, over a :class:`NodeView`: the runtime reads its live state (:func:`runtime_view`), while
``escalations answer`` — a CLI with a store and settings, no runtime — reads the store (:func:`store_view`).
The node re-checks when it applies; what still fails there reopens the escalation
(:meth:`~bzzz_console.runtime.escalation.escalations.Escalations.apply_row`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bzzz_console.domain import commands as cmd
from bzzz_console.domain.decisions import InvalidDecision, check_decision
from bzzz_console.domain.errors import CommandError

if TYPE_CHECKING:
    from bzzz_console.config import Settings
    from bzzz_console.domain.state import Agent
    from bzzz_console.runtime.llm.pricing import PricingTable
    from bzzz_console.runtime.runtime import Runtime
    from bzzz_console.store.repo import Store
    from bzzz_console.store.tables import EscalationRow

WORKING = ("idle", "active", "collaborating")


@dataclass(frozen=True, slots=True)
class AgentFacts:
    id: str
    names: frozenset[str]
    """The role and its aliases: what a reassign by role matches."""
    model: str
    state: str
    free: bool
    """Can take one more thread: not paused, under its ``max_tasks``, idle or working (``Agent.can_join``)."""
    remote: bool
    """Another node's agent: it takes a seat only when named, never as the least loaded of a role."""


class NodeView(Protocol):
    def agent(self, agent_id: str) -> AgentFacts | None: ...
    def agents(self) -> Iterable[AgentFacts]: ...
    def participants(self, thread_id: str) -> tuple[str, ...] | None:
        """The thread's participants, or None when this node does not hold the thread."""
        ...

    def priced(self, model: str) -> bool: ...


def check_decidable_here(row: EscalationRow | None, *, elsewhere: str) -> None:
    """Refuse (CommandError) a decision on an escalation that is not this node's to decide: a read-only one (a Go
    node's: there is nothing to answer), or a mirror of another node's, which that node decides — ``elsewhere``
    says how the operator can answer it there. None (no such escalation) passes: recording says so."""
    if row is None:
        return
    if (row.context or {}).get("read_only"):
        raise CommandError(f"escalation {row.id} is read-only: {row.context['read_only']}")
    if row.origin_peer:
        raise CommandError(
            f"escalation {row.id} was raised on node {row.origin_peer}, which decides it: {elsewhere}"
        )


def validate(command: cmd.Decision, row: EscalationRow | None, view: NodeView, settings: Settings) -> None:
    """Every check a decision passes before it is recorded; raises InvalidDecision naming the field.

    ``row`` None (no such escalation) or one that no longer waits for a human: only the form is checked here,
    and recording reports "no escalation" / "already answered" as before.
    """
    check_decision(command, max_raise_usd=settings.budgets.max_raise_usd)
    waiting = row is not None and (
        row.state == "open" or (row.state == "expired" and row.default_action == "hold")
    )
    if row is not None and waiting:
        check_applicable(command, row, view, settings)


def check_applicable(command: cmd.Decision, row: EscalationRow, view: NodeView, settings: Settings) -> None:
    """The decision can be carried out on ``row`` as things stand on this node."""
    agent = view.agent(row.agent_id) if row.agent_id else None
    gone = f"agent {row.agent_id} is no longer on this node"
    if isinstance(command, cmd.Terminate | cmd.DowngradeModel | cmd.HandBack | cmd.Reassign):
        verb = {"terminate": "stop", "downgrade_model": "downgrade", "hand_back": "hand the work back from"}
        if not row.agent_id:
            raise InvalidDecision(
                "agent_id",
                f"escalation {row.id} is not about an agent: there is no agent to "
                f"{verb.get(command.kind, 'reassign')}; approve, reply, reject or raise the budget instead",
            )
        if agent is None:
            raise InvalidDecision("agent_id", gone)
    if isinstance(command, cmd.Terminate):
        if command.agent_id and command.agent_id != row.agent_id:
            raise InvalidDecision(
                "agent_id", f"escalation {row.id} is about {row.agent_id}, not {command.agent_id}"
            )
        if agent is not None and agent.state == "terminating":
            raise InvalidDecision("agent_id", f"agent {agent.id} is already terminating")
    if isinstance(command, cmd.DowngradeModel) and agent is not None:
        _check_downgrade(command.model, agent, view, settings)
    if isinstance(command, cmd.Reassign):
        problem = _reassign_problem(command.to.strip(), row, view)
        if problem:
            raise InvalidDecision("to", problem)
    if isinstance(command, cmd.RaiseBudget) and not (row.context.get("budget") or row.thread_id):
        raise InvalidDecision(
            "amount_usd", f"escalation {row.id} names no budget and no thread whose budget could be raised"
        )


def reassign_candidates(thread_id: str | None, agent_id: str | None, view: NodeView) -> list[str]:
    """The agents a seat can be handed to by name: free, not already in the thread (what a picker offers)."""
    seats = view.participants(thread_id) if thread_id else None
    if seats is None or not agent_id:
        return []
    return sorted(a.id for a in view.agents() if a.free and a.id not in seats and a.id != agent_id)


def cheaper_models(model: str, settings: Settings) -> list[str]:
    """The models below ``model`` on ``optimizer.model_ladder``, next cheaper first (what a downgrade offers)."""
    ladder, chain, start = settings.optimizer.model_ladder, [], model
    while (model := ladder.get(model, "")) and model not in chain and model != start:
        chain.append(model)
    return chain


def _check_downgrade(model: str | None, agent: AgentFacts, view: NodeView, settings: Settings) -> None:
    ladder = settings.optimizer.model_ladder
    if model is None:
        if agent.model not in ladder:
            raise InvalidDecision(
                "model",
                f"no cheaper model than {agent.model} in optimizer.model_ladder: name the model to switch to",
            )
        return
    model = model.strip()
    if model == agent.model:
        raise InvalidDecision("model", f"{agent.id} already uses {model}")
    # A model nobody priced would run with its cost shown as unknown and no budget able to stop it; the ladder
    # counts as known because the operator configured it.
    if not (view.priced(model) or model in ladder or model in ladder.values()):
        raise InvalidDecision(
            "model",
            f"model {model!r} is not in the pricing table (agents/pricing.toml) nor in optimizer.model_ladder: "
            "its cost would be unknown; name a priced model",
        )


def _reassign_problem(to: str, row: EscalationRow, view: NodeView) -> str | None:
    """Why nobody can take the seat (the same choice as ``decisions.replacement_for``), or None."""
    seats = view.participants(row.thread_id) if row.thread_id else None
    if seats is None:
        return f"escalation {row.id} has no thread on this node to reassign a seat in"
    lead = f"no free agent {to!r} can take over in {row.thread_id}"
    named = view.agent(to)
    if named is not None:
        if named.id in seats:
            return f"{lead}: {named.id} is already in it"
        if not named.free:
            return f"{lead}: {named.id} is busy ({named.state})"
        return None
    of_role = [a for a in view.agents() if to in a.names]
    if not of_role:
        return f"{lead}: no agent or role {to!r} on this node"
    if not any(a.free and not a.remote and a.id not in seats for a in of_role):
        return f"{lead}: every {to} agent is busy or already in it"
    return None


# -- the two views ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _FixedView:
    by_id: dict[str, AgentFacts]
    seats: dict[str, tuple[str, ...]]
    pricing: PricingTable

    def agent(self, agent_id: str) -> AgentFacts | None:
        return self.by_id.get(agent_id)

    def agents(self) -> Iterable[AgentFacts]:
        return self.by_id.values()

    def participants(self, thread_id: str) -> tuple[str, ...] | None:
        return self.seats.get(thread_id)

    def priced(self, model: str) -> bool:
        return self.pricing.price(model) is not None


def _live(agent: Agent) -> AgentFacts:
    return AgentFacts(
        agent.id,
        frozenset({agent.spec.role, *agent.spec.aliases}),
        agent.model,
        agent.state.value,
        agent.can_join,
        agent.origin == "remote",
    )


def runtime_view(rt: Runtime) -> NodeView:
    """The runtime's live agents and threads (what apply will see)."""
    threads = rt.conversations.threads
    return _FixedView(
        {a.id: _live(a) for a in rt.agents.values()},
        {t.id: tuple(t.participant_ids) for t in threads.values()},
        rt.pricing,
    )


def store_view(store: Store, settings: Settings) -> NodeView:
    """The agents and threads as the store has them, for a CLI with no runtime; a node re-checks on apply."""
    from bzzz_console.domain.errors import ConfigError
    from bzzz_console.domain.specs import load_specs
    from bzzz_console.resources import agents_dir
    from bzzz_console.runtime.llm.pricing import pricing_for

    folder = settings.runtime.agents_dir or agents_dir()
    try:
        aliases = {role: spec.aliases for role, spec in load_specs(folder).items()}
    except ConfigError:
        aliases = {}
    pricing = pricing_for(folder, settings.pricing)
    open_threads = {t.id for t in store.threads() if t.status != "closed"}
    seats: dict[str, list[str]] = {t: [] for t in open_threads}
    load: dict[str, int] = {}
    for p in store.participants():
        if p.thread_id in seats:
            seats[p.thread_id].append(p.agent_id)
            load[p.agent_id] = load.get(p.agent_id, 0) + 1
    agents = {
        a.id: AgentFacts(
            a.id,
            frozenset({a.role, *aliases.get(a.role, ())}),
            a.model,
            a.state,
            not a.paused and a.state in WORKING and load.get(a.id, 0) < a.max_tasks,
            a.origin == "remote",
        )
        for a in store.agents()
    }
    return _FixedView(agents, {k: tuple(v) for k, v in seats.items()}, pricing)
