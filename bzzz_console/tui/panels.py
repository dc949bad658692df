"""The spend pane (budget gauge, a chart with a scale, bars per agent), the status line and the footer."""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Footer, Static
from textual.widgets._footer import FooterKey

from bzzz_console.domain.text import inert_line, usd
from bzzz_console.tui import clock
from bzzz_console.tui.tables import role_color, short_peer
from bzzz_console.tui.view import FleetView

BLOCKS = " ▁▂▃▄▅▆▇█"


EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(share: float, width: int = 10) -> str:
    """A bar ``width`` cells long filled to ``share`` in eighths of a cell: any share above nothing shows."""
    eighths = max(0, min(width * 8, round(share * width * 8)))
    if share > 0 and eighths == 0:
        eighths = 1
    full, part = divmod(eighths, 8)
    return ("█" * full + (EIGHTHS[part] if part else "")).ljust(width, "░")


def amount(value: float) -> str:
    """Dollars with as many decimals as the amount needs to read as more than nothing ($5.00, $0.0044,
    $0.000031): a tiny budget is never "$0.00"."""
    if value == 0 or abs(value) >= 0.0001:
        return usd(value)
    return usd(value, 6)


def duration(hours: float) -> str:
    if hours >= 48:
        return f"{hours / 24:.0f} d"
    return f"{int(hours)} h {int(hours * 60) % 60:02d} m"


def gauge(today: float, limit: float | None, width: int = 10) -> Text:
    """``$0.0190 of $5.00 ██░░░░░░░░ 0.4 %`` (red from 90 %); without a limit, just the amount."""
    text = Text()
    text.append(amount(today), style="bold")
    if limit is None:
        return text.append(" today (no daily limit)")
    text.append(f" of {amount(limit)} today ")
    share = today / limit if limit > 0 else 1.0
    style = "bold red" if share >= 0.9 else "yellow" if share >= 0.6 else "green"
    text.append(bar(share, width), style=style)
    text.append(f" {share:.1%}" if share < 0.1 else f" {share:.0%}", style=style)
    return text


def chart(series: Sequence[float], width: int, rows: int = 3) -> Text:
    """Spend per minute as bars ``rows`` high, with its scale (the top is the busiest minute shown) on the left
    and the time axis below: one column per minute, the newest on the right."""
    top = max(series, default=0.0)
    label = amount(top) + "/min"
    cols = max(1, min(len(series), width - len(label) - 2))
    shown = list(series)[-cols:]
    text = Text(no_wrap=True)
    levels = rows * 8
    heights = [round(v / top * levels) if top > 0 else 0 for v in shown]
    heights = [max(1, h) if v > 0 else h for v, h in zip(shown, heights, strict=True)]
    for row in range(rows - 1, -1, -1):
        left = label if row == rows - 1 else "0" if row == 0 else ""
        text.append(f"{left:>{len(label)}} ┤", style="dim")
        text.append("".join(BLOCKS[max(0, min(8, h - row * 8))] for h in heights), style="green")
        text.append("\n")
    axis = f"−{cols} min"
    text.append(" " * (len(label) + 2) + axis + "now".rjust(max(1, cols - len(axis))), style="dim")
    return text


class SpendChart(Static):
    """The last hour's spend per minute, drawn for the width it has."""

    series: Sequence[float] = ()

    def render(self) -> Text:
        return chart(self.series, self.size.width or 60)


def status_text(view: FleetView) -> Text:
    """bzzz-console ▸ READ-ONLY ▸ escalations waiting ▸ spend today ▸ provider ▸ peers ▸ node ▸ database: what an
    operator acts on first, so a narrow terminal cuts the database path, never the read-only marker."""
    status, spend = view.status, view.spend
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(" bzzz-console ", style="bold reverse")
    if status.readonly:
        text.append(" READ-ONLY ", style="bold white on red")
    if status.signed_in:  # a browser session: whose name its decisions carry
        text.append(f" ▸ {inert_line(status.signed_in, 64)}", style="bold cyan")
    waiting = len(view.open_escalations())
    if waiting:
        text.append(f" ▸ {waiting} escalation{'s' if waiting > 1 else ''} waiting", style="bold magenta")
    limit = f" / {amount(spend.daily_limit)}" if spend.daily_limit is not None else ""
    text.append(f" ▸ {amount(spend.today)}{limit} today", style="bold")
    text.append(" ▸ ")
    text.append(inert_line(status.provider) or "starting…", style="bold yellow" if status.demo else "")
    text.append(f" ▸ {status.peers} peer{'' if status.peers == 1 else 's'}")
    if status.mcp:
        text.append(f" ▸ MCP {inert_line(status.mcp)}")
    node = short_peer(status.peer_id) if status.peer_id else status.node
    text.append(f" ▸ node {inert_line(node)} ▸ {inert_line(status.database)}")
    return text


