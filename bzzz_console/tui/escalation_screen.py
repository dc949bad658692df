"""One escalation: everything needed to decide, a countdown, and one key per decision."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from bzzz_console.domain import commands as cmd
from bzzz_console.domain.decisions import failure_note
from bzzz_console.domain.text import inert, usd
from bzzz_console.domain.text import inert_line as one
from bzzz_console.resources import screens_dir
from bzzz_console.tui import clock
from bzzz_console.tui.modals import AskText, Confirm
from bzzz_console.tui.tables import PRIORITY_STYLE, STATE_STYLE, countdown, short_peer

if TYPE_CHECKING:
    from bzzz_console.tui.app import BzzzApp

DECISION_KEYS = (
    ("a", "approve", "approve"),
    ("r", "reject", "reject…"),
    ("m", "reply", "reply…"),
    ("s", "reassign", "reassign…"),
    ("b", "raise_budget", "raise budget…"),
    ("d", "downgrade", "downgrade model"),
    ("h", "hand_back", "hand back"),
    ("x", "terminate", "terminate"),
)


class EscalationScreen(Screen[None]):
    # loaded when first opened, not on the way to the first paint
    CSS_PATH = screens_dir() / "escalation.tcss"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "back", id="escalation.back"),
        Binding("o", "open_thread", "open thread", id="escalation.thread"),
        *(
            Binding(key, f"decide('{name}')", label, id=f"escalation.{name}")
            for key, name, label in DECISION_KEYS
        ),
    ]

    def __init__(self, escalation_id: str) -> None:
        super().__init__()
        self.escalation_id = escalation_id
        self.busy = False

    @property
    def bzzz(self) -> BzzzApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="escalation-body"):
            yield Static(id="escalation-head")
            yield Static(id="escalation-context")
        yield Static(id="escalation-keys")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_escalation()

    def refresh_escalation(self) -> None:
        view = self.bzzz.view
        e = view.escalations.get(self.escalation_id)
        if e is None:
            unknown = Text(f"escalation {one(self.escalation_id)} is not known")
            self.query_one("#escalation-head", Static).update(unknown)
            return
        now = clock.now()
        glyph, style = PRIORITY_STYLE.get(e.priority, ("?", ""))
        head = Text()
        # Everything below but our own words is data (rules, reasons, names from agents, peers, MCP clients):
        # appended to Text (never markup) and inert (one line, or multi-line for the reason).
        head.append(f"{glyph} {one(e.priority.upper())} ", style=style or "bold")
        head.append(f"{one(e.id)} · rule ", style="dim")
        head.append(one(e.rule), style="bold")
        head.append(f" · {one(e.state)}", style="bold magenta" if e.state == "open" else "bold")
        if e.decision:
            head.append(f" · decided: {one(e.decision)}", style="green")
        elif e.approvals:
            head.append(f" · waiting for a second operator: {one(e.approvals)}", style="bold yellow")
        read_only = e.context.get("read_only")
        if read_only:  # a Go BZZZ node's: shown to be read, nothing can be sent back
            node = short_peer(str(e.context.get("node", "")))
            head.append(f"\nfrom Go node {one(node)} · read-only: {one(str(read_only))}", style="bold cyan")
        failed = failure_note(e.context.get("last_error")) if e.state == "open" else None
        if failed:  # a decision was recorded but could not be applied; the escalation waits again
            head.append(f"\n{one(failed)}", style="bold red")
        head.append("\n\n")
        head.append(inert(e.reason))
        head.append("\n\ndeadline in ")
        head.append_text(countdown(e.deadline, now))
        head.append(f" — then: {one(e.default_action)}")
        head.append(
            " (recorded as expired, never as a rejection)"
            if e.default_action != "hold"
            else " (keeps waiting; recorded as expired)",
            style="dim",
        )
        self.query_one("#escalation-head", Static).update(head)
        ctx = Text()
        agent = view.agents.get(e.agent_id or "")
        if agent is not None:
            g, s = STATE_STYLE.get(agent.state, ("?", ""))
            ctx.append("\nAgent  ", style="bold")
            ctx.append(f"{g} {one(agent.id)} ({one(agent.role)}) {one(agent.state)}", style=s)
            ctx.append(f" · model {one(agent.model)} · {usd(agent.cost, 4)} · {agent.tokens:,} tokens\n")
        thread = view.threads.get(e.thread_id or "")
        if thread is not None:
            ctx.append("Thread ", style="bold")
            ctx.append(
                f"{one(thread.id)} · {one(thread.topic)} · {one(thread.status)} · {usd(thread.cost, 4)}\n"
            )
        for budget in e.context.get("spend", []):
            ctx.append(
                f"Budget {one(budget['scope'])} {one(budget['key'])}: {usd(budget['spent_usd'], 4)} of "
                f"{usd(budget['limit_usd'])}\n",
                style="yellow" if budget["spent_usd"] >= budget["limit_usd"] else "",
            )
        if e.context.get("options"):
            ctx.append("Options: " + " · ".join(one(o) for o in e.context["options"]) + "\n", style="cyan")
        excerpt = e.context.get("excerpt") or [
            f"#{m.seq} {m.author} [{m.type}]: {m.content[:200]}"
            for m in list(view.transcript(e.thread_id or ""))[-6:]
        ]
        if excerpt:
            ctx.append("\nWhat led here\n", style="bold")
            for line in excerpt:
                ctx.append(f"  {one(line)}\n")
        self.query_one("#escalation-context", Static).update(ctx)
        keys = Text()
        for key, _, label in DECISION_KEYS:
            keys.append(f" {key} ", style="bold reverse")
            keys.append(f" {label}  ")
        if self.bzzz.readonly:
            keys = Text(" read-only console: decisions are disabled ", style="bold red")
        elif read_only:
            keys = Text(" read-only: a Go BZZZ node cannot receive a decision ", style="bold cyan")
        self.query_one("#escalation-keys", Static).update(keys)

    def tick(self) -> None:
        self.refresh_escalation()

    def action_open_thread(self) -> None:
        e = self.bzzz.view.escalations.get(self.escalation_id)
        if e is not None and e.thread_id:
            self.bzzz.open_thread(e.thread_id)

    def action_decide(self, name: str) -> None:
        # A worker, because asking for a reason or a confirmation waits for a modal screen.
        self.run_worker(self._decide(name), exclusive=True, group="decision")

    async def _decide(self, name: str) -> None:
        if self.bzzz.readonly:
            self.notify(
                "read-only console: decisions are disabled (started with --readonly)", severity="error"
            )
            return
        if self.busy:
            return
        e = self.bzzz.view.escalations.get(self.escalation_id)
        if e is None:
            return
        if e.context.get("read_only"):
            self.notify(f"read-only: {e.context['read_only']}", severity="warning")
            return
        self.busy = True
        try:
            command = await self._command(name, e.agent_id or "")
            if command is not None and await self.bzzz.decide(command):
                self.app.pop_screen()
        finally:
            self.busy = False

    async def _command(self, name: str, agent_id: str) -> cmd.Decision | None:
        ident, operator, label = self.escalation_id, self.bzzz.operator, self.bzzz.operator_label
        if name == "approve":
            return cmd.Approve(escalation_id=ident, operator=operator, label=label)
        if name == "reject":
            reason = await self.app.push_screen_wait(AskText("Reject — the reason (the agents read it):"))
            return (
                cmd.Reject(escalation_id=ident, reason=reason, operator=operator, label=label)
                if reason
                else None
            )
        if name == "reply":
            text = await self.app.push_screen_wait(
                AskText("Reply — posted to the thread as a human message:")
            )
            return cmd.Reply(escalation_id=ident, text=text, operator=operator, label=label) if text else None
        if name == "reassign":
            to = await self.app.push_screen_wait(AskText("Reassign to an agent id or a role:", "reviewer-2"))
            return cmd.Reassign(escalation_id=ident, to=to, operator=operator, label=label) if to else None
        if name == "raise_budget":
            amount = await self.app.push_screen_wait(AskText("Raise the budget by (USD):", "1.00"))
            try:
                value = float(amount or "")
            except ValueError:
                if amount:
                    self.notify(f"not an amount: {amount!r}", severity="error")
                return None
            return cmd.RaiseBudget(escalation_id=ident, amount_usd=value, operator=operator, label=label)
        if name == "downgrade":
            if await self.app.push_screen_wait(Confirm(f"Switch {agent_id} to the next cheaper model?")):
                return cmd.DowngradeModel(escalation_id=ident, operator=operator, label=label)
            return None
        if name == "hand_back":
            if await self.app.push_screen_wait(Confirm(f"Close the thread with {agent_id}'s partial work?")):
                return cmd.HandBack(escalation_id=ident, operator=operator, label=label)
            return None
        if name == "terminate" and await self.app.push_screen_wait(
            Confirm(f"Terminate {agent_id}? It leaves all its threads.")
        ):
            return cmd.Terminate(agent_id=agent_id, escalation_id=ident, operator=operator, label=label)
        return None
