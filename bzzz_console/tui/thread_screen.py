"""One thread: the live transcript, who takes part and in what state, consensus, cost; the operator can post."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markdown import Markdown
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Input, ListItem, ListView, Static

from bzzz_console.domain.text import inert, inert_line, usd
from bzzz_console.resources import screens_dir
from bzzz_console.tui.modals import Confirm
from bzzz_console.tui.panels import KeysFooter
from bzzz_console.tui.tables import STATE_STYLE
from bzzz_console.tui.view_rows import MessageView

if TYPE_CHECKING:
    from bzzz_console.tui.app import BzzzApp

ROLE_CLASS = {
    "architect": "architect",
    "reviewer": "reviewer",
    "documentation": "documentation",
    "human": "human",
    "system": "system",
}


def message_body(content: str) -> Markdown | Text:
    """A message as the agent wrote it (Markdown), inert: no control character reaches the terminal, and links
    print their address instead of being live (``[docs](file:///etc/passwd)`` must not pass for "docs").
    Markdown that cannot be parsed is shown as plain text rather than taking the console down."""
    body = inert(content)
    try:
        return Markdown(body, hyperlinks=False)
    except Exception:  # a parser bug must cost one message's formatting, never the console
        return Text(body)


class MessageItem(ListItem):
    def __init__(self, message: MessageView) -> None:
        role = ROLE_CLASS.get(message.role, "other")
        super().__init__(classes=f"message role-{role} type-{message.type}")
        self.message = message

    def compose(self) -> ComposeResult:
        m = self.message
        head = Text()
        head.append(f"#{m.seq} ", style="dim")
        if m.role == "human":
            head.append("🧑 HUMAN ", style="bold reverse")
        head.append(f"{inert_line(m.author)} ", style="bold")
        head.append(f"({inert_line(m.role)}) · ", style="dim")
        head.append(inert_line(m.type.upper()), style="bold")
        head.append(f"  {m.at:%H:%M:%S}", style="dim")
        yield Static(head, classes="message-head")
        yield Static(message_body(m.content), classes="message-body")


class ThreadScreen(Screen[None]):
    CSS_PATH = screens_dir() / "thread.tcss"  # loaded when first opened, not on the way to the first paint
    BINDINGS = [
        Binding("escape", "back", "back", id="thread.back"),
        Binding("i", "compose_message", "post as operator", id="thread.post"),
        Binding("y", "copy_message", "copy message", id="thread.copy"),
        Binding("G", "follow", "follow newest", id="thread.follow"),
    ]

    def __init__(self, thread_id: str) -> None:
        super().__init__()
        self.thread_id = thread_id
        self.identity = ("thread", thread_id)
        self._shown = 0
        self.follow = True

    @property
    def bzzz(self) -> BzzzApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(id="thread-head")
        with Horizontal(id="thread-body"):
            yield ListView(id="transcript")
            yield Static(id="participants")
        yield Input(placeholder="message to the agents as a human (enter sends, esc leaves)", id="post")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#post", Input).display = False
        self.refresh_thread()
        self.query_one("#transcript", ListView).focus()

    def refresh_thread(self) -> None:
        view = self.bzzz.view
        thread = view.threads.get(self.thread_id)
        head = Text()
        if thread is None:
            head.append(f"thread {inert_line(self.thread_id)} (not known to this console)", style="bold")
        else:
            head.append(inert_line(thread.topic), style="bold")
            head.append(f"\n{inert_line(thread.id)} · status ")
            status = inert_line(thread.status)
            head.append(status, style="bold magenta" if thread.status == "waiting_human" else "bold")
            head.append(
                f" · consensus: {inert_line(thread.consensus) or 'not yet'} · {thread.messages} messages · "
                f"{usd(thread.cost, 4)}"
            )
        self.query_one("#thread-head", Static).update(head)
        closed = thread is not None and thread.status == "closed"
        if closed != getattr(self, "_thread_closed", False):
            self._thread_closed = closed
            self.refresh_bindings()  # i (post) is offered only while the thread can be answered
        people = Text("Participants\n", style="bold")
        for agent_id in thread.participants if thread else ():
            agent = view.agents.get(agent_id)
            state = agent.state if agent else "?"
            glyph, style = STATE_STYLE.get(state, ("?", ""))
            people.append(f"{glyph} {inert_line(agent_id)}\n", style=style)
            people.append(
                f"   {inert_line(agent.role) if agent else ''} · {inert_line(state)}\n", style="dim"
            )
        self.query_one("#participants", Static).update(people)
        self._append_new()

    def _append_new(self) -> None:
        transcript = list(self.bzzz.view.transcript(self.thread_id))
        listing = self.query_one("#transcript", ListView)
        if transcript and transcript[0].seq > self._shown + 1 and self._shown and len(listing.children) > 0:
            listing.clear()  # the bounded transcript dropped old messages: start over
            self._shown = 0
        new = [m for m in transcript if m.seq > self._shown]
        if not new:
            return
        listing.extend(MessageItem(m) for m in new)
        self._shown = new[-1].seq
        overflow = len(listing.children) - len(transcript)
        for item in list(listing.children)[: max(0, overflow)]:
            item.remove()
        if self.follow:
            listing.index = len(listing.children) - 1
            listing.scroll_end(animate=False)

    def action_follow(self) -> None:
        self.follow = True
        self._append_new()

    def on_list_view_highlighted(self, event: ListView.Highlighted) -> None:
        listing = event.list_view
        self.follow = listing.index is None or listing.index >= len(listing.children) - 1

    def action_copy_message(self) -> None:
        listing = self.query_one("#transcript", ListView)
        item = listing.highlighted_child
        if not isinstance(item, MessageItem):
            self.notify("no message selected", severity="warning")
            return
        # what the operator saw: a pasted ESC or bracketed-paste end could drive the shell it is pasted into
        self.app.copy_to_clipboard(inert(item.message.content))
        self.notify(f"copied message #{item.message.seq}")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "compose_message":
            return not getattr(self, "_thread_closed", False)
        return True

    def action_compose_message(self) -> None:
        if self.bzzz.readonly:
            self.notify("read-only console: posting is disabled", severity="error")
            return
        if getattr(self, "_thread_closed", False):
            self.notify("the thread is closed: nobody would read a post", severity="warning")
            return
        box = self.query_one("#post", Input)
        box.display = True
        box.focus()

    def action_back(self) -> None:
        """Esc: out of the post box first (an empty one closes; a draft is discarded only when the operator says
        so), then back to where the thread was opened from."""
        box = self.query_one("#post", Input)
        if not box.display:
            self.app.pop_screen()
            return
        if not box.value.strip():
            box.display = False
            self.query_one("#transcript", ListView).focus()
            return

        def discard(answer: bool | None) -> None:
            if answer:
                box.value = ""
                box.display = False
                self.query_one("#transcript", ListView).focus()
            else:
                box.focus()

        self.app.push_screen(Confirm("Discard the message you typed?", yes="Discard"), discard)

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if text and await self.bzzz.post_human(self.thread_id, text):
            event.input.value = ""
            event.input.display = False
            self.query_one("#transcript", ListView).focus()
