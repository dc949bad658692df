"""The plain console launch, ``bzzz-console [--demo] [--readonly] [--seed N] [--mcp-port N] [--listen A]…
[--peer A]… [--db URL] [--config FILE]``, without typer, and with the settings read after the first paint.

Launch to first frame is what an operator waits for at every start, and typer's import (~0.05 s) and pydantic's
import and validation (~0.1 s) would double it. These options are read here as the typer command (``root`` in
commands.py) reads them; any other command line (a sub-command, ``--help``, ``--version``, a value it might
refuse, ``--``) is left to typer whole, with its messages. What the settings find wrong is reported as the
typer command reports it, once the console has closed: errors (one line, exit 2 …) and ``[console]`` warnings on
stderr, the warnings as toasts in the console too.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from bzzz_console.config import Settings

FLAGS = ("--demo", "--readonly")
VALUES = ("--seed", "--mcp-port", "--db", "--config", "--listen", "--peer")


@dataclass
class ConsoleArgs:
    demo: bool = False
    readonly: bool = False
    seed: int | None = None
    mcp_port: int | None = None
    db: str | None = None
    config: Path | None = None
    listen: list[str] = field(default_factory=list)
    peer: list[str] = field(default_factory=list)


def console_args(argv: list[str]) -> ConsoleArgs | None:
    """The options of a plain console launch, or None for anything typer should read (see the docstring)."""
    args, rest = ConsoleArgs(), list(argv)
    while rest:
        name, has_value, value = rest.pop(0).partition("=")
        if name in FLAGS and not has_value:
            setattr(args, name[2:], True)
            continue
        if name not in VALUES:
            return None
        if not has_value:
            if not rest:
                return None
            value = rest.pop(0)
        if not value or value.startswith("-"):  # click may not read it as a value: typer decides
            return None
        if name in ("--seed", "--mcp-port"):
            if not re.fullmatch(r"[0-9]{1,9}", value):
                return None
            number = int(value)
            if name == "--mcp-port" and not 1 <= number <= 65535:
                return None  # typer's range message
            setattr(args, name[2:].replace("-", "_"), number)
        elif name in ("--listen", "--peer"):
            getattr(args, name[2:]).append(value)
        elif name == "--config":
            args.config = Path(value)
        else:
            args.db = value
    return args


def p2p_overrides(listen: list[str] | None, peer: list[str] | None) -> dict[str, Any]:
    """--listen / --peer turn networking on (settings: [p2p])."""
    out: dict[str, Any] = {}
    if listen:
        out.update(p2p__enabled=True, p2p__listen=listen)
    if peer:
        out.update(p2p__enabled=True, p2p__peers=peer)
    return out


def prepare(config: Path | None, db: str | None, seed: int | None, p2p: dict[str, Any]) -> Settings:
    """The console's settings, its log file, and the cheap database check: everything before the runtime."""
    from bzzz_console.cli.db import check_before_console
    from bzzz_console.config import load_settings
    from bzzz_console.logs import configure_logging

    settings = load_settings(config).with_overrides(store__url=db, demo__seed=seed, **p2p)
    configure_logging(settings)  # before mcp/uvicorn can install a handler that writes into the TUI
    check_before_console(settings)  # cheap; migrations and the demo's tasks come after the first paint
    return settings


def warn(settings: Settings) -> None:
    """``[console]`` mistakes on stderr (the console toasts them too)."""
    from bzzz_console.tui.app import BzzzApp
    from bzzz_console.tui.help_screen import config_warnings

    for line in config_warnings(settings, BzzzApp.BINDINGS):
        print(f"warning: {line}", file=sys.stderr, flush=True)


def config_table(config: Path | None) -> dict[str, Any] | None:
    """The settings file as written (``config``, else ``$BZZZ_CONFIG``, else the default path if it is there),
    without pydantic; None when it cannot be read as TOML at all, or a file named is not there."""
    import tomllib

    path = config or (Path(os.environ["BZZZ_CONFIG"]) if os.environ.get("BZZZ_CONFIG") else None)
    try:
        if path is None:  # config.default_config_path, without importing pydantic with config
            from platformdirs import user_config_path

            path = user_config_path("bzzz-console", appauthor=False) / "config.toml"
            if not path.is_file():
                return {}
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
        return None


def _env(key: str) -> list[str]:
    """The values of ``BZZZ_<KEY>`` however its key is cased, as load_settings reads them."""
    return [raw for name, raw in os.environ.items() if name.startswith("BZZZ_") and name[5:].lower() == key]


