"""``?``: every key of the current screen and the app, with the binding id config can remap.

Keys read as they are typed (``/``, ``?``, ``^q``), not as Textual names them (``slash``, ``question_mark``); the
dialog fits 80×24 (it scrolls when a screen has more keys than that)."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

SCREEN_MODULES = (
    "dashboard",
    "escalation_screen",
    "thread_screen",
    "agent_screen",
    "network_screen",
    "modals",
    "help_screen",
)
"""The tui modules whose screens and dialogs have bindings config can remap."""


def binding_scopes(app_bindings: Iterable[object] = ()) -> dict[str, dict[str, str]]:
    """``{screen: {binding id: keys}}`` of every screen, dialog and widget of the console with bindings, each with
    the app's own (``app_bindings``: they work on every screen). Imports every screen: only when
    ``[console.keys]`` remaps some."""
    app_keys = {b.id: b.key for b in app_bindings if isinstance(b, Binding) and b.id}
    scopes: dict[str, dict[str, str]] = {"app": dict(app_keys)}
    for name in SCREEN_MODULES:
        module = importlib.import_module(f"bzzz_console.tui.{name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, DOMNode) and obj.__module__ == module.__name__:
                own = {b.id: b.key for b in obj.BINDINGS if isinstance(b, Binding) and b.id}
                if own:
                    label = obj.__name__.removesuffix("Screen").lower() or obj.__name__
                    scopes[label] = {**app_keys, **own}
    return scopes


def config_warnings(settings: Any, app_bindings: Iterable[object]) -> list[str]:
    """What in ``[console]`` cannot work as written (:func:`bzzz_console.config_sections.console_warnings`);
    ``app_bindings``: the app's (``BzzzApp.BINDINGS``)."""
    from textual.keys import _character_to_key
    from textual.theme import BUILTIN_THEMES

    from bzzz_console.config_sections import console_warnings

    def normalize(key: str) -> str:
        return _character_to_key(key) if len(key) == 1 else key

    console = settings.console
    scopes = binding_scopes(app_bindings) if console.keys else {}
    return console_warnings(console, BUILTIN_THEMES, scopes, normalize)


def warn_config(app: Any) -> None:
    """At start: one toast per ``[console]`` mistake (the CLI also prints them on stderr before the console)."""
    for line in config_warnings(app.settings, type(app).BINDINGS):
        app.notify(line, title="Config", severity="warning", timeout=20)


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
        table.add_row(Text("^p", style="bold"), Text("palette: threads, agents, escalations …"), Text(""))
        with VerticalScroll(classes="dialog help"):
            yield Static(
                'Keys · remap: [console.keys] "binding id" = "key"', classes="dialog-title", markup=False
            )
            yield Static(table)
            yield Static("esc, ? or q closes", classes="dialog-hint")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
