"""The dashboard's tables: each renders its rows from the FleetView and updates only what changed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from bzzz_console.domain.text import inert_line, usd
from bzzz_console.tui import clock
from bzzz_console.tui.view import FleetView
from bzzz_console.tui.view_rows import AgentRowView, EscalationView, ThreadRowView

STATE_STYLE = {
    "initializing": ("…", "dim"),
    "idle": ("○", "dim"),
    "active": ("●", "green"),
    "collaborating": ("●", "cyan"),
    "escalating": ("◆", "bold magenta"),
    "terminating": ("✕", "red"),
}
PRIORITY_STYLE = {
    "urgent": ("!", "bold red"),
    "high": ("▲", "yellow"),
    "medium": ("•", ""),
    "low": ("·", "dim"),
}
THREAD_STYLE = {"active": "green", "waiting_human": "bold magenta", "stalled": "yellow", "closed": "dim"}


def age(since: datetime, now: datetime) -> str:
    seconds = max(0, int((now - since).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}"


def countdown(deadline: datetime | None, now: datetime) -> Text:
    if deadline is None:
        return Text("—", style="dim")
    left = int((deadline - now).total_seconds())
    if left <= 0:
        return Text("expired", style="bold red")
    text = f"{left // 3600:d}:{left % 3600 // 60:02d}:{left % 60:02d}"
    return Text(text, style="bold red" if left < 300 else "yellow" if left < 1800 else "")


def short_peer(peer_id: str) -> str:
    """``12D3…Q9YSYt``: the last six are what other nodes' agents are suffixed with (``architect-1.Q9YSYt``)."""
    return f"{peer_id[:4]}…{peer_id[-6:]}" if len(peer_id) > 12 else peer_id


REMOTE_GLYPH = "⇄"
"""Marks another node's agent."""


CELL_LIMIT = 200
"""Characters a cell shows: a 10 000-character topic must not push the other columns off the screen."""


def cell(value: object) -> object:
    """How a table shows a value: as ``Text`` (a string cell would be parsed as markup, and ``[/]`` in a title
    is a MarkupError), one line, inert (:func:`bzzz_console.domain.text.inert_line`). A ``Text`` built here with
    styles is kept as it is when its text is already inert, else rebuilt from the inert text in its base style."""
    if isinstance(value, str):
        return Text(inert_line(value, CELL_LIMIT), no_wrap=True, end="")
    if isinstance(value, Text):
        shown = inert_line(value.plain, CELL_LIMIT)
        return value if shown == value.plain else Text(shown, style=value.style, no_wrap=True, end="")
    return value


def money(value: float, unknown: bool = False) -> str:
    return "unknown" if unknown and value == 0 else usd(value, 4, symbol=False) + ("+?" if unknown else "")


class FleetTable(DataTable[object]):
    """A DataTable keyed by id, with a substring filter over every cell (``/``)."""

    COLUMNS: tuple[str, ...] = ()

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self.filter_text = ""
        self._shown: list[str] = []
        self._cells: dict[str, tuple[object, ...]] = {}

    def on_mount(self) -> None:
        for column in self.COLUMNS:
            self.add_column(column, key=column)

    def rows_for(self, view: FleetView, now: datetime) -> Iterable[tuple[str, tuple[object, ...]]]:
        raise NotImplementedError

    def refresh_from(self, view: FleetView) -> None:
        now = clock.now()
        rows = ((key, tuple(cell(c) for c in cells)) for key, cells in self.rows_for(view, now))
        wanted = [(key, cells) for key, cells in rows if self._matches(cells)]
        keys = [key for key, _ in wanted]
        if keys != self._shown:
            selected = self._selected_key()
            self.clear()
            for key, cells in wanted:
                self.add_row(*cells, key=key)
            self._shown, self._cells = keys, dict(wanted)
            if selected in keys:
                self.move_cursor(row=keys.index(selected), animate=False)
            return
        for key, cells in wanted:
            old = self._cells.get(key)
            if old == cells:
                continue
            for column, value, before in zip(self.COLUMNS, cells, old or (None,) * len(cells), strict=False):
                if value != before:
                    # Re-measuring a column makes the table lay out again: only when the value outgrows it.
                    width = len(value.plain) if isinstance(value, Text) else len(str(value))
                    grows = width > self.columns[ColumnKey(column)].content_width
                    self.update_cell(key, column, value, update_width=grows)
            self._cells[key] = cells

    def _matches(self, cells: tuple[object, ...]) -> bool:
        if not self.filter_text:
            return True
        needle = self.filter_text.lower()
        return any(needle in (c.plain if isinstance(c, Text) else str(c)).lower() for c in cells)

    def _selected_key(self) -> str | None:
        if not self._shown or self.cursor_row < 0 or self.cursor_row >= len(self._shown):
            return None
        return self._shown[self.cursor_row]

    @property
    def selected(self) -> str | None:
        return self._selected_key()