def console_hint(table: dict[str, Any]) -> dict[str, Any]:
    """``[console]`` as written (the file's, then ``BZZZ_CONSOLE__*``): the theme and keys of the first frame,
    before the settings are read; unvalidated: the settings have the last word a moment later."""
    import json

    hint = dict(table["console"]) if isinstance(table.get("console"), dict) else {}
    for key in ("theme", "keys"):
        for raw in _env(f"console__{key}"):
            with contextlib.suppress(ValueError, RecursionError):  # not JSON: load_settings says so
                hint[key] = json.loads(raw) if raw.strip()[:1] == "{" else raw
    return hint


def database_looks_usable(db: str | None, table: dict[str, Any]) -> bool:
    """Whether the SQLite file the settings will name passes the console's cheap check (cli/db.py
    ``check_before_console``), found without the settings: ``--db``, the environment, the file, the data dir.
    False when in doubt too: then the settings are read before the first paint, and what is wrong with the
    database is said before the console opens, as the typer command says it."""
    from urllib.parse import unquote

    from bzzz_console.store.access import check_sqlite_file

    store, data_dir = table.get("store"), table.get("data_dir")
    urls = _env("store__url") + ([os.environ["BZZZ_DB_URL"]] if "BZZZ_DB_URL" in os.environ else [])
    dirs = _env("data_dir")
    if len(urls) > 1 or len(dirs) > 1:  # which one wins depends on the environment's order
        return False
    url = db or (urls[0] if urls else store.get("url") if isinstance(store, dict) else None)
    try:
        if not url:
            where = dirs[0] if dirs else data_dir
            if where is not None and not isinstance(where, str):
                return False
            if where is None:
                from platformdirs import user_data_path

                folder = user_data_path("bzzz-console", appauthor=False)
            else:
                folder = Path(where).expanduser()
            url = f"sqlite:///{folder / 'bzzz.db'}"
        if not isinstance(url, str):
            return False  # the settings will refuse it
        if not url.lower().startswith("sqlite"):
            return True  # a server database: no file to check
        simple = re.fullmatch(r"sqlite(?:\+pysqlite)?:///([^?#]*)(?:\?[^#]*)?", url, re.DOTALL)
        if simple is None:
            return False  # cli/db.py reads other SQLite URLs with SQLAlchemy: not before the paint
        name = unquote(simple.group(1))
        if name not in ("", ":memory:") and not name.startswith("file:"):  # those have no file to check
            check_sqlite_file(Path(name).expanduser().absolute(), write=True)
    except Exception:  # a database it would refuse, a home folder that is not there …: the settings say it
        return False
    return True


def launch(args: ConsoleArgs) -> NoReturn:
    """Paint the console, read the settings in a thread, start the runtime; on close, report as typer would."""
    import gc

    # Until the first frame (BzzzApp._start turns it back on) the cyclic collector would only scan, again and
    # again, what start-up makes to keep (modules, classes, styles, widgets): ~0.03 s of a ~0.23 s launch.
    gc.disable()
    from bzzz_console.tui.app import BzzzApp

    def read() -> Settings:
        return prepare(args.config, args.db, args.seed, p2p_overrides(args.listen, args.peer))

    try:
        table = config_table(args.config)
        eager = None
        if table is None or not database_looks_usable(args.db, table):
            eager = read()  # raises what is wrong, before the console (if it finds nothing, it is read)
            warn(eager)
        app = BzzzApp(
            eager,
            demo=args.demo,
            demo_tasks=args.demo,
            readonly=args.readonly,
            mcp_port=args.mcp_port,
            settings_from=None if eager else read,
            console_hint=console_hint(table or {}),
        )
        code = app.run()
        if app.start_error is not None:
            raise app.start_error
        if eager is None:  # closed before the settings were read (ctrl+q at once)? read them now, to report
            warn(getattr(app, "settings", None) or read())
    except Exception as exc:
        _report(exc)
    sys.exit(code if isinstance(code, int) else app.return_code or 0)


def _report(exc: Exception) -> NoReturn:
    """The typer command's message and exit code for ``exc`` (common.errors); anything else is a bug: raised."""
    import typer

    from bzzz_console.cli import common

    try:
        with common.errors():
            raise exc
    except typer.Exit as done:
        sys.exit(done.exit_code)
    raise AssertionError("unreachable: common.errors re-raises what it does not report")
