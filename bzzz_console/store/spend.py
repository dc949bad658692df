"""Spend queries of the store: token usage rows and their totals per thread and agent."""

from __future__ import annotations

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from bzzz_console.store.tables import TokenUsageRow


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
