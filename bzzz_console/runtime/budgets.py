"""Budgets: a global one per UTC day, one per agent per day, one per thread for its life.

Running totals live in memory (loaded from the store at start, moved on every recorded call) so the check
before each turn costs nothing. Warnings fire once per budget and period at the configured shares; the breach
threshold keeps a small reserve back, so an agent stopped by it can still write a final answer.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import TYPE_CHECKING

from bzzz_console.domain import events as ev

if TYPE_CHECKING:
    from bzzz_console.domain.state import Agent
    from bzzz_console.runtime.runtime import Runtime


@dataclass(frozen=True, slots=True)
class BudgetState:
    scope: str
    key: str
    limit_usd: float
    spent_usd: float

    @property
    def share(self) -> float:
        return (
            self.spent_usd / self.limit_usd
            if self.limit_usd > 0
            else float("inf")
            if self.spent_usd > 0
            else 0.0
        )


class Budgets:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._day: date | None = None
        self._spent: dict[tuple[str, str], float] = defaultdict(float)
        self._overrides: dict[tuple[str, str], float] = {}
        self._warned: set[tuple[str, str, float, date]] = set()
        self._grace: dict[tuple[str, str], float] = {}
        """USD allowed past a breached limit after a downgrade or a hand-back (its reserve, from the breach on)."""

    # -- loading ------------------------------------------------------------------------------------------
    def load(self) -> None:
        today = self.rt.clock.now().date()
        self._day = today
        self._spent.clear()
        midnight = datetime.combine(today, time(), tzinfo=self.rt.clock.now().tzinfo)
        store = self.rt.store
        self._overrides = store.budget_overrides()
        for agent_id, spent in store.agent_spend_since(midnight).items():
            self._spent[("agent", agent_id)] = spent
            self._spent[("global", "*")] += spent
        for thread_id, (spent, _unknown) in store.thread_costs().items():
            self._spent[("thread", thread_id)] = spent

    def _roll_day(self) -> None:
        if self.rt.clock.now().date() != self._day:
            self.load()

    # -- limits -------------------------------------------------------------------------------------------
    def limit(self, scope: str, key: str) -> float | None:
        if (scope, key) in self._overrides:
            return self._overrides[(scope, key)]
        budgets = self.rt.settings.budgets
        if scope == "global":
            return budgets.daily_usd
        if scope == "thread":
            return budgets.thread_usd
        agent = self.rt.agents.get(key)
        return agent.spec.budget_usd if agent is not None else None

    def states(self, agent: Agent | None, thread_id: str | None) -> list[BudgetState]:
        self._roll_day()
        scopes = [("global", "*")]
        if agent is not None:
            scopes.append(("agent", agent.id))
        if thread_id is not None:
            scopes.append(("thread", thread_id))
        out = []
        for scope, key in scopes:
            limit = self.limit(scope, key)
            if limit is not None:
                out.append(BudgetState(scope, key, limit, self._spent[(scope, key)]))
        return out

    def tightest(self, agent: Agent | None, thread_id: str | None) -> BudgetState | None:
        """The budget closest to breach (by share of its usable part, i.e. without the reserve)."""
        states = self.states(agent, thread_id)
        return max(states, key=lambda b: b.share, default=None)

    def breach_share(self, agent: Agent | None, thread_id: str | None) -> float:
        """Share of the usable budget spent (1.0 = breached): the ``budget`` rule condition."""
        state = self.tightest(agent, thread_id)
        if state is None:
            return 0.0
        grace = self._grace.get((state.scope, state.key))
        if grace is not None:
            usable = state.limit_usd + grace
        else:
            usable = state.limit_usd * (1 - self.rt.settings.budgets.reserve_fraction)
        return state.spent_usd / usable if usable > 0 else float("inf") if state.spent_usd > 0 else 0.0

    # -- spending -----------------------------------------------------------------------------------------
    def spent(self, agent_id: str, thread_id: str | None, cost: float | None) -> None:
        """Count a call's cost (unknown costs count as 0 here and are flagged in reports) and warn."""
        self._roll_day()
        amount = cost or 0.0
        self._spent[("global", "*")] += amount
        self._spent[("agent", agent_id)] += amount
        if thread_id is not None:
            self._spent[("thread", thread_id)] += amount
        agent = self.rt.agents.get(agent_id)
        for state in self.states(agent, thread_id):
            for share in (*self.rt.settings.budgets.warn_at, 1.0):
                mark = (state.scope, state.key, share, self._day or date.min)
                if state.share >= share and mark not in self._warned:
                    self._warned.add(mark)
                    self.rt.publish(
                        ev.BudgetWarning(
                            scope=state.scope,
                            key=state.key,
                            share=share,
                            spent_usd=round(state.spent_usd, 6),
                            limit_usd=state.limit_usd,
                        )
                    )

    def release_reserve(self, scope: str, key: str) -> None:
        """Let a breached budget's reserve be spent from here on: a cheaper model's turns, or a final answer.

        A single call can overshoot a limit, so the reserve is granted from the current spend, not from the
        limit; when it is spent too, the breach comes back to the operator.
        """
        limit = self.limit(scope, key) or 0.0
        spent = self._spent[(scope, key)]
        self._grace[(scope, key)] = (
            max(0.0, spent - limit) + limit * self.rt.settings.budgets.reserve_fraction
        )

    def raise_limit(self, scope: str, key: str, amount_usd: float, by: str) -> float:
        """Add ``amount_usd`` to a budget (persisted; survives restarts); returns the new limit."""
        if not math.isfinite(amount_usd) or amount_usd <= 0:  # NaN would be stored as a NULL limit
            raise ValueError(f"a budget can only be raised by a finite, positive amount (not {amount_usd!r})")
        new_limit = (self.limit(scope, key) or 0.0) + amount_usd
        self.rt.store.save_budget(scope, key, new_limit, by)
        self._overrides[(scope, key)] = new_limit
        self._grace.pop((scope, key), None)
        self._warned = {w for w in self._warned if (w[0], w[1]) != (scope, key)}
        return new_limit
