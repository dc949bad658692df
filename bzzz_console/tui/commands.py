"""Command palette providers: go to a thread, agent or escalation; new task; network; pause or resume an agent.

Hits name ids, topics and reasons that came from data. Textual parses a hit's text as markup unless it is
``Content`` already (and a ``[/]`` in a title then raises MarkupError while the palette draws, which took the
console and its agents down), so every hit is built as ``Content`` from inert text, highlighted here.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.fuzzy import Matcher

from bzzz_console.domain.text import inert_line

if TYPE_CHECKING:
    from bzzz_console.config import Settings
    from bzzz_console.domain import commands as cmd
    from bzzz_console.runtime.runtime import Runtime
    from bzzz_console.tui.app import BzzzApp
    from bzzz_console.tui.view import FleetView

HELP_LIMIT = 120
"""Characters of a hit's help line (a topic or reason)."""


def literal(text: str, limit: int | None = None) -> Content:
    """Data as palette content: one inert line, never parsed as markup."""
    return Content(inert_line(text, limit))


def highlighted(matcher: Matcher, name: str) -> Content:
    """``name`` with the characters the query matched highlighted, as ``Matcher.highlight`` does, but
    without parsing ``name`` as markup."""
    shown = inert_line(name)
    content = Content(shown)
    score, offsets = matcher.fuzzy_search.match(matcher.query, shown)
    if not score:
        return content
    for offset in offsets:
        if not shown[offset].isspace():
            content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


class FleetCommands(Provider):
    def _choices(self) -> list[tuple[str, str, object]]:
        app: BzzzApp = self.app  # type: ignore[assignment]
        view = app.view
        out: list[tuple[str, str, object]] = [
            ("New task…", "add a task for the fleet", app.action_new_task),
            ("Network", "peers, topics, message rates, rejected messages (N)", app.action_network),
        ]
        for e in view.open_escalations():
            out.append(
                (
                    f"Go to escalation {e.id} ({e.priority})",
                    f"{e.rule}: {e.reason}",
                    partial(app.open_escalation, e.id),
                )
            )
        for t in view.threads.values():
            out.append((f"Go to thread {t.id}", f"{t.topic} · {t.status}", partial(app.open_thread, t.id)))
        for a in sorted(view.agents.values(), key=lambda a: a.id):
            where = f" · in {a.thread}" if a.thread else ""
            out.append((f"Go to agent {a.id}", f"{a.role} · {a.state}{where}", partial(app.open_agent, a.id)))
            verb = "Resume" if a.paused else "Pause"
            out.append((f"{verb} agent {a.id}", f"{a.role} · {a.state}", partial(app.run_toggle_pause, a.id)))
        return out

    async def discover(self) -> Hits:
        for name, help_text, callback in self._choices()[:12]:
            # help is typed str, but Textual passes Content through as it is (Content.from_markup)
            help_content = literal(help_text, HELP_LIMIT)
            yield DiscoveryHit(literal(name), callback, text=inert_line(name), help=help_content)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._choices():
            score = matcher.match(inert_line(name))
            if score > 0:
                help_content = literal(help_text, HELP_LIMIT)
                yield Hit(
                    score,
                    highlighted(matcher, name),
                    callback,  # type: ignore[arg-type]
                    text=inert_line(name),
                    help=help_content,  # type: ignore[arg-type]
                )


class OperatorIntent(App[int]):
    """What the operator asks of the runtime — decide, post, pause, add a task — refused with a toast when the
    console is read-only or the runtime is not running (BzzzApp is one; the palette and the screens call these)."""

    settings: Settings
    readonly: bool
    rt: Runtime | None
    failed: str | None
    operator: str
    operator_label: str
    surface: str
    view: FleetView

    def _refuse(self, what: str) -> bool:
        if self.readonly:
            self.notify(f"read-only console: {what} is disabled (started with --readonly)", severity="error")
            return True
        if self.rt is None:
            self.notify(f"the runtime is not running: {self.failed or 'still starting'}", severity="error")
            return True
        return False

    async def submit(self, command: Any, what: str) -> Any:
        if self._refuse(what):
            return None
        from bzzz_console.domain.errors import CommandError

        try:
            return await self.rt.submit(command)  # type: ignore[union-attr]
        except CommandError as exc:
            self.notify(str(exc), title=f"Cannot {what}", severity="error")
            return None

    async def decide(self, command: cmd.Decision) -> bool:
        row = await self.submit(replace(command, surface=command.surface or self.surface), "decide")
        if row is None:
            return False
        if row.state == "open":  # the two-person rule: recorded, and a second operator has to confirm it
            self.notify(
                f"{command.kind} on {command.escalation_id} is 1 of 2 approvals: another operator must confirm it",
                title="Approval recorded",
            )
            return False
        self.notify(f"{command.kind} applied to {command.escalation_id}", title="Decision recorded")
        return True

    async def post_human(self, thread_id: str, text: str) -> bool:
        from bzzz_console.domain import commands as cmd
        from bzzz_console.domain.principals import shown_as

        return (
            await self.submit(
                cmd.PostHumanMessage(
                    thread_id=thread_id, text=text, operator=shown_as(self.operator, self.operator_label)
                ),
                "post",
            )
            is not None
        )

    async def toggle_pause(self, agent_id: str) -> None:
        from bzzz_console.domain import commands as cmd

        agent = self.view.agents.get(agent_id)
        command = cmd.Resume if agent is not None and agent.paused else cmd.Pause
        if self._refuse("pausing agents"):
            return
        if agent is not None and agent.state == "terminating":
            self.notify(f"{agent_id} is terminated: there is nothing to pause", severity="warning")
            return
        from bzzz_console.domain.errors import CommandError

        try:
            await self.rt.submit(command(agent_id=agent_id, operator=self.operator))  # type: ignore[union-attr]
        except CommandError as exc:
            self.notify(str(exc), title="Cannot pause or resume", severity="error")
            return
        self.notify(f"{agent_id} {'resumed' if command is cmd.Resume else 'paused'}")

    def run_toggle_pause(self, agent_id: str) -> None:
        self.run_worker(self.toggle_pause(agent_id))

    def action_new_task(self) -> None:
        if self._refuse("adding tasks"):
            return
        from bzzz_console.tui.modals import NewTask

        async def ask() -> None:
            from bzzz_console.domain import commands as cmd

            roles = self.rt.roles() if self.rt is not None else []
            answer = await self.push_screen_wait(NewTask(roles))
            if answer:
                task = await self.submit(
                    cmd.AddTask(project=self.settings.runtime.project, operator=self.operator, **answer),
                    "add a task",
                )
                if task is not None:
                    self.notify(f"{task.id}: {task.title}", title="Task added")

        self.run_worker(ask(), group="new-task")
