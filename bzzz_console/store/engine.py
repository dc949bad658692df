"""Engine factory and schema migrations. Nothing here runs at import time.

SQLite gets WAL, ``synchronous=NORMAL`` (durable across process crashes, which is what kill -9 tests), a busy
timeout so a second process (``task add``, ``escalations answer``) waits instead of failing, and foreign keys.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class DatabaseError(RuntimeError):
    """The database URL or the database itself is unusable; the message says which and what to do."""


def redact_url(url: str) -> str:
    """The URL as it may be shown: the password replaced by ``***``."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def make_engine(url: str) -> Engine:
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number ("h:abc")
        shown = re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)  # a password stays hidden here too
        raise DatabaseError(
            f"malformed database URL {shown!r}: expected e.g. sqlite:////path/bzzz.db or "
            "postgresql+psycopg://user:password@host:5432/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseError(
            f"unsupported database {backend!r} in {redact_url(url)}: use sqlite or postgresql"
        )
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            try:
                folder = Path(database).expanduser().resolve().parent
            except RuntimeError:  # "~nobody/bzzz.db": no such user (or no home folder at all)
                raise DatabaseError(f"cannot find the home folder of {database!r}") from None
            try:
                folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise DatabaseError(f"cannot create the database folder {folder}: {exc.strerror}") from None
        kwargs["connect_args"] = {"timeout": 15, "check_same_thread": False}
    else:
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=5)
        if "options" not in parsed.query:
            # Times come back in the session's zone: pin it to UTC, as SQLite's (and the docs') times are.
            kwargs["connect_args"] = {"options": "-c timezone=UTC"}
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise DatabaseError(
            f"no driver for {redact_url(url)} ({exc}); install it with: pip install 'bzzz-console[postgres]'"
        ) from None
    except (ArgumentError, TypeError, ValueError) as exc:  # e.g. a query option's type (?timeout=x)
        raise DatabaseError(f"invalid option in the database URL {redact_url(url)}: {exc}") from None

    if backend == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=15000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine


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
    from sqlalchemy.exc import DBAPIError

    cfg = _alembic_config(engine)
    try:
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as exc:  # OperationalError, and e.g. SQLite's "file is not a database" (DatabaseError)
        why = " ".join(str(exc.orig).split())  # one line: libpq's messages carry a tab-indented hint line
        raise DatabaseError(f"cannot open the database {redact_url(str(engine.url))}: {why}") from None


def secure_sqlite_file(engine: Engine) -> None:
    """Keep the SQLite file (and its WAL) readable by its owner only: it holds transcripts and spend."""
    if engine.url.get_backend_name() != "sqlite" or not engine.url.database:
        return
    base = Path(engine.url.database).expanduser()
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{base}{suffix}")
        if path.exists():
            os.chmod(path, 0o600)