class StatusLine(Static):
    """The first row of the dashboard (:func:`status_text`)."""

    def show(self, view: FleetView) -> None:
        self.update(status_text(view))


class SpendPanel(Vertical):
    def compose(self) -> ComposeResult:
        yield Static(id="spend-summary")
        yield SpendChart(id="spend-chart")
        yield Static(id="spend-breakdown")

    def show(self, view: FleetView) -> None:
        spend, now = view.spend, clock.now()
        head = gauge(spend.today, spend.daily_limit)
        runway = spend.runway_hours(now)
        if runway is not None:
            head.append(f" · lasts {duration(runway)} at this rate")
        if spend.unknown_calls:
            head.append(f" · {spend.unknown_calls} calls of unpriced models (cost unknown)", style="yellow")
        self.query_one("#spend-summary", Static).update(head)
        graph = self.query_one(SpendChart)
        graph.series = list(spend.series)
        graph.refresh()
        self.query_one("#spend-breakdown", Static).update(self.breakdown(view))

    def breakdown(self, view: FleetView) -> Text:
        """By model, then one bar per agent: its length is the agent's spend against the top spender's, with
        the amount and its share of all spend (and the agent's own limit, if it has one)."""
        spend = view.spend
        lines = Text(no_wrap=True, overflow="ellipsis")
        models = " · ".join(
            f"{inert_line(m, 40)} " + ("cost unknown" if m in spend.unknown_models and not c else amount(c))
            for m, c in sorted(spend.by_model.items(), key=lambda x: -x[1])
        )
        lines.append(models or "no model calls yet", style="dim" if not models else "")
        if spend.prompt_tokens:
            lines.append(f" · cached {spend.cached_tokens / spend.prompt_tokens:.0%} of input")
        lines.append("\n")
        agents = sorted(spend.by_agent.items(), key=lambda x: -x[1])[:6]
        top = max((c for _, c in agents), default=0.0)
        total = sum(spend.by_agent.values())
        width = max((len(inert_line(a, 20)) for a, _ in agents), default=0)
        dark = self.app.current_theme.dark
        for agent_id, cost in agents:
            agent_limit = spend.agent_limits.get(agent_id)
            over = agent_limit is not None and cost >= agent_limit
            role = view.agents[agent_id].role if agent_id in view.agents else ""
            lines.append(f"{inert_line(agent_id, 20):<{width}} ")
            lines.append(bar(cost / top if top > 0 else 0.0, 8), style=role_color(role, dark))
            lines.append(f" {amount(cost)}", style="bold red" if over else "bold")
            lines.append(f" {cost / total:.0%}" if total > 0 else "", style="dim")
            if agent_limit is not None and cost >= 0.8 * agent_limit:  # near or over its own limit
                lines.append(f" of {amount(agent_limit)}" + (" (over)" if over else ""), style="bold red")
            lines.append("\n")
        for warning in spend.warnings[-2:]:
            lines.append(f"⚠ {inert_line(warning)}\n", style="yellow")
        lines.rstrip()
        return lines


class KeysFooter(Footer):
    """The footer of every screen: one row of key hints that always starts with help and quit (Textual's footer
    lists the app's keys last, and a narrow terminal cut them, or the palette key docked on the right covered
    them); compact, and without the palette key below 100 columns (``?`` lists it). A hint that would not fit
    whole is left out rather than cut (``?`` lists every key of the screen)."""

    FIRST = ("help", "app.help", "quit", "app.quit")
    PALETTE_FROM = 100
    """Columns from which the palette key is shown: at 80 it would take 12 of them and cover the last hints."""

    def __init__(self) -> None:
        super().__init__(compact=True)
        self._composed_width = 0

    def compose(self) -> ComposeResult:
        width = self._composed_width = self.app.size.width
        self.show_command_palette = width >= self.PALETTE_FROM
        keys = list(super().compose())
        first = sorted(
            (k for k in keys if isinstance(k, FooterKey) and k.action in self.FIRST),
            key=lambda k: self.FIRST.index(k.action),
        )
        palette = [k for k in keys if isinstance(k, FooterKey) and "-command-palette" in k.classes]
        room = width - sum(hint_width(k) + 2 for k in palette)  # docked right, with its border and padding
        for key in first + [k for k in keys if k not in first and k not in palette]:
            room -= hint_width(key) if isinstance(key, FooterKey) else 0
            if room < -1:  # the last hint's margin may fall off the edge; its text may not
                break
            yield key
        yield from palette

    def on_resize(self) -> None:
        # which hints fit whole depends on the width: compose again for the new one
        if self._composed_width != self.app.size.width:
            self.call_after_refresh(self.recompose)


def hint_width(key: FooterKey) -> int:
    """The cells a compact footer hint takes: ``^q quit`` and the margin after it."""
    described = 1 + cell_len(key.description) if key.description else 0
    return cell_len(key.key_display) + described + 1
