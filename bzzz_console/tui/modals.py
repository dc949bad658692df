"""Small modal screens: ask for a line of text, confirm a decision, pick one of a list, add a task.

Safe by default: a fresh confirmation has No focused (enter says no), yes is a shifted key used nowhere else, and
escape on typed text asks before throwing it away."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Select
from textual.widgets.option_list import Option

from bzzz_console.domain.text import inert, inert_line
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
        """Esc: leave at once when nothing was typed; a draft is thrown away only when the operator says so."""
        typed = self.query_one("#answer", Input).value.strip()
        if not typed or typed == self.value.strip():
            self.dismiss(None)
            return

        def discard(answer: bool | None) -> None:
            if answer:
                self.dismiss(None)
            else:
                self.query_one("#answer", Input).focus()

        self.app.push_screen(Confirm("Discard what you typed?", yes="Discard"), discard)


class Confirm(ModalScreen[bool]):
    """Yes or no; No is focused, so enter on a fresh dialog (or esc, or n) decides nothing."""

    BINDINGS = [
        Binding("Y", "answer(True)", "yes", id="modal.yes"),
        Binding("n,escape", "answer(False)", "no", id="modal.no"),
        Binding("left,right", "app.focus_next", "other button", show=False, id="modal.switch"),
    ]

    def __init__(self, question: str, yes: str = "Yes") -> None:
        super().__init__()
        self.question, self.yes = question, yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(inert(self.question)), classes="dialog-title")  # "Terminate <agent id>?"
            with Horizontal(classes="dialog-buttons"):
                yield Button("No (esc)", id="no")
                yield Button(Text(f"{inert_line(self.yes)} (Y)"), variant="error", id="yes")
            yield Label("Y (shift+y) confirms · enter, esc or n: no", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class Pick(ModalScreen[str | None]):
    """One of a list (an agent to reassign to, a model to switch to): arrows and enter, esc cancels."""

    BINDINGS = [Binding("escape", "dismiss_none", "cancel", id="modal.cancel")]

    def __init__(self, question: str, choices: list[tuple[str, str]]) -> None:
        """``choices``: (value, label) pairs; both may be data (agent ids, model names): shown inert."""
        super().__init__()
        self.question, self.choices = question, choices

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(inert(self.question)), classes="dialog-title")
            yield OptionList(
                *(Option(Text(inert_line(label)), id=value) for value, label in self.choices), id="choices"
            )
            yield Label("↑↓ choose · enter to pick · esc to cancel", classes="dialog-hint")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


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
