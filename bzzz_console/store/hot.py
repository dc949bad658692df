"""The store's hot writes: what every agent turn commits (its usage row, its message, its turn, a lifecycle step).

They run on one held connection, not through an ORM session. On SQLite they go straight to the driver with SQL
compiled once from the tables, because SQLAlchemy's per-statement work costs several times SQLite's own
WAL commit (about 60 µs); other databases run the same Core statements through SQLAlchemy. Either way a driver
error comes out as SQLAlchemy's ``DBAPIError`` (the runtime retakes a turn on it), and each call is one
transaction: committed before it returns, rolled back if anything in it failed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, update

from bzzz_console.domain.threads import MessageType, ThreadMessage
from bzzz_console.store.errors import NotFound
from bzzz_console.store.tables import AgentRow, MessageRow, ThreadRow, TokenUsageRow, now_utc

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

_MESSAGE_COLUMNS = (
    "id",
    "thread_id",
    "seq",
    "author",
    "role",
    "type",
    "content",
    "reply_to",
    "tokens",
    "model",
    "created_at",
)


@cache
def _usage_defaults() -> dict[str, Any]:
    """Every token_usage column but the key, with the table model's defaults (``at`` is always given)."""
    fields = TokenUsageRow.model_fields
    return {name: fields[name].default for name in fields if name not in ("id", "at")}


@cache
def _core(backend: str) -> dict[str, Any]:
    """The hot statements as SQLAlchemy Core, with named parameters (for any database)."""
    threads, agents = ThreadRow.__table__, AgentRow.__table__  # type: ignore[attr-defined]
    return {
        "bump": update(threads)
        .where(threads.c.id == bindparam("tid"))
        .values(
            message_count=threads.c.message_count + bindparam("messages"),
            last_activity=bindparam("at"),
            turn_count=threads.c.turn_count + bindparam("turns"),
        )
        .returning(threads.c.message_count),
        "turn": update(threads)
        .where(threads.c.id == bindparam("tid"))
        .values(last_activity=bindparam("at"), turn_count=threads.c.turn_count + bindparam("turns")),
        "agent": update(agents)
        .where(agents.c.id == bindparam("aid"))
        .values(state=bindparam("state"), updated_at=bindparam("at")),
        "message": insert(MessageRow.__table__),  # type: ignore[attr-defined]
        "usage": insert(TokenUsageRow.__table__),  # type: ignore[attr-defined]
        "agent_row": agent_upsert(backend),
    }


def agent_upsert(backend: str) -> Any:
    """INSERT … ON CONFLICT (id) DO UPDATE of every column (SQLite and PostgreSQL spell it the same)."""
    from sqlalchemy.dialects import postgresql, sqlite

    upsert: Any = sqlite.insert if backend == "sqlite" else postgresql.insert
    table = AgentRow.__table__  # type: ignore[attr-defined]
    statement = upsert(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={c.name: statement.excluded[c.name] for c in table.columns if c.name != "id"},
    )


_COLUMNS: dict[str, Callable[[], Sequence[str]]] = {
    "message": lambda: _MESSAGE_COLUMNS,
    "usage": lambda: ("at", *_usage_defaults()),
    "agent_row": lambda: [c.name for c in AgentRow.__table__.columns],  # type: ignore[attr-defined]
}
"""The columns an INSERT names (all that the callers give)."""


Params = Mapping[str, Any] | Callable[[Any], Mapping[str, Any]]
"""A statement's parameters, or a function of the value the previous statement returned (None if none)."""


class SqlitePlan:
    """The hot statements for SQLite's driver, compiled once from the Core ones (the tables stay the single source
    of truth): per statement its SQL, its parameter names in order, and each parameter's bind processor (how
    SQLAlchemy's type stores the value: a time as text, a list as JSON), so both paths write the same bytes."""

    def __init__(self, dialect: Any) -> None:
        self.statements: dict[str, tuple[str, tuple[str, ...], tuple[Callable[[Any], Any] | None, ...]]] = {}
        for name, statement in _core("sqlite").items():
            keys = _COLUMNS.get(name)
            compiled = statement.compile(dialect=dialect, column_keys=list(keys()) if keys else None)
            order = tuple(compiled.positiontup or ())
            processors = tuple(
                compiled.binds[k].type.dialect_impl(dialect).bind_processor(dialect) for k in order
            )
            self.statements[name] = (compiled.string, order, processors)


