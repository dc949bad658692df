"""Snapshots of the escalation screen and the agent screen at 80×24, 120×40 and 200×50, with the demo team
settled, a frozen clock and deterministic ids (see tests/test_tui_snapshots.py for what is pinned and how to
regenerate)."""

from __future__ import annotations

from typing import Any

import pytest
import test_tui_snapshots as snaps
from textual.pilot import Pilot

from bzzz_console.config import Settings
from bzzz_console.tui.agent_screen import AgentScreen
from bzzz_console.tui.escalation_screen import EscalationScreen
from bzzz_console.tui.tables import FleetTable

SIZES = ((80, 24), (120, 40), (200, 50))
frozen = snaps.frozen


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_escalation_screen_fits(frozen: Settings, snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = await snaps.settled(pilot)
        await pilot.press("e", "enter")
        await snaps._until(
            pilot,
            lambda: isinstance(app.screen, EscalationScreen) and app.screen.is_mounted,
            "the escalation screen",
        )
        await pilot.pause()
        app.clear_notifications()

    assert snap_compare(snaps.demo_app(frozen), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_agent_screen_of_the_escalating_agent(
    frozen: Settings, snap_compare: Any, size: tuple[int, int]
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = await snaps.settled(pilot)
        await pilot.press("a")
        await snaps._select(pilot, app.screen.query_one("#agents", FleetTable), "reviewer-1")
        await pilot.press("enter")
        await snaps._until(
            pilot, lambda: isinstance(app.screen, AgentScreen) and app.screen.is_mounted, "the agent screen"
        )
        await pilot.pause()
        app.clear_notifications()

    assert snap_compare(snaps.demo_app(frozen), terminal_size=size, run_before=run_before)
