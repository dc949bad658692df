"""Interop with the original Go BZZZ nodes, on their exact payloads.

Each payload below is what go's ``encoding/json`` writes for the code named beside it in github.com/anthonyrawlins/
bzzz (map keys sorted, struct fields in declaration order, nil slices as ``null``, ``time.Now()`` as RFC 3339 with
nanoseconds and the local offset, ``peer.ID.ShortString()`` as ``<peer.ID 12*…>``). They go through the real wire
decoding (:func:`~bzzz_console.p2p.wire.decode`) into the network's handlers and the store of a real runtime (the
demo fleet on SQLite; the network object is not started, its handlers are called as the node calls them), then
with variations: missing fields, numbers as strings or floats, ``null`` data. The last test publishes the same
Go announcement three times from a real libp2p peer to a runtime on loopback and finds one task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import eventually
from hypothesis import given, settings
from hypothesis import strategies as st

from bzzz_console.app import make_runtime
from bzzz_console.config import Settings
from bzzz_console.domain import commands as cmd
from bzzz_console.domain import events as ev
from bzzz_console.domain.errors import CommandError
from bzzz_console.p2p.gonodes import TaskRef, Unusable, go_task_id, read_go_task, whole_number
from bzzz_console.p2p.service import Network
from bzzz_console.p2p.wire import decode
from bzzz_console.runtime.runtime import Runtime

GO_PEER = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"
GO_STAMP = "2025-12-05T10:30:00.123456789+01:00"

# test/task_simulator.go announceRandomTask: the MockTask hive#15 of generateMockRepositories
TASK_AVAILABLE = (
    '{"announced_at":1733391000,"announced_by":"task_simulator","repository":{"name":"hive",'
    '"owner":"deepblackcloud","url":"https://github.com/deepblackcloud/hive"},"task":{"number":15,'
    '"title":"Add WebSocket support for real-time coordination","description":"Implement WebSocket endpoints '
    'for real-time agent coordination","labels":["bzzz-task","feature","realtime"],"difficulty":"medium",'
    '"task_type":"feature","dependencies":[{"repository":"bzzz","task_number":23,"dependency_type":'
    '"api_contract"}],"estimated_hours":8,"required_skills":["websockets","python","fastapi"]},'
    '"type":"task_available"}'
)
# the same simulator, bzzz#23: a task without dependencies (a nil slice: null)
TASK_AVAILABLE_23 = (
    '{"announced_at":1733391045,"announced_by":"task_simulator","repository":{"name":"bzzz",'
    '"owner":"deepblackcloud","url":"https://github.com/anthonyrawlins/bzzz"},"task":{"number":23,'
    '"title":"Define coordination API contract","description":"Standardize API contract for cross-repository '
    'coordination","labels":["bzzz-task","api","coordination"],"difficulty":"medium","task_type":"api_design",'
    '"dependencies":null,"estimated_hours":6,"required_skills":["api_design","go","documentation"]},'
    '"type":"task_available"}'
)
# test/task_simulator.go runCoordinationScenario, scenario "Cross-Repository API Integration"
SCENARIO_23 = (
    '{"announced_at":1733391100,"blocked_by":[],"priority":1,"repository":"bzzz","scenario_name":'
    '"Cross-Repository API Integration","task_number":23,"type":"scenario_task"}'
)
SCENARIO_15 = (
    '{"announced_at":1733391102,"blocked_by":[{"repository":"bzzz","task_number":23,"priority":0,'
    '"blocked_by":null}],"priority":2,"repository":"hive","scenario_name":"Cross-Repository API Integration",'
    '"task_number":15,"type":"scenario_task"}'
)
# main.go announceAvailability and announceCapabilitiesOnChange
AVAILABILITY = (
    '{"available_for_work":true,"current_tasks":0,"last_activity":1733391000,"max_tasks":3,'
    '"node_id":"<peer.ID 12*Ve2Xo>","status":"ready","timestamp":1733391000}'
)
CAPABILITIES = (
    '{"capabilities":["task-coordination","meta-discussion","ollama-reasoning"],"models":["phi3","llama3.1"],'
    '"node_id":"<peer.ID 12*Ve2Xo>","reason":"first_run","specialization":"code_generation",'
    '"timestamp":1733391000,"version":"0.2.0"}'
)
# github/integration.go requestAssistance (on bzzz/meta/issue/15) and handleHelpRequest's answer
HELP_REQUEST = (
    '{"issue_id":15,"reason":"Failed to create pull request: 422 Validation Failed. Task execution completed '
    "successfully and work is preserved in branch 'bzzz/task-15', but PR creation failed.\","
    '"repository":"deepblackcloud/hive"}'
)
HELP_RESPONSE = '{"can_help":true,"capabilities":["code-generation","go"],"issue_id":15}'
# pkg/coordination/meta_coordinator.go escalateSession (participants: map of Participant; tasks: TaskContext)
ESCALATION = (
    '{"escalation_reason":"Message limit exceeded - human intervention needed","message_type":"escalation",'
    '"participants":{"agent-hive":{"agent_id":"agent-hive","peer_id":"12*Ve2Xo","repository":"hive",'
    '"capabilities":null,"last_seen":"2025-12-05T10:29:58.5+01:00","active":true}},"requires_human":true,'
    '"session_id":"dep_0_15_1733390700","session_summary":"Session dep_0_15_1733390700 (dependency): 2 '
    'participants, 10 messages, duration 5m0s","tasks_involved":[{"task_id":15,"project_id":0,"repository":'
    '"hive","title":"Add WebSocket support for real-time coordination","description":"","keywords":null,'
    '"agent_id":"agent-hive","claimed_at":"0001-01-01T00:00:00Z"}]}'
)
RESOLUTION = (
    '{"message_type":"resolution","resolution":"Consensus reached among participants","session_id":'
    '"dep_0_15_1733390700","summary":"Session dep_0_15_1733390700 (dependency): 2 participants, 4 messages, '
    'duration 2m0s"}'
)
# generateCoordinationPlan, dependency_detector.go announceDependency, test_coordination.go scenario start
COORDINATION_PLAN = (
    '{"message":"Coordination plan generated for dependency: API_Contract","message_type":"coordination_plan",'
    '"participants":{},"plan":"1. Define the contract first","session_id":"dep_0_15_1733390700",'
    '"tasks_involved":[]}'
)
DEPENDENCY_DETECTED = (
    '{"agents_involved":["agent-hive","agent-bzzz"],"coordination_request":"Cross-repository dependency detected '
    "between tasks. Agent working on hive/Add WebSocket support #15 and agent working on bzzz/Define coordination "
    'API contract #23 should coordinate. Relationship: API_Contract. Reason: API contract and implementation",'
    '"dependency":{"task1":{"task_id":15,"project_id":0,"repository":"hive","title":"Add WebSocket support",'
    '"description":"","keywords":null,"agent_id":"agent-hive","claimed_at":"0001-01-01T00:00:00Z"},"task2":null,'
    '"relationship":"API_Contract","confidence":0.8,"reason":"API contract and implementation","detected_at":'
    '"2025-12-05T10:29:00+01:00"},"detected_at":1733390940,"hop_count":0,"max_hops":3,"message_type":'
    '"dependency_detected","repositories":["hive","bzzz"]}'
)
# test/task_simulator.go simulateAgentResponse (published as meta_discussion, keyed by "type")
AGENT_RESPONSE = (
    '{"agent_id":"sim-agent-2","confidence":0.8123,"message":"I can handle this frontend task",'
    '"timestamp":1733391200,"type":"agent_response"}'
)
SCENARIO_START = (
    '{"scenario":{"name":"Cross-Repository API Integration","description":"Testing coordination",'
    '"repositories":["hive","bzzz"],"tasks":[],"expected_coordination":null},"started_at":1733391100,'
    '"type":"coordination_scenario_start"}'
)


def go_message(kind: str, data: str, stamp: str = GO_STAMP, sender: str = GO_PEER) -> bytes:
    """The envelope as pubsub.go's Message marshals: type, from, timestamp, data (hop_count omitted when 0)."""
    return f'{{"type":"{kind}","from":"{sender}","timestamp":"{stamp}","data":{data}}}'.encode()


