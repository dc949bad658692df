"""The ``bzzz-console`` entry point. A plain console launch (``bzzz-console --demo`` …) goes straight to the
console (``launch.py``) without importing typer; every other command line is the typer app of ``commands.py``.

``from bzzz_console.cli.main import app`` still gives that typer app (imported on first use).
"""

from __future__ import annotations

import sys
from typing import Any


def main() -> None:
    from bzzz_console.cli.launch import console_args, launch

    args = console_args(sys.argv[1:])
    if args is not None:
        launch(args)
    from bzzz_console.cli.commands import app

    app()


def __getattr__(name: str) -> Any:
    if name.startswith("__"):  # a tool's probe (__path__, __wrapped__ …) is not worth importing typer for
        raise AttributeError(name)
    from bzzz_console.cli import commands

    return getattr(commands, name)
