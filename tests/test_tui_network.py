"""The network screen (``N``) with the real console: networking off says how to turn it on; networking on shows
this node, its topics, a second real libp2p node on loopback as a peer and the forged message it sent as
rejected (``forged_from``). Every wait polls with a generous deadline; nothing asserts on time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from test_tui import _brisk_keys, _text_of, console, make_settings  # noqa: F401  (_brisk_keys: autouse)
from textual.pilot import Pilot

from bzzz_console.domain import commands as cmd
from bzzz_console.domain import events as ev
from bzzz_console.p2p.node import NodeConfig, P2PNode
from bzzz_console.p2p.wire import TOPIC_COORDINATION
from bzzz_console.tui.app import BzzzApp
from bzzz_console.tui.dashboard import DashboardScreen
from bzzz_console.tui.help_screen import HelpScreen
from bzzz_console.tui.modals import Confirm
from bzzz_console.tui.network_screen import NetworkScreen, SnapshotTable
from bzzz_console.tui.tables import REMOTE_GLYPH, AgentsTable, short_peer
from bzzz_console.tui.view import FleetView

SIZE = (160, 48)
SLOW_S = 90.0
"""Deadline for what crosses the network on a slow, shared machine (a bound, never a measurement)."""
FORGED = b'{"type":"task_claim","from":"someone-else","timestamp":"2026-11-26T10:00:00Z","data":{}}'


def rows(screen: Any, table: str) -> list[list[str]]:
    return screen.query_one(f"#{table}", SnapshotTable).plain_rows()  # type: ignore[no-any-return]


async def test_networking_off_the_screen_says_how_to_turn_it_on(tmp_path: Path) -> None:
    async with console(make_settings(tmp_path), seed=False) as c:
        assert c.rt.network is None
        await c.press("N")
        await c.shows(NetworkScreen, "the network screen")
        text = _text_of(c.app.screen)
        assert "Networking is off" in text
        assert "[p2p]" in text and "enabled = true" in text and "--peer" in text and "--listen" in text
        assert not c.app.screen.query_one("#network-grid").display
        await c.press("question_mark")  # its keys and the app's, with binding ids
        await c.shows(HelpScreen, "the help")
        help_text = _text_of(c.app.screen)
        assert "network.back" in help_text and "app.network" in help_text
        await c.press("escape")
        await c.shows(NetworkScreen, "the help closed")
        await c.press("escape")
        await c.shows(DashboardScreen, "back on the dashboard")
        await c.press("N")
        await c.shows(NetworkScreen, "the network screen again")
        await c.press("q")
        await c.shows(DashboardScreen, "back on the dashboard after q")


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_networking_on_shows_the_node_a_peer_and_a_forged_message_rejected(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, p2p={"enabled": True, "listen": ["/ip4/127.0.0.1/tcp/0"]})
    async with console(settings, seed=False) as c:
        network = c.rt.network
        assert network is not None and network.node is not None
        assert (tmp_path / "data").is_dir()  # the node key went to the test's data dir
        await c.until(lambda: c.app.view.status.peer_id == network.peer_id, "the node's status event")
        await c.until(
            lambda: (
                f"node {short_peer(network.peer_id)}" in _text_of(c.app.screen)
                and "0 peers" in _text_of(c.app.screen)
            ),
            "the peer id and the peer count in the status line",
        )
        await c.press("N")
        await c.shows(NetworkScreen, "the network screen")
        screen = c.app.screen
        text = _text_of(screen)
        assert network.peer_id in text and network.node.addrs[0] in text
        assert {row[0] for row in rows(screen, "topics")} == {
            "bzzz/coordination/v1",
            "antennae/meta-discussion/v1",
        }

        other = P2PNode(os.urandom(32), NodeConfig(listen=["/ip4/127.0.0.1/tcp/0"]), lambda m, a: None)
        await other.start()
        try:
            await other.connect(network.node.addrs[0])
            await c.until(
                lambda: network.peer_id in other.subscribed_peers(), "our topics at the peer", SLOW_S
            )
            await c.until(
                lambda: any(
                    r[0] == short_peer(other.peer_id) and r[1] == "● yes" for r in rows(screen, "peers")
                ),
                "the peer, connected, in the peers table",
                SLOW_S,
            )
            await other._publish_raw(TOPIC_COORDINATION, FORGED)
            await c.until(
                lambda: ["forged_from", "1"] in rows(screen, "rejected"),
                "the forged message rejected",
                SLOW_S,
            )
            coordination = next(r for r in rows(screen, "topics") if r[0] == TOPIC_COORDINATION)
            assert coordination[3] == "1"  # rejected on its topic
            assert "rejected 1" in _text_of(screen)
            await c.press("escape")
            await c.shows(DashboardScreen, "back on the dashboard")
            await c.until(lambda: "1 peer " in _text_of(c.app.screen), "one peer in the status line", SLOW_S)
        finally:
            await other.stop()


def test_remote_agents_are_marked_and_local_ones_look_as_before() -> None:
    view = FleetView()
    view.apply(ev.AgentRegistered(agent_id="architect-1", role="architect", model="gpt-4o"))
    view.apply(
        ev.AgentRegistered(agent_id="architect-1.Q9YSYt", role="architect", model="external", origin="remote")
    )
    table = AgentsTable()
    local = table._cells_of(view.agents["architect-1"], view)[0]
    remote = table._cells_of(view.agents["architect-1.Q9YSYt"], view)[0]
    assert local == "architect-1"
    assert isinstance(remote, Text) and remote.plain == f"{REMOTE_GLYPH} architect-1.Q9YSYt"


@pytest.mark.timeout(120)
def test_snapshot_of_the_network_screen_with_networking_off(tmp_path: Path, snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app: BzzzApp = pilot.app  # type: ignore[assignment]
        deadline = 600
        while not (app.rt is not None and app.view.status.running) and deadline:
            await pilot.pause(0.05)
            deadline -= 1
        assert app.rt is not None and app.rt.network is None
        await pilot.press("N")
        while not (isinstance(app.screen, NetworkScreen) and app.screen.is_mounted) and deadline:
            await pilot.pause(0.05)
            deadline -= 1
        await pilot.pause(0.1)
        app.clear_notifications()

    app = BzzzApp(make_settings(tmp_path), demo=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


async def test_an_escalation_raised_on_another_node_is_answered_from_this_console(tmp_path: Path) -> None:
    """Node A (a headless runtime) asks a human; this console, joined to A, shows it and answers with a key; A
    applies the decision and its agent goes back to work."""
    from test_escalations import escalated_script, node

    from bzzz_console.domain.lifecycle import AgentState
    from bzzz_console.tui.escalation_screen import EscalationScreen

    (tmp_path / "a").mkdir()
    loopback = {"enabled": True, "listen": ["/ip4/127.0.0.1/tcp/0"]}
    async with node(tmp_path / "a", escalated_script(), p2p=loopback) as a:
        assert a.rt.network is not None and a.rt.network.node is not None
        settings = make_settings(tmp_path / "b", p2p={**loopback, "peers": [a.rt.network.node.addrs[0]]})
        async with console(settings, seed=False) as c:
            await c.until(lambda: c.rt.network is not None and c.rt.network.node is not None, "the node")
            peer_a = a.rt.network.peer_id
            await c.until(lambda: peer_a in c.rt.network.node.subscribed_peers(), "A's topics")  # type: ignore[union-attr]
            await a.rt.submit(cmd.AddTask(title="Pick a cache strategy", roles=("architect", "reviewer")))
            await c.until(lambda: a.rt.store.escalations("open"), "A's escalation")
            esc = a.rt.store.escalations("open")[0]
            await c.until(lambda: esc.id in c.app.view.escalations, "the escalation in this console")
            screen = await c.open_escalation(esc.id)
            assert isinstance(screen, EscalationScreen)
            await c.press("A")
            await c.shows(Confirm, "the confirmation")
            await c.press("Y")
            await c.until(
                lambda: (row := a.rt.store.get_escalation(esc.id)) is not None and row.state == "answered",
                "A to apply the decision",
            )
            owner = a.rt.store.get_escalation(esc.id)
            assert owner is not None and owner.applied and owner.decision is not None
            assert owner.decision["kind"] == "approve" and owner.decision["peer"] == c.rt.network.peer_id  # type: ignore[union-attr]
            await c.until(
                lambda: a.rt.agents["reviewer-1"].state is not AgentState.ESCALATING, "A's agent resumed"
            )
            await c.until(
                lambda: c.app.view.escalations[esc.id].state == "answered", "shown as answered here"
            )
            await c.shows(DashboardScreen, "back on the dashboard")


def test_go_nodes_network_tasks_and_unusable_rows_are_inert_text() -> None:
    from bzzz_console.tui.network_screen import go_node_rows, network_task_rows, unusable_rows

    snapshot = {
        "go_nodes": [
            {
                "peer_id": "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo",
                "status": "working",
                "available_for_work": True,
                "current_tasks": 1,
                "max_tasks": 3,
                "capabilities": ["a", "b", "c", "d", "e\x1b[2J"],
                "models": None,
                "version": "0.2.0",
            }
        ],
        "network_tasks": [
            {
                "title": "Add WebSocket support",
                "status": "blocked",
                "priority": "high",
                "details": {
                    "repository": "deepblackcloud/hive",
                    "number": 15,
                    "labels": ["feature"],
                    "difficulty": "medium",
                    "estimated_hours": 8,
                    "required_skills": ["python"],
                    "waiting_for": ["bzzz#23"],
                },
            },
            {
                "title": "bzzz#23",
                "status": "pending",
                "priority": "urgent",
                "details": {"repository": "bzzz", "number": 23},
            },
        ],
        "unusable": [{"type": "task_announcement", "reason": "bad_number", "count": 3, "detail": "[bold]x"}],
    }
    [node] = go_node_rows(snapshot)
    assert node[1:4] == ("working · takes work", "1/3", "a, b, c, d +1") and node[4] == "—"
    blocked, pending = network_task_rows(snapshot)
    assert blocked[0] == "deepblackcloud/hive#15 Add WebSocket support" and blocked[5:] == (
        "8 h",
        "python",
        "bzzz#23",
    )
    assert pending[0] == "bzzz#23" and pending[7] == "—"
    assert unusable_rows(snapshot) == [("task_announcement", "bad_number", "3", "[bold]x")]


@pytest.mark.timeout(120)
async def test_a_go_node_its_tasks_its_escalation_and_what_was_unusable_show_in_the_console(
    tmp_path: Path,
) -> None:
    """Go payloads handed to the running console's network as the node hands them over: the network view shows
    the Go node, its task (blocked, with labels and estimate) and the unusable count; its escalation is marked and
    read-only (a decision key does nothing)."""
    from test_go_interop import AVAILABILITY, CAPABILITIES, ESCALATION, GO_PEER, TASK_AVAILABLE, go_message

    from bzzz_console.p2p.wire import decode
    from bzzz_console.tui.escalation_screen import EscalationScreen

    settings = make_settings(tmp_path, p2p={"enabled": True, "listen": ["/ip4/127.0.0.1/tcp/0"]})
    async with console(settings, seed=False) as c:
        network = c.rt.network
        assert network is not None
        for kind, data in (
            ("availability_broadcast", AVAILABILITY),
            ("capability_broadcast", CAPABILITIES),
            ("task_announcement", TASK_AVAILABLE),
            ("task_announcement", '{"type":"task_available","task":{"number":"x"}}'),
            ("meta_discussion", ESCALATION),
        ):
            network._on_message(decode(go_message(kind, data)), GO_PEER)
        await c.press("N")
        await c.shows(NetworkScreen, "the network screen")
        screen = c.app.screen
        await c.until(lambda: rows(screen, "go-nodes"), "the Go node")
        [node] = rows(screen, "go-nodes")
        assert node[:3] == [short_peer(GO_PEER), "ready · takes work", "0/3"] and node[5] == "0.2.0"
        [task] = rows(screen, "net-tasks")
        assert task[0] == "deepblackcloud/hive#15 Add WebSocket support for real-time coordination"
        assert task[1] == "blocked"
        assert task[3:] == [
            "bzzz-task, feature, realtime",
            "medium",
            "8 h",
            "websockets, python, fastapi",
            "bzzz#23",
        ]
        [unusable] = rows(screen, "unusable")
        assert unusable[:3] == ["task_announcement", "no_repository", "1"]
        await c.press("escape")
        await c.shows(DashboardScreen, "back on the dashboard")
        [esc] = c.rt.store.escalations()
        shown = await c.open_escalation(esc.id)
        assert isinstance(shown, EscalationScreen)
        await c.until(lambda: "read-only" in _text_of(c.app.screen), "the read-only mark")
        text = _text_of(c.app.screen)
        assert f"from Go node {short_peer(GO_PEER)}" in text and "cannot receive a decision" in text
        await c.press("A")
        await c.pilot.pause(0.2)
        assert c.rt.store.get_escalation(esc.id).state == "open"  # type: ignore[union-attr]
        assert any("read-only" in n for n in c.notices)
