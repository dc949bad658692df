"""The dashboard: agents, escalations, threads and spend at a glance, all keyboard."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Input

from bzzz_console.tui.panels import KeysFooter, SpendPanel, StatusLine, status_text
from bzzz_console.tui.tables import AgentsTable, EscalationsTable, FleetTable, ThreadsTable

if TYPE_CHECKING:
    from bzzz_console.tui.app import BzzzApp

STARTING = "starting…"  # what the panes say between the first paint and the runtime being ready


class Pane(Vertical):
    """A bordered pane with a title that can say how many rows it holds."""

    def __init__(self, title: str, *children: object, subtitle: str = "", **kwargs: object) -> None:
        super().__init__(*children, **kwargs)  # type: ignore[arg-type]
        self.border_title = title
        self.border_subtitle = subtitle


class DashboardScreen(Screen[None]):
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-medium"), (200, "-wide")]
    """Below 120 columns the panes stack (escalations, agents, threads, a one-line spend); from 120 threads and
    spend sit side by side; from 200 spend has room for its chart (see screens/dashboard.tcss)."""

    BINDINGS = [
        Binding("e", "focus_table('escalations')", "escalations", id="dashboard.escalations"),
        Binding("t", "focus_table('threads')", "threads", id="dashboard.threads"),
        Binding("a", "focus_table('agents')", "agents", id="dashboard.agents"),
        Binding("slash", "filter", "filter", id="dashboard.filter"),
        Binding("escape", "clear_filter", "clear filter", show=False, id="dashboard.clear_filter"),
        Binding("n", "app.new_task", "new task", id="dashboard.new_task"),
        Binding(
            "p", "toggle_pause", "pause", id="dashboard.pause", tooltip="pause or resume the selected agent"
        ),
    ]

    @property
    def bzzz(self) -> BzzzApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield StatusLine(status_text(self.bzzz.view), id="status")  # in the first frame, not the one after
        with Vertical(id="dashboard"):
            # composed once, as the app starts: "starting…" until its runtime is ready (BzzzApp._starting)
            yield Pane(
                "Escalations", EscalationsTable(id="escalations"), id="escalations-pane", subtitle=STARTING
            )
            yield Pane("Agents", AgentsTable(id="agents"), id="agents-pane", subtitle=STARTING)
            with Horizontal(id="lower"):
                yield Pane("Threads", ThreadsTable(id="threads"), id="threads-pane", subtitle=STARTING)
                yield Pane("Spend", SpendPanel(id="spend"), id="spend-pane", subtitle=STARTING)
        yield Input(placeholder="filter the focused table (esc clears)", id="filter")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one("#escalations", EscalationsTable).focus()
        self.refresh_panes({"agents", "threads", "escalations", "spend", "status"})

    TABLE_INTERVAL_S = 0.25
    """Tables repaint at most this often: a DataTable redraws every visible cell after any update."""

    def refresh_panes(self, touched: set[str]) -> None:
        """Repaint what changed; table panes are coalesced to a few repaints a second under high event rates."""
        self._pending = getattr(self, "_pending", set()) | touched
        now = time.monotonic()
        wait = getattr(self, "_last_paint", 0.0) + self.TABLE_INTERVAL_S - now
        if wait > 0 and not (self._pending & {"escalations", "status"}):
            if not getattr(self, "_paint_scheduled", False):
                self._paint_scheduled = True
                self.set_timer(wait, self._paint_pending)
            return
        self._paint_pending()

    def _paint_pending(self) -> None:
        self._paint_scheduled = False
        touched, self._pending = self._pending, set()
        self._last_paint = time.monotonic()
        self._paint(touched)

    def _paint(self, touched: set[str]) -> None:
        view = self.bzzz.view
        if "status" in touched or "escalations" in touched:
            self.query_one(StatusLine).show(view)
        for name in ("agents", "threads", "escalations"):
            if name in touched:
                self.query_one(f"#{name}", FleetTable).refresh_from(view)
                self._title(name)
        if "spend" in touched:
            self.query_one(SpendPanel).show(view)

    def _title(self, name: str) -> None:
        """The pane's title: how many rows, and the filter when one hides some."""
        table = self.query_one(f"#{name}", FleetTable)
        pane = self.query_one(f"#{name}-pane", Pane)
        pane.border_title = table.title(name.capitalize(), " open" if name == "escalations" else "")
        pane.set_class(name == "escalations" and table.total > 0, "-waiting")

    def tick(self) -> None:
        """Once a second: countdowns and ages move even when nothing happens."""
        self.query_one("#escalations", FleetTable).refresh_from(self.bzzz.view)
        self._title("escalations")

    def action_focus_table(self, name: str) -> None:
        self.query_one(f"#{name}", DataTable).focus()

    def _focused_table(self) -> FleetTable:
        focused = self.focused
        if isinstance(focused, FleetTable):
            return focused
        return getattr(self, "_last_table", None) or self.query_one("#escalations", FleetTable)

    def on_descendant_focus(self, event: object) -> None:
        if isinstance(self.focused, FleetTable):
            self._last_table = self.focused

    def action_filter(self) -> None:
        table = self._focused_table()
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = table.filter_text
        box.placeholder = f"filter {table.id} (esc clears)"
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            table = self._focused_table()
            table.filter_text = event.value
            table.refresh_from(self.bzzz.view)
            self._title(str(table.id))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self._focused_table().focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        table = self._focused_table()
        table.filter_text = ""
        box.value = ""
        box.display = False
        table.refresh_from(self.bzzz.view)
        self._title(str(table.id))
        table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if key is None:
            return
        if event.data_table.id == "escalations":
            self.bzzz.open_escalation(key)
        elif event.data_table.id == "threads":
            self.bzzz.open_thread(key)
        elif event.data_table.id == "agents":
            self.bzzz.open_agent(key)

    async def action_toggle_pause(self) -> None:
        table = self.focused
        agent_id = table.selected if isinstance(table, FleetTable) and table.id == "agents" else None
        if agent_id is None:  # only the agent the operator looks at, never another pane's
            self.notify("focus the Agents pane (a) and pick an agent first", severity="warning")
            return
        await self.bzzz.toggle_pause(agent_id)
