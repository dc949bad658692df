"""``?``: every key of the current screen and the app, with the binding id config can remap."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "close", id="help.close")]

    def __init__(self, under: Screen[object]) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        table = Table("key", "action", "binding id", box=None, header_style="bold")
        seen: set[str] = set()
        for source in (self.under, self.app):
            for binding in source.BINDINGS:
                if not isinstance(binding, Binding) or binding.id in seen:
                    continue
                seen.add(binding.id or binding.action)
                keymap = getattr(self.app, "_keymap", {}) or {}
                keys = keymap.get(binding.id or "", binding.key)
                # keys come from the config's keymap: shown as text ("[" is a key, not markup)
                table.add_row(Text(keys), Text(binding.description or binding.action), Text(binding.id or ""))
        with VerticalScroll(classes="dialog help"):
            yield Static(
                'Keys  (remap in config: [console.keys] "binding.id" = "key")', classes="dialog-title"
            )
            yield Static(table)
            yield Static(
                "ctrl+p: command palette — go to a thread, agent or escalation; new task; network; pause/resume",
                classes="dialog-hint",
            )

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
