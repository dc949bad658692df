"""The audit trail's rows: appending after the last one, and reading them back as found.

What an entry holds, how it is hashed and signed, and how the trail is verified is :mod:`bzzz_console.security`'s
business; here are only the queries, so that the audit code never builds SQL itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Text, cast, insert, select
from sqlalchemy.exc import IntegrityError

from bzzz_console.store.tables import AuditRow

if TYPE_CHECKING:
    from sqlalchemy import Row, Table
    from sqlalchemy.engine import Connection, Engine

Link = Callable[[tuple[int, str] | None], Sequence[Mapping[str, Any]]]
"""Given the trail's last entry as ``(idx, hash)`` (None when it is empty), the rows that follow it."""


def audit_table() -> Table:
    table: Table = AuditRow.__table__  # type: ignore[attr-defined]
    return table


class AuditQueries:
    """Mixed into :class:`~bzzz_console.store.repo.Store`; needs its engine and held writer connection."""

    engine: Engine

    def held_transaction(self) -> AbstractContextManager[Connection]:  # provided by HotWrites
        raise NotImplementedError

    @property
    def backend(self) -> str:  # provided by Store
        raise NotImplementedError

    def append_audit(self, link: Link, *, attempts: int) -> None:
        """Insert the rows ``link`` chains onto the trail's last entry, in one transaction.

        If another writer (a second node or a CLI on the same database) takes an index first, the insert fails on
        the primary key, the transaction is rolled back and ``link`` is asked again for the new tail — up to
        ``attempts`` times, after which the IntegrityError is raised.
        """
        t = audit_table()
        statement = insert(t)
        for attempt in range(1, attempts + 1):
            try:
                with self.held_transaction() as conn:
                    last = conn.execute(select(t.c.idx, t.c.hash).order_by(t.c.idx.desc()).limit(1)).first()
                    tail = None if last is None else (int(last[0]), str(last[1]))
                    conn.execute(statement, [dict(row) for row in link(tail)])
            except IntegrityError:
                if attempt == attempts:
                    raise
                continue
            return

    def audit_rows(self, *, last: int | None = None) -> Iterator[Row[Any]]:
        """The trail's rows in index order (the last ``last`` only), streamed, with ``data`` as its JSON text and
        on SQLite ``at`` as text too: a row damaged by hand must reach the verifier, not fail the read."""
        t = audit_table()
        at = cast(t.c.at, Text) if self.backend == "sqlite" else t.c.at
        query = select(
            t.c.idx,
            at.label("at"),
            t.c.author,
            t.c.type,
            cast(t.c.data, Text).label("data"),
            t.c.hash,
            t.c.prev_hash,
            t.c.signature,
        )
        if last is not None:
            newest = select(t.c.idx).order_by(t.c.idx.desc()).limit(last).subquery()
            query = query.where(t.c.idx.in_(select(newest.c.idx)))
        query = query.order_by(t.c.idx)
        with self.engine.connect() as conn:
            yield from conn.execution_options(yield_per=2000).execute(query)

    def audit_hash(self, idx: int) -> str | None:
        """The stored hash of entry ``idx``, None if there is no such entry."""
        t = audit_table()
        with self.engine.connect() as conn:
            found = conn.execute(select(t.c.hash).where(t.c.idx == idx)).scalar()
        return None if found is None else str(found)

    def audit_index_of(self, digest: str, *, besides: int) -> int | None:
        """The first index other than ``besides`` whose entry has the hash ``digest`` (a copied entry), or None."""
        t = audit_table()
        query = select(t.c.idx).where(t.c.hash == digest, t.c.idx != besides).order_by(t.c.idx).limit(1)
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar()
        return None if found is None else int(found)