def with_task(**changes: Any) -> str:
    """The task_available payload with fields of its ``task`` replaced (None: the field left out)."""
    data = json.loads(TASK_AVAILABLE)
    for key, value in changes.items():
        if value is None:
            data["task"].pop(key, None)
        else:
            data["task"][key] = value
    return json.dumps(data, separators=(",", ":"))


HIVE_15 = go_task_id(TaskRef("deepblackcloud/hive", 15))
BZZZ_23 = go_task_id(TaskRef("bzzz", 23))


@dataclass
class GoPeer:
    """A runtime whose network hears a Go node (the handlers the node calls for each admitted message)."""

    rt: Runtime
    net: Network

    def hears(self, kind: str, data: str, stamp: str = GO_STAMP) -> None:
        self.net._on_message(decode(go_message(kind, data, stamp)), GO_PEER)

    def unusable(self) -> dict[tuple[str, str], int]:
        return {(u["type"], u["reason"]): u["count"] for u in self.net.snapshot()["unusable"]}

    def shown(self) -> list[ev.NetworkMessage]:
        return [e for e in self.events if isinstance(e, ev.NetworkMessage)]

    events: list[ev.Event]


@contextlib.asynccontextmanager
async def go_peer(tmp_path: Path, **p2p: Any) -> AsyncIterator[GoPeer]:
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path / "data"),
            "store": {"url": f"sqlite:///{tmp_path / 'bzzz.db'}"},
            "demo": {"latency_ms": 0, "seed": 7},
            "runtime": {"poll_interval_s": 0.05},
            "p2p": p2p,
        }
    )
    async with make_runtime(settings, force_demo=True) as rt:
        await asyncio.wait_for(rt.wait_idle(), 30)
        net = Network(rt)
        events: list[ev.Event] = []
        rt.bus.tap(net._on_event)
        rt.bus.tap(events.append)
        yield GoPeer(rt, net, events)
        await asyncio.wait_for(rt.wait_idle(), 60)  # the demo fleet finishes what it started


