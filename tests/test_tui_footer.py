"""One footer row on every screen (issue #16): it starts with ``? help`` and ``^q quit`` and every hint on it is
whole, at 80×24 and wider, on the escalation, thread, agent and network screens and under the help. Driven with
Pilot on the real console (the demo fleet, see tests/test_tui.py) and read back from what is drawn."""

from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import Any

import pytest
import test_tui
from rich.console import Console
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.widgets._footer import FooterKey

from bzzz_console.tui.agent_screen import AgentScreen
from bzzz_console.tui.dashboard import DashboardScreen
from bzzz_console.tui.escalation_screen import EscalationScreen
from bzzz_console.tui.help_screen import HelpScreen
from bzzz_console.tui.network_screen import NetworkScreen
from bzzz_console.tui.tables import FleetTable
from bzzz_console.tui.thread_screen import ThreadScreen

# the console under Pilot and the database the demo played out on, shared with test_tui.py
_brisk_keys = test_tui._brisk_keys
escalated_db = test_tui.escalated_db
console, copy_of = test_tui.console, test_tui.copy_of

OWN_KEYS = {
    "escalation": ("esc back", "o open thread"),
    "thread": ("esc back", "i post as operator", "y copy message", "G follow newest"),
    "agent": ("esc back", "o open thread", "e its escalation", "p pause/resume"),
    "network": ("esc back",),
    "help": ("esc back", "o open thread"),  # the help over the escalation: its footer stays in view
}
"""What each screen's footer offers besides help and quit, all of it at 80 columns."""


async def open_screen(c: test_tui.ConsoleRun, name: str) -> Screen[Any]:
    """From the dashboard, open the screen ``name`` the way an operator does; return the screen on top."""
    esc = await c.escalation()
    if name in ("escalation", "help"):
        await c.open_escalation(esc.id)
        if name == "help":
            await c.press("question_mark")
            await c.shows(HelpScreen, "the help over the escalation")
    elif name == "thread":
        await c.open_escalation(esc.id)
        await c.press("o")
        await c.shows(ThreadScreen, "the thread")
    elif name == "agent":
        await c.press("a")
        table = c.app.screen.query_one("#agents", FleetTable)
        await c.select(table, "reviewer-1")
        await c.press("enter")
        await c.shows(AgentScreen, "the agent")
    else:
        await c.press("N")
        await c.shows(NetworkScreen, "the network screen")
    return c.app.screen


def footer_of(c: test_tui.ConsoleRun) -> Footer:
    """The footer in view: the top screen's, or under a dialog (the help) the one of the screen below it."""
    footers: list[Footer] = [f for s in reversed(c.app.screen_stack) for f in s.query(Footer)]
    return footers[0]


def drawn_rows(c: test_tui.ConsoleRun) -> list[str]:
    """The terminal's rows as drawn, a dialog over the screen below included (as App.export_screenshot draws
    them, as text)."""
    out = Console(width=c.app.size.width, height=c.app.size.height, file=io.StringIO(), record=True)
    out.print(c.app.screen._compositor.render_update(full=True, screen_stack=c.app._background_screens))
    return out.export_text().splitlines()


def hint(key: FooterKey) -> str:
    return f"{key.key_display} {key.description}".strip()


async def shown_keys(c: test_tui.ConsoleRun, footer: Footer) -> list[FooterKey]:
    """The footer's hints once it has composed them for the current bindings and width."""
    await c.until(lambda: len(footer.query(FooterKey)) >= 2, "the footer's keys")
    await c.pilot.pause()
    return list(footer.query(FooterKey))


def assert_whole_and_first(c: test_tui.ConsoleRun, footer: Footer, keys: list[FooterKey]) -> str:
    """Help then quit first; every hint inside the terminal, on the footer's one row, none under another (the
    palette key is docked on the right); the bottom row reads the hints whole. Returns the bottom row."""
    width, height = c.app.size
    assert [(k.key_display, k.action) for k in keys[:2]] == [("?", "help"), ("^q", "quit")]
    assert footer.region.height == 1 and footer.region.y == height - 1
    assert all(k.region.y == footer.region.y and k.region.x >= 0 and k.region.right <= width for k in keys)
    spans = sorted((k.region.x, k.region.right) for k in keys)
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans)), spans  # no overlap
    bottom = drawn_rows(c)[height - 1]
    assert bottom.startswith("? help ^q quit "), bottom
    for key in keys:
        assert hint(key) in bottom, (hint(key), bottom)
    last = max(keys, key=lambda k: k.region.right)
    assert bottom.rstrip().endswith(hint(last)), bottom  # nothing cut on the right after it
    return bottom


@pytest.mark.parametrize("name", list(OWN_KEYS))
async def test_every_screens_footer_starts_with_help_and_quit_at_80x24(
    tmp_path: Path, escalated_db: Path, name: str
) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        await c.pilot.resize_terminal(80, 24)
        screen = await open_screen(c, name)
        footer = footer_of(c)
        keys = await shown_keys(c, footer)
        bottom = assert_whole_and_first(c, footer, keys)
        for own in OWN_KEYS[name]:  # the screen's own keys fit too, none left out at 80 columns
            assert own in [hint(k) for k in keys], (own, bottom)
        if name == "escalation":  # the decisions are on their own bar above the footer, whole
            assert isinstance(screen, EscalationScreen)
            bar = screen.query_one("#escalation-keys", Static)
            assert bar.region.bottom <= footer.region.y
            drawn = " ".join(" ".join(drawn_rows(c)[bar.region.y : bar.region.bottom]).split())
            assert "A approve R reject… M reply…" in drawn and "X terminate" in drawn, drawn


async def test_a_hint_that_does_not_fit_is_left_out_not_cut(tmp_path: Path, escalated_db: Path) -> None:
    """The thread screen has the most hints: narrower than 80 the last ones go whole, help and quit stay; from
    100 columns the palette key joins on the right and covers none."""
    async with console(copy_of(escalated_db, tmp_path)) as c:
        await c.pilot.resize_terminal(80, 24)
        await open_screen(c, "thread")
        footer = footer_of(c)
        everything = [hint(k) for k in await shown_keys(c, footer)]
        await c.pilot.resize_terminal(50, 24)
        await c.until(lambda: len(footer.query(FooterKey)) < len(everything), "fewer hints at 50 columns")
        keys = await shown_keys(c, footer)
        assert_whole_and_first(c, footer, keys)
        assert [hint(k) for k in keys] == everything[: len(keys)]  # the first ones, in the same order
        await c.pilot.resize_terminal(120, 40)
        await c.until(lambda: any("-command-palette" in k.classes for k in footer.query(FooterKey)), "^p")
        keys = await shown_keys(c, footer)
        assert_whole_and_first(c, footer, keys)
        assert [hint(k) for k in keys] == [*everything, "^p palette"]
        await c.press("escape", "escape")
        await c.shows(DashboardScreen, "back on the dashboard")
