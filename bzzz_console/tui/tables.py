"""The dashboard's tables: each renders its rows from the FleetView and updates only what changed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable

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
ROLE_COLORS = {
    # (on a dark background, on a light one): told apart from each other and readable (>= 3:1) on the
    # background of every built-in theme (tests/test_tui.py checks them); theme colours are not (textual-dark's
    # accent and warning are one colour)
    "architect": ("#5fafff", "#0050a0"),
    "reviewer": ("#ffaf00", "#9a5200"),
    "documentation": ("#5fd75f", "#1d6b1d"),
    "human": ("#ff5f87", "#c0006a"),
}
OTHER_ROLE = ("#c39bff", "#7030a0")


def role_color(role: str, dark: bool = True) -> str:
    pair = ROLE_COLORS.get(role, OTHER_ROLE)
    return pair[0] if dark else pair[1]


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


TOOLTIP_LIMIT = 2000
"""Characters of a cell the row's tooltip shows: the whole of a reason or topic the column cut."""


def money(value: float, unknown: bool = False) -> str:
    return "unknown" if unknown and value == 0 else usd(value, 4, symbol=False) + ("+?" if unknown else "")


@dataclass(frozen=True)
class Col:
    """A column: how wide it grows (longer text is cut with …), which columns go first when the pane is narrow
    (``drop``: 0 = always shown, the highest number is hidden first) and the one that takes the room left
    (``flex``: a topic or a reason, shortened before anything else is hidden)."""

    key: str
    cap: int
    drop: int = 0
    flex: bool = False
    least: int = 12
    """A flex column narrower than this hides another column instead."""
    extra: bool = False
    """Shown only while the flex column has room for its whole text (a thread's participants)."""


def _width(value: object) -> int:
    return value.cell_len if isinstance(value, Text) else cell_len(str(value))


def _plain(value: object) -> str:
    return value.plain if isinstance(value, Text) else str(value)


def _cut(value: object, width: int) -> object:
    if _width(value) <= width:
        return value
    text = value.copy() if isinstance(value, Text) else Text(str(value), no_wrap=True, end="")
    text.truncate(width, overflow="ellipsis")
    return text


