"""Command palette providers: go to a thread, agent or escalation; new task; network; pause or resume an agent.

Hits name ids, topics and reasons that came from data. Textual parses a hit's text as markup unless it is
``Content`` already (and a ``[/]`` in a title then raises MarkupError while the palette draws, which took the
console and its agents down), so every hit is built as ``Content`` from inert text, highlighted here.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.fuzzy import Matcher

from bzzz_console.domain.text import inert_line

if TYPE_CHECKING:
    from bzzz_console.tui.app import BzzzApp

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
            if a.thread:
                out.append(
                    (
                        f"Go to agent {a.id}",
                        f"{a.role} · {a.state} · in {a.thread}",
                        partial(app.open_thread, a.thread),
                    )
                )
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
