"""Store queries for what arrives from other nodes: mirrored escalations and tasks announced on the network.

Every write here is idempotent: gossip may deliver a message again (a replay after a reconnect), and a node that
restarts hears the same broadcasts twice. Nothing from the network ever overwrites this node's own rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from bzzz_console.store.tables import EscalationRow, TaskRow, now_utc


class NetworkQueries:
    def session(self) -> Session:  # provided by Store
        raise NotImplementedError

    def mirror_escalation(self, row: EscalationRow) -> bool:
        """Store another node's escalation (``row.origin_peer`` set); False if it is already here."""
        assert row.origin_peer, "a mirrored escalation names its origin peer"
        with self.session() as s:
            if s.get(EscalationRow, row.id) is not None:
                return False
            s.add(row)
            s.commit()
        return True

    def settle_mirror(
        self,
        escalation_id: str,
        origin: str,
        state: str,
        decision: dict[str, Any],
        by: str | None,
        at: datetime,
    ) -> EscalationRow | None:
        """Record the outcome the owner announced on its mirror here; the row, or None if there was nothing to
        change (unknown, not from that origin, or already settled)."""
        with self.session() as s:
            result = s.execute(
                update(EscalationRow)
                .where(
                    col(EscalationRow.id) == escalation_id,
                    col(EscalationRow.origin_peer) == origin,
                    col(EscalationRow.state).in_(("open", "expired")),
                )
                .values(state=state, decision=decision, answered_by=by, answered_at=at, applied=True)
            )
            s.commit()
            if not result.rowcount:  # type: ignore[attr-defined]
                return None
            return s.get(EscalationRow, escalation_id)

    def add_task(  # provided by Store
        self,
        *,
        title: str,
        description: str,
        roles: Sequence[str],
        priority: str,
        project: str,
        source: str = "cli",
        task_id: str | None = None,
    ) -> TaskRow:
        raise NotImplementedError

    def add_network_task(self, task_id: str, **fields: Any) -> TaskRow | None:
        """A task announced on the network, under a stable id; None if it is already known."""
        with self.session() as s:
            if s.get(TaskRow, task_id) is not None:
                return None
        return self.add_task(task_id=task_id, source="p2p", **fields)

    def put_network_task(
        self, task_id: str, *, details: dict[str, Any], status: str, **fields: Any
    ) -> tuple[TaskRow, bool]:
        """A task announced on the network again or for the first time: ``(row, created)``. Announced again, its
        title, description, priority and details are updated, and its status too while no work started on it
        (pending or blocked); a task of this node's own is never touched."""
        with self.session() as s:
            row = s.get(TaskRow, task_id)
            if row is None:
                row = TaskRow(id=task_id, source="p2p", status=status, details=details, **fields)
                s.add(row)
                s.commit()
                s.refresh(row)
                return row, True
            if row.source != "p2p":
                return row, False
            changes: dict[str, Any] = {**fields, "details": details, "updated_at": now_utc()}
            if row.status in ("pending", "blocked"):
                changes["status"] = status
            s.execute(update(TaskRow).where(col(TaskRow.id) == task_id).values(**changes))
            s.commit()
            s.refresh(row)
            return row, False

    def find_task(self, task_id: str) -> TaskRow | None:
        with self.session() as s:
            return s.get(TaskRow, task_id)

    def network_tasks(self) -> list[TaskRow]:
        """Tasks taken from the network, oldest first."""
        with self.session() as s:
            query = select(TaskRow).where(col(TaskRow.source) == "p2p").order_by(col(TaskRow.created_at))
            return list(s.exec(query))

    def withdraw_task(self, task_id: str) -> bool:
        """Another node claimed a network task first: drop it here if no thread started on it yet."""
        with self.session() as s:
            result = s.execute(
                update(TaskRow)
                .where(col(TaskRow.id) == task_id, col(TaskRow.status) == "pending")
                .values(status="claimed")
            )
            s.commit()
            return bool(result.rowcount)  # type: ignore[attr-defined]
