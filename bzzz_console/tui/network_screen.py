"""The network, one view of its own (``N``): this node, its peers, topics, message rates and rejected messages,
the Go BZZZ nodes (their availability and capabilities), the tasks taken from the network (a Go task's labels,
difficulty, estimate, skills and what it waits for), and what peers sent that could not be used, by type and
reason. Everything a peer sent is shown inert, as text.

It reads ``rt.network.snapshot()`` on each ``NetworkStatus`` event and once a second while shown (the counters
move without a status event). With networking off it says so and how to turn it on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.screen import Screen
from textual.widgets import DataTable, Static

from bzzz_console.domain.text import inert, inert_line
from bzzz_console.resources import screens_dir
from bzzz_console.tui.dashboard import Pane
from bzzz_console.tui.panels import KeysFooter
from bzzz_console.tui.tables import cell, short_peer

if TYPE_CHECKING:
    from bzzz_console.tui.app import BzzzApp

OFF = """Networking is off: this console runs no P2P node, so it has no peers, topics or message counts.

To join a BZZZ network, turn it on in the config file (--config FILE, $BZZZ_CONFIG, or the default file that
`bzzz-console config show` names) and start the console again:

    [p2p]
    enabled = true
    listen = ["/ip4/0.0.0.0/tcp/4001"]
    peers = ["/ip4/10.0.0.5/tcp/4001/p2p/12D3KooW…"]   # optional: nodes to join through

