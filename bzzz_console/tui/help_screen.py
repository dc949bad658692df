"""``?``: every key of the current screen and the app, with the binding id config can remap.

Keys read as they are typed (``/``, ``?``, ``^q``), not as Textual names them (``slash``, ``question_mark``); the
dialog fits 80×24 (it scrolls when a screen has more keys than that)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


def key_names(app: object, keys: str) -> str:
    """``escape,question_mark`` → ``esc ?``."""
    display = getattr(app, "get_key_display", None)
    shown = [display(Binding(k.strip(), "")) if display else k.strip() for k in keys.split(",") if k.strip()]
    return " ".join(shown)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "close", id="help.close")]

    def __init__(self, under: Screen[object]) -> None:
        super().__init__()
        self.under = under

    def _rows(self, source: DOMNode, table: Table, seen: set[str]) -> None:
        keymap = getattr(self.app, "_keymap", {}) or {}
        for binding in source.BINDINGS:
            if not isinstance(binding, Binding) or (binding.id or binding.action) in seen:
                continue
            seen.add(binding.id or binding.action)
            keys = keymap.get(binding.id or "", binding.key)
            # keys come from the config's keymap: shown as text ("[" is a key, not markup)
            table.add_row(
                Text(key_names(self.app, keys), style="bold"),
                Text(binding.tooltip or binding.description or binding.action),
                Text(binding.id or "", style="dim"),
            )

    def compose(self) -> ComposeResult:
        table = Table("key", "action", "binding id", box=None, header_style="bold", padding=(0, 1))
        seen: set[str] = set()
        self._rows(self.under, table, seen)
        table.add_section()
        self._rows(self.app, table, seen)
        table.add_row(
            Text("^p", style="bold"), Text("command palette: go to a thread, agent, escalation"), Text("")
        )
        with VerticalScroll(classes="dialog help"):
            yield Static(
                'Keys · remap: [console.keys] "binding id" = "key"', classes="dialog-title", markup=False
            )
            yield Static(table)
            yield Static("esc, ? or q closes", classes="dialog-hint")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