# -- reading the shapes ----------------------------------------------------------------------------------------


def test_a_task_available_reads_with_its_identity_and_details() -> None:
    task = read_go_task(decode(go_message("task_announcement", TASK_AVAILABLE)).data)
    assert (task.shape, task.ref.key, task.ref.label) == (
        "task_available",
        "hive#15",
        "deepblackcloud/hive#15",
    )
    assert task.task_id == HIVE_15 == go_task_id(TaskRef("hive", 15))  # the scenario's bare name: one task
    d = task.details
    assert d["title"] == "Add WebSocket support for real-time coordination"
    assert (d["labels"], d["difficulty"], d["task_type"]) == (
        ["bzzz-task", "feature", "realtime"],
        "medium",
        "feature",
    )
    assert (d["estimated_hours"], d["required_skills"]) == (8, ["websockets", "python", "fastapi"])
    assert d["dependencies"] == [
        {"repository": "bzzz", "task_number": 23, "key": "bzzz#23", "dependency_type": "api_contract"}
    ]
    assert d["url"] == "https://github.com/deepblackcloud/hive" and "priority" not in d


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (15, 15),
        (15.0, 15),
        ("15", 15),
        (" 15 ", 15),
        ("15a", None),
        (True, None),
        (0, None),
        (-3, None),
        (1.5, None),
        (None, None),
        ("1" * 12, None),
        ([15], None),
    ],
)
def test_numbers_are_read_as_go_sends_them_or_as_others_may(value: object, expected: int | None) -> None:
    if expected is None:
        with pytest.raises(Unusable, match="bad_number"):
            whole_number(value, "task.number")
    else:
        assert whole_number(value, "task.number") == expected


# -- into the store ----------------------------------------------------------------------------------------------


