"""The dashboard fits the terminal: columns, panes, footer, help, charts, filter titles, role colours, and the
config warnings shown at start. Driven with Pilot on the real app (the demo fleet), read back from the widgets."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import test_tui
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.theme import BUILTIN_THEMES
from textual.widgets import Static
from textual.widgets._footer import FooterKey
from typer.testing import CliRunner

from bzzz_console.config import Settings
from bzzz_console.config_sections import console_warnings
from bzzz_console.tui.app import BzzzApp
from bzzz_console.tui.dashboard import DashboardScreen, Pane
from bzzz_console.tui.help_screen import HelpScreen, binding_scopes, config_warnings
from bzzz_console.tui.panels import KeysFooter, amount, bar, chart, gauge
from bzzz_console.tui.tables import OTHER_ROLE, ROLE_COLORS, FleetTable

SIZES = ((80, 24), (120, 40), (200, 50))

# the console under Pilot and the database the demo played out on, shared with test_tui.py
_brisk_keys = test_tui._brisk_keys
escalated_db = test_tui.escalated_db
console, copy_of, make_settings = test_tui.console, test_tui.copy_of, test_tui.make_settings


def _title(c: Any, name: str) -> str:
    pane = c.app.screen.query_one(f"#{name}-pane", Pane)
    return pane._border_title.plain if pane._border_title is not None else ""


async def _resize(c: Any, size: tuple[int, int]) -> None:
    await c.pilot.resize_terminal(*size)
    await c.pilot.pause()
    await c.pilot.pause()


# -- the pane titles say when a filter hides rows ----------------------------------------------------------------


async def test_a_filter_shows_in_its_pane_title(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        threads = c.app.screen.query_one("#threads", FleetTable)
        await c.until(
            lambda: threads.row_count == 3 and _title(c, "threads") == "Threads (3)", "three threads"
        )
        await c.press("t", "slash")
        await c.type("rate")
        await c.until(lambda: threads.row_count == 1, "the filtered table")
        await c.press("enter")  # back to the table: the filter stays, and the title keeps saying so
        assert _title(c, "threads") == 'Threads (1 of 3 · filter "rate")'
        assert _title(c, "agents") == "Agents (5)"  # another pane's filter is its own
        await c.press("escape")
        await c.until(lambda: _title(c, "threads") == "Threads (3)", "the title without the filter")
        assert _title(c, "escalations") == "Escalations (1 open)"


# -- every size: the columns fit the pane, what a decision needs is on screen ------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_tables_fit_their_panes_at_every_size(tmp_path: Path, escalated_db: Path, size: Any) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        await c.escalation()
        await _resize(c, size)
        screen = c.app.screen
        assert isinstance(screen, DashboardScreen)
        agents = screen.query_one("#agents", FleetTable)
        await c.until(lambda: agents.row_count == 5, "the fleet")
        for table in screen.query(FleetTable):
            columns = [str(col.label) for col in table.ordered_columns]
            assert table.max_scroll_x == 0, (size, table.id, columns)  # no horizontal scrolling
            assert table.region.right <= size[0]
        escalations = screen.query_one("#escalations", FleetTable)
        assert {"agent", "age", "deadline"} <= {str(col.label) for col in escalations.ordered_columns}
        [deadline] = [i for i, col in enumerate(escalations.ordered_columns) if str(col.label) == "deadline"]
        assert str(escalations.get_row_at(0)[deadline]).count(":") == 2  # a countdown, not cut
        assert {"id", "state"} <= {str(col.label) for col in agents.ordered_columns}
        [state] = [i for i, col in enumerate(agents.ordered_columns) if str(col.label) == "state"]
        states = {str(agents.get_row_at(r)[state]).split(" (")[0] for r in range(agents.row_count)}
        assert "◆ Escalating" in states  # not "◆ Esc"
        # everything to decide on is on screen: the escalation row and its pane inside the terminal
        pane = screen.query_one("#escalations-pane", Pane)
        assert pane.region.bottom <= size[1] - 1 and escalations.row_count == 1
        assert escalations.region.height >= 2  # header and the row
        for name in ("escalations", "agents", "threads", "spend"):  # no pane pushed off the screen
            region = screen.query_one(f"#{name}-pane", Pane).region
            least = 1 if name == "spend" and size[0] < 120 else 3  # narrow: spend is one line, the gauge
            assert region.height >= least and region.bottom <= size[1] - 1 and region.right <= size[0], name
        if size[0] < 120:  # narrow: the panes stack, full width
            assert len({p.region.x for p in screen.query(Pane)}) == 1
        else:  # threads and spend side by side
            threads, spend = (screen.query_one(f"#{n}-pane", Pane).region for n in ("threads", "spend"))
            assert threads.y == spend.y and threads.right <= spend.x


async def test_the_cut_reason_is_the_rows_tooltip(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        esc = await c.escalation()
        await _resize(c, (80, 24))
        table = c.app.screen.query_one("#escalations", FleetTable)
        await c.until(lambda: table.tooltip is not None, "a tooltip")
        [reason] = [i for i, col in enumerate(table.ordered_columns) if str(col.label) == "reason"]
        shown = str(table.get_row_at(0)[reason])
        assert shown.endswith("…") and isinstance(table.tooltip, Text)
        assert esc.reason in table.tooltip.plain


def test_the_status_line_starts_with_what_an_operator_acts_on() -> None:
    from bzzz_console.tui.panels import status_text
    from bzzz_console.tui.view import FleetView

    view = FleetView()
    view.status.readonly = True
    view.status.database = "sqlite:////a/very/long/path/" + "x" * 200 + "/bzzz.db"
    view.status.provider = "openai"
    text = status_text(view)
    assert text.plain.startswith(" bzzz-console  READ-ONLY  ▸ $0.00 today ▸ openai")
    assert text.plain.index("READ-ONLY") < text.plain.index("openai") < text.plain.index("sqlite")


# -- the footer and the help fit 80×24 ---------------------------------------------------------------------------


async def test_the_footer_at_80_columns_keeps_help_and_quit(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        await _resize(c, (80, 24))
        footer = c.app.screen.query_one(KeysFooter)
        await c.until(lambda: len(footer.query(FooterKey)) > 4, "the footer's keys")
        keys = list(footer.query(FooterKey))
        assert [k.action for k in keys[:2]] == ["help", "quit"]
        assert [k.key_display for k in keys[:2]] == ["?", "^q"]
        assert all(k.region.right <= 80 for k in keys)  # every hint whole on the one row
        assert footer.region.height == 1 and {k.region.y for k in keys} == {footer.region.y}
        await _resize(c, (120, 40))
        await c.until(lambda: any("-command-palette" in k.classes for k in footer.query(FooterKey)), "^p")


async def test_the_help_fits_80x24_with_readable_keys(tmp_path: Path, escalated_db: Path) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        await _resize(c, (80, 24))
        await c.press("question_mark")
        await c.shows(HelpScreen, "the help")
        await c.pilot.pause()
        dialog = c.app.screen.query_one(VerticalScroll)
        assert dialog.region.right <= 80 and dialog.region.bottom <= 24
        assert dialog.max_scroll_y == 0  # nothing hidden below
        text = "\n".join(str(s.render()) for s in c.app.screen.query(Static))
        table = c.app.screen.query(Static)[1].content
        assert isinstance(table, Table)
        rows = {
            str(key): str(desc)
            for key, desc in zip(table.columns[0].cells, table.columns[1].cells, strict=True)
        }
        assert rows["/"] == "filter" and rows["?"] == "help" and rows["^q"] == "quit"
        assert "slash" not in text and "question_mark" not in text
        assert "dashboard.filter" in [str(i) for i in table.columns[2].cells]
        # the screen with the most keys: the escalation's decisions fit too
        await c.press("escape")
        esc = await c.escalation()
        await c.open_escalation(esc.id)
        await c.press("question_mark")
        await c.shows(HelpScreen, "the help over the escalation")
        await c.pilot.pause()
        dialog = c.app.screen.query_one(VerticalScroll)
        assert dialog.region.bottom <= 24 and dialog.max_scroll_y == 0


# -- charts carry numbers ----------------------------------------------------------------------------------------


def test_bars_and_gauge_carry_the_amounts() -> None:
    assert bar(1.0, 8) == "█" * 8 and bar(0.0, 8) == "░" * 8
    assert bar(0.5, 8) == "████░░░░"
    assert bar(0.001, 8)[0] == "▏"  # a little spend is never an empty bar
    tiny = gauge(0.000095, 0.0001).plain
    assert "$0.000095 of $0.0001 today" in tiny and "95%" in tiny and "$0.00 " not in tiny
    assert gauge(0.0095, 0.01).plain.startswith("$0.0095 of $0.0100 today")
    assert amount(5) == "$5.00" and amount(0.0044) == "$0.0044"
    assert "no daily limit" in gauge(0.5, None).plain


def test_the_chart_has_a_scale_and_a_time_axis() -> None:
    series = [0.0] * 58 + [0.002, 0.004]
    lines = chart(series, 40).plain.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("$0.0040/min ┤") and lines[2].strip().startswith("0 ┤")
    assert lines[-1].strip().startswith("−") and lines[-1].rstrip().endswith("now")
    columns = len(lines[0].split("┤", 1)[1])
    assert lines[-1].strip().startswith(f"−{columns} min")
    assert lines[0].endswith("█") and lines[0][-2] != "█"  # the top minute is full height, half of it is not


async def test_spend_bars_are_proportional_and_show_each_agents_amount(
    tmp_path: Path, escalated_db: Path
) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        spend = c.app.view.spend
        await c.until(lambda: len(spend.by_agent) == 5, "spend of every agent")
        await _resize(c, (120, 40))
        breakdown = c.app.screen.query_one("#spend-breakdown", Static)
        await c.until(lambda: "architect-1" in str(breakdown.render()), "the breakdown")
        lines = str(breakdown.render()).splitlines()[1:]
        top = max(spend.by_agent.values())
        total = sum(spend.by_agent.values())
        for agent_id, cost in spend.by_agent.items():
            [line] = [ln for ln in lines if ln.split()[0] == agent_id]
            drawn = line.split()[1]
            assert drawn == bar(cost / top, 8), line
            assert amount(cost) in line and f"{cost / total:.0%}" in line
        [leader] = [
            ln for ln in lines if ln.split()[0] == max(spend.by_agent, key=spend.by_agent.__getitem__)
        ]
        assert leader.split()[1] == "█" * 8


# -- colours -----------------------------------------------------------------------------------------------------


def _luminance(hex_colour: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("theme", sorted(BUILTIN_THEMES))
def test_role_colours_are_distinct_and_readable_in_every_theme(theme: str) -> None:
    t = BUILTIN_THEMES[theme]
    default = "#121212" if t.dark else "#ffffff"  # ansi themes: the terminal's own background
    background = t.background if t.background and t.background.startswith("#") else default
    side = 0 if t.dark else 1
    colours = {role: pair[side] for role, pair in {**ROLE_COLORS, "other": OTHER_ROLE}.items()}
    for role, colour in colours.items():
        assert _contrast(colour, background) >= 3.0, (theme, role, colour, background)
    for (r1, c1), (r2, c2) in itertools.combinations(colours.items(), 2):
        distance = sum((int(c1[i : i + 2], 16) - int(c2[i : i + 2], 16)) ** 2 for i in (1, 3, 5)) ** 0.5
        assert distance > 100, (theme, r1, r2)


async def test_the_focused_pane_does_not_look_like_the_escalations_pane(
    tmp_path: Path, escalated_db: Path
) -> None:
    async with console(copy_of(escalated_db, tmp_path)) as c:
        await c.escalation()
        screen = c.app.screen
        escalations = screen.query_one("#escalations-pane", Pane)
        await c.until(lambda: escalations.has_class("-waiting"), "the escalations pane marked as waiting")
        await c.press("a")
        await c.pilot.pause()
        focused = screen.query_one("#agents-pane", Pane).styles.border_top
        resting = escalations.styles.border_top
        assert focused != resting and focused[0] != resting[0]  # another line, another colour
        await c.press("e")
        await c.pilot.pause()
        assert escalations.styles.border_top[0] == "heavy"


# -- config warnings ---------------------------------------------------------------------------------------------


def test_console_warnings_name_each_mistake_in_one_line() -> None:
    scopes = binding_scopes(BzzzApp.BINDINGS)
    settings = Settings.model_validate(
        {
            "console": {
                "theme": "nrod",
                "keys": {"escalation.aprove": "A", "dashboard.threads": "e", "dashboard.filter": "?"},
            }
        }
    )
    lines = config_warnings(settings, BzzzApp.BINDINGS)
    assert len(lines) == 4 and all("\n" not in line for line in lines)
    assert lines[0].startswith('[console] theme "nrod" is not a theme (did you mean nord?')
    assert '"escalation.aprove" is not a binding id (did you mean escalation.approve?)' in lines[1]
    assert "dashboard.escalations and dashboard.threads on the dashboard screen" in lines[2]
    assert "app.help and dashboard.filter" in lines[3]
    # defaults that share a key on purpose (help's ? closes it) and a clean config say nothing
    assert config_warnings(Settings(), BzzzApp.BINDINGS) == []
    assert console_warnings(Settings().console, BUILTIN_THEMES, scopes) == []
    assert "escalation" in scopes and "dashboard" in scopes and "app.quit" in scopes["escalation"]


async def test_config_mistakes_are_toasts_at_start(tmp_path: Path, escalated_db: Path) -> None:
    settings = copy_of(escalated_db, tmp_path, console={"theme": "nrod", "keys": {"no.such": "z"}})
    async with console(settings) as c:
        await c.until(
            lambda: len([n for n in c.notices if n.startswith("Config:")]) == 2, "two config toasts"
        )
        assert c.app.theme == "textual-dark"


def test_the_cli_prints_config_mistakes_on_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bzzz_console import config
    from bzzz_console.cli.main import app

    monkeypatch.setattr(config, "default_config_path", lambda: tmp_path / "absent.toml")
    monkeypatch.setattr(BzzzApp, "run", lambda self, *a, **k: 0)
    path = tmp_path / "config.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[console]\ntheme = "nrod"\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["--config", str(path), "--db", f"sqlite:///{tmp_path / 'b.db'}"])
    assert result.exit_code == 0, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith('warning: [console] theme "nrod" is not a theme')
    assert make_settings(tmp_path).console.theme == "textual-dark"


def test_the_transcript_uses_the_same_role_colours() -> None:
    import re

    from bzzz_console.resources import screens_dir

    css = (screens_dir() / "thread.tcss").read_text(encoding="utf-8")
    found = {
        (mode, role): colour
        for mode, role, colour in re.findall(
            r"App:(dark|light) \.role-(\w+) \{ border-left: outer (#\w+);", css
        )
    }
    for role, (dark, light) in ROLE_COLORS.items():
        assert found[("dark", role)] == dark and found[("light", role)] == light
