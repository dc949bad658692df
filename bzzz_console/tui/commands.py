"""Command palette providers: go to a thread, agent or escalation; new task; network; pause or resume an agent."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from bzzz_console.tui.app import BzzzApp


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
                    f"{e.rule}: {e.reason[:80]}",
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
            yield DiscoveryHit(name, callback, help=help_text)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._choices():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)  # type: ignore[arg-type]