async def test_a_go_task_announced_three_times_is_one_task_kept_with_its_details(tmp_path: Path) -> None:
    async with go_peer(tmp_path) as go:
        for second in (1, 2, 3):
            go.hears("task_announcement", TASK_AVAILABLE, f"2025-12-05T10:30:0{second}.5+01:00")
        [row] = [t for t in go.rt.store.tasks() if t.source == "p2p"]
        assert row.id == HIVE_15 and row.title == "Add WebSocket support for real-time coordination"
        assert (row.status, row.priority, row.roles) == ("blocked", "medium", ["architect", "reviewer"])
        d = row.details
        assert d["announcements"] == 3 and d["shapes"] == ["task_available"] and d["announcer"] == GO_PEER
        assert d["repository"] == "deepblackcloud/hive" and d["number"] == 15
        assert d["waiting_for"] == ["bzzz#23"]  # an open dependency: not known here, so not done
        for line in (
            "Implement WebSocket endpoints for real-time agent coordination",
            "Labels: bzzz-task, feature, realtime",
            "Type: feature",
            "Difficulty: medium",
            "Estimate: 8 h",
            "Skills: websockets, python, fastapi",
            "Depends on: bzzz#23 (api_contract)",
            "Waiting for: bzzz#23",
        ):
            assert line in row.description
        blocked = [e for e in go.events if isinstance(e, ev.TaskStatusChanged) and e.task_id == HIVE_15]
        assert [(e.status, e.reason) for e in blocked] == [("blocked", "waiting for bzzz#23")]  # said once
        shown = go.net.snapshot()["network_tasks"]
        assert [(t["task_id"], t["status"]) for t in shown] == [(HIVE_15, "blocked")]
        assert shown[0]["details"]["labels"] == ["bzzz-task", "feature", "realtime"]


async def test_scenario_tasks_get_a_title_a_priority_and_their_blockers(tmp_path: Path) -> None:
    async with go_peer(tmp_path) as go:
        go.hears("task_announcement", SCENARIO_15)
        blocked = go.rt.store.get_task(HIVE_15)
        assert (blocked.title, blocked.priority, blocked.status) == ("hive#15", "high", "blocked")
        assert blocked.details["blocked_by"] == [{"repository": "bzzz", "task_number": 23, "key": "bzzz#23"}]
        assert "coordination scenario 'Cross-Repository API Integration'" in blocked.description
        go.hears("task_announcement", SCENARIO_23)
        first = go.rt.store.get_task(BZZZ_23)
        assert (first.title, first.priority, first.status) == ("bzzz#23", "urgent", "pending")

        # the task_available of hive#15 is the same task: its title and details join the scenario's
        go.hears("task_announcement", TASK_AVAILABLE)
        merged = go.rt.store.get_task(HIVE_15)
        assert merged.title == "Add WebSocket support for real-time coordination"
        assert merged.priority == "high" and merged.details["shapes"] == ["scenario_task", "task_available"]
        assert merged.details["repository"] == "deepblackcloud/hive" and merged.details["announcements"] == 2
        assert merged.details["scenario"] == "Cross-Repository API Integration"
        assert len([t for t in go.rt.store.tasks() if t.source == "p2p"]) == 2

        # bzzz#23 done here: hive#15 waits for nothing any more
        go.rt.store.set_task_status(BZZZ_23, "done")
        go.rt.publish(ev.TaskStatusChanged(task_id=BZZZ_23, status="done"))
        unblocked = go.rt.store.get_task(HIVE_15)
        assert unblocked.status == "pending" and unblocked.details["waiting_for"] == []


async def test_a_task_without_dependencies_is_taken_on_by_the_fleet(tmp_path: Path) -> None:
    async with go_peer(tmp_path) as go:
        go.hears("task_announcement", TASK_AVAILABLE_23)  # "dependencies": null
        assert go.rt.store.get_task(BZZZ_23).status == "pending"
        await eventually(lambda: go.rt.store.get_task(BZZZ_23).thread_id, "a thread on bzzz#23")
        go.hears("task_announcement", TASK_AVAILABLE_23)  # announced again while worked on: still one task
        assert go.rt.store.get_task(BZZZ_23).status in ("in_progress", "done")
        assert go.rt.store.get_task(BZZZ_23).details["announcements"] == 2


