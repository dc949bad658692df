"""``bzzz-console mcp``: serve the bzzz tools over MCP, and issue, list and revoke its per-principal tokens."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from bzzz_console.cli.common import ConfigOption, DbOption, JsonOption

mcp_app = typer.Typer(
    help="Serve the bzzz tools over MCP (stdio by default; --http PORT for streamable HTTP).",
    invoke_without_command=True,
)


@mcp_app.callback()
def mcp_serve(
    ctx: typer.Context,
    http: Annotated[
        int | None,
        typer.Option(
            "--http", help="Serve streamable HTTP on 127.0.0.1:PORT (bearer token).", min=1, max=65535
        ),
    ] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Agents use the scripted demo model.")] = False,
    readonly: Annotated[bool, typer.Option("--readonly", help="Refuse bzzz_decide.")] = False,
    agent: Annotated[
        str | None,
        typer.Option(
            "--agent", help="stdio: serve as this outside agent (no decisions), not as you, the operator."
        ),
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Run a headless node that serves the bzzz tools: stdio for an IDE (you, as operator; or --agent NAME), or
    --http PORT (whoever holds a token: bzzz-console mcp token)."""
    if ctx.invoked_subcommand is not None:
        return
    import asyncio

    from bzzz_console.cli import common
    from bzzz_console.logs import configure_logging

    with common.errors():
        settings = common.read_settings(config, db)
        configure_logging(settings)  # stdout belongs to the MCP stdio protocol: logs go to the file only
        from bzzz_console.mcp.serve import run_mcp

        if agent is not None:
            from bzzz_console.security.tokens import NAME

            if http is not None:
                common.fail(
                    "--agent is for stdio; over HTTP the token says who calls (mcp token --agent NAME)", 2
                )
            if not NAME.match(agent):
                common.fail(f"--agent: {agent!r} is not a usable agent id", 2)
        raise typer.Exit(
            asyncio.run(run_mcp(settings, http_port=http, demo=demo, readonly=readonly, agent=agent))
        )


@mcp_app.command("token")
def mcp_token(
    operator: Annotated[
        bool, typer.Option("--operator", help="Issue an operator token (lists and answers escalations).")
    ] = False,
    name: Annotated[
        str | None, typer.Option("--name", help="The operator's name (default: your OS user).")
    ] = None,
    agent: Annotated[
        str | None,
        typer.Option("--agent", help="Issue a token that acts only as this outside agent id (no decisions)."),
    ] = None,
    owner: Annotated[
        list[str] | None,
        typer.Option(
            "--owner", help="With --agent: an operator responsible for it (may not decide its escalations)."
        ),
    ] = None,
    list_tokens: Annotated[bool, typer.Option("--list", help="List the tokens (never the secrets).")] = False,
    revoke: Annotated[
        str | None, typer.Option("--revoke", help="Revoke the token with this id (or the token itself).")
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Bearer tokens for MCP over HTTP: one per operator or outside agent. A new token is printed once (stdout);
    only its hash is kept (0600, in the data dir)."""
    from bzzz_console.cli import common
    from bzzz_console.domain.principals import os_user
    from bzzz_console.security.tokens import TokenBook

    chosen = [
        flag
        for flag, on in (
            ("--operator", operator),
            ("--agent", agent is not None),
            ("--list", list_tokens),
            ("--revoke", revoke is not None),
        )
        if on
    ]
    if len(chosen) != 1:
        common.fail(
            "give one of --operator [--name NAME], --agent NAME [--owner OPERATOR], --list, --revoke ID "
            f"(got {', '.join(chosen) or 'none'}); plain 'mcp token' no longer prints a shared token",
            2,
        )
    if name is not None and not operator:
        common.fail("--name goes with --operator (an agent token is named by --agent)", 2)
    if owner and agent is None:
        common.fail("--owner goes with --agent", 2)
    with common.errors():
        book = TokenBook(common.read_settings(config, None).resolved_data_dir())
        if list_tokens:
            listed = [r.public() for r in book.records()]
            if as_json:
                sys.stdout.write(json.dumps(listed, indent=2) + "\n")
            else:
                for entry in listed:
                    entry["owners"] = ", ".join(entry["owners"])
                    entry["revoked_at"] = entry["revoked_at"] or "—"
                common.table(listed, ["id", "kind", "name", "owners", "created_at", "revoked_at"])
            return
        if revoke is not None:
            revoked = book.revoke(revoke)
            typer.echo(f"token {revoked.id} ({revoked.kind} {revoked.name}) revoked", err=True)
            return
        if agent is not None:
            token, record = book.issue("agent", agent, tuple(owner or ()))
        else:
            token, record = book.issue("operator", name or os_user())
        typer.echo(token)
        typer.echo(
            f"issued {record.kind} token {record.id} for {record.name}: shown once, keep it secret "
            f"(revoke with: bzzz-console mcp token --revoke {record.id})",
            err=True,
        )
