"""Small modal screens: ask for a line of text, confirm a destructive decision, add a task."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from bzzz_console.domain.text import inert
from bzzz_console.domain.threads import PRIORITIES


class AskText(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "dismiss_none", "cancel", id="modal.cancel")]

    def __init__(self, question: str, placeholder: str = "", value: str = "") -> None:
        super().__init__()
        self.question, self.placeholder, self.value = question, placeholder, value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(inert(self.question)), classes="dialog-title")  # it may quote data: never markup
            yield Input(value=self.value, placeholder=self.placeholder, id="answer")
            yield Label("enter to confirm · esc to cancel", classes="dialog-hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        self.dismiss(text or None)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class Confirm(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "yes", id="modal.yes"),
        Binding("n,escape", "answer(False)", "no", id="modal.no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(inert(self.question)), classes="dialog-title")  # "Terminate <agent id>?"
            with Horizontal(classes="dialog-buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class NewTask(ModalScreen[dict[str, Any] | None]):
    BINDINGS = [Binding("escape", "dismiss_none", "cancel", id="modal.cancel")]

    def __init__(self, roles: list[str]) -> None:
        super().__init__()
        self.roles = roles

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("New task", classes="dialog-title")
            yield Input(placeholder="title", id="title")
            yield Input(placeholder="description (optional)", id="description")
            yield Input(value="architect reviewer", placeholder=f"roles: {' '.join(self.roles)}", id="roles")
            yield Select(
                [(p, p) for p in PRIORITIES],
                value="medium",
                id="priority",
                allow_blank=False,
            )
            yield Label("enter in the last field to add · esc to cancel", classes="dialog-hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        title = self.query_one("#title", Input).value.strip()
        if not title:
            self.notify("a task needs a title", severity="error")
            self.query_one("#title", Input).focus()
            return
        roles = tuple(self.query_one("#roles", Input).value.split())
        unknown = [r for r in roles if r not in self.roles and r != "docs"]
        if unknown or not roles:
            self.notify(
                f"unknown role(s) {', '.join(unknown) or '(none)'}; known: {', '.join(self.roles)}",
                severity="error",
            )
            return
        self.dismiss(
            {
                "title": title,
                "description": self.query_one("#description", Input).value.strip(),
                "roles": roles,
                "priority": str(self.query_one("#priority", Select).value),
            }
        )

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
