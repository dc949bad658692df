"""The spend pane and the status line."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from bzzz_console.domain.text import inert_line, usd
from bzzz_console.tui import clock
from bzzz_console.tui.tables import short_peer
from bzzz_console.tui.view import FleetView


def bar(share: float, width: int = 10) -> str:
    filled = max(0, min(width, round(share * width)))
    return "█" * filled + "░" * (width - filled)


def duration(hours: float) -> str:
    if hours >= 48:
        return f"{hours / 24:.0f} d"
    return f"{int(hours)} h {int(hours * 60) % 60:02d} m"


class StatusLine(Static):
    """node ▸ database ▸ provider ▸ peers … spend today."""

    def show(self, view: FleetView) -> None:
        status, spend = view.status, view.spend
        text = Text()
        text.append(" bzzz-console ", style="bold reverse")
        if status.readonly:  # first, so that no terminal is too narrow for it
            text.append(" READ-ONLY ", style="bold red reverse")
        node = short_peer(status.peer_id) if status.peer_id else status.node
        text.append(f" ▸ node {inert_line(node)} ▸ {inert_line(status.database)} ▸ ")
        text.append(inert_line(status.provider) or "starting…", style="bold yellow" if status.demo else "")
        text.append(f" ▸ {status.peers} peer{'' if status.peers == 1 else 's'}")
        if status.mcp:
            text.append(f" ▸ MCP {inert_line(status.mcp)}")
        waiting = len(view.open_escalations())
        if waiting:
            text.append(f" ▸ {waiting} escalation{'s' if waiting > 1 else ''} waiting", style="bold magenta")
        limit = f" / {usd(spend.daily_limit, 2)}" if spend.daily_limit is not None else ""
        text.append(f"   {usd(spend.today, 2)}{limit} today ", style="bold")
        self.update(text)


class SpendPanel(Vertical):
    def compose(self) -> ComposeResult:
        yield Static(id="spend-summary")
        yield Sparkline([0.0], id="spend-sparkline")
        yield Static(id="spend-breakdown")

    def show(self, view: FleetView) -> None:
        spend, now = view.spend, clock.now()
        head = Text()
        limit = f" of {usd(spend.daily_limit, 2)}" if spend.daily_limit is not None else ""
        head.append(f"{usd(spend.today, 4)}{limit} today", style="bold")
        runway = spend.runway_hours(now)
        if runway is not None:
            head.append(f" · at this rate the budget lasts {duration(runway)}")
        if spend.unknown_calls:
            head.append(f" · {spend.unknown_calls} calls of unpriced models (cost unknown)", style="yellow")
        self.query_one("#spend-summary", Static).update(head)
        self.query_one("#spend-sparkline", Sparkline).data = list(spend.series)
        lines = Text()
        models = " · ".join(
            f"{inert_line(m, 40)} " + ("cost unknown" if m in spend.unknown_models and not c else usd(c, 4))
            for m, c in sorted(spend.by_model.items(), key=lambda x: -x[1])
        )
        lines.append(models or "no model calls yet", style="dim" if not models else "")
        if spend.prompt_tokens:
            lines.append(f" · cached {spend.cached_tokens / spend.prompt_tokens:.0%} of input")
        lines.append("\n")
        for agent_id, cost in sorted(spend.by_agent.items(), key=lambda x: -x[1])[:6]:
            agent_limit = spend.agent_limits.get(agent_id)
            share = cost / agent_limit if agent_limit else 0.0
            over = agent_limit is not None and cost >= agent_limit
            lines.append(
                f"{inert_line(agent_id, 40):<16} {bar(share)} {usd(cost, 4)}",
                style="bold red" if over else "",
            )
            lines.append(" (over)\n" if over else "\n", style="bold red" if over else "")
        for warning in spend.warnings[-2:]:
            lines.append(f"⚠ {inert_line(warning)}\n", style="yellow")
        self.query_one("#spend-breakdown", Static).update(lines)