VARIANTS: list[tuple[str, str, tuple[str, str] | None]] = [
    # (what, the data, the (type, reason) it is counted under; None: it is used)
    ("number as a string", with_task(number="15"), None),
    ("number as a float", with_task(number=15.0), None),
    (
        "no labels, skills or estimate",
        with_task(labels=None, required_skills=None, estimated_hours=None),
        None,
    ),
    ("null lists", with_task(labels=None, dependencies=None, required_skills=None), None),
    ("no title", with_task(title=None), None),
    ("a dependency that is not one", with_task(dependencies=[{"repository": 5}, "x", None]), None),
    ("scenario priority as a string", SCENARIO_15.replace('"priority":2', '"priority":"2"'), None),
    ("scenario with blocked_by null", SCENARIO_23.replace('"blocked_by":[]', '"blocked_by":null'), None),
    ("no task number", with_task(number=None), ("task_announcement", "bad_number")),
    ("a boolean number", with_task(number=True), ("task_announcement", "bad_number")),
    ("a negative number", with_task(number=-15), ("task_announcement", "bad_number")),
    (
        "task is null",
        TASK_AVAILABLE.split(',"task":')[0] + ',"task":null,"type":"task_available"}',
        ("task_announcement", "no_task"),
    ),
    (
        "no repository",
        SCENARIO_23.replace('"repository":"bzzz",', ""),
        ("task_announcement", "no_repository"),
    ),
    (
        "repository without a name",
        with_task().replace('"name":"hive",', ""),
        ("task_announcement", "no_repository"),
    ),
    (
        "repository with a space",
        SCENARIO_23.replace('"bzzz"', '"bz zz"'),
        ("task_announcement", "no_repository"),
    ),
    ("data null", "null", ("task_announcement", "no_task_id")),
    ("ours without a title", '{"task_id":"t-1"}', ("task_announcement", "no_title")),
]


@pytest.mark.parametrize(("what", "data", "counted"), VARIANTS, ids=[v[0] for v in VARIANTS])
async def test_variations_are_used_or_counted_never_dropped(
    tmp_path: Path, what: str, data: str, counted: tuple[str, str] | None
) -> None:
    async with go_peer(tmp_path) as go:
        go.hears("task_announcement", data)
        tasks = [t for t in go.rt.store.tasks() if t.source == "p2p"]
        if counted is None:
            assert len(tasks) == 1 and tasks[0].id in (HIVE_15, BZZZ_23), what
            assert go.unusable() == {}, what
            details = tasks[0].details
            assert all(isinstance(details.get(k, []), list) for k in ("labels", "required_skills"))
            if what == "no title":
                assert tasks[0].title == "deepblackcloud/hive#15"
            if what == "a dependency that is not one":
                assert details["dependencies"] == [] and tasks[0].status == "pending"
            if what == "scenario priority as a string":
                assert tasks[0].priority == "high"
        else:
            assert tasks == [], what
            assert go.unusable() == {counted: 1}, what
            assert go.net.snapshot()["unusable"][0]["detail"]


async def test_a_task_nobody_here_takes_is_counted_with_the_reason(tmp_path: Path) -> None:
    async with go_peer(tmp_path, pick_up_tasks=False) as go:
        go.hears("task_announcement", TASK_AVAILABLE)
        go.hears("task_announcement", TASK_AVAILABLE)
        assert go.rt.store.tasks() == [] and go.unusable() == {("task_announcement", "not_picked_up"): 2}
    async with go_peer(tmp_path / "other") as go:
        flat = '{"task_id":7,"title":"Translate the docs","roles":["translator"]}'
        go.hears("task_announcement", flat)
        assert go.unusable() == {("task_announcement", "no_agent_for_role"): 1}


async def test_what_cannot_be_used_is_logged_once_per_type_and_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with go_peer(tmp_path) as go:
        with caplog.at_level(logging.WARNING, logger="bzzz_console.p2p.service"):
            for _ in range(3):
                go.hears("task_announcement", with_task(number="x"))
            go.hears("task_help_request", '{"issue_id":null,"reason":"?","repository":"a/b"}')
        assert go.unusable() == {
            ("task_announcement", "bad_number"): 3,
            ("task_help_request", "bad_number"): 1,
        }
        logged = [r.getMessage() for r in caplog.records if "unusable" in r.getMessage()]
        assert len(logged) == 2, logged
        assert "task_announcement" in logged[0] and "bad_number" in logged[0] and GO_PEER in logged[0]