class FleetTable(DataTable[object]):
    """A DataTable keyed by id, with a substring filter over every cell (``/``), whose columns fit its pane:
    no horizontal scrolling; the flex column is shortened first (the full text is the row's tooltip), then
    the least needed columns are hidden (the filter still searches them)."""

    COLUMNS: tuple[Col, ...] = ()

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self.filter_text = ""
        self.total = 0
        """Rows before the filter (the pane's title says "1 of 3")."""
        self._shown: list[str] = []
        self._cells: dict[str, tuple[object, ...]] = {}
        self._full: list[tuple[str, tuple[object, ...]]] = []
        self._layout: tuple[tuple[int, int], ...] = ()
        self._raw: dict[str, tuple[object, ...]] = {}

    def rows_for(self, view: FleetView, now: datetime) -> Iterable[tuple[str, tuple[object, ...]]]:
        raise NotImplementedError

    @property
    def dark(self) -> bool:
        try:
            return bool(self.app.current_theme.dark)
        except Exception:  # not in an app (a test reads the rows)
            return True

    def refresh_from(self, view: FleetView) -> None:
        now = clock.now()
        raw = list(self.rows_for(view, now))
        self._raw = dict(raw)
        rows = [(key, tuple(cell(c) for c in cells)) for key, cells in raw]
        self.total = len(rows)
        self._full = [(key, cells) for key, cells in rows if self._matches(cells)]
        self._show()

    def fit(self, room: int) -> tuple[tuple[int, int], ...]:
        """(column index, width) of the columns shown in ``room`` cells: each as wide as its widest cell (up to
        its cap); while they do not fit, the flex column shrinks to its least, then the columns with the
        highest ``drop`` are hidden; an ``extra`` column only shows while the flex column is whole."""
        pad = 2 * self.cell_padding
        natural = [
            min(col.cap, max([cell_len(col.key)] + [_width(cells[i]) for _, cells in self._full]))
            for i, col in enumerate(self.COLUMNS)
        ]
        shown = list(range(len(self.COLUMNS)))
        flex = next((i for i, col in enumerate(self.COLUMNS) if col.flex), None)

        def needed() -> int:
            return sum(natural[i] + pad for i in shown if i != flex) + (
                self.COLUMNS[flex].least + pad if flex is not None else 0
            )

        if room > 0:
            droppable = sorted(
                (i for i, c in enumerate(self.COLUMNS) if c.drop), key=lambda i: -self.COLUMNS[i].drop
            )
            while needed() > room and droppable:
                shown.remove(droppable.pop(0))
            spare = room - (needed() - (self.COLUMNS[flex].least if flex is not None else 0))
            if flex is not None and spare < natural[flex]:  # the flex column is cut: no room for extras
                shown = [i for i in shown if not self.COLUMNS[i].extra]
        widths = dict(zip(shown, (natural[i] for i in shown), strict=True))
        if flex is not None and room > 0:
            widths[flex] = max(
                self.COLUMNS[flex].least, room - (needed() - self.COLUMNS[flex].least - pad) - pad
            )
        return tuple((i, widths[i]) for i in shown)

    def _show(self) -> None:
        # the table's width less a vertical scrollbar, which may come and go
        layout = self.fit(max(0, self.size.width - 1) if self.size.width else 0)
        wanted = [(key, tuple(_cut(cells[i], w) for i, w in layout)) for key, cells in self._full]
        keys = [key for key, _ in wanted]
        if layout != self._layout:
            selected = self._selected_key()
            self.clear(columns=True)
            for i, w in layout:
                self.add_column(self.COLUMNS[i].key, key=self.COLUMNS[i].key, width=w)
            self._layout, self._shown = layout, []
            self._rebuild(wanted, selected)
            return
        if keys != self._shown:
            self._rebuild(wanted, self._selected_key())
            return
        for key, cells in wanted:
            old = self._cells.get(key)
            if old == cells:
                continue
            for (i, _), value, before in zip(layout, cells, old or (None,) * len(cells), strict=False):
                if value != before:
                    self.update_cell(key, self.COLUMNS[i].key, value)
            self._cells[key] = cells
        self._row_tooltip()

    def _rebuild(self, wanted: list[tuple[str, tuple[object, ...]]], selected: str | None) -> None:
        self.clear()
        for key, cells in wanted:
            self.add_row(*cells, key=key)
        self._shown, self._cells = [key for key, _ in wanted], dict(wanted)
        if selected in self._shown:
            self.move_cursor(row=self._shown.index(selected), animate=False)
        self._row_tooltip()

    def on_resize(self) -> None:
        self._show()

    def on_data_table_row_highlighted(self) -> None:
        self._row_tooltip()

    def _row_tooltip(self) -> None:
        """The highlighted row's cells that are cut or hidden, in full (as text, never markup)."""
        key = self._selected_key()
        cells = dict(self._full).get(key) if key is not None else None
        if cells is None:
            self.tooltip = None
            return
        shown = dict(self._layout)
        raw = self._raw.get(key or "", cells)
        lines = [
            f"{col.key}: {inert_line(_plain(raw[i]), TOOLTIP_LIMIT)}"
            for i, col in enumerate(self.COLUMNS)
            if i not in shown or _width(cells[i]) > shown[i]
        ]
        self.tooltip = Text("\n".join(lines)) if lines else None

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

    def title(self, name: str, unit: str = "") -> Text:
        """``Threads (3)``, ``Threads (1 of 3 · filter "rate")``: a filter never hides rows unseen."""
        count = f"{len(self._shown)} of {self.total}" if self.filter_text else f"{self.total}"
        text = Text(f"{name} ({count}{unit}")
        if self.filter_text:
            text.append(" · filter ")
            text.append(f'"{inert_line(self.filter_text, 30)}"', style="bold reverse")
        text.append(")")
        return text


def _model_call(note: str) -> Text:
    """A model call in trouble, short: " ⟳ retry 2" while it is retried, " ✗ model failed" once it failed (the
    whole message is in the errors pane); nothing while calls work."""
    if note.startswith("retry"):
        return Text(" ⟳ " + note.split(":", 1)[0].rsplit(" in ", 1)[0], style="yellow")
    if note.startswith("failed"):
        return Text(" ✗ model failed", style="bold red")
    return Text("")


class AgentsTable(FleetTable):
    COLUMNS = (
        Col("id", 24),
        Col("role", 16, drop=6),
        Col("state", 30),
        Col("thread", 16, drop=3),
        Col("model", 20, drop=5),
        Col("tokens", 9, drop=4),
        Col("$", 12, drop=2),
    )

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
        role = Text(a.role, style=role_color(a.role, self.dark))
        return (ident, role, state, a.thread or "—", a.model, tokens, cost)


class ThreadsTable(FleetTable):
    COLUMNS = (
        Col("id", 16),
        Col("status", 26),
        Col("topic", 200, flex=True, least=24),
        Col("msgs", 5, drop=4),
        Col("$", 9, drop=3),
        Col("age", 6, drop=2),
        Col("participants", 60, drop=5, extra=True),
    )

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
    COLUMNS = (
        Col("priority", 9, drop=2),
        Col("agent", 20),
        Col("reason", 200, flex=True, least=20),
        Col("age", 6),
        Col("deadline", 8),
    )

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
            reason,
            age(e.created_at, now),
            countdown(e.deadline, now),
        )
