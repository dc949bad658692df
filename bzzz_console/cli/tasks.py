"""``bzzz-console task add|list``: tasks go straight into the store; a running node picks them up."""

from __future__ import annotations

from typing import Annotated

import typer

from bzzz_console.cli import common
from bzzz_console.cli.common import ConfigOption, DbOption, JsonOption
from bzzz_console.domain.threads import Priority


def task_add(
    title: Annotated[str, typer.Argument(help="What needs doing.")],
    description: Annotated[str, typer.Option("--description", "-d", help="Details for the agents.")] = "",
    role: Annotated[
        list[str] | None,
        typer.Option("--role", "-r", help="Required role (repeat); default architect+reviewer."),
    ] = None,
    priority: Annotated[Priority, typer.Option("--priority", "-p")] = Priority.MEDIUM,
    project: Annotated[
        str | None, typer.Option("--project", help="Project (default: runtime.project).")
    ] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Add a task; a running node picks it up within a second."""
    with common.errors():
        if not title.strip():
            common.fail("the task title is empty", 2)
        settings = common.read_settings(config, db)
        from bzzz_console.domain.specs import load_specs
        from bzzz_console.resources import agents_dir

        known = load_specs(settings.runtime.agents_dir or agents_dir())
        roles = role or ["architect", "reviewer"]
        unknown = [r for r in roles if not any(spec.answers_to(r) for spec in known.values())]
        if unknown:
            common.fail(f"unknown role(s) {', '.join(unknown)}; known roles: {', '.join(sorted(known))}", 2)
        from bzzz_console.security.redaction import redactor_for
        from bzzz_console.store.repo import Store

        redact = redactor_for(settings.security)
        store = Store.open(settings.database_url())
        task = store.add_task(
            title=redact.redact(title.strip(), "store"),
            description=redact.redact(description, "store"),
            roles=roles,
            priority=priority.value,
            project=project or settings.runtime.project,
        )
        store.close()
        if as_json:
            common.emit_json(
                {
                    "id": task.id,
                    "title": task.title,
                    "roles": task.roles,
                    "priority": task.priority,
                    "project": task.project,
                    "status": task.status,
                }
            )
        else:
            typer.echo(task.id)


def task_list(as_json: JsonOption = False, db: DbOption = None, config: ConfigOption = None) -> None:
    """List tasks."""
    with common.errors():
        store = common.open_db(config, db, read_only=True)
        rows = [
            {
                "id": t.id,
                "title": t.title,
                "status": t.status,
                "priority": t.priority,
                "roles": t.roles,
                "project": t.project,
                "thread_id": t.thread_id,
                "source": t.source,
                "from": _origin(t.details),
                "details": t.details,
            }
            for t in store.tasks()
        ]
        store.close()
        if as_json:
            common.emit_json(rows)
        else:
            common.table(rows, ["id", "priority", "status", "thread_id", "from", "title"])


def _origin(details: dict[str, object]) -> str | None:
    """Where a task from the network comes from, as its announcer names it: ``repository#number`` for a Go
    BZZZ task (its labels, estimate, skills and dependencies are in ``--json``'s ``details``)."""
    if details.get("repository") and details.get("number") is not None:
        return f"{details['repository']}#{details['number']}"
    return None