# -- broadcasts, escalations, help requests ---------------------------------------------------------------------


async def test_a_go_nodes_availability_and_capabilities_are_kept_for_the_network_view(tmp_path: Path) -> None:
    async with go_peer(tmp_path) as go:
        go.hears("availability_broadcast", AVAILABILITY)
        go.hears("capability_broadcast", CAPABILITIES)
        go.hears("capability_broadcast", CAPABILITIES.replace('["phi3","llama3.1"]', "null"))
        [node] = go.net.snapshot()["go_nodes"]
        assert node["peer_id"] == GO_PEER and node["node_id"] == "<peer.ID 12*Ve2Xo>"
        assert (node["status"], node["available_for_work"], node["current_tasks"], node["max_tasks"]) == (
            "ready",
            True,
            0,
            3,
        )
        assert node["capabilities"] == ["task-coordination", "meta-discussion", "ollama-reasoning"]
        assert (node["models"], node["version"], node["specialization"]) == (None, "0.2.0", "code_generation")
        assert go.unusable() == {} and not [a for a in go.rt.agents.values() if a.origin == "remote"]
        assert go.net.snapshot()["peer_list"][0]["status"] == "ready"


async def test_a_go_escalation_is_shown_read_only_and_settled_by_its_resolution(tmp_path: Path) -> None:
    async with go_peer(tmp_path) as go:
        go.hears("meta_discussion", ESCALATION)
        go.hears("meta_discussion", ESCALATION, "2025-12-05T10:31:00Z")  # broadcast again: the same one
        [row] = go.rt.store.escalations()
        assert (row.rule, row.state, row.priority, row.origin_peer) == (
            "go-node escalation",
            "open",
            "high",
            GO_PEER,
        )
        assert row.reason.startswith("Message limit exceeded - human intervention needed")
        assert "2 participants, 10 messages" in row.reason
        assert row.context["go_node"] is True and "no way to receive an answer" in row.context["read_only"]
        assert (
            row.context["participants"] == ["agent-hive"]
            and row.context["session_id"] == "dep_0_15_1733390700"
        )
        assert row.context["tasks_involved"] == ["hive#15: Add WebSocket support for real-time coordination"]
        raised = [e for e in go.events if isinstance(e, ev.EscalationRaised)]
        assert [(e.escalation_id, e.rule) for e in raised] == [(row.id, "go-node escalation")]
        with pytest.raises(CommandError, match="is read-only: raised by a Go BZZZ node"):
            await go.rt.submit(cmd.Approve(escalation_id=row.id, operator="ann"))
        assert go.rt.store.get_escalation(row.id).state == "open"  # type: ignore[union-attr]

        go.hears("meta_discussion", RESOLUTION)
        settled = go.rt.store.get_escalation(row.id)
        assert settled is not None and settled.state == "answered"
        assert settled.decision == {
            "kind": "resolution",
            "text": "Consensus reached among participants",
            "by": f"Go node {GO_PEER[-6:]}",
            "summary": "Session dep_0_15_1733390700 (dependency): 2 participants, 4 messages, duration 2m0s",
        }
        go.hears("meta_discussion", RESOLUTION)  # again: nothing left to settle, shown as a message
        assert go.shown()[-1].summary == "resolution: Consensus reached among participants"
        assert go.unusable() == {}


