"""Recording a decision under the two-person rule: the first operator's decision waits, a second distinct operator
giving the same decision completes it (through the same atomic claim as any other decision).

A different decision from the second operator replaces the waiting one (which then needs its own second
approval): neither operator can push a decision through alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bzzz_console.store.errors import AlreadyDecided, NotFound
from bzzz_console.store.escalations import EscalationQueries
from bzzz_console.store.tables import ApprovalRow, EscalationRow

SAME_DECISION_KEYS = ("kind", "to", "amount_usd", "model")
"""What must match for a second approval to confirm the first; free text (note, reply) is the first's."""


class ApprovalRefused(AlreadyDecided):
    """The same operator approved twice: a second, distinct operator must confirm."""


def same_decision(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(key) == b.get(key) for key in SAME_DECISION_KEYS)


class ApprovalQueries(EscalationQueries):
    """Mixed into :class:`~bzzz_console.store.repo.Store` (in place of the escalation queries it extends)."""

    def approvals(self, escalation_id: str) -> list[ApprovalRow]:
        with self.session() as s:
            query = select(ApprovalRow).where(col(ApprovalRow.escalation_id) == escalation_id)
            return list(s.exec(query.order_by(col(ApprovalRow.at), col(ApprovalRow.id))))

    def approve(
        self,
        escalation_id: str,
        decision: dict[str, Any],
        operator: str,
        shown_as: str,
        at: datetime,
        *,
        needed: int,
        applying: bool = False,
    ) -> tuple[EscalationRow, list[ApprovalRow]]:
        """Record one operator's decision. With ``needed`` approvals reached, the decision is claimed (once, as
        :meth:`claim_decision` does) and the row comes back answered; otherwise it comes back still open with
        the approvals so far. Raises AlreadyDecided, ApprovalRefused or NotFound."""
        if needed <= 1:
            return self.claim_decision(escalation_id, decision, shown_as, at, applying=applying), []
        with self.session() as s:
            row = s.get(EscalationRow, escalation_id)
            if row is None:
                raise NotFound(f"no escalation {escalation_id!r}")
            waiting = row.state == "open" or (row.state == "expired" and row.default_action == "hold")
            if not waiting:  # let the claim say who answered and when
                self.claim_decision(escalation_id, decision, shown_as, at)
            earlier = list(s.exec(select(ApprovalRow).where(col(ApprovalRow.escalation_id) == escalation_id)))
            agreeing = [a for a in earlier if same_decision(a.decision, decision)]
            if any(a.operator == operator for a in agreeing):
                raise ApprovalRefused(
                    f"escalation {escalation_id} needs {needed} distinct operators: {operator} already approved "
                    f"this {decision.get('kind')}; another operator must confirm it"
                )
            if len(agreeing) + 1 < needed:
                if len(agreeing) < len(earlier):  # a different decision replaces the waiting one
                    s.execute(delete(ApprovalRow).where(col(ApprovalRow.escalation_id) == escalation_id))
                    agreeing = []
                s.add(
                    ApprovalRow(
                        escalation_id=escalation_id,
                        operator=operator,
                        shown_as=shown_as,
                        decision=decision,
                        at=at,
                    )
                )
                try:
                    s.commit()
                except IntegrityError:  # the same operator, at the same moment, from another process
                    raise ApprovalRefused(
                        f"escalation {escalation_id}: {operator} already approved it; another operator must confirm"
                    ) from None
                return row, self.approvals(escalation_id)
        first = agreeing[0].decision
        names = [a.shown_as for a in agreeing] + [shown_as]
        surfaces = [a.decision.get("surface") or "?" for a in agreeing] + [decision.get("surface") or "?"]
        final = {
            **first,
            "by": " + ".join(names),
            "approvals": [
                *(
                    {"by": a.shown_as, "at": a.at.isoformat(timespec="seconds"), "surface": s}
                    for a, s in zip(agreeing, surfaces, strict=False)
                ),
                {"by": shown_as, "at": at.isoformat(timespec="seconds"), "surface": surfaces[-1]},
            ],
            "surface": " + ".join(surfaces),  # where each operator decided, in order
        }
        if decision.get("note") and decision.get("note") != first.get("note"):
            final["note"] = " / ".join(n for n in (first.get("note"), decision["note"]) if n)
        answered = self.claim_decision(escalation_id, final, " + ".join(names), at, applying=applying)
        with self.session() as s:
            s.execute(delete(ApprovalRow).where(col(ApprovalRow.escalation_id) == escalation_id))
            s.commit()
        return answered, []
