"""The runtime benchmark script runs end to end at quick sizes and reports its three sections.

No timing is asserted here (the figures depend on the machine); only that every section has numeric figures
and that the fleet run finished all of its threads.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent / "benchmarks" / "runtime.py"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_quick_benchmark_prints_json_with_the_three_sections() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json-only"],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)

    turn, persist, fleet = result["turn_overhead"], result["sqlite_persist"], result["fleet"]
    for key in ("median_ms", "p95_ms", "turns"):
        assert _number(turn[key]), (key, turn)
    assert turn["turns"] > 0
    assert turn["errors"] == 0, turn["first_errors"]
    assert isinstance(turn["ok"], bool)

    assert _number(persist["msgs_per_s"]) and persist["msgs_per_s"] > 0, persist
    assert isinstance(persist["ok"], bool)

    for key in ("max_stall_ms", "p99_stall_ms", "wall_s", "messages", "threads_closed"):
        assert _number(fleet[key]), (key, fleet)
    assert isinstance(fleet["ok"], bool)
    assert fleet["errors"] == 0, fleet["first_errors"]
    assert fleet["finished_all"], fleet
    assert fleet["threads"] == fleet["tasks"]
    assert fleet["threads_active"] == 0 and fleet["tasks_pending"] == 0
    assert (
        fleet["threads_closed"] + fleet["threads_waiting_human"] + fleet["threads_stalled"] == fleet["tasks"]
    )


def test_quick_p2p_benchmark_times_a_cross_node_escalation_with_both_stores_agreeing() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT.with_name("p2p.py")), "--quick", "--json-only"],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["sequential"]["dropped"] == 0 and result["pipelined"]["dropped"] == 0
    escalation = result["escalation"]
    assert escalation["round_trip"]["n"] == 5 and _number(escalation["round_trip"]["p95_ms"])
    assert escalation["answer_confirmed"]["n"] == 5
    assert escalation["stores_agree"] is True and isinstance(escalation["ok"], bool)
