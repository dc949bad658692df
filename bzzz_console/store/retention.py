"""Retention: delete closed threads and old token usage, keep everything still in play and the audit trail.

``prune`` removes, for threads closed more than N days ago: the thread, its messages, participants, decisions,
finished escalations, finished tasks and thread budget; and token usage recorded more than N days ago (except
that of threads still open, whose lifetime budget it counts). It keeps open (and stalled or waiting) threads,
threads with an open or not yet applied escalation, agents' episodic memory, and the whole audit trail — the
chain must stay verifiable, and a pruned entry would break it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, func, not_, or_
from sqlmodel import col, select

from bzzz_console.store.tables import (
    AuditRow,
    BudgetRow,
    DecisionRow,
    EscalationRow,
    MessageRow,
    ParticipantRow,
    TaskRow,
    ThreadRow,
    TokenUsageRow,
    now_utc,
    utc,
)

if TYPE_CHECKING:
    from bzzz_console.store.repo import Store

CHUNK = 500  # ids per IN (...) list: well under SQLite's bound-parameter limit
KEPT_TASK_STATES = ("pending", "in_progress")


@dataclass(frozen=True, slots=True)
class PruneReport:
    older_than_days: int
    cutoff: datetime
    deleted: dict[str, int]
    kept: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "older_than_days": self.older_than_days,
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            "deleted": self.deleted,
            "kept": self.kept,
        }


def _chunks(ids: Sequence[str]) -> list[Sequence[str]]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]


def prune(
    store: Store, older_than_days: int, *, now: datetime | None = None, dry_run: bool = False
) -> PruneReport:
    """Delete what is older than ``older_than_days`` (a whole number of days, at least 1), in one transaction.

    ``dry_run`` counts what would go and changes nothing. At least a day, so today's spend — what the global
    and per-agent daily budgets count — is never pruned.
    """
    if int(older_than_days) != older_than_days or older_than_days < 1:
        raise ValueError(
            f"older_than_days must be a whole number of days, at least 1 (got {older_than_days})"
        )
    cutoff = utc(now or now_utc()) - timedelta(days=older_than_days)
    deleted: dict[str, int] = {}
    with store.session() as s:
        held = select(col(EscalationRow.thread_id)).where(
            col(EscalationRow.thread_id).is_not(None),
            or_(
                col(EscalationRow.state) == "open",
                and_(col(EscalationRow.state) == "answered", not_(col(EscalationRow.applied))),
            ),
        )
        thread_ids: list[str] = list(
            s.exec(
                select(col(ThreadRow.id)).where(
                    col(ThreadRow.status) == "closed",
                    func.coalesce(col(ThreadRow.closed_at), col(ThreadRow.last_activity)) < cutoff,
                    col(ThreadRow.id).not_in(held),
                )
            )
        )
        escalation_ids: list[str] = []
        for chunk in _chunks(thread_ids):
            escalation_ids += list(
                s.exec(select(col(EscalationRow.id)).where(col(EscalationRow.thread_id).in_(chunk)))
            )

        def run(name: str, table: Any, where: Any) -> None:
            if dry_run:
                found = s.exec(select(func.count()).select_from(table).where(where)).one()
                deleted[name] = deleted.get(name, 0) + int(found)
            else:
                result = s.execute(delete(table).where(where))
                deleted[name] = deleted.get(name, 0) + int(result.rowcount)  # type: ignore[attr-defined]

        per_thread: list[tuple[str, Any, Callable[[Sequence[str]], Any]]] = [
            ("messages", MessageRow, lambda ids: col(MessageRow.thread_id).in_(ids)),
            ("participants", ParticipantRow, lambda ids: col(ParticipantRow.thread_id).in_(ids)),
            ("decisions", DecisionRow, lambda ids: col(DecisionRow.thread_id).in_(ids)),
            (
                "tasks",
                TaskRow,
                lambda ids: and_(
                    col(TaskRow.thread_id).in_(ids), col(TaskRow.status).not_in(KEPT_TASK_STATES)
                ),
            ),
            (
                "budgets",
                BudgetRow,
                lambda ids: and_(col(BudgetRow.scope) == "thread", col(BudgetRow.key).in_(ids)),
            ),
        ]
        for name, table, where in per_thread:
            deleted.setdefault(name, 0)
            for chunk in _chunks(thread_ids):
                run(name, table, where(chunk))
        deleted.setdefault("escalations", 0)
        for chunk in _chunks(escalation_ids):  # operator decisions on them, then the escalations themselves
            run(
                "decisions",
                DecisionRow,
                and_(col(DecisionRow.escalation_id).in_(chunk), col(DecisionRow.thread_id).is_(None)),
            )
            run("escalations", EscalationRow, col(EscalationRow.id).in_(chunk))
        deleted["threads"] = 0
        for chunk in _chunks(thread_ids):
            run("threads", ThreadRow, col(ThreadRow.id).in_(chunk))
        still_open = select(col(ThreadRow.id)).where(col(ThreadRow.status) != "closed")
        run(
            "token_usage",
            TokenUsageRow,
            and_(
                col(TokenUsageRow.at) < cutoff,
                or_(col(TokenUsageRow.thread_id).is_(None), col(TokenUsageRow.thread_id).not_in(still_open)),
            ),
        )
        if dry_run:
            s.rollback()
        else:
            s.commit()
        kept = {
            "open_threads": int(
                s.exec(
                    select(func.count()).select_from(ThreadRow).where(col(ThreadRow.status) != "closed")
                ).one()
            ),
            "open_escalations": int(
                s.exec(
                    select(func.count()).select_from(EscalationRow).where(col(EscalationRow.state) == "open")
                ).one()
            ),
            "audit_entries": int(s.exec(select(func.count()).select_from(AuditRow)).one()),
        }
    order = (
        "threads",
        "messages",
        "participants",
        "decisions",
        "escalations",
        "tasks",
        "budgets",
        "token_usage",
    )
    return PruneReport(
        older_than_days=int(older_than_days),
        cutoff=cutoff,
        deleted={k: deleted.get(k, 0) for k in order},
        kept=kept,
        dry_run=dry_run,
    )
