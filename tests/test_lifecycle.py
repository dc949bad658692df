"""Tests for the agent lifecycle: exactly the seed's state diagram, and legal shortest paths through it."""

from __future__ import annotations

import itertools
from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bzzz_console.domain.lifecycle import (
    ALLOWED_TRANSITIONS,
    AgentState,
    IllegalTransition,
    check_transition,
    path_to,
)

S = AgentState

# The seed's diagram (§2.2), written out independently of the module's table.
SEED_EDGES = {
    (S.INITIALIZING, S.IDLE),
    (S.IDLE, S.ACTIVE),
    (S.ACTIVE, S.COLLABORATING),
    (S.COLLABORATING, S.ACTIVE),
    (S.ACTIVE, S.IDLE),
    (S.IDLE, S.TERMINATING),
    (S.ACTIVE, S.ESCALATING),
    (S.ESCALATING, S.ACTIVE),
    (S.ESCALATING, S.TERMINATING),
}
ALL_PAIRS = list(itertools.product(S, S))
ILLEGAL_PAIRS = [pair for pair in ALL_PAIRS if pair not in SEED_EDGES]


def _distance(source: AgentState, target: AgentState) -> int | None:
    """Breadth-first distance over SEED_EDGES; None when unreachable."""
    dist = {source: 0}
    queue = deque([source])
    while queue:
        node = queue.popleft()
        for a, b in SEED_EDGES:
            if a == node and b not in dist:
                dist[b] = dist[node] + 1
                queue.append(b)
    return dist.get(target)


def test_states_are_the_seeds() -> None:
    assert {s.value for s in S} == {
        "initializing",
        "idle",
        "active",
        "collaborating",
        "escalating",
        "terminating",
    }


def test_table_matches_the_seed_diagram() -> None:
    table_edges = {(a, b) for a, targets in ALLOWED_TRANSITIONS.items() for b in targets}
    assert table_edges == SEED_EDGES
    assert set(ALLOWED_TRANSITIONS) == set(S)


@pytest.mark.parametrize(("current", "target"), sorted(SEED_EDGES), ids=lambda s: s.value)
def test_allowed_transition_passes(current: AgentState, target: AgentState) -> None:
    assert check_transition("architect-1", current, target) is target


def test_illegal_pairs_are_all_the_rest() -> None:
    assert len(ALL_PAIRS) == 36
    assert len(ILLEGAL_PAIRS) == 36 - 9


@pytest.mark.parametrize(("current", "target"), ILLEGAL_PAIRS, ids=lambda s: s.value)
def test_every_other_transition_raises(current: AgentState, target: AgentState) -> None:
    with pytest.raises(IllegalTransition) as info:
        check_transition("reviewer-2", current, target)
    err = info.value
    msg = str(err)
    assert f"{current.value} → {target.value}" in msg
    assert "reviewer-2" in msg
    assert err.agent_id == "reviewer-2"
    assert err.current is current
    assert err.target is target


def test_illegal_transition_message_lists_allowed_targets() -> None:
    with pytest.raises(IllegalTransition, match=r"allowed from idle: active, terminating\)"):
        check_transition("a", S.IDLE, S.COLLABORATING)
    with pytest.raises(IllegalTransition, match=r"allowed from terminating: none \(final state\)"):
        check_transition("a", S.TERMINATING, S.IDLE)


def test_illegal_transition_is_a_runtime_error() -> None:
    assert issubclass(IllegalTransition, RuntimeError)


# --------------------------------------------------------------------------- path_to


@pytest.mark.parametrize(
    ("current", "target", "expected"),
    [
        (S.COLLABORATING, S.IDLE, [S.ACTIVE, S.IDLE]),
        (S.COLLABORATING, S.ESCALATING, [S.ACTIVE, S.ESCALATING]),
        (S.INITIALIZING, S.COLLABORATING, [S.IDLE, S.ACTIVE, S.COLLABORATING]),
        (S.ESCALATING, S.IDLE, [S.ACTIVE, S.IDLE]),
        (S.IDLE, S.ACTIVE, [S.ACTIVE]),
        (S.ACTIVE, S.ACTIVE, []),
    ],
    ids=lambda v: v.value if isinstance(v, AgentState) else None,
)
def test_path_to_examples(current: AgentState, target: AgentState, expected: list[AgentState]) -> None:
    assert path_to(current, target) == expected


def test_path_to_with_two_shortest_routes_picks_one_deterministically() -> None:
    # Collaborating → Terminating can go through Idle or through Escalating; both are three legal steps.
    route = path_to(S.COLLABORATING, S.TERMINATING)
    assert route in ([S.ACTIVE, S.IDLE, S.TERMINATING], [S.ACTIVE, S.ESCALATING, S.TERMINATING])
    assert all(path_to(S.COLLABORATING, S.TERMINATING) == route for _ in range(5))


@pytest.mark.parametrize("target", [s for s in S if s is not S.TERMINATING], ids=lambda s: s.value)
def test_nothing_leaves_terminating(target: AgentState) -> None:
    with pytest.raises(IllegalTransition) as info:
        path_to(S.TERMINATING, target)
    assert f"terminating → {target.value}" in str(info.value)


def test_nothing_returns_to_initializing() -> None:
    for source in S:
        if source is not S.INITIALIZING:
            with pytest.raises(IllegalTransition):
                path_to(source, S.INITIALIZING)


@given(st.sampled_from(list(S)), st.sampled_from(list(S)))
def test_path_to_is_legal_and_shortest_or_raises(current: AgentState, target: AgentState) -> None:
    distance = _distance(current, target)
    if distance is None:
        with pytest.raises(IllegalTransition) as info:
            path_to(current, target)
        assert current.value in str(info.value)
        assert target.value in str(info.value)
        return
    route = path_to(current, target)
    assert len(route) == distance
    assert (route[-1] if route else current) is target
    assert current not in route  # "excluding current", and a shortest path never revisits it
    state = current
    for step in route:
        state = check_transition("walker", state, step)
    assert state is target
