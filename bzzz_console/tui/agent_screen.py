"""One agent (enter on a row of the Agents pane): its state and how it got there, its thread, spend, the last
model call and what went wrong with it; pause or resume it, open its thread or the escalation it waits on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from bzzz_console.domain.text import inert_line as one
from bzzz_console.domain.text import usd
from bzzz_console.resources import screens_dir
from bzzz_console.tui.panels import KeysFooter
from bzzz_console.tui.tables import REMOTE_GLYPH, STATE_STYLE, THREAD_STYLE

if TYPE_CHECKING:
    from bzzz_console.tui.app import BzzzApp
    from bzzz_console.tui.view_rows import AgentRowView


class AgentScreen(Screen[None]):
    CSS_PATH = screens_dir() / "agent.tcss"  # loaded when first opened, not on the way to the first paint
    BINDINGS = [
        Binding("escape", "app.pop_screen", "back", id="agent.back"),
        Binding("o", "open_thread", "open thread", id="agent.thread"),
        Binding("e", "open_escalation", "its escalation", id="agent.escalation"),
        Binding("p", "toggle_pause", "pause/resume", id="agent.pause"),
    ]

    def __init__(self, agent_id: str) -> None:
        super().__init__()
        self.agent_id = agent_id
        self.identity = ("agent", agent_id)
        """What the app opens one screen of (BzzzApp._show_once)."""
        self._offered: tuple[bool, bool, bool] | None = None

    @property
    def bzzz(self) -> BzzzApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="agent-body"):
            yield Static(id="agent-head")
            yield Static(id="agent-detail")
            yield Static(id="agent-history")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.refresh_agent()

    def _escalation(self) -> str | None:
        waiting = [e.id for e in self.bzzz.view.open_escalations() if e.agent_id == self.agent_id]
        return waiting[0] if waiting else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        agent = self.bzzz.view.agents.get(self.agent_id)
        if action == "open_thread":
            return agent is not None and agent.thread is not None
        if action == "open_escalation":
            return self._escalation() is not None
        if action == "toggle_pause":  # a terminated agent has nothing left to pause
            return agent is not None and agent.state != "terminating"
        return True

    def refresh_agent(self) -> None:
        agent = self.bzzz.view.agents.get(self.agent_id)
        if agent is None:
            self.query_one("#agent-head", Static).update(Text(f"agent {one(self.agent_id)} is not known"))
            return
        offered = (agent.thread is not None, self._escalation() is not None, agent.state != "terminating")
        if offered != self._offered:
            self._offered = offered
            self.refresh_bindings()
        self.query_one("#agent-head", Static).update(self._head(agent))
        self.query_one("#agent-detail", Static).update(self._detail(agent))
        self.query_one("#agent-history", Static).update(self._history(agent))

    def _head(self, a: AgentRowView) -> Text:
        # ids, roles, models, reasons and errors come from agents, peers and the model server: data, never markup
        glyph, style = STATE_STYLE.get(a.state, ("?", ""))
        head = Text()
        if a.origin == "remote":
            head.append(f"{REMOTE_GLYPH} ", style="cyan")
        head.append(one(a.id), style="bold")
        head.append(f" ({one(a.role)})  ", style="dim")
        head.append(f"{glyph} {one(a.state).capitalize()}", style=style or "bold")
        if a.paused:
            head.append("  PAUSED", style="bold yellow")
        if a.state == "escalating":
            head.append("  waiting for an operator", style="bold magenta")
        head.append(f"\nmodel {one(a.model) or '?'}", style="")
        if a.reason:
            head.append(f" · last change: {one(a.reason, 160)}", style="dim")
        return head

    def _detail(self, a: AgentRowView) -> Text:
        view = self.bzzz.view
        out = Text()
        out.append("\nThread  ", style="bold")
        thread = view.threads.get(a.thread or "")
        if thread is not None:
            out.append(f"{one(thread.id)} · ")
            out.append(one(thread.status), style=THREAD_STYLE.get(thread.status, ""))
            out.append(f" · {one(thread.topic, 120)}\n")
        else:
            out.append(f"{one(a.thread or '') or 'none (idle)'}\n", style="dim")
        if (escalation := self._escalation()) is not None:
            e = view.escalations[escalation]
            out.append("Waits   ", style="bold")
            out.append(f"{one(e.id)} · {one(e.rule)}: {one(e.reason, 120)}\n", style="bold magenta")
        limit = view.spend.agent_limits.get(a.id)
        out.append("Spend   ", style="bold")
        out.append("unknown" if a.cost_unknown and a.cost == 0 else usd(a.cost, 4))
        if limit is not None:
            out.append(f" of {usd(limit, 2)}", style="bold red" if a.cost >= limit else "")
        out.append(f" · {'~' if a.tokens_estimated else ''}{a.tokens:,} tokens\n")
        out.append("Last model call  ", style="bold")
        out.append(f"{one(a.last_call)}\n" if a.last_call else "none since the console started\n")
        if a.model_call:
            trouble = a.model_call.startswith("failed")
            out.append("Model error      " if trouble else "Model retrying   ", style="bold")
            out.append(f"{one(a.model_call, 300)}\n", style="bold red" if trouble else "yellow")
        return out

    def _history(self, a: AgentRowView) -> Text:
        out = Text("\nState history", style="bold")
        out.append(" (newest first, since the console started)\n", style="dim")
        if not a.history:
            out.append(f"  {one(a.state)} when the console started\n", style="dim")
        for at, state, why in reversed(a.history):
            glyph, style = STATE_STYLE.get(state.split(" ", 1)[0], ("?", ""))
            out.append(f"  {at:%H:%M:%S} ", style="dim")
            out.append(f"{glyph} {one(state)}", style=style)
            out.append(f"  {one(why, 160)}\n" if why else "\n", style="dim")
        return out

    def action_open_thread(self) -> None:
        agent = self.bzzz.view.agents.get(self.agent_id)
        if agent is not None and agent.thread:
            self.bzzz.open_thread(agent.thread)

    def action_open_escalation(self) -> None:
        if (escalation := self._escalation()) is not None:
            self.bzzz.open_escalation(escalation)

    async def action_toggle_pause(self) -> None:
        await self.bzzz.toggle_pause(self.agent_id)