async def test_a_go_help_request_is_an_escalation_and_other_meta_discussion_is_shown(tmp_path: Path) -> None:
    async with go_peer(tmp_path) as go:
        go.hears("task_help_request", HELP_REQUEST)
        go.hears("task_help_request", HELP_REQUEST.replace('"issue_id":15', '"issue_id":"15"'))  # the same
        [row] = go.rt.store.escalations()
        assert row.rule == "go-node help request" and row.origin_peer == GO_PEER
        assert row.reason.startswith(
            "A Go BZZZ node asks for help with deepblackcloud/hive#15: Failed to create"
        )
        assert (row.context["issue_id"], row.context["task_id"]) == (15, HIVE_15)
        assert row.context["read_only"]
        go.hears("task_help_response", HELP_RESPONSE)
        go.hears("meta_discussion", COORDINATION_PLAN)
        go.hears("meta_discussion", DEPENDENCY_DETECTED)
        go.hears("meta_discussion", AGENT_RESPONSE)
        go.hears("coordination_request", SCENARIO_START)
        go.hears("task_help_request", '{"reason":"no issue"}')
        go.hears("meta_discussion", '{"message_type":"escalation","session_id":"s"}')
        assert [(m.type, m.summary) for m in go.shown()] == [
            ("task_help_response", "can help with #15 (code-generation, go)"),
            (
                "meta_discussion",
                "coordination_plan: Coordination plan generated for dependency: API_Contract",
            ),
            (
                "meta_discussion",
                ("dependency_detected: " + json.loads(DEPENDENCY_DETECTED)["coordination_request"])[:200],
            ),
            ("meta_discussion", "agent_response: I can handle this frontend task"),
            ("coordination_request", "coordination_scenario_start: Cross-Repository API Integration"),
        ]
        assert go.unusable() == {("task_help_request", "bad_number"): 1, ("meta_discussion", "no_reason"): 1}


# -- over libp2p ------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_go_announcement_published_three_times_over_libp2p_is_one_task(tmp_path: Path) -> None:
    """A real libp2p peer (the project's own node, publishing the Go payload bytes as a Go node would: signed,
    one topic) and a runtime on loopback; then a help request on ``bzzz/meta/issue/15``, which the runtime joins
    because the peer is on it."""
    from test_escalations import Script
    from test_p2p_runtime import address, joined, peer

    from bzzz_console.p2p.node import NodeConfig, P2PNode
    from bzzz_console.p2p.wire import TOPIC_COORDINATION

    go_node = P2PNode(bytes(range(1, 33)), NodeConfig(listen=["/ip4/127.0.0.1/tcp/0"]), lambda m, a: None)
    await go_node.start()
    try:
        async with joined(tmp_path, "b", Script()) as b:
            net = b.rt.network
            assert net is not None and net.node is not None
            await go_node.connect(address(b))
            await eventually(lambda: peer(b) in go_node.subscribed_peers(), "B's topics")
            await eventually(lambda: go_node.peer_id in net.node.subscribed_peers(), "the Go node's topics")
            sender = go_node.peer_id
            for second in (1, 2, 3):
                stamp = f"2025-12-05T10:30:0{second}.123456789+01:00"
                raw = go_message("task_announcement", TASK_AVAILABLE, stamp, sender)
                await go_node._publish_raw(TOPIC_COORDINATION, raw)
            await eventually(
                lambda: (t := b.rt.store.find_task(HIVE_15)) is not None and t.details["announcements"] == 3,
                "three announcements of hive#15 on B",
            )
            assert [t.id for t in b.rt.store.tasks() if t.source == "p2p"] == [HIVE_15]
            assert b.rt.store.get_task(HIVE_15).status == "blocked"

            await go_node._publish_raw(
                TOPIC_COORDINATION, go_message("availability_broadcast", AVAILABILITY, GO_STAMP, sender)
            )
            await eventually(lambda: net.snapshot()["go_nodes"], "the Go node's availability on B")

            topic = "bzzz/meta/issue/15"
            await go_node.join_topic(topic)  # as executeTask does: JoinDynamicTopic for the task's run
            await eventually(lambda: topic in net.issue_topics.joined, "B on the issue's topic", 30)
            pubsub = go_node._pubsub
            assert pubsub is not None
            await eventually(
                lambda: any(str(p) == peer(b) for p in pubsub.peer_topics.get(topic, ())),
                "B's subscription at the Go node",
            )
            await go_node._publish_raw(topic, go_message("task_help_request", HELP_REQUEST, GO_STAMP, sender))
            rows = await eventually(lambda: b.rt.store.escalations(), "the help request on B")
            assert rows[0].rule == "go-node help request" and rows[0].origin_peer == sender
            await go_node.leave_topic(topic)  # the task's run is over: LeaveDynamicTopic
            await eventually(lambda: topic not in net.issue_topics.joined, "B off the issue's topic", 30)
            assert net.snapshot()["unusable"] == []
    finally:
        await go_node.stop()


