"""Opening a database for reading or writing, and saying in one line what is wrong with one that can't be used.

Readers (``threads list``, ``status`` …) never create, migrate or write a database: a SQLite file is opened with
``mode=ro`` (so they work on a read-only file and leave a corrupt one as it was), a missing one is an error, as
it is for psql. Writers (the console, ``run``, ``task add``, ``db upgrade``) create a missing database and
migrate it. Both look at a SQLite file before SQLite does, so a folder, a file of another kind or a file they may
not read or write is named as such instead of surfacing as a traceback from deep inside a query.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from bzzz_console.store.engine import MIGRATIONS_DIR, make_engine
from bzzz_console.store.errors import DatabaseError, NoDatabase, explain, redact_url, sqlite_path

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

SQLITE_MAGIC = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file (an empty file is an empty database too)."""

CREATE_HINT = "start the console or run `bzzz-console db upgrade` to create one"


def check_sqlite_file(path: Path, *, write: bool) -> None:
    """Raise a DatabaseError naming what is wrong with the SQLite file at ``path``, before SQLite opens it.

    A missing file is fine for a writer (it is created) and NoDatabase for a reader."""
    if not path.exists():
        if write:
            return
        raise NoDatabase(f"no database at {path} ({CREATE_HINT})")
    if path.is_dir():
        raise NoDatabase(f"cannot open the database {path}: it is a folder, not a database file")
    if not os.access(path, os.R_OK):
        raise DatabaseError(f"cannot read the database {path}: permission denied (check its permissions)")
    try:
        with path.open("rb") as handle:
            header = handle.read(100)
    except OSError as exc:
        raise DatabaseError(f"cannot read the database {path}: {exc.strerror or exc}") from None
    if header and header[: len(SQLITE_MAGIC)] != SQLITE_MAGIC:  # includes a file cut off inside its header
        raise DatabaseError(f"{path} is not a bzzz-console database (file is not a database)")
    if write and len(header) > 18 and header[18] == 1 and _foreign(path):
        # Ours are always in WAL mode (18 = 2): a rollback-journal file with tables is another program's
        # database, and refusing it here (before the writer's PRAGMA journal_mode=WAL) leaves it unchanged.
        raise DatabaseError(
            f"{path} is not a bzzz-console database (it has other tables and no bzzz-console schema)"
        )
    if write and not os.access(path, os.W_OK):
        raise DatabaseError(
            f"cannot write the database {path}: the file is read-only (check its permissions)"
        )


def _foreign(path: Path) -> bool:
    """Has the SQLite file at ``path`` tables, none of them our schema's revision table? Read-only look."""
    import sqlite3
    from urllib.parse import quote

    try:
        connection = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=15)
        try:
            tables = {
                row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        finally:
            connection.close()
    except sqlite3.Error:
        return False  # said precisely when it is opened (explain)
    return bool(tables) and "alembic_version" not in tables


def open_for_reading(url: str) -> Engine:
    """A read-only engine on an existing database whose schema is this version's; else a DatabaseError."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    path = sqlite_path(url)
    if path is not None:
        check_sqlite_file(path, write=False)
        if path.stat().st_size == 0:
            raise NoDatabase(f"no database at {path}: the file is empty ({CREATE_HINT})")
    else:
        try:
            parsed = make_url(url)
        except Exception:
            parsed = None  # make_engine says what is wrong with it
        if parsed is not None and parsed.get_backend_name() == "sqlite" and not parsed.host:
            database = parsed.database or ""
            if database in ("", ":memory:"):
                raise NoDatabase(f"{redact_url(url)} is an in-memory database: there is nothing to read")
    engine = make_engine(url, read_only=True)
    try:
        _check_schema(engine, str(path) if path is not None else redact_url(url))
    except DBAPIError as exc:
        engine.dispose()
        raise explain(exc, url) from None
    except BaseException:
        engine.dispose()
        raise
    return engine


def schema_head() -> str | None:
    """The schema revision this version reads and writes (the head of its migrations)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def _check_schema(engine: Engine, where: str) -> None:
    """Readers do not migrate: a database at another revision than this version's head is an error that says
    what to run."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError
    from sqlalchemy import inspect

    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        tables = [] if current else inspect(connection).get_table_names()
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    if current == head:
        return
    if current is None:
        if tables:
            raise DatabaseError(
                f"{where} is not a bzzz-console database (it has other tables and no bzzz-console schema)"
            )
        raise NoDatabase(f"no bzzz-console database at {where}: it has no tables yet ({CREATE_HINT})")
    try:
        script.get_revision(current)
    except CommandError:
        raise DatabaseError(
            f"the database {where} is at schema revision {current}, unknown to this bzzz-console: it was "
            "written by a newer version"
        ) from None
    raise DatabaseError(
        f"the database {where} is at schema revision {current}, this bzzz-console reads {head}: run "
        "`bzzz-console db upgrade` (starting the console upgrades it too)"
    )
