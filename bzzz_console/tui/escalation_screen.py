"""One escalation: everything needed to decide, a countdown, and one key per decision that can apply.

Decision keys are shifted letters used by no other screen (``a`` focuses Agents on the dashboard; ``A`` approves
here), every decision is confirmed (approve too, unless ``console.confirm_approve`` is off), and a decision that
cannot work here is not offered: no terminate without an agent, no downgrade without a cheaper model on the ladder,
reassign only to agents that can take the seat. The agent's own options are picked with 1–9. When the escalation
is answered or expires elsewhere, the screen says so at once and its decision keys go away.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from bzzz_console.domain import commands as cmd
from bzzz_console.domain.decisions import failure_note
from bzzz_console.domain.text import inert, usd
from bzzz_console.domain.text import inert_line as one
from bzzz_console.resources import screens_dir
from bzzz_console.tui import clock
from bzzz_console.tui.modals import AskText, Confirm, Pick
from bzzz_console.tui.panels import KeysFooter
from bzzz_console.tui.tables import PRIORITY_STYLE, STATE_STYLE, countdown, short_peer

if TYPE_CHECKING:
    from bzzz_console.tui.app import BzzzApp
    from bzzz_console.tui.view_rows import EscalationView

DECISION_KEYS = (
    ("A", "approve", "approve"),
    ("R", "reject", "reject…"),
    ("M", "reply", "reply…"),
    ("S", "reassign", "reassign…"),
    ("B", "raise_budget", "raise budget…"),
    ("D", "downgrade", "downgrade…"),
    ("H", "hand_back", "hand back"),
    ("X", "terminate", "terminate"),
)
OPTION_DECISIONS = {
    "approve": "approve",
    "reject": "reject",
    "reply": "reply",
    "reassign": "reassign",
    "raise_budget": "raise_budget",
    "downgrade_model": "downgrade",
    "downgrade": "downgrade",
    "hand_back": "hand_back",
    "terminate": "terminate",
}
"""An offered option that names a decision starts that decision; any other option is a reply."""
DIGITS = tuple("123456789")


def waiting(e: EscalationView) -> bool:
    """Still waiting for a human (as FleetView.open_escalations counts it)."""
    return e.state == "open" or (e.state == "expired" and e.default_action == "hold" and not e.decision)


class EscalationScreen(Screen[None]):
    # loaded when first opened, not on the way to the first paint
    CSS_PATH = screens_dir() / "escalation.tcss"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "back", id="escalation.back"),
        Binding("o", "open_thread", "open thread", id="escalation.thread"),
        *(
            Binding(key, f"decide('{name}')", label, show=False, id=f"escalation.{name}")
            for key, name, label in DECISION_KEYS
        ),
    ]

    def __init__(self, escalation_id: str) -> None:
        super().__init__()
        self.escalation_id = escalation_id
        self.identity = ("escalation", escalation_id)
        """What the app opens one screen of (BzzzApp._show_once)."""
        self.busy = False
        self.offered: dict[str, list[str]] = {}
        """The decisions that can apply now, with what their picker offers (agents, models)."""
        self._was_waiting: bool | None = None
        self._decided_here = False

    @property
    def bzzz(self) -> BzzzApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="escalation-body"):
            yield Static(id="escalation-head")
            yield Static(id="escalation-context")
        yield Static(id="escalation-keys")
        yield KeysFooter()

    def on_mount(self) -> None:
        self._presence(True)  # served in a browser: the other operators see who is looking at it
        self.refresh_escalation()

    def on_unmount(self) -> None:
        self._presence(False)

    def _presence(self, on: bool) -> None:
        if (viewing := getattr(self.app, "viewing", None)) is not None:
            viewing(self.escalation_id, on)

    # -- what can be decided --------------------------------------------------------------------------------
    def _offer(self, e: EscalationView) -> dict[str, list[str]]:
        if not waiting(e) or e.context.get("read_only"):
            return {}
        offered: dict[str, list[str]] = {"approve": [], "reject": [], "reply": []}
        if e.context.get("budget") or e.thread_id:
            offered["raise_budget"] = []
        rt = self.bzzz.rt
        if rt is None or not e.agent_id:
            return offered
        from bzzz_console.runtime.escalation.checks import cheaper_models, reassign_candidates, runtime_view

        node = runtime_view(rt)
        agent = node.agent(e.agent_id)
        if agent is None:  # gone from this node: nothing to stop, downgrade or hand back
            return offered
        if e.thread_id:
            offered["hand_back"] = []
        if candidates := reassign_candidates(e.thread_id, e.agent_id, node):
            offered["reassign"] = candidates
        if models := cheaper_models(agent.model, self.bzzz.settings):
            offered["downgrade"] = models
        if agent.state != "terminating":
            offered["terminate"] = []
        return offered

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "decide":  # a read-only console or escalation keeps the keys, to say why nothing happens
            e = self.bzzz.view.escalations.get(self.escalation_id)
            explains = self.bzzz.readonly or (e is not None and bool(e.context.get("read_only")))
            return explains or (bool(parameters) and parameters[0] in self.offered)
        return True

    def key_of(self, name: str) -> str:
        keymap = getattr(self.app, "_keymap", {}) or {}
        default = next(key for key, n, _ in DECISION_KEYS if n == name)
        return str(keymap.get(f"escalation.{name}", default))

    # -- the picture ----------------------------------------------------------------------------------------
    def refresh_escalation(self) -> None:
        view = self.bzzz.view
        e = view.escalations.get(self.escalation_id)
        if e is None:
            unknown = Text(f"escalation {one(self.escalation_id)} is not known")
            self.query_one("#escalation-head", Static).update(unknown)
            return
        now_waiting = waiting(e)
        if self._was_waiting and not now_waiting and not self._decided_here:
            self.notify(
                f"{e.id} is {e.state}{': ' + e.decision if e.decision else ''} — nothing left to decide here",
                title="Answered elsewhere" if e.state == "answered" else "Escalation closed",
                severity="warning",
            )
        self._was_waiting = now_waiting
        offered = self._offer(e)
        if offered != self.offered:
            self.offered = offered
            self.refresh_bindings()
        self.query_one("#escalation-head", Static).update(self._head(e, now_waiting))
        self.query_one("#escalation-context", Static).update(self._details(e))
        self.query_one("#escalation-keys", Static).update(self._keys(e, now_waiting))

    def _head(self, e: EscalationView, now_waiting: bool) -> Text:
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
        others: list[str] = getattr(self.app, "others_viewing", lambda _: [])(self.escalation_id)
        if others:  # served in a browser: the other operators with this escalation open
            head.append(f"\nalso viewing: {one(', '.join(others))}", style="bold cyan")
        read_only = e.context.get("read_only")
        if read_only:  # a Go BZZZ node's: shown to be read, nothing can be sent back
            node = short_peer(str(e.context.get("node", "")))
            head.append(f"\nfrom Go node {one(node)} · read-only: {one(str(read_only))}", style="bold cyan")
        failed = failure_note(e.context.get("last_error")) if e.state == "open" else None
        if failed:  # a decision was recorded but could not be applied; the escalation waits again
            head.append(f"\n{one(failed)}", style="bold red")
        head.append("\n\n")
        head.append(inert(e.reason))
        if options := self._options(e):  # next to the question: what the agent offers to answer it
            head.append("\n")
            for n, option in enumerate(options, 1):
                head.append(f"\n {n} ", style="bold reverse" if now_waiting else "dim")
                head.append(f" {one(option)}", style="cyan")
        if not now_waiting:
            head.append(f"\n\nclosed ({one(e.state)}): nothing is waiting for a decision", style="bold")
            return head
        head.append("\n\ndeadline in ")
        head.append_text(countdown(e.deadline, clock.now()))
        head.append(f" — then: {one(e.default_action)}")
        head.append(
            " (recorded as expired, never as a rejection)"
            if e.default_action != "hold"
            else " (keeps waiting; recorded as expired)",
            style="dim",
        )
        return head

    def _details(self, e: EscalationView) -> Text:
        view = self.bzzz.view
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
        excerpt = e.context.get("excerpt") or [
            f"#{m.seq} {m.author} [{m.type}]: {m.content[:200]}"
            for m in list(view.transcript(e.thread_id or ""))[-6:]
        ]
        if excerpt:
            ctx.append("\nWhat led here\n", style="bold")
            for line in excerpt:
                ctx.append(f"  {one(line)}\n")
        return ctx

    def _keys(self, e: EscalationView, now_waiting: bool) -> Text:
        if self.bzzz.readonly:
            return Text(" read-only console: decisions are disabled ", style="bold red")
        if e.context.get("read_only"):
            return Text(" read-only: a Go BZZZ node cannot receive a decision ", style="bold cyan")
        if not now_waiting:
            return Text(f" {one(e.state)}: nothing left to decide · esc back ", style="bold")
        keys = Text()
        for _, name, label in DECISION_KEYS:
            if name in self.offered:
                keys.append(f" {self.key_of(name)} ", style="bold reverse")
                keys.append(f" {label} ")
        if options := self._options(e):
            keys.append(f" 1–{len(options)} " if len(options) > 1 else " 1 ", style="bold reverse")
            keys.append(" option ")
        return keys

    @staticmethod
    def _options(e: EscalationView) -> list[str]:
        return [str(o) for o in (e.context.get("options") or [])][:9]

    def tick(self) -> None:
        self.refresh_escalation()

    # -- keys -----------------------------------------------------------------------------------------------
    def action_open_thread(self) -> None:
        e = self.bzzz.view.escalations.get(self.escalation_id)
        if e is not None and e.thread_id:
            self.bzzz.open_thread(e.thread_id)

    def on_key(self, event: events.Key) -> None:
        """1–9: the agent's own options: one that names a decision starts it, any other is a reply."""
        if event.key not in DIGITS:
            return
        e = self.bzzz.view.escalations.get(self.escalation_id)
        options = self._options(e) if e is not None else []
        n = int(event.key)
        if n > len(options):
            return
        event.stop()
        option = options[n - 1]
        decision = OPTION_DECISIONS.get(option.strip().lower())
        if decision is not None:
            self.action_decide(decision)
        else:
            self.run_worker(self._decide("reply", option), exclusive=True, group="decision")

    def action_decide(self, name: str) -> None:
        # A worker, because asking for a reason or a confirmation waits for a modal screen.
        self.run_worker(self._decide(name), exclusive=True, group="decision")

    async def _decide(self, name: str, reply: str = "") -> None:
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
        if name not in self.offered:
            why = "it is no longer waiting" if not waiting(e) else "it cannot apply to this escalation"
            self.notify(f"{name.replace('_', ' ')} is not offered: {why}", severity="warning")
            return
        self.busy = True
        try:
            command = await self._command(name, e, reply)
            if command is None:
                return
            now = self.bzzz.view.escalations.get(self.escalation_id)
            if now is None or not waiting(now):
                self.notify(  # answered on another surface while this one was asking: say by whom
                    f"{self.escalation_id} is already {now.state if now else 'gone'}"
                    f"{f' ({now.decision})' if now and now.decision else ''}: a decision is applied once",
                    severity="warning",
                )
                return
            self._decided_here = True
            if await self.bzzz.decide(command):
                self.dismiss_screen()
            else:
                self._decided_here = False
        finally:
            self.busy = False

    def dismiss_screen(self) -> None:
        if self.app.screen is self:
            self.app.pop_screen()

    async def _ask(self, screen: Any) -> Any:
        return await self.app.push_screen_wait(screen)

    async def _command(self, name: str, e: EscalationView, reply: str = "") -> cmd.Decision | None:
        ident, operator, label = self.escalation_id, self.bzzz.operator, self.bzzz.operator_label
        agent_id = e.agent_id or ""
        if name == "approve":
            if self.bzzz.settings.console.confirm_approve and not await self._ask(
                Confirm(f"Approve {ident}? {agent_id or 'The thread'} goes on as proposed.", yes="Approve")
            ):
                return None
            return cmd.Approve(escalation_id=ident, operator=operator, label=label)
        if name == "reject":
            reason = await self._ask(AskText("Reject — the reason (the agents read it):"))
            return (
                cmd.Reject(escalation_id=ident, reason=reason, operator=operator, label=label)
                if reason
                else None
            )
        if name == "reply":
            text = await self._ask(AskText("Reply — posted to the thread as a human message:", value=reply))
            return cmd.Reply(escalation_id=ident, text=text, operator=operator, label=label) if text else None
        if name == "reassign":
            agents = self.bzzz.view.agents
            choices = [
                (a, f"{a} ({agents[a].role}, {agents[a].state})" if a in agents else a)
                for a in self.offered.get("reassign", [])
            ]
            to = await self._ask(Pick(f"Reassign {agent_id}'s seat in {e.thread_id} to:", choices))
            if not to or not await self._ask(Confirm(f"Hand {agent_id}'s seat to {to}?", yes="Reassign")):
                return None
            return cmd.Reassign(escalation_id=ident, to=to, operator=operator, label=label)
        if name == "raise_budget":
            amount = await self._ask(AskText("Raise the budget by (USD):", "1.00"))
            try:
                value = float(amount or "")
            except ValueError:
                if amount:
                    self.notify(f"not an amount: {amount!r}", severity="error")
                return None
            return cmd.RaiseBudget(escalation_id=ident, amount_usd=value, operator=operator, label=label)
        if name == "downgrade":
            models = self.offered.get("downgrade", [])
            current = self.bzzz.view.agents[agent_id].model if agent_id in self.bzzz.view.agents else "?"
            choices = [(m, m + (" (next cheaper)" if n == 0 else "")) for n, m in enumerate(models)]
            model = await self._ask(Pick(f"Switch {agent_id} from {current} to:", choices))
            if not model or not await self._ask(Confirm(f"Switch {agent_id} to {model}?", yes="Downgrade")):
                return None
            return cmd.DowngradeModel(escalation_id=ident, model=model, operator=operator, label=label)
        if name == "hand_back":
            if await self._ask(Confirm(f"Close the thread with {agent_id}'s partial work?", yes="Hand back")):
                return cmd.HandBack(escalation_id=ident, operator=operator, label=label)
            return None
        if name == "terminate" and await self._ask(
            Confirm(f"Terminate {agent_id}? It leaves all its threads.", yes="Terminate")
        ):
            return cmd.Terminate(agent_id=agent_id, escalation_id=ident, operator=operator, label=label)
        return None
