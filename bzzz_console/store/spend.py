"""Spend queries of the store: token usage rows, their totals per thread and agent, and the operator's budgets."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from bzzz_console.store.tables import BudgetRow, TokenUsageRow, now_utc


class SpendQueries:
    """Mixed into :class:`~bzzz_console.store.repo.Store`; needs only its ``session()``."""

    def session(self) -> Session:  # provided by Store
        raise NotImplementedError

    def thread_costs(self) -> dict[str, tuple[float, bool]]:
        """thread id → (known cost in USD, whether some call of it has an unknown cost)."""
        with self.session() as s:
            rows = s.execute(
                select(
                    TokenUsageRow.thread_id,
                    func.sum(TokenUsageRow.cost_usd),
                    func.sum(case((col(TokenUsageRow.cost_usd).is_(None), 1), else_=0)),
                ).group_by(col(TokenUsageRow.thread_id))
            ).all()
        return {tid: (float(cost or 0.0), bool(unknown)) for tid, cost, unknown in rows if tid is not None}

    def agent_costs(self) -> dict[str, tuple[float, int]]:
        """agent id → (known cost in USD, total tokens)."""
        with self.session() as s:
            rows = s.execute(
                select(
                    TokenUsageRow.agent_id,
                    func.sum(TokenUsageRow.cost_usd),
                    func.sum(TokenUsageRow.prompt_tokens + TokenUsageRow.completion_tokens),
                ).group_by(col(TokenUsageRow.agent_id))
            ).all()
        return {aid: (float(cost or 0.0), int(tokens or 0)) for aid, cost, tokens in rows}

    def usage(self) -> list[TokenUsageRow]:
        with self.session() as s:
            return list(s.exec(select(TokenUsageRow).order_by(col(TokenUsageRow.id))))

    def agent_spend_since(self, since: datetime) -> dict[str, float]:
        """agent id → known cost in USD of its calls at or after ``since`` (an unknown cost counts as 0 here)."""
        total = func.coalesce(func.sum(TokenUsageRow.cost_usd), 0.0)
        with self.session() as s:
            rows = s.execute(
                select(TokenUsageRow.agent_id, total)
                .where(col(TokenUsageRow.at) >= since)
                .group_by(col(TokenUsageRow.agent_id))
            ).all()
        return {agent_id: float(spent) for agent_id, spent in rows}

    # -- budgets --------------------------------------------------------------------------------------------
    def budget_overrides(self) -> dict[tuple[str, str], float]:
        """(scope, key) → the limit in USD an operator set, overriding the configured one."""
        with self.session() as s:
            return {(b.scope, b.key): b.limit_usd for b in s.exec(select(BudgetRow))}

    def save_budget(self, scope: str, key: str, limit_usd: float, by: str) -> None:
        """Set the operator's limit of a budget (it survives restarts)."""
        with self.session() as s:
            s.merge(BudgetRow(scope=scope, key=key, limit_usd=limit_usd, updated_by=by, updated_at=now_utc()))
            s.commit()
