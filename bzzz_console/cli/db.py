"""``bzzz-console db upgrade``, and what the other commands need to open the database and report its errors.

Readers (``threads list``, ``status`` …) open the database read-only and never create one; writers create and
migrate it (see ``store.access``). Whatever is wrong with it is one line on stderr: exit 2 when the URL or path
names no usable database (malformed, unsupported, nothing there, a folder), 1 when the database is there but
cannot be used (corrupt, not a database, read-only, locked, unreadable).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from bzzz_console.cli.common import ConfigOption, DbOption

if TYPE_CHECKING:
    pass


def check_before_console(settings: Any) -> None:
    """Before the full-screen console starts: a SQLite file it could not open is one line on the terminal, not a
    toast inside the console. Cheap (no SQLite, no SQLAlchemy, no migrations): the console opens the store after
    its first paint, and shows in the console what only opening it finds (a corrupt file …)."""
    from bzzz_console.store.access import check_sqlite_file

    path = _sqlite_file(settings.database_url())
    if path is not None:
        check_sqlite_file(path, write=True)


def _sqlite_file(url: str) -> Path | None:
    """:func:`~bzzz_console.store.errors.sqlite_path` without importing SQLAlchemy (~0.1 s) for the usual URLs:
    ``sqlite:///path`` (with a query) is read here, other SQLite URLs by SQLAlchemy, other databases have no file."""
    import re
    from urllib.parse import unquote

    if not url.lower().startswith("sqlite"):
        return None
    simple = re.fullmatch(r"sqlite(?:\+pysqlite)?:///([^?#]*)(?:\?[^#]*)?", url, re.DOTALL)
    if simple is None:
        from bzzz_console.store.errors import sqlite_path

        return sqlite_path(url)
    database = unquote(simple.group(1))
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    try:
        return Path(database).expanduser().absolute()
    except RuntimeError:  # "~nobody/…"
        return None


def write_export(output: Path, text: str) -> None:
    """An export the operator asked for: a new file is 0600 (transcripts are private); an existing one (or a
    FIFO, ``/dev/stdout``) is written in place and keeps its mode."""
    from bzzz_console.files import write_private

    write_private(output, text, atomic=False)


def db_upgrade(db: DbOption = None, config: ConfigOption = None) -> None:
    """Apply pending schema migrations, creating the database if there is none (they also run at every start)."""
    from bzzz_console.cli import common
    from bzzz_console.store.access import check_sqlite_file
    from bzzz_console.store.engine import make_engine, secure_sqlite_file, upgrade
    from bzzz_console.store.errors import redact_url, sqlite_path

    with common.errors():
        url = common.read_settings(config, db).database_url()
        path = sqlite_path(url)
        if path is not None:
            check_sqlite_file(path, write=True)
        engine = make_engine(url)
        try:
            revision = upgrade(engine)
            secure_sqlite_file(engine)
        finally:
            engine.dispose()
        typer.echo(f"{redact_url(url)} is at revision {revision}")