def _model_call(note: str) -> Text:
    """A model call in trouble, short: " ⟳ retry 2" while it is retried, " ✗ model failed" once it failed (the
    whole message is in the errors pane); nothing while calls work."""
    if note.startswith("retry"):
        return Text(" ⟳ " + note.split(":", 1)[0].rsplit(" in ", 1)[0], style="yellow")
    if note.startswith("failed"):
        return Text(" ✗ model failed", style="bold red")
    return Text("")


class AgentsTable(FleetTable):
    COLUMNS = ("id", "role", "state", "thread", "model", "tokens", "$")

    def rows_for(self, view: FleetView, now: datetime) -> Iterable[tuple[str, tuple[object, ...]]]:
        # the agents waiting for the operator first (agent-deck users look there first)
        for agent in sorted(view.agents.values(), key=lambda a: (a.state != "escalating", a.id)):
            yield agent.id, self._cells_of(agent, view)

    def _cells_of(self, a: AgentRowView, view: FleetView) -> tuple[object, ...]:
        glyph, style = STATE_STYLE.get(a.state, ("?", ""))
        state = Text(f"{glyph} {a.state.capitalize()}" + (" (paused)" if a.paused else ""), style=style)
        state.append_text(_model_call(a.model_call))
        limit = view.spend.agent_limits.get(a.id)
        over = limit is not None and a.cost >= limit
        cost = Text(
            money(a.cost, a.cost_unknown) + (" over" if over else ""), style="bold red" if over else ""
        )
        ident: object = a.id if a.origin != "remote" else Text(f"{REMOTE_GLYPH} {a.id}", style="cyan")
        tokens = ("~" if a.tokens_estimated else "") + f"{a.tokens:,}"  # ~: the server sent no counts
        return (ident, a.role, state, a.thread or "—", a.model, tokens, cost)


class ThreadsTable(FleetTable):
    COLUMNS = ("id", "status", "topic", "msgs", "$", "age", "participants")

    def rows_for(self, view: FleetView, now: datetime) -> Iterable[tuple[str, tuple[object, ...]]]:
        order = {"waiting_human": 0, "active": 1, "stalled": 2, "closed": 3}
        for t in sorted(
            view.threads.values(), key=lambda t: (order.get(t.status, 9), -t.created_at.timestamp())
        ):
            yield t.id, self._cells_of(t, now)

    def _cells_of(self, t: ThreadRowView, now: datetime) -> tuple[object, ...]:
        topic = t.topic.removeprefix("Collaborative Review: ")
        status = Text(
            "ESCALATED" if t.status == "waiting_human" else t.status, style=THREAD_STYLE.get(t.status, "")
        )
        status.append_text(_model_call(t.model_call))
        participants = ", ".join(t.participants)
        return (t.id, status, topic, str(t.messages), money(t.cost), age(t.created_at, now), participants)


class EscalationsTable(FleetTable):
    COLUMNS = ("priority", "agent", "reason", "age", "deadline")

    def rows_for(self, view: FleetView, now: datetime) -> Iterable[tuple[str, tuple[object, ...]]]:
        for e in view.open_escalations():
            yield e.id, self._cells_of(e, now)

    def _cells_of(self, e: EscalationView, now: datetime) -> tuple[object, ...]:
        glyph, style = PRIORITY_STYLE.get(e.priority, ("?", ""))
        reason = f"{e.rule}: {e.reason}"
        go_node = e.rule.startswith("go-node ")  # a Go BZZZ node's (p2p/gometa.py): read-only
        return (
            Text(f"{glyph} {e.priority}", style=style),
            Text(f"{REMOTE_GLYPH} Go node", style="cyan") if go_node else e.agent_id or "—",
            reason[:120],
            age(e.created_at, now),
            countdown(e.deadline, now),
        )
