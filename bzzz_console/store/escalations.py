"""Escalation rows: raising, deciding (exactly once, across processes), expiring, and participants changes."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, update
from sqlmodel import Session, col, select

from bzzz_console.store.errors import AlreadyDecided, NotFound
from bzzz_console.store.tables import AgentRow, EscalationRow, ParticipantRow, ThreadRow, now_utc, utc


def plain_json(decision: dict[str, Any], escalation_id: str) -> dict[str, Any]:
    """``decision`` if it is strict JSON; ValueError otherwise. The JSON column would write NaN and infinity as
    the non-JSON ``NaN``/``Infinity`` (SQLite turns a NaN limit into NULL): a bad amount from a path that skipped
    validation is stopped here instead of being recorded and failing every apply."""
    try:
        json.dumps(decision, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"the decision on {escalation_id} is not plain JSON ({exc}): nothing recorded"
        ) from None
    return decision


class EscalationQueries:
    """Mixed into :class:`~bzzz_console.store.repo.Store`; needs only its ``session()``."""

    def session(self) -> Session:  # provided by Store
        raise NotImplementedError

    def raise_escalation(
        self, row: EscalationRow, *, thread_status: str | None, turns: int = 0, agent_state: str | None = None
    ) -> None:
        """The escalation, the thread's pause, the turn it ended and the agent's state: one commit."""
        with self.session() as s:
            s.add(row)
            if row.thread_id and thread_status:
                s.execute(
                    update(ThreadRow)
                    .where(col(ThreadRow.id) == row.thread_id)
                    .values(status=thread_status, turn_count=ThreadRow.turn_count + turns)
                )
            if row.agent_id and agent_state:
                s.execute(
                    update(AgentRow)
                    .where(col(AgentRow.id) == row.agent_id)
                    .values(state=agent_state, updated_at=now_utc())
                )
            s.commit()

    def escalations(self, state: str | None = None) -> list[EscalationRow]:
        with self.session() as s:
            query = select(EscalationRow).order_by(col(EscalationRow.created_at))
            if state is not None:
                query = query.where(EscalationRow.state == state)
            return list(s.exec(query))

    def get_escalation(self, escalation_id: str) -> EscalationRow | None:
        with self.session() as s:
            return s.get(EscalationRow, escalation_id)

    def claim_decision(
        self, escalation_id: str, decision: dict[str, Any], by: str, at: datetime, *, applying: bool = False
    ) -> EscalationRow:
        """Record a decision if nobody did before: one atomic UPDATE, so two consoles (or a console and a CLI in
        another process) racing on the same escalation resolve it once and the second gets a clear error.

        An escalation that expired with the default action "hold" is still waiting for a human and can be
        answered; any other expired or answered one cannot. ``applying``: the caller (the runtime that owns the
        agent) applies it right away, so it is marked applied in the same commit.
        """
        plain_json(decision, escalation_id)
        with self.session() as s:
            result = s.execute(
                update(EscalationRow)
                .where(col(EscalationRow.id) == escalation_id)
                .where(
                    or_(
                        col(EscalationRow.state) == "open",
                        (col(EscalationRow.state) == "expired")
                        & (col(EscalationRow.default_action) == "hold"),
                    )
                )
                .values(state="answered", decision=decision, answered_by=by, answered_at=at, applied=applying)
            )
            s.commit()
            row = s.get(EscalationRow, escalation_id)
        if row is None:
            raise NotFound(f"no escalation {escalation_id!r}")
        if result.rowcount == 0:  # type: ignore[attr-defined]
            when = row.answered_at.isoformat(timespec="seconds") if row.answered_at else "earlier"
            raise AlreadyDecided(
                f"escalation {escalation_id} is already {row.state} "
                f"(by {row.answered_by or 'its deadline'} at {when}); a decision is applied once"
            )
        return row

    def reopen_escalation(
        self, escalation_id: str, failure: dict[str, Any], at: datetime
    ) -> EscalationRow | None:
        """A recorded decision could not be applied: the escalation waits for a human again (open, no decision,
        so :meth:`claim_decision` takes the next answer) and keeps ``failure`` as ``context["last_error"]``.

        A deadline that has passed is dropped: the escalation would otherwise expire again at once, and a
        default action that failed would be retried (and fail) on every timer pass. None if it was not answered
        or expired (someone reopened or cancelled it first)."""
        with self.session() as s:
            row = s.get(EscalationRow, escalation_id)
            if row is None or row.state not in ("answered", "expired"):
                return None
            past = row.deadline is not None and utc(row.deadline) <= utc(at)
            result = s.execute(
                update(EscalationRow)
                .where(col(EscalationRow.id) == escalation_id, col(EscalationRow.state) == row.state)
                .values(
                    state="open",
                    decision=None,
                    answered_by=None,
                    answered_at=None,
                    applied=False,
                    deadline=None if past else row.deadline,
                    context={**row.context, "last_error": plain_json(failure, escalation_id)},
                )
            )
            s.commit()
            if not result.rowcount:  # type: ignore[attr-defined]
                return None
            s.expire_all()
            return s.get(EscalationRow, escalation_id)

    def expire(self, escalation_id: str, at: datetime) -> bool:
        """Mark an open escalation expired; the default action is recorded as what happened, not as a decision."""
        with self.session() as s:
            row = s.get(EscalationRow, escalation_id)
            if row is None or row.state != "open":
                return False
            held = row.default_action == "hold"
            result = s.execute(
                update(EscalationRow)
                .where(col(EscalationRow.id) == escalation_id, col(EscalationRow.state) == "open")
                .values(
                    state="expired",
                    answered_at=at,
                    applied=held,
                    decision={
                        "kind": row.default_action,
                        "by": "deadline",
                        "surface": "deadline",
                        "expired": True,
                    },
                )
            )
            s.commit()
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def cancel_escalations(
        self, at: datetime, *, thread_id: str | None = None, agent_id: str | None = None, reason: str = ""
    ) -> list[EscalationRow]:
        """Cancel the escalations of a thread (or of an agent) that still wait for a human; return them."""
        which = (
            col(EscalationRow.thread_id) == thread_id
            if thread_id
            else col(EscalationRow.agent_id) == agent_id
        )
        waiting = or_(
            col(EscalationRow.state) == "open",
            (col(EscalationRow.state) == "expired") & (col(EscalationRow.default_action) == "hold"),
        )
        with self.session() as s:
            rows = list(s.exec(select(EscalationRow).where(which, waiting)))
            for row in rows:
                row.state, row.answered_at, row.applied = "cancelled", at, True
                row.decision = {"kind": "cancelled", "by": "system", "reason": reason}
                s.add(row)
            s.commit()
        return rows

    def mark_applied(self, escalation_id: str) -> bool:
        """Claim the application of a recorded decision; False if another pass already applied it."""
        with self.session() as s:
            result = s.execute(
                update(EscalationRow)
                .where(col(EscalationRow.id) == escalation_id, col(EscalationRow.applied).is_(False))
                .values(applied=True)
            )
            s.commit()
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def decisions_to_apply(self) -> list[EscalationRow]:
        with self.session() as s:
            return list(
                s.exec(
                    select(EscalationRow)
                    .where(
                        col(EscalationRow.applied).is_(False),
                        col(EscalationRow.state).in_(("answered", "expired")),
                    )
                    .order_by(col(EscalationRow.answered_at))
                )
            )

    def count_waiting(self, *, agent_id: str | None = None, thread_id: str | None = None) -> int:
        """Escalations that still need a human (open, or expired while held) for an agent or a thread."""
        from sqlalchemy import func

        query = (
            select(func.count())
            .select_from(EscalationRow)
            .where(
                or_(
                    col(EscalationRow.state) == "open",
                    (col(EscalationRow.state) == "expired") & (col(EscalationRow.default_action) == "hold"),
                )
            )
        )
        if agent_id is not None:
            query = query.where(col(EscalationRow.agent_id) == agent_id)
        if thread_id is not None:
            query = query.where(col(EscalationRow.thread_id) == thread_id)
        with self.session() as s:
            return int(s.exec(query).one())

    def fired_rules(self) -> set[tuple[str, str]]:
        with self.session() as s:
            rows = s.execute(select(EscalationRow.rule, EscalationRow.thread_id)).all()
        return {(rule, thread) for rule, thread in rows if thread is not None}

    # -- participants -------------------------------------------------------------------------------------
    def replace_participant(self, thread_id: str, old: str, new: str, role: str) -> None:
        with self.session() as s:
            current = s.get(ParticipantRow, (thread_id, old))
            position = current.position if current else 0
            s.execute(
                delete(ParticipantRow).where(
                    col(ParticipantRow.thread_id) == thread_id, col(ParticipantRow.agent_id) == old
                )
            )
            s.add(ParticipantRow(thread_id=thread_id, agent_id=new, role=role, position=position))
            s.commit()

    def add_participant(self, thread_id: str, agent_id: str, role: str) -> None:
        with self.session() as s:
            rows = list(s.exec(select(ParticipantRow).where(ParticipantRow.thread_id == thread_id)))
            if any(r.agent_id == agent_id for r in rows):
                return
            s.add(
                ParticipantRow(
                    thread_id=thread_id,
                    agent_id=agent_id,
                    role=role,
                    position=max((r.position for r in rows), default=-1) + 1,
                )
            )
            s.commit()

    def remove_participant(self, thread_id: str, agent_id: str) -> None:
        with self.session() as s:
            s.execute(
                delete(ParticipantRow).where(
                    col(ParticipantRow.thread_id) == thread_id, col(ParticipantRow.agent_id) == agent_id
                )
            )
            s.commit()

    def set_agent_model(self, agent_id: str, model: str) -> None:
        with self.session() as s:
            s.execute(
                update(AgentRow).where(col(AgentRow.id) == agent_id).values(model=model, updated_at=now_utc())
            )
            s.commit()

    def set_thread_status_only(self, thread_id: str, status: str) -> None:
        with self.session() as s:
            s.execute(update(ThreadRow).where(col(ThreadRow.id) == thread_id).values(status=status))
            s.commit()