def test_payload_timestamps_are_go_rfc3339_nano() -> None:
    assert decode(go_message("availability_broadcast", AVAILABILITY)).timestamp == datetime(
        2025, 12, 5, 9, 30, 0, 123456, tzinfo=UTC
    )


# -- whatever a peer sends --------------------------------------------------------------------------------------

_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
_JSON = st.recursive(
    _LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
_KEYS = st.sampled_from(
    [
        "type",
        "task",
        "repository",
        "task_number",
        "priority",
        "blocked_by",
        "scenario_name",
        "number",
        "title",
        "labels",
        "dependencies",
        "estimated_hours",
        "required_skills",
        "message_type",
        "session_id",
        "escalation_reason",
        "participants",
        "tasks_involved",
        "session_summary",
        "issue_id",
        "reason",
        "capabilities",
        "can_help",
        "resolution",
        "message",
        "scenario",
        "owner",
        "name",
    ]
)
_GO_DATA = st.dictionaries(
    _KEYS, _JSON | st.sampled_from(["task_available", "scenario_task", "escalation", "a/b"]), max_size=9
)


class _Store:
    def __init__(self) -> None:
        self.rows: list[Any] = []

    def mirror_escalation(self, row: Any) -> bool:
        self.rows.append(row)
        return True

    def settle_mirror(self, *args: Any) -> None:
        return None


@settings(max_examples=500, deadline=None)
@given(
    _GO_DATA
    | st.fixed_dictionaries({"type": st.just("task_available"), "repository": _JSON, "task": _GO_DATA})
)
def test_any_go_shaped_data_is_read_or_refused_with_a_reason_never_an_exception(data: dict[str, Any]) -> None:
    from types import SimpleNamespace

    from bzzz_console.p2p.gometa import GoMeta, summary_of
    from bzzz_console.p2p.gonodes import depends_on, description_of, merge_details, title_of

    shown: list[tuple[str, ...]] = []
    rt = SimpleNamespace(store=_Store(), publish=lambda event: None)
    meta = GoMeta(SimpleNamespace(rt=rt, shown=lambda *a: shown.append(a)))  # type: ignore[arg-type]
    try:
        details = merge_details({}, read_go_task(data), GO_PEER)
        assert title_of(details) and description_of(details, []) and isinstance(depends_on(details), list)
    except Unusable as exc:
        assert exc.reason and exc.detail
    for handler in (meta.on_meta_discussion, meta.on_help_request, meta.on_help_response):
        try:
            handler(data, GO_PEER)
        except Unusable as exc:
            assert exc.reason and exc.detail
    meta.on_broadcast("availability_broadcast", data, GO_PEER)
    meta.on_broadcast("capability_broadcast", data, GO_PEER)
    assert isinstance(summary_of(data), str)
    for row in rt.store.rows:  # what becomes an escalation is always marked read-only
        assert row.context["read_only"] and row.origin_peer == GO_PEER


def test_task_list_names_a_go_tasks_origin_and_json_carries_its_details(tmp_path: Path) -> None:
    import json as _json
    import subprocess

    from helpers import BIN, cli_env

    from bzzz_console.store.repo import Store

    url = f"sqlite:///{tmp_path / 'bzzz.db'}"
    store = Store.open(url)
    details = {"repository": "hive", "number": 15, "labels": ["feature"], "estimated_hours": 8}
    store.put_network_task(
        "go-hive-15",
        details=details,
        status="pending",
        title="Add WebSocket support",
        description="",
        roles=["architect"],
        priority="medium",
        project="default",
    )
    store.close()
    env = cli_env(tmp_path)
    plain = subprocess.run(
        [str(BIN), "task", "list", "--db", url], env=env, capture_output=True, text=True, timeout=60
    )
    assert plain.returncode == 0, plain.stderr
    assert "hive#15" in plain.stdout and "Add WebSocket support" in plain.stdout
    listed = subprocess.run(
        [str(BIN), "task", "list", "--json", "--db", url], env=env, capture_output=True, text=True, timeout=60
    )
    [task] = _json.loads(listed.stdout)
    assert (task["source"], task["from"], task["details"]) == ("p2p", "hive#15", details)