or start it with  --listen /ip4/0.0.0.0/tcp/4001  and/or  --peer /ip4/…/tcp/4001/p2p/<peer id>."""


class SnapshotTable(DataTable[object]):
    """A read-only table redrawn from a list of rows, only when the rows changed (the cursor stays put)."""

    def __init__(self, *columns: str, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._columns = columns
        self.rows_shown: list[tuple[object, ...]] = []

    def on_mount(self) -> None:
        for column in self._columns:
            self.add_column(column, key=column)

    def show(self, rows: Sequence[tuple[object, ...]]) -> None:
        # peers name their status, message types and summaries: every cell is inert Text, never markup
        rows = [tuple(cell(c) for c in row) for row in rows]
        if rows == self.rows_shown:
            return
        cursor = self.cursor_row
        self.clear()
        for row in rows:
            self.add_row(*row)
        self.rows_shown = rows
        if rows:
            self.move_cursor(row=max(0, min(cursor, len(rows) - 1)), animate=False)

    def plain_rows(self) -> list[list[str]]:
        """The cells as text (for tests and copying)."""
        return [[c.plain if isinstance(c, Text) else str(c) for c in row] for row in self.rows_shown]


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else "—"


def _seconds(value: object) -> str:
    if not isinstance(value, int | float):
        return "—"
    return f"{value:.0f}s ago" if value < 120 else f"{value / 60:.0f}m ago"


def peer_rows(snapshot: dict[str, Any]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for p in sorted(snapshot.get("peer_list", []), key=lambda p: (not p.get("connected"), p["peer_id"])):
        connected = bool(p.get("connected"))
        load = p.get("load")
        rows.append(
            (
                short_peer(str(p["peer_id"])),
                Text("● yes", style="green") if connected else Text("○ no", style="dim"),
                _count(p.get("agents")),
                f"{load:.0%}" if isinstance(load, int | float) else "—",
                str(p.get("status") or "—"),
                _seconds(p.get("last_seen_s")),
            )
        )
    return rows


def topic_rows(snapshot: dict[str, Any]) -> list[tuple[object, ...]]:
    mesh = snapshot.get("mesh", {})
    return [
        (
            topic,
            _count(counts.get("published")),
            _count(counts.get("received")),
            Text(_count(counts.get("rejected")), style="yellow" if counts.get("rejected") else ""),
            _count(mesh.get(topic)),
        )
        for topic, counts in snapshot.get("topics", {}).items()
    ]


def _names(value: object, limit: int = 4) -> str:
    if not isinstance(value, list) or not value:
        return "—"
    names = [str(v) for v in value]
    return ", ".join(names[:limit]) + (f" +{len(names) - limit}" if len(names) > limit else "")


def go_node_rows(snapshot: dict[str, Any]) -> list[tuple[object, ...]]:
    """Go BZZZ nodes, from their availability_broadcast and capability_broadcast."""
    rows: list[tuple[object, ...]] = []
    for node in snapshot.get("go_nodes", []):
        current, most = node.get("current_tasks"), node.get("max_tasks")
        available = node.get("available_for_work")
        status = str(node.get("status") or "—") + (" · takes work" if available is True else "")
        rows.append(
            (
                short_peer(str(node.get("peer_id", ""))),
                status,
                f"{current}/{most}" if isinstance(current, int) and isinstance(most, int) else "—",
                _names(node.get("capabilities")),
                _names(node.get("models"), 3),
                str(node.get("version") or "—"),
            )
        )
    return rows


def network_task_rows(snapshot: dict[str, Any]) -> list[tuple[object, ...]]:
    """Tasks taken from the network, newest first: a Go task with what it carries and what it waits for."""
    rows: list[tuple[object, ...]] = []
    for task in snapshot.get("network_tasks", []):
        d = task.get("details") or {}
        label = f"{d['repository']}#{d['number']} " if d.get("repository") and d.get("number") else ""
        title = str(task.get("title", ""))
        hours = d.get("estimated_hours")
        waiting = d.get("waiting_for") or []
        status = str(task.get("status", ""))
        rows.append(
            (
                (title if title.startswith(label.strip()) else label + title)[:80],
                Text(status, style="yellow" if status == "blocked" else ""),
                str(task.get("priority", "")),
                _names(d.get("labels")),
                str(d.get("difficulty") or "—"),
                f"{hours:g} h" if isinstance(hours, int | float) else "—",
                _names(d.get("required_skills")),
                ", ".join(str(w) for w in waiting) or "—",
            )
        )
    return rows


def unusable_rows(snapshot: dict[str, Any]) -> list[tuple[object, ...]]:
    return [
        (str(u["type"]), str(u["reason"]), f"{u['count']:,}", str(u.get("detail") or ""))
        for u in snapshot.get("unusable", [])
    ]


def counted(counts: dict[str, int]) -> list[tuple[object, ...]]:
    """``{name: count}`` as rows, the largest first."""
    return [(name, f"{n:,}") for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


class NetworkScreen(Screen[None]):
    CSS_PATH = screens_dir() / "network.tcss"  # loaded when first opened, not on the way to the first paint
    BINDINGS = [Binding("escape,q", "app.pop_screen", "back", id="network.back")]

    @property
    def bzzz(self) -> BzzzApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(id="network-head")
        yield Static(Text(OFF), id="network-off")
        with Grid(id="network-grid"):
            peers = ("peer", "connected", "agents", "load", "status", "last seen")
            yield Pane("Peers", SnapshotTable(*peers, id="peers"), id="peers-pane")
            topics = ("topic", "published", "received", "rejected", "mesh")
            yield Pane("Topics", SnapshotTable(*topics, id="topics"), id="topics-pane")
            go_nodes = ("node", "status", "tasks", "capabilities", "models", "version")
            yield Pane("Go BZZZ nodes", SnapshotTable(*go_nodes, id="go-nodes"), id="go-nodes-pane")
            columns = (
                "task",
                "status",
                "priority",
                "labels",
                "difficulty",
                "estimate",
                "skills",
                "waiting for",
            )
            yield Pane("Tasks from the network", SnapshotTable(*columns, id="net-tasks"), id="net-tasks-pane")
            yield Pane(
                "Rejected by reason", SnapshotTable("reason", "count", id="rejected"), id="rejected-pane"
            )
            unusable = SnapshotTable("type", "reason", "count", "last detail", id="unusable")
            yield Pane("Unusable, by type and reason", unusable, id="unusable-pane")
            yield Pane("Received by type", SnapshotTable("type", "count", id="types"), id="types-pane")
            messages = SnapshotTable("type", "from", "summary", id="messages")
            yield Pane("Messages agents do not act on", messages, id="messages-pane")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.refresh_network()

    def tick(self) -> None:
        """Once a second while shown: counters and rates move between status events."""
        self.refresh_network()

    def _snapshot(self) -> tuple[dict[str, Any] | None, str]:
        """The network's numbers, or why there are none."""
        rt = self.bzzz.rt
        if rt is None:
            return None, f"The runtime is not running: {self.bzzz.failed or 'still starting'}."
        network = getattr(rt, "network", None)
        if network is None:
            return None, OFF
        try:
            return network.snapshot(), ""
        except Exception as exc:  # a node shutting down must not take the console with it
            return None, f"The network's numbers are not available: {type(exc).__name__}: {exc}"

    def refresh_network(self) -> None:
        snapshot, why = self._snapshot()
        off = self.query_one("#network-off", Static)
        grid = self.query_one("#network-grid", Grid)
        off.display, grid.display = snapshot is None, snapshot is not None
        head = self._head(snapshot)
        if head != getattr(self, "_head_shown", None):  # no repaint while nothing moved
            self._head_shown = head
            self.query_one("#network-head", Static).update(head)
        if snapshot is None:
            off.update(Text(inert(why)))  # never markup: "[p2p]" is text
            return
        peers = peer_rows(snapshot)
        connected = sum(1 for p in snapshot.get("peer_list", []) if p.get("connected"))
        self._fill("peers", f"Peers ({connected} connected, {len(peers)} known)", peers)
        self._fill("topics", "Topics", topic_rows(snapshot))
        go_nodes = go_node_rows(snapshot)
        self._fill("go-nodes", f"Go BZZZ nodes ({len(go_nodes)})", go_nodes)
        tasks = network_task_rows(snapshot)
        blocked = sum(1 for t in snapshot.get("network_tasks", []) if t.get("status") == "blocked")
        self._fill("net-tasks", f"Tasks from the network ({len(tasks)}, {blocked} blocked)", tasks)
        unusable = unusable_rows(snapshot)
        total = sum(u["count"] for u in snapshot.get("unusable", []))
        self._fill("unusable", f"Unusable, by type and reason ({total:,})", unusable)
        rejected = snapshot.get("rejected", {})
        self._fill("rejected", f"Rejected by reason ({sum(rejected.values()):,})", counted(rejected))
        by_type = snapshot.get("received_by_type", {})
        self._fill("types", f"Received by type ({sum(by_type.values()):,})", counted(by_type))
        recent = reversed(self.bzzz.view.network_messages)
        rows: list[tuple[object, ...]] = [(m.type, short_peer(m.sender), m.summary or "—") for m in recent]
        self._fill("messages", "Messages agents do not act on (newest first)", rows)

    def _fill(self, name: str, title: str, rows: Sequence[tuple[object, ...]]) -> None:
        self.query_one(f"#{name}-pane").border_title = title
        self.query_one(f"#{name}", SnapshotTable).show(rows)

    def _head(self, snapshot: dict[str, Any] | None) -> Text:
        text = Text()
        text.append(" Network ", style="bold reverse")
        if snapshot is None:
            text.append("  off", style="bold yellow")
            return text
        text.append("  this node ")
        text.append(inert_line(str(snapshot.get("peer_id", ""))), style="bold")
        addrs = [inert_line(str(a)) for a in snapshot.get("addrs") or []]
        text.append("\n listening  ")
        text.append("\n            ".join(addrs) if addrs else "nowhere (not started)", style="cyan")
        text.append("\n messages   ")
        text.append(
            f"in {snapshot.get('rate_in_per_s', 0.0):.2f}/s · out {snapshot.get('rate_out_per_s', 0.0):.2f}/s",
            style="bold",
        )
        text.append(
            f" · received {_count(snapshot.get('received'))} · published {_count(snapshot.get('published'))}"
        )
        rejected = snapshot.get("rejected_total", 0)
        text.append(f" · rejected {_count(rejected)}", style="yellow" if rejected else "")
        waits, full = snapshot.get("backpressure_waits", 0), snapshot.get("queue_full_sends", 0)
        if waits or full:
            text.append(f" · back-pressure waits {waits:,} · queue-full sends {full:,}", style="yellow")
        errors = snapshot.get("handler_errors", 0)
        if errors:
            text.append(f" · {errors:,} could not be handled", style="bold red")
        return text
