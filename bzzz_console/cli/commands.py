"""The ``bzzz-console`` command line: thin typer commands that hand off to plain functions.

``main.py`` is the entry point: the plain console launch skips this module (``launch.py``), everything else runs
here. Heavy libraries (openai, sqlmodel, textual …) are imported inside the commands that need them, so ``--help``
and ``--version`` answer at once. ``--json`` output is exactly one JSON document on stdout; messages go to stderr.
"""

from __future__ import annotations

import asyncio
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from bzzz_console import __version__
from bzzz_console.cli import common
from bzzz_console.cli.common import ConfigOption, DbOption, JsonOption
from bzzz_console.cli.launch import p2p_overrides

app = typer.Typer(
    name="bzzz-console",
    no_args_is_help=False,
    add_completion=False,
    help="Operator console for a fleet of LLM agents that collaborate in threads and escalate to you.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
task_app = typer.Typer(help="Add and list tasks.", no_args_is_help=True)
agents_app = typer.Typer(help="Inspect agents.", no_args_is_help=True)
threads_app = typer.Typer(help="Inspect and export conversation threads.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
config_app = typer.Typer(help="Show the effective settings.", no_args_is_help=True)
app.add_typer(task_app, name="task")
app.add_typer(agents_app, name="agents")
app.add_typer(threads_app, name="threads")
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")


def _register_ops() -> None:
    from bzzz_console.cli.audit import audit_app, db_prune
    from bzzz_console.cli.db import db_upgrade
    from bzzz_console.cli.mcp import mcp_app
    from bzzz_console.cli.ops import escalations_app
    from bzzz_console.cli.serve import serve
    from bzzz_console.cli.status import spend, status

    app.add_typer(escalations_app, name="escalations")
    app.add_typer(audit_app, name="audit")
    db_app.command("prune")(db_prune)
    db_app.command("upgrade")(db_upgrade)
    app.add_typer(mcp_app, name="mcp")
    app.command("spend")(spend)
    app.command("status")(status)
    app.command("serve")(serve)


def _register_keys() -> None:
    from bzzz_console.cli.keys import key_app
    from bzzz_console.cli.tasks import task_add, task_list

    app.add_typer(key_app, name="key")
    task_app.command("add")(task_add)
    task_app.command("list")(task_list)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bzzz-console {__version__}")
        raise typer.Exit()


DemoOption = Annotated[
    bool, typer.Option("--demo", help="Use the scripted demo model; seed 3 demo tasks into an empty DB.")
]
ReadonlyOption = Annotated[
    bool, typer.Option("--readonly", help="Console only watches: no decisions, posts or tasks.")
]
SeedOption = Annotated[int | None, typer.Option("--seed", help="Seed of the demo model.")]
ListenOption = Annotated[
    list[str] | None,
    typer.Option(
        "--listen", help="Join the P2P network, listening here (repeat), e.g. /ip4/0.0.0.0/tcp/4001."
    ),
]
PeerOption = Annotated[
    list[str] | None,
    typer.Option("--peer", help="Join the P2P network through this peer (repeat): /ip4/…/tcp/N/p2p/<id>."),
]


McpPortOption = Annotated[
    int | None,
    typer.Option("--mcp-port", help="Also serve MCP over HTTP on 127.0.0.1:PORT.", min=1, max=65535),
]


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    demo: DemoOption = False,
    readonly: ReadonlyOption = False,
    seed: SeedOption = None,
    mcp_port: McpPortOption = None,
    listen: ListenOption = None,
    peer: PeerOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Without a command: open the operator console (the demo model plays the team when no API key is set)."""
    if ctx.invoked_subcommand is None:
        p2p = p2p_overrides(listen, peer)
        _console(demo=demo, readonly=readonly, seed=seed, db=db, config=config, mcp_port=mcp_port, p2p=p2p)


def _console(
    *,
    demo: bool,
    readonly: bool,
    seed: int | None,
    db: str | None,
    config: Path | None,
    mcp_port: int | None = None,
    p2p: dict[str, Any] | None = None,
) -> NoReturn:
    """The console with its settings read first (``launch.py`` is the plain launch's quicker way)."""
    from bzzz_console.cli.launch import prepare, warn

    with common.errors():
        settings = prepare(config, db, seed, p2p or {})
        warn(settings)
        from bzzz_console.tui.app import BzzzApp

        app_ = BzzzApp(settings, demo=demo, demo_tasks=demo, readonly=readonly, mcp_port=mcp_port)
        code = app_.run()
        raise typer.Exit(code if isinstance(code, int) else app_.return_code or 0)


@app.command()
def run(
    headless: Annotated[
        bool, typer.Option("--headless", help="No UI: print one JSON object per event.")
    ] = False,
    demo: DemoOption = False,
    exit_when_idle: Annotated[
        bool, typer.Option("--exit-when-idle", help="Exit 0 once no agent can make progress.")
    ] = False,
    readonly: ReadonlyOption = False,
    seed: SeedOption = None,
    mcp_port: McpPortOption = None,
    listen: ListenOption = None,
    peer: PeerOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Run the agent runtime: the console, or --headless with JSON events on stdout."""
    p2p = p2p_overrides(listen, peer)
    if not headless:
        _console(demo=demo, readonly=readonly, seed=seed, db=db, config=config, mcp_port=mcp_port, p2p=p2p)
    from bzzz_console.logs import configure_logging

    with common.errors():
        settings = common.read_settings(config, db, demo__seed=seed, **p2p)
        configure_logging(settings)
        from bzzz_console.cli.headless import run_headless

        code = run_headless(settings, demo=demo, exit_when_idle=exit_when_idle, readonly=readonly)
        raise typer.Exit(asyncio.run(code))


@agents_app.command("list")
def agents_list(as_json: JsonOption = False, db: DbOption = None, config: ConfigOption = None) -> None:
    """List agents with their state, model and spend."""
    from bzzz_console.views.reports import agents_report

    with common.errors():
        store = common.open_db(config, db, read_only=True)
        rows = agents_report(store)
        store.close()
        if as_json:
            common.emit_json(rows)
        else:
            common.table(rows, ["id", "role", "state", "model", "tokens", "cost_usd"])


@threads_app.command("list")
def threads_list(as_json: JsonOption = False, db: DbOption = None, config: ConfigOption = None) -> None:
    """List threads: id, topic, status, participants, message count, cost."""
    from bzzz_console.domain.text import usd
    from bzzz_console.views.reports import threads_report

    with common.errors():
        store = common.open_db(config, db, read_only=True)
        rows = threads_report(store)
        store.close()
        if as_json:
            common.emit_json(rows)
        else:
            common.table(
                [
                    {
                        **r,
                        "participants": ", ".join(r["participants"]),
                        "cost_usd": usd(r["cost_usd"], 4, symbol=False),
                    }
                    for r in rows
                ],
                ["id", "status", "message_count", "cost_usd", "participants", "topic"],
            )


@threads_app.command("show")
def threads_show(thread_id: str, db: DbOption = None, config: ConfigOption = None) -> None:
    """Print a thread's transcript."""
    from bzzz_console.store.repo import Store
    from bzzz_console.views.reports import thread_document, thread_markdown

    with common.errors():
        settings = common.read_settings(config, db)
        store = Store.open_readonly(settings.database_url())
        doc = thread_document(store, thread_id, settings.security)
        store.close()
        from rich.console import Console
        from rich.markdown import Markdown
        from rich.theme import Theme

        # The export is inert already (reports.thread_markdown); links print their address instead of
        # becoming live, and the quoted message bodies keep the terminal's colour instead of magenta.
        console = Console(theme=Theme({"markdown.block_quote": "none"}))
        console.print(Markdown(thread_markdown(doc), hyperlinks=False))


class ExportFormat(StrEnum):
    md = "md"
    json = "json"


@threads_app.command("export")
def threads_export(
    thread_id: str,
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="md or json.")] = ExportFormat.md,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Export a thread (transcript, participants, decisions) as Markdown or JSON."""
    from bzzz_console.store.repo import Store
    from bzzz_console.views.reports import thread_document, thread_markdown

    with common.errors():
        settings = common.read_settings(config, db)
        store = Store.open_readonly(settings.database_url())
        doc = thread_document(store, thread_id, settings.security)
        store.close()
        from bzzz_console.domain.text import json_safe

        text = (
            json_safe(json.dumps(doc, indent=2, ensure_ascii=False)) + "\n"
            if format is ExportFormat.json
            else thread_markdown(doc)
        )
        if output is None:
            sys.stdout.write(text)
        else:
            try:
                from bzzz_console.cli.db import write_export

                write_export(output, text)
            except OSError as exc:
                common.fail(f"cannot write {output}: {exc.strerror or exc}")
            typer.echo(f"wrote {output}", err=True)


@config_app.command("show")
def config_show(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Print the effective settings (file + environment) with each key's meaning."""
    from bzzz_console.config_docs import describe_settings, shareable

    with common.errors():
        settings = shareable(common.read_settings(config, None))
        if as_json:
            common.emit_json(settings.model_dump(mode="json"))
        else:
            typer.echo(describe_settings(settings))


_register_ops()
_register_keys()
