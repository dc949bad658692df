"""``bzzz-console serve``: this node's console in a browser, for one or several operators at once."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from bzzz_console.cli.common import ConfigOption, DbOption


def serve(
    port: Annotated[int, typer.Option("--port", help="TCP port (0: any free one).", min=0, max=65535)] = 8080,
    host: Annotated[
        str,
        typer.Option(
            "--host", help="Address to bind (default loopback; anything else is reachable by others)."
        ),
    ] = "127.0.0.1",
    name: Annotated[
        str | None,
        typer.Option("--name", help="The operator the printed link signs in as (default: your OS user)."),
    ] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Agents use the scripted demo model.")] = False,
    readonly: Annotated[
        bool, typer.Option("--readonly", help="Watch only: no agents run, nothing can be decided.")
    ] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Serve the console to browsers (textual-serve's page). The link printed once at start signs you in; other
    operators open the same address with ?token=THEIR_OPERATOR_TOKEN (bzzz-console mcp token --operator --name
    NAME). Every browser session is a view onto this node's one runtime, and its decisions record its operator
    and the browser as their surface."""
    import asyncio

    from bzzz_console.cli import common
    from bzzz_console.logs import configure_logging

    # textual-serve's page is a truecolor terminal; set before Textual reads its settings (on import)
    os.environ.setdefault("TEXTUAL_COLOR_SYSTEM", "truecolor")
    os.environ.setdefault("COLORTERM", "truecolor")
    with common.errors():
        settings = common.read_settings(config, db)
        configure_logging(settings)  # the log file: stdout has the link, the terminal nothing else
        from bzzz_console.domain.principals import os_user
        from bzzz_console.security.tokens import NAME

        operator = name or os_user()
        if not NAME.match(operator):
            common.fail(f"--name: {operator!r} is not a usable operator name", 2)
        from bzzz_console.tui.web.server import serve as run

        def announce(server: Any) -> None:
            typer.echo(server.link)  # once: the token in it is made for this run and kept nowhere
            where = "" if host in ("127.0.0.1", "::1", "localhost") else " (reachable from other machines)"
            typer.echo(
                f"serving the console on {server.url}{where} as {operator}; the link above signs you in "
                "(shown once). Other operators add ?token=THEIR_OPERATOR_TOKEN. Ctrl+C stops.",
                err=True,
            )

        try:
            code = asyncio.run(
                run(
                    settings,
                    host=host,
                    port=port,
                    demo=demo,
                    readonly=readonly or settings.security.readonly,
                    operator=operator,
                    announce=announce,
                )
            )
        except OSError as exc:  # the port is taken, or the address is not this machine's
            common.fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}", 2)
        raise typer.Exit(code)