class HotWrites:
    """Mixed into :class:`~bzzz_console.store.repo.Store`: the held writer connection and the per-turn writes."""

    engine: Engine
    _writer: Connection | None
    _writer_lock: threading.Lock
    _sqlite_plan: SqlitePlan | None

    @contextmanager
    def held_transaction(self) -> Iterator[Connection]:
        """A transaction on the store's held connection: for hot writes, where checking a connection out of
        the pool and building an ORM session would cost more than SQLite's commit itself."""
        with self._writer_lock:
            if self._writer is None:
                self._writer = self.engine.connect()
            with self._writer.begin():
                yield self._writer

    def prepare_writes(self) -> None:
        """Open the held connection and compile the hot statements now rather than in the first turn."""
        with self._writer_lock:
            if self._writer is None:
                self._writer = self.engine.connect()
            if self.engine.dialect.name == "sqlite" and self._sqlite_plan is None:
                self._sqlite_plan = SqlitePlan(self.engine.dialect)

    def _hot(self, steps: Sequence[tuple[str, Params]]) -> Any:
        """Run named hot statements in one transaction; returns the value the last RETURNING statement gave."""
        if self.engine.dialect.name == "sqlite":
            return self._hot_sqlite(steps)
        core, result = _core(self.engine.dialect.name), None
        with self.held_transaction() as conn:
            for name, params in steps:
                values = params(result) if callable(params) else params
                cursor = conn.execute(core[name], dict(values))
                if cursor.returns_rows:
                    result = cursor.scalar_one_or_none()
        return result

    def _hot_sqlite(self, steps: Sequence[tuple[str, Params]]) -> Any:
        import sqlite3

        from sqlalchemy.exc import DBAPIError

        plan = self._sqlite_plan
        if plan is None:
            plan = self._sqlite_plan = SqlitePlan(self.engine.dialect)
        result: Any = None
        sql: str | None = None
        args: tuple[Any, ...] = ()
        with self._writer_lock:
            if self._writer is None:
                self._writer = self.engine.connect()
            driver = self._writer.connection.driver_connection
            assert driver is not None
            try:
                for name, params in steps:
                    values = params(result) if callable(params) else params
                    sql, order, processors = plan.statements[name]
                    args = _args(values, order, processors)
                    cursor = driver.execute(sql, args)
                    if cursor.description is not None:  # RETURNING: read it all before the next statement
                        rows = cursor.fetchall()
                        result = rows[0][0] if rows else None
                driver.commit()
            except BaseException as exc:
                driver.rollback()
                if isinstance(exc, sqlite3.Error):
                    raise DBAPIError.instance(sql, args, exc, sqlite3.Error) from exc
                raise
        return result

    def record_usage(self, row: TokenUsageRow | Mapping[str, Any]) -> None:
        """One model call's usage (a row, or its columns by name: building a table model costs more than the
        insert). Columns left out get the table model's defaults."""
        given = row.model_dump(exclude={"id"}) if isinstance(row, TokenUsageRow) else row
        values = {**_usage_defaults(), **given}
        if values.get("at") is None:
            values["at"] = now_utc()
        self._hot([("usage", values)])

    def save_agent(self, row: AgentRow) -> AgentRow:
        """Insert or replace an agent's row, every column (as an ORM merge would), in one statement: a fleet of a
        hundred registers at start on the loop, where a merge per agent (a read, then a write) adds up."""
        row.updated_at = now_utc()
        self._hot([("agent_row", row.model_dump())])
        return row

    def set_agent_state_fast(self, agent_id: str, state: str) -> None:
        """A lifecycle step alone (the common case, on every turn boundary)."""
        self._hot([("agent", {"aid": agent_id, "state": state, "at": now_utc()})])

    def end_turn(self, thread_id: str, turns: int = 1) -> None:
        """Count a turn that posted nothing (the model only used tools, or failed), so the next agent speaks."""
        self._hot([("turn", {"tid": thread_id, "at": now_utc(), "turns": turns})])

    def post_message(
        self,
        thread_id: str,
        *,
        author: str,
        role: str,
        type: str,
        content: str,
        reply_to: str | None = None,
        tokens: int = 0,
        model: str | None = None,
        end_turn: bool = False,
        at: datetime | None = None,
    ) -> ThreadMessage:
        """Append a message with the thread's next sequence number; ``end_turn`` also counts an agent turn.

        The counter is bumped with an atomic UPDATE … RETURNING, so writers in other processes (a CLI posting a
        human message) never get the same sequence number, and the turn counter moves in the same commit as the
        message — after a crash a turn is either fully there or not at all.
        """

        when = at or now_utc()

        def numbered(seq: int | None) -> dict[str, Any]:
            if seq is None:
                raise NotFound(f"no thread {thread_id!r}")
            return {
                "id": f"{thread_id}#{seq}",
                "thread_id": thread_id,
                "seq": seq,
                "author": author,
                "role": role,
                "type": type,
                "content": content,
                "reply_to": reply_to,
                "tokens": tokens,
                "model": model,
                "created_at": when,
            }

        bump = {"tid": thread_id, "at": when, "turns": int(end_turn), "messages": 1}
        seq = self._hot([("bump", bump), ("message", numbered)])
        return ThreadMessage(
            id=f"{thread_id}#{seq}",
            thread_id=thread_id,
            seq=seq,
            author=author,
            role=role,
            type=MessageType(type),
            content=content,
            created_at=when,
            reply_to=reply_to,
            tokens=tokens,
            model=model,
        )


def _args(
    values: Mapping[str, Any], order: Sequence[str], processors: Sequence[Callable[[Any], Any] | None]
) -> tuple[Any, ...]:
    """The driver's positional parameters, each stored as SQLAlchemy's type would store it."""
    return tuple(
        value if (process := processors[i]) is None or value is None else process(value)
        for i, value in enumerate([values[k] for k in order])
    )
