"""The store: every durable change the runtime makes, one transaction each.

Methods are synchronous and short (SQLite WAL commits take well under a millisecond); the runtime calls them on
its loop and publishes an event only after the commit returned, so what the operator sees is always on disk.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, insert, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from bzzz_console.domain.threads import MessageType, ThreadMessage
from bzzz_console.store.approvals import ApprovalQueries
from bzzz_console.store.audit import AuditQueries
from bzzz_console.store.engine import make_engine, secure_sqlite_file, upgrade
from bzzz_console.store.errors import NotFound, explain, redact_url, sqlite_path
from bzzz_console.store.hot import HotWrites, SqlitePlan
from bzzz_console.store.network import NetworkQueries
from bzzz_console.store.spend import SpendQueries
from bzzz_console.store.tables import (
    AgentRow,
    DecisionRow,
    EpisodeRow,
    MessageRow,
    ParticipantRow,
    TaskRow,
    ThreadRow,
    now_utc,
    utc,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine


def new_id(prefix: str, nbytes: int = 4) -> str:
    return f"{prefix}-{secrets.token_hex(nbytes)}"


class Store(HotWrites, SpendQueries, ApprovalQueries, NetworkQueries, AuditQueries):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer: Connection | None = None
        self._writer_lock = threading.Lock()
        self._sqlite_plan: SqlitePlan | None = None

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Store:
        """The store for writing: a missing database is created (0600) and migrated. With ``migrate=False`` it is
        taken as found (the caller has checked it is there; ``open_readonly`` is the one that never writes)."""
        from sqlalchemy.exc import DBAPIError

        from bzzz_console.store.access import check_sqlite_file

        path = sqlite_path(url)
        if path is not None and migrate:
            check_sqlite_file(path, write=True)  # before SQLite creates, or trips over, what is there
        engine = make_engine(url, create=migrate)
        try:
            if migrate:
                upgrade(engine)
                secure_sqlite_file(engine)
            store = cls(engine)
            store.prepare_writes()  # the runtime opens its store in a thread: the first turn then pays none of it
        except DBAPIError as exc:
            engine.dispose()
            if not migrate:  # the caller reads the database as found and words its own errors (audit verify)
                raise
            raise explain(exc, url) from None
        except BaseException:
            engine.dispose()
            raise
        return store

    @classmethod
    def open_readonly(cls, url: str) -> Store:
        """The store for reading: never created, migrated or written (see ``store.access``)."""
        from bzzz_console.store.access import open_for_reading

        return cls(open_for_reading(url))

    @property
    def display_url(self) -> str:
        return redact_url(self.engine.url.render_as_string(hide_password=False))

    @property
    def backend(self) -> str:
        return self.engine.url.get_backend_name()

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def close(self) -> None:
        with self._writer_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        self.engine.dispose()

    # -- agents -------------------------------------------------------------------------------------------
    def agents(self) -> list[AgentRow]:
        with self.session() as s:
            return list(s.exec(select(AgentRow).order_by(col(AgentRow.id))))

    def set_agent_state(self, agent_id: str, state: str, **changes: Any) -> None:
        if not changes:  # the hot path: a lifecycle step on every turn boundary
            self.set_agent_state_fast(agent_id, state)
            return
        with self.session() as s:
            s.execute(
                update(AgentRow)
                .where(col(AgentRow.id) == agent_id)
                .values(state=state, updated_at=now_utc(), **changes)
            )
            s.commit()

    # -- tasks --------------------------------------------------------------------------------------------
    def add_task(
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
        """A new pending task; ``task_id`` for a stable id given from outside (a network task)."""
        row = TaskRow(
            id=task_id or new_id("task"),
            title=title,
            description=description,
            roles=list(roles),
            priority=priority,
            project=project,
            source=source,
        )
        with (
            self.held_transaction() as conn
        ):  # one INSERT: tasks are added on the loop too (MCP, escalations)
            conn.execute(insert(TaskRow.__table__), row.model_dump())  # type: ignore[attr-defined]
        return row

    def tasks(self, status: str | None = None) -> list[TaskRow]:
        with self.session() as s:
            query = select(TaskRow).order_by(col(TaskRow.created_at), col(TaskRow.id))
            if status is not None:
                query = query.where(TaskRow.status == status)
            return list(s.exec(query))

    def count_tasks(self) -> int:
        with self.session() as s:
            return int(s.exec(select(func.count()).select_from(TaskRow)).one())

    def set_task_status(self, task_id: str, status: str) -> None:
        with self.session() as s:
            s.execute(
                update(TaskRow).where(col(TaskRow.id) == task_id).values(status=status, updated_at=now_utc())
            )
            s.commit()

    # -- threads ------------------------------------------------------------------------------------------
    def create_thread(
        self, thread: ThreadRow, participants: Sequence[ParticipantRow], opening: MessageRow | None
    ) -> None:
        """Thread, participants, opening message and the task's status, all or nothing."""
        with self.session() as s:
            s.add(thread)
            s.add_all(participants)
            if opening is not None:
                thread.message_count = opening.seq
                s.add(opening)
            if thread.task_id:
                s.execute(
                    update(TaskRow)
                    .where(col(TaskRow.id) == thread.task_id)
                    .values(status="in_progress", thread_id=thread.id, updated_at=now_utc())
                )
            s.commit()

    def threads(self, status: str | None = None) -> list[ThreadRow]:
        with self.session() as s:
            query = select(ThreadRow).order_by(col(ThreadRow.created_at), col(ThreadRow.id))
            if status is not None:
                query = query.where(ThreadRow.status == status)
            return list(s.exec(query))

    def get_thread(self, thread_id: str) -> ThreadRow:
        with self.session() as s:
            row = s.get(ThreadRow, thread_id)
        if row is None:
            raise NotFound(f"no thread {thread_id!r}")
        return row

    def get_task(self, task_id: str) -> TaskRow:
        with self.session() as s:
            row = s.get(TaskRow, task_id)
        if row is None:
            raise NotFound(f"no task {task_id!r}")
        return row

    def participants(self, thread_id: str | None = None) -> list[ParticipantRow]:
        with self.session() as s:
            query = select(ParticipantRow).order_by(
                col(ParticipantRow.thread_id), col(ParticipantRow.position)
            )
            if thread_id is not None:
                query = query.where(ParticipantRow.thread_id == thread_id)
            return list(s.exec(query))

    def messages(self, thread_id: str, *, last: int | None = None) -> list[MessageRow]:
        with self.session() as s:
            query = select(MessageRow).where(MessageRow.thread_id == thread_id)
            if last is not None:
                rows = list(s.exec(query.order_by(col(MessageRow.seq).desc()).limit(last)))
                return rows[::-1]
            return list(s.exec(query.order_by(col(MessageRow.seq))))

    def close_thread(
        self,
        thread_id: str,
        *,
        status: str,
        outcome: str,
        task_status: str | None,
        closing: dict[str, Any] | None,
        decision: DecisionRow | None,
        episodes: Iterable[EpisodeRow],
    ) -> ThreadMessage | None:
        """End a thread in one transaction: its closing message, status, task, decision log and episodes.

        One commit, so a crash can never leave a decision posted on a thread that is still open (which would
        post it again on restart).
        """
        when = now_utc()
        message: ThreadMessage | None = None
        with self.session() as s:
            values: dict[str, Any] = {"status": status, "outcome": outcome, "last_activity": when}
            if status == "closed":
                values["closed_at"] = when
            if closing is not None:
                values["message_count"] = ThreadRow.message_count + 1
            found = s.execute(
                update(ThreadRow)
                .where(col(ThreadRow.id) == thread_id)
                .values(**values)
                .returning(col(ThreadRow.message_count), col(ThreadRow.task_id))
            ).one_or_none()
            if found is None:
                raise NotFound(f"no thread {thread_id!r}")
            count, task_id = found
            if closing is not None:
                row = MessageRow(
                    id=f"{thread_id}#{count}", thread_id=thread_id, seq=count, created_at=when, **closing
                )
                s.add(row)
                message = to_message(row)
                if decision is not None:
                    decision.data = {**decision.data, "message_id": row.id}
            if task_status and task_id:
                s.execute(
                    update(TaskRow)
                    .where(col(TaskRow.id) == task_id)
                    .values(status=task_status, updated_at=when)
                )
            if decision is not None:
                s.add(decision)
            s.add_all(list(episodes))
            s.commit()
        return message

    def set_thread_status(
        self,
        thread_id: str,
        status: str,
        *,
        outcome: str | None = None,
        task_status: str | None = None,
        decision: DecisionRow | None = None,
        episodes: Iterable[EpisodeRow] = (),
    ) -> None:
        with self.session() as s:
            values: dict[str, Any] = {"status": status}
            if status == "closed":
                values["closed_at"] = now_utc()
            if outcome is not None:
                values["outcome"] = outcome
            s.execute(update(ThreadRow).where(col(ThreadRow.id) == thread_id).values(**values))
            thread = s.get(ThreadRow, thread_id)
            if task_status and thread is not None and thread.task_id:
                s.execute(
                    update(TaskRow)
                    .where(col(TaskRow.id) == thread.task_id)
                    .values(status=task_status, updated_at=now_utc())
                )
            if decision is not None:
                s.add(decision)
            s.add_all(list(episodes))
            s.commit()

    # -- decisions, episodes ----------------------------------------------------------------------------
    def decisions(self, thread_id: str | None = None) -> list[DecisionRow]:
        with self.session() as s:
            query = select(DecisionRow).order_by(col(DecisionRow.created_at))
            if thread_id is not None:
                query = query.where(DecisionRow.thread_id == thread_id)
            return list(s.exec(query))

    def episodes(self, agent_id: str, project: str) -> list[EpisodeRow]:
        """An agent's episodes of one project only: memory never crosses projects. (Read on the held connection
        with a statement built once: an agent's first turn in a thread asks for them.)"""
        with self.held_transaction() as conn:
            rows = conn.execute(_episodes_query(), {"aid": agent_id, "project": project}).mappings().all()
        return [EpisodeRow(**row) for row in rows]


@cache
def _episodes_query() -> Any:
    table = EpisodeRow.__table__  # type: ignore[attr-defined]
    return (
        core_select(table)
        .where(table.c.agent_id == bindparam("aid"), table.c.project == bindparam("project"))
        .order_by(table.c.created_at.desc())
    )


def to_message(row: MessageRow) -> ThreadMessage:
    return ThreadMessage(
        id=row.id,
        thread_id=row.thread_id,
        seq=row.seq,
        author=row.author,
        role=row.role,
        type=MessageType(row.type),
        content=row.content,
        created_at=utc(row.created_at),
        reply_to=row.reply_to,
        tokens=row.tokens,
        model=row.model,
    )
