"""Escalation rules as data: the shipped rules file, every condition's boundaries, and bad files.

Pure: no runtime, no database; time is explicit datetimes, never a sleep.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bzzz_console.config import ConfigError
from bzzz_console.resources import agents_dir
from bzzz_console.runtime.rules import (
    Action,
    Condition,
    Rule,
    ThreadFacts,
    holds,
    load_rules,
    matching,
    parse_duration,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)


def facts(**changes: object) -> ThreadFacts:
    base: dict[str, object] = {"created_at": T0, "last_progress_at": T0}
    base.update(changes)
    return ThreadFacts(**base)  # type: ignore[arg-type]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- the shipped file ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shipped() -> dict[str, Rule]:
    return {r.name: r for r in load_rules(agents_dir() / "escalation.toml")}


def test_shipped_rules_are_the_seeds_plus_budget_error_rate_agent_request_and_model_trouble(
    shipped: dict[str, Rule],
) -> None:
    assert set(shipped) == {
        "Long Running Thread",
        "Consensus Failure",
        "Budget Breach",
        "Error Rate",
        "Agent Request",
        "Model Trouble",
    }
    trouble = shipped["Model Trouble"]
    assert trouble.kinds == {"model_trouble"} and "downgrade_model" in trouble.options
    # raised by the runtime only: no facts ever make it fire on their own
    assert matching([trouble], facts(requested=True, budget_fraction=2.0), T0 + 10 * H) == []


def test_long_running_thread_has_the_seeds_thresholds_and_actions(shipped: dict[str, Rule]) -> None:
    rule = shipped["Long Running Thread"]
    assert rule.conditions == (
        Condition("thread_duration", timedelta(hours=2)),
        Condition("no_progress", True, timedelta(minutes=30)),
    )
    assert [a.type for a in rule.actions] == ["notify_human", "request_expert"]
    assert rule.actions[0].target == "project_manager"
    assert rule.actions[1].expertise == ("domain_expert",)
    assert rule.on_expiry == "hold"


def test_consensus_failure_has_the_seeds_thresholds_and_actions(shipped: dict[str, Rule]) -> None:
    rule = shipped["Consensus Failure"]
    assert rule.conditions == (
        Condition("disagreement_count", 3),
        Condition("no_resolution", True, timedelta(hours=1)),
    )
    assert rule.actions == (
        Action("escalate_to_architect", priority="high"),
        Action("create_decision_thread", participants=("senior_architect",)),
    )
    assert rule.effective_priority == "high"


def test_budget_error_rate_and_agent_request_rules(shipped: dict[str, Rule]) -> None:
    budget = shipped["Budget Breach"]
    assert budget.conditions == (Condition("budget", 1.0),)
    assert budget.options == ("raise_budget", "downgrade_model", "hand_back", "terminate")
    assert budget.priority == "urgent"
    error = shipped["Error Rate"]
    assert error.conditions == (Condition("error_rate", 0.5, timedelta(minutes=10), min_calls=3),)
    assert (error.on_expiry, error.deadline) == ("reject", timedelta(minutes=30))
    request = shipped["Agent Request"]
    assert request.kinds == {"request_human"}
    assert (request.deadline, request.on_expiry) == (timedelta(hours=1), "hold")


def test_effective_priority_is_raised_by_escalate_to_architect_never_lowered() -> None:
    up = Rule("r", (Condition("budget", 1.0),), (Action("escalate_to_architect", priority="urgent"),), "low")
    down = Rule("r", (Condition("budget", 1.0),), (Action("escalate_to_architect", priority="low"),), "high")
    assert up.effective_priority == "urgent"
    assert down.effective_priority == "high"


# -- conditions, at their boundaries ------------------------------------------------------------------------
def test_thread_duration() -> None:
    c = Condition("thread_duration", 2 * H)
    assert not holds(c, facts(), T0 + 2 * H - timedelta(seconds=1))
    assert holds(c, facts(), T0 + 2 * H)
    assert holds(c, facts(), T0 + 3 * H)


def test_no_progress() -> None:
    c = Condition("no_progress", True, 30 * M)
    last = T0 + H
    assert not holds(c, facts(last_progress_at=last), last + 29 * M)
    assert holds(c, facts(last_progress_at=last), last + 30 * M)
    # a threshold of false switches the condition off
    assert not holds(Condition("no_progress", False, 30 * M), facts(), T0 + 5 * H)


def test_disagreement_count() -> None:
    c = Condition("disagreement_count", 3)
    assert not holds(c, facts(disagreements=2), T0)
    assert holds(c, facts(disagreements=3), T0)
    assert holds(c, facts(disagreements=4), T0)


def test_no_resolution() -> None:
    c = Condition("no_resolution", True, H)
    first = T0 + 10 * M
    assert not holds(c, facts(), T0 + 5 * H)  # nobody disagreed: nothing to resolve
    assert not holds(c, facts(first_disagreement_at=first), first + H - timedelta(seconds=1))
    assert holds(c, facts(first_disagreement_at=first), first + H)
    assert not holds(c, facts(first_disagreement_at=first, resolved=True), first + 2 * H)


def test_error_rate() -> None:
    c = Condition("error_rate", 0.5, timedelta(minutes=10), min_calls=3)
    now = T0 + H
    two_failed = [(now - 3 * M, False), (now - 2 * M, False)]
    assert not holds(c, facts(calls=two_failed), now)  # fewer calls than min_calls
    assert holds(c, facts(calls=[*two_failed, (now - M, True)]), now)  # 2 of 3 ≥ 0.5
    assert not holds(c, facts(calls=[(now - M, False), (now - M, True), (now - M, True)]), now)  # 1/3
    assert holds(c, facts(calls=[(now, False), (now, True)] * 2), now)  # exactly 0.5
    # calls older than the timeframe do not count: only 2 recent ones are left, below min_calls
    old = [(now - 11 * M, False), (now - 11 * M, False)]
    assert not holds(c, facts(calls=[*old, (now - M, False), (now - M, False)]), now)
    # the window edge itself counts
    assert holds(c, facts(calls=[(now - 10 * M, False)] * 3), now)
    # no timeframe: every call counts
    assert holds(Condition("error_rate", 0.5, None, 3), facts(calls=[(T0, False)] * 3), T0 + 10 * H)
    assert not holds(c, facts(calls=[]), now)


def test_budget() -> None:
    c = Condition("budget", 1.0)
    assert not holds(c, facts(budget_fraction=0.999), T0)
    assert holds(c, facts(budget_fraction=1.0), T0)
    assert holds(c, facts(budget_fraction=float("inf")), T0)


def test_request_human() -> None:
    c = Condition("request_human", True)
    assert holds(c, facts(requested=True), T0)
    assert not holds(c, facts(requested=False), T0)


def test_matching_needs_every_condition(shipped: dict[str, Rule]) -> None:
    long_running = [shipped["Long Running Thread"]]
    busy = facts(last_progress_at=T0 + 2 * H - 10 * M)
    assert matching(long_running, facts(), T0 + 2 * H) == long_running
    assert matching(long_running, busy, T0 + 2 * H) == []  # old enough, but progress 10 min ago
    assert matching(long_running, facts(), T0 + H) == []  # idle, but not old enough
    consensus = [shipped["Consensus Failure"]]
    argued = facts(disagreements=3, first_disagreement_at=T0)
    assert matching(consensus, argued, T0 + H) == consensus
    assert matching(consensus, facts(disagreements=2, first_disagreement_at=T0), T0 + H) == []
    assert matching(consensus, argued, T0 + 59 * M) == []
    assert matching(consensus, facts(disagreements=3, first_disagreement_at=T0, resolved=True), T0 + H) == []
    # a rule without conditions never matches
    assert matching([Rule("empty", (), ())], facts(), T0) == []


def test_matching_keeps_the_file_order(shipped: dict[str, Rule]) -> None:
    rules = list(shipped.values())
    everything = facts(
        disagreements=5, first_disagreement_at=T0, budget_fraction=2.0, calls=[(T0 + 3 * H, False)] * 3
    )
    names = [r.name for r in matching(rules, everything, T0 + 3 * H)]
    assert names == ["Long Running Thread", "Consensus Failure", "Budget Breach", "Error Rate"]


# -- durations ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1.5h", timedelta(minutes=90)),
        (" 45 m ", timedelta(minutes=45)),
        ("0s", timedelta(0)),
        (120, timedelta(minutes=2)),
        (0.5, timedelta(milliseconds=500)),
    ],
)
def test_parse_duration(text: object, expected: timedelta) -> None:
    assert parse_duration(text, "x") == expected


@pytest.mark.parametrize("bad", ["2", "2w", "h", "", "-1h", "2H", "1h30m", True, -5, None, [1]])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"^where\.field: expected a duration like"):
        parse_duration(bad, "where.field")


# -- bad files ------------------------------------------------------------------------------------------------
GOOD = """
[[rules]]
name = "First"
conditions = [{ type = "budget", threshold = 1.0 }]
"""


def rule_text(name: str = "Broken", *, body: str) -> str:
    return GOOD + f'\n[[rules]]\nname = "{name}"\n' + body


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        (
            'conditions = [{ type = "moon_phase", threshold = 1 }]',
            ["rule 'Broken'", "conditions[0]", ".type", "moon_phase", "thread_duration"],
        ),
        (
            'conditions = [{ type = "thread_duration", threshold = "2 hours" }]',
            ["rule 'Broken'", "conditions[0]", ".threshold", "expected a duration", "'2 hours'"],
        ),
        (
            'conditions = [{ type = "no_progress", threshold = true, timeframe = "soon" }]',
            ["rule 'Broken'", "conditions[0]", ".timeframe", "'soon'"],
        ),
        (
            'deadline = "tomorrow"\nconditions = [{ type = "budget", threshold = 1.0 }]',
            ["rule 'Broken'", "field 'deadline'", "'tomorrow'"],
        ),
        (
            'priority = "critical"\nconditions = [{ type = "budget", threshold = 1.0 }]',
            ["rule 'Broken'", "field 'priority'", "'critical'", "urgent"],
        ),
        (
            'conditions = [{ type = "budget", threshold = 1.0 }]\n'
            'actions = [{ type = "escalate_to_architect", priority = "asap" }]',
            ["rule 'Broken'", "actions[0]", ".priority", "'asap'"],
        ),
        (
            'on_expiry = "reject_all"\nconditions = [{ type = "budget", threshold = 1.0 }]',
            ["rule 'Broken'", "field 'on_expiry'", "'reject_all'"],
        ),
        (
            'colour = "red"\nconditions = [{ type = "budget", threshold = 1.0 }]',
            ["rule 'Broken'", "unknown field", "colour"],
        ),
        (
            'conditions = [{ type = "budget", threshold = 1.0, window = "1h" }]',
            ["rule 'Broken'", "conditions[0]", "unknown field", "window"],
        ),
        (
            'conditions = [{ type = "budget", threshold = 1.0 }]\nactions = [{ type = "notify_human", to = "x" }]',
            ["rule 'Broken'", "actions[0]", "unknown field", "to"],
        ),
        (
            'conditions = [{ type = "budget", threshold = 1.0 }]\nactions = [{ type = "page_someone" }]',
            ["rule 'Broken'", "actions[0]", ".type", "page_someone"],
        ),
        (
            'conditions = [{ type = "budget", threshold = 1.0 }]\nactions = [{ type = "request_expert" }]',
            ["rule 'Broken'", "actions[0]", ".expertise"],
        ),
        (
            'conditions = [{ type = "disagreement_count", threshold = "three" }]',
            ["rule 'Broken'", "conditions[0]", ".threshold", "'three'"],
        ),
        (
            'conditions = [{ type = "error_rate", threshold = 0.5, min_calls = 0 }]',
            ["rule 'Broken'", "conditions[0]", ".min_calls"],
        ),
        (
            'conditions = [{ type = "no_resolution", threshold = "yes", timeframe = "1h" }]',
            ["rule 'Broken'", "conditions[0]", ".threshold", "true or false"],
        ),
        ("conditions = []", ["rule 'Broken'", "field 'conditions'", "non-empty"]),
        ('priority = "high"', ["rule 'Broken'", "field 'conditions'"]),
        (
            'options = "all"\nconditions = [{ type = "budget", threshold = 1.0 }]',
            ["rule 'Broken'", "field 'options'"],
        ),
    ],
)
def test_bad_rule_names_the_rule_and_the_field(tmp_path: Path, body: str, fragments: list[str]) -> None:
    path = write(tmp_path, rule_text(body=body))
    with pytest.raises(ConfigError) as caught:
        load_rules(path)
    message = str(caught.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_missing_name_names_the_rule_by_position_and_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + '\n[[rules]]\nconditions = [{ type = "budget", threshold = 1.0 }]\n')
    with pytest.raises(ConfigError, match=r"rule #2: field 'name' is required"):
        load_rules(path)
    blank = write(tmp_path, GOOD + '\n[[rules]]\nname = "  "\nconditions = [{ type = "budget" }]\n')
    with pytest.raises(ConfigError, match=r"rule #2: field 'name'"):
        load_rules(blank)


def test_duplicate_name_names_the_rule_and_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + GOOD)
    with pytest.raises(ConfigError) as caught:
        load_rules(path)
    message = str(caught.value)
    assert "rule 'First'" in message and "field 'name'" in message and "twice" in message


def test_not_a_rules_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"expected \[\[rules\]\] tables"):
        load_rules(write(tmp_path, 'rules = "none"\n'))
    with pytest.raises(ConfigError, match=r"escalation rules .*rules\.toml"):
        load_rules(write(tmp_path, "[[rules]\n"))
    with pytest.raises(ConfigError, match=r"escalation rules .*missing\.toml"):
        load_rules(tmp_path / "missing.toml")


def test_defaults_of_a_minimal_rule(tmp_path: Path) -> None:
    [rule] = load_rules(write(tmp_path, GOOD))
    assert (rule.priority, rule.deadline, rule.on_expiry, rule.actions, rule.options) == (
        "medium",
        timedelta(hours=1),
        "hold",
        (),
        (),
    )
