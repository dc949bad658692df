"""Engine factory and schema migrations. Nothing here runs at import time.

SQLite gets WAL, ``synchronous=NORMAL`` (durable across process crashes, which is what kill -9 tests), a busy
timeout so a second process (``task add``, ``escalations answer``) waits instead of failing, and foreign keys.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bzzz_console.store.errors import (
    BadDatabaseURL,
    DatabaseError,
    explain,
    redact_url,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def make_engine(url: str, *, read_only: bool = False, create: bool = True) -> Engine:
    """An engine for ``url``; nothing is connected yet.

    ``create`` (writers): a missing SQLite file is created here, 0600 and in 0700 folders, before SQLite would
    create it 0644 (its ``-wal`` and ``-shm`` then take the file's mode). ``read_only``: SQLite opens the file
    with ``mode=ro`` (works on a read-only file and can never change it); PostgreSQL sessions are read-only."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number ("h:abc")
        shown = re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)  # a password stays hidden here too
        raise BadDatabaseURL(
            f"malformed database URL {shown!r}: expected e.g. sqlite:////path/bzzz.db or "
            "postgresql+psycopg://user:password@host:5432/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise BadDatabaseURL(
            f"unsupported database {backend!r} in {redact_url(url)}: use sqlite or postgresql"
        )
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        # "sqlite://tmp/x.db" (a slash short): SQLite has no host, and this would silently be an in-memory database
        if parsed.host:
            raise BadDatabaseURL(
                f"malformed database URL {redact_url(url)!r}: a SQLite URL has no host ({parsed.host!r}); "
                "use sqlite:////absolute/path/bzzz.db or sqlite:///relative/path/bzzz.db"
            )
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            try:
                path = Path(database).expanduser().resolve()
            except RuntimeError:  # "~nobody/bzzz.db": no such user (or no home folder at all)
                raise BadDatabaseURL(f"cannot find the home folder of {database!r}") from None
            if read_only:
                kwargs["creator"] = _read_only_sqlite(path)
            elif create:
                _create_sqlite_file(path)
        kwargs["connect_args"] = {"timeout": 15, "check_same_thread": False}
    else:
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=5)
        if "options" not in parsed.query:
            # Times come back in the session's zone: pin it to UTC, as SQLite's (and the docs') times are.
            options = "-c timezone=UTC" + (" -c default_transaction_read_only=on" if read_only else "")
            kwargs["connect_args"] = {"options": options}
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise DatabaseError(
            f"no driver for {redact_url(url)} ({exc}); install it with: pip install 'bzzz-console[postgres]'"
        ) from None
    except (ArgumentError, TypeError, ValueError) as exc:  # e.g. a query option's type (?timeout=x)
        raise BadDatabaseURL(f"invalid option in the database URL {redact_url(url)}: {exc}") from None

    if backend == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if not read_only:  # switching to WAL writes the header; a reader takes the mode the file has
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=15000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    @event.listens_for(engine, "handle_error")
    def _where(context: Any) -> None:
        # Which database failed: the CLI's one-line error names it (see store.access.explain).
        if context.sqlalchemy_exception is not None:
            context.sqlalchemy_exception.database_url = url

    return engine


def _create_sqlite_file(path: Path) -> None:
    from bzzz_console.files import create_private, private_dir

    try:
        private_dir(path.parent)
    except OSError as exc:
        raise DatabaseError(
            f"cannot create the database folder {path.parent}: {exc.strerror or exc}"
        ) from None
    try:
        create_private(path)
    except IsADirectoryError:
        pass  # said clearly when it is opened (store.access.check_sqlite_file)
    except OSError as exc:
        raise DatabaseError(
            f"cannot open the database {path}: cannot create it: {exc.strerror or exc}"
        ) from None


def _read_only_sqlite(path: Path) -> Any:
    """A connection factory opening ``path`` read-only (``file:…?mode=ro``: never created, never written)."""
    import sqlite3
    from urllib.parse import quote

    uri = f"file:{quote(str(path))}?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, timeout=15, check_same_thread=False)

    return connect


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> str | None:
    """Apply every pending migration; return the revision the database is at afterwards."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.util.exc import CommandError as AlembicError
    from sqlalchemy.exc import DBAPIError

    cfg = _alembic_config(engine)
    try:
        with engine.begin() as connection:
            if engine.url.get_backend_name() == "sqlite":
                _refuse_a_foreign_sqlite_file(connection, engine)
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as exc:  # OperationalError, and e.g. SQLite's "file is not a database" (DatabaseError)
        raise explain(exc, engine.url.render_as_string(hide_password=False)) from None
    except AlembicError as exc:  # a revision this version does not know: written by a newer bzzz-console
        raise DatabaseError(
            f"cannot upgrade the database {redact_url(str(engine.url))}: {' '.join(str(exc).split())} "
            "(was it written by a newer bzzz-console?)"
        ) from None


def _refuse_a_foreign_sqlite_file(connection: Any, engine: Engine) -> None:
    """A SQLite file with tables but no schema revision of ours is another program's database (a typo in
    ``--db``): our tables are not written into it. (A PostgreSQL database may well be shared on purpose.)"""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import inspect

    if (
        MigrationContext.configure(connection).get_current_revision() is None
        and inspect(connection).get_table_names()
    ):
        raise DatabaseError(
            f"{engine.url.database} is not a bzzz-console database (it has other tables and no "
            "bzzz-console schema)"
        )


def secure_sqlite_file(engine: Engine) -> None:
    """Keep the SQLite file (and its WAL) readable by its owner only: it holds transcripts and spend.

    Files made by an older version (0644) lose their group and other bits; none gains a bit (a file the
    operator made read-only stays read-only) and another user's file is left alone."""
    if engine.url.get_backend_name() != "sqlite" or not engine.url.database:
        return
    from bzzz_console.files import tighten

    base = Path(engine.url.database).expanduser()
    for suffix in ("", "-wal", "-shm"):
        tighten(Path(f"{base}{suffix}"))
