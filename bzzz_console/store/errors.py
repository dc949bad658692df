"""What can go wrong with a database, said in one line: the errors every layer above the store catches, the URL
helpers their messages use, and ``explain`` for a driver's error. Below the rest of ``store/``: imports nothing of it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.exc import DBAPIError


class DatabaseError(RuntimeError):
    """The database URL or the database itself is unusable; the message (one line) says which and what to do.

    ``exit_code`` is what the CLI exits with: 1 when the database is there but cannot be used (corrupt, not a
    database, read-only, locked, unreadable); 2 (the subclasses below) when what was given names no usable
    database at all."""

    exit_code = 1


class BadDatabaseURL(DatabaseError):
    """The URL is malformed, names an unsupported backend, or an option in it is invalid."""

    exit_code = 2


class NoDatabase(DatabaseError):
    """Nothing is there to read (no file, an empty file, an in-memory URL), and a reader never creates one."""

    exit_code = 2


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, or None (not SQLite, in memory, or a ``file:`` URI that SQLite parses)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return None
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or parsed.host or database in ("", ":memory:"):
        return None  # a host: make_engine refuses the URL
    if database.startswith("file:"):
        return None
    try:
        return Path(database).expanduser().absolute()  # messages name the file, wherever it was run from
    except RuntimeError:  # "~nobody/…"
        return None


def missing_sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (``~`` expanded) when there is no file there, else None: for a reader that
    must say "no database" before anything could create one. Not SQLite, in memory, a ``file:`` URI or a URL
    that does not parse: None (opening it words what is wrong)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return None
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    path = Path(database).expanduser()
    return None if path.is_file() else path


def redact_url(url: str) -> str:
    """The URL as it may be shown: the password replaced by ``***``."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


class NotFound(LookupError):
    """No row with that id."""


class AlreadyDecided(RuntimeError):
    """The escalation was answered (or expired) before; a decision is applied once."""


def explain(exc: BaseException, url: str | None = None) -> DatabaseError:
    """The one-line DatabaseError for a driver error (SQLAlchemy's DBAPIError) from the database at ``url``.

    ``url`` defaults to the one ``make_engine`` attaches to the errors of its engines."""
    url = url or getattr(exc, "database_url", None)
    path = sqlite_path(url) if url else None
    where = str(path) if path is not None else (redact_url(url) if url else "the database")
    orig = getattr(exc, "orig", None) or exc
    detail = " ".join(str(orig).split())  # one line: libpq's messages carry a tab-indented hint line
    name = str(getattr(orig, "sqlite_errorname", ""))
    if path is not None and path.is_dir():
        return NoDatabase(f"cannot open the database {where}: it is a folder, not a database file")
    if name.startswith("SQLITE_NOTADB"):
        return DatabaseError(f"{where} is not a bzzz-console database ({detail})")
    if name.startswith("SQLITE_CORRUPT"):
        return DatabaseError(f"the database {where} is corrupt ({detail}): restore it from a backup")
    if name == "SQLITE_READONLY_DIRECTORY":
        return DatabaseError(
            f"cannot write beside the database {where}: its folder is read-only and SQLite needs its -wal and "
            "-shm files there (check the folder's permissions)"
        )
    if name.startswith("SQLITE_READONLY"):
        return DatabaseError(
            f"cannot write the database {where}: the file is read-only (check its permissions)"
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return DatabaseError(
            f"the database {where} is locked by another process ({detail}): try again when it is done"
        )
    if name.startswith("SQLITE_FULL"):
        return DatabaseError(f"cannot write the database {where}: the disk is full")
    if name.startswith("SQLITE_CANTOPEN") and path is not None:
        if not path.exists() and not path.parent.is_dir():
            return NoDatabase(f"no database at {where} (its folder {path.parent} does not exist)")
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            return DatabaseError(
                f"cannot open the database {where}: permission denied (check its permissions)"
            )
    return DatabaseError(f"cannot open the database {where}: {detail}")


def driver_error() -> type[DBAPIError]:
    """The class a database driver's errors surface as (SQLAlchemy's ``DBAPIError``; the driver's own error is its
    ``orig``), for an ``except`` above the store. A function, so that SQLAlchemy is imported only when an error is
    being handled, as everywhere else in this module."""
    from sqlalchemy.exc import DBAPIError

    return DBAPIError


def driver_detail(exc: DBAPIError) -> str:
    """The driver's message of ``exc`` on one line (libpq's carry a tab-indented hint line)."""
    return " ".join(str(exc.orig).split())
