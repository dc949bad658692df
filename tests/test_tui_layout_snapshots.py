"""Snapshots of the dashboard and the help dialog at 80×24, 120×40 and 200×50, with the demo team settled, a
frozen clock and deterministic ids (see tests/test_tui_snapshots.py for what is pinned and how to regenerate)."""

from __future__ import annotations

from typing import Any

import pytest
import test_tui_snapshots as snaps
from textual.pilot import Pilot

from bzzz_console.config import Settings
from bzzz_console.tui.dashboard import DashboardScreen
from bzzz_console.tui.help_screen import HelpScreen

SIZES = ((80, 24), (120, 40), (200, 50))
frozen = snaps.frozen


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dashboard(frozen: Settings, snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = await snaps.settled(pilot)
        assert isinstance(app.screen, DashboardScreen)

    assert snap_compare(snaps.demo_app(frozen), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help_over_the_dashboard(frozen: Settings, snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = await snaps.settled(pilot)
        await pilot.press("question_mark")
        await snaps._until(
            pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen.is_mounted, "the help"
        )
        await pilot.pause()

    assert snap_compare(snaps.demo_app(frozen), terminal_size=size, run_before=run_before)
