"""What every ``bzzz-console`` command shares: the ``--db``/``--config``/``--json`` options (one definition, one
help text), one-line errors with their exit codes, settings and store opening, JSON and table output.

Errors: exit 2 for bad input or settings, including a database URL or path that names no usable database
(malformed, unsupported, nothing there, a folder); 1 when the database is there but cannot be used (corrupt, not
a database, read-only, locked, unreadable). Readers open the database read-only and never create one; writers
create and migrate it (see ``store.access``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from bzzz_console.store.errors import DatabaseError
    from bzzz_console.store.repo import Store

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", help="Database URL (default: SQLite in the data dir; env BZZZ_DB_URL).", show_default=False
    ),
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="Settings file (TOML; env BZZZ_CONFIG).", show_default=False)
]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]


def fail(message: str, code: int = 1) -> NoReturn:
    from bzzz_console.domain.text import inert

    typer.echo(f"bzzz-console: error: {inert(message)}", err=True)  # messages quote names from data
    raise typer.Exit(code)


@contextmanager
def errors() -> Iterator[None]:
    """Turn the errors an operator can fix into one clear line and an exit code, never a traceback."""
    from bzzz_console.domain.errors import ConfigError

    try:
        yield
    except ConfigError as exc:
        fail(str(exc), 2)
    except Exception as exc:
        from bzzz_console.domain.errors import CommandError
        from bzzz_console.p2p.bridge import P2PError
        from bzzz_console.store.errors import NotFound

        if (database := database_error(exc)) is not None:
            fail(database.args[0], database.exit_code)
        if isinstance(exc, NotFound | CommandError | P2PError):
            # args[0], not str(): str() of a KeyError quotes its message, and stripping quotes would eat the
            # closing quote of a name inside it ("no thread 'nope'").
            fail(exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc))
        raise


def read_settings(config: Path | None, db: str | None, **overrides: Any) -> Any:
    from bzzz_console.config import load_settings

    settings = load_settings(config)
    return settings.with_overrides(store__url=db, **overrides)


def open_db(config: Path | None, db: str | None, *, read_only: bool = False, create: bool = True) -> Any:
    """The store; ``read_only`` for commands that only read: never created, migrated or written; ``create=False``
    for commands that change what is stored: a database that is not there is an error, not created."""
    return open_store(read_settings(config, db), read_only=read_only, create=create)


def emit_json(data: Any) -> None:
    from bzzz_console.domain.text import json_safe

    sys.stdout.write(json_safe(json.dumps(data, indent=2, ensure_ascii=False, default=str)) + "\n")


def open_store(settings: Any, *, read_only: bool, create: bool = True) -> Store:
    """``read_only``: never created, migrated or written. ``create=False``, for commands that change what is
    already stored (answer an escalation, prune): a SQLite file that is not there is NoDatabase, not a new
    empty database created only to report that it holds nothing."""
    from bzzz_console.store.repo import Store

    url = settings.database_url()
    if read_only:
        return Store.open_readonly(url)
    if not create:
        from bzzz_console.store.access import check_sqlite_file
        from bzzz_console.store.errors import sqlite_path

        path = sqlite_path(url)
        if path is not None:
            check_sqlite_file(path, write=False)  # raises NoDatabase when missing
            check_sqlite_file(path, write=True)
    return Store.open(url)


def database_error(exc: BaseException) -> DatabaseError | None:
    """The one-line DatabaseError for ``exc`` if it is the database's doing: our own, or a driver error that
    surfaced in the middle of a command (a corrupt page, a lock held too long); else None."""
    from bzzz_console.store.errors import DatabaseError, driver_error, explain

    if isinstance(exc, DatabaseError):
        return exc
    if isinstance(exc, driver_error()):
        return explain(exc)
    return None


def table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain table: one line per row (long cells are cut with …), so it greps and fits a terminal.

    Cells are data: each is made inert (one line) and given to Rich as ``Text``, never parsed as markup."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from bzzz_console.domain.text import inert_line

    console = Console()
    table = Table(box=None, header_style="bold", pad_edge=False)
    for i, column in enumerate(columns):
        last = i == len(columns) - 1
        table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=None if last else 40)
    for row in rows:
        table.add_row(*(Text("—" if row.get(c) is None else inert_line(str(row.get(c)))) for c in columns))
    if not console.is_terminal:
        console = Console(width=max(console.width, 160))
    console.print(table)
