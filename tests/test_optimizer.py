"""The cost optimizer: when the history is compressed, what survives it, and which turns get a cheaper model."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bzzz_console.config import OptimizerSettings
from bzzz_console.domain.threads import MessageType, ThreadMessage
from bzzz_console.runtime.llm.optimizer import (
    ContextPlan,
    choose_model,
    history_tokens,
    is_routine_turn,
    open_questions,
    plan_context,
)

T = MessageType
THREAD = "th-test"
_T0 = datetime(2025, 1, 1, tzinfo=UTC)
ROLES = {"architect-1": "architect", "reviewer-1": "reviewer", "security-1": "security", "system": "system"}


def _load_benchmark() -> Any:
    path = Path(__file__).parent / "benchmarks" / "context.py"
    spec = importlib.util.spec_from_file_location("_context_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scripted_thread: Callable[[], list[ThreadMessage]] = _load_benchmark().scripted_thread


def msg(
    seq: int, author: str, kind: MessageType, content: str | None = None, reply_to: int | None = None
) -> ThreadMessage:
    role = "human" if kind is T.HUMAN else ROLES.get(author, "worker")
    return ThreadMessage(
        id=f"{THREAD}#{seq}",
        thread_id=THREAD,
        seq=seq,
        author=author,
        role=role,
        type=kind,
        content=content if content is not None else f"{kind.value} number {seq} by {author}. " + "x" * 200,
        created_at=_T0 + timedelta(seconds=seq),
        reply_to=f"{THREAD}#{reply_to}" if reply_to else None,
    )


def thread(*spec: tuple[str, MessageType] | tuple[str, MessageType, int]) -> list[ThreadMessage]:
    """Seq 1 is the opening; ``spec`` entries are (author, type[, reply_to seq]) from seq 2 on."""
    out = [msg(1, "system", T.SYSTEM, "Task: design the limiter. " + "y" * 300)]
    for i, entry in enumerate(spec, start=2):
        reply = entry[2] if len(entry) == 3 else None
        out.append(msg(i, entry[0], entry[1], reply_to=reply))
    return out


def comments(n: int, author: str = "reviewer-1") -> list[tuple[str, MessageType]]:
    return [(author, T.COMMENT)] * n


def ids(plan: ContextPlan) -> list[str]:
    return [m.id for m in plan.history]


def summary_of(plan: ContextPlan) -> ThreadMessage:
    found = [m for m in plan.history if m.type is T.SUMMARY]
    assert len(found) == 1
    return found[0]


# -- when to compress ---------------------------------------------------------------------------------------


def test_short_thread_is_sent_whole() -> None:
    messages = thread(("architect-1", T.PROPOSAL), ("reviewer-1", T.AGREE), ("security-1", T.COMMENT))
    plan = plan_context(messages, token_budget=10_000)
    assert plan.history == tuple(messages)
    assert plan.summarized is None
    assert plan.sent_tokens == plan.full_tokens == history_tokens(messages)
    assert plan.ratio == 0.0


def test_compresses_past_summarize_after_messages() -> None:
    messages = thread(("architect-1", T.PROPOSAL), *comments(11))
    assert len(messages) == 13
    assert plan_context(messages[:12], token_budget=1_000_000).summarized is None
    plan = plan_context(messages, token_budget=1_000_000)
    assert plan.summarized == (3, 7)
    assert plan.sent_tokens < plan.full_tokens
    assert plan.ratio == pytest.approx(1 - plan.sent_tokens / plan.full_tokens)


def test_compresses_past_the_budget_threshold() -> None:
    messages = thread(("architect-1", T.PROPOSAL), *comments(5))
    full = history_tokens(messages)
    below = plan_context(messages, token_budget=int(full / 0.8) + 1, keep_recent=2)
    assert below.summarized is None
    above = plan_context(messages, token_budget=int(full / 0.8) - 1, keep_recent=2)
    assert above.summarized == (3, 5)
    assert above.sent_tokens < above.full_tokens
    assert plan_context(messages, token_budget=full, compress_at=1.0, keep_recent=2).summarized is None


def test_summary_follows_the_opening_and_keeps_the_recent_messages() -> None:
    messages = thread(*comments(20))
    plan = plan_context(messages, token_budget=100_000)
    first, summary = plan.history[0], plan.history[1]
    assert first == messages[0]
    assert summary.type is T.SUMMARY and summary.author == "system" and summary.role == "system"
    assert plan.summarized == (2, 15)
    assert summary.seq == 2
    assert summary.id == f"{THREAD}#summary-2-15"
    assert summary.content.startswith("Summary of #2–#15")
    assert "14 comments (reviewer-1)" in summary.content
    assert ids(plan) == [messages[0].id, summary.id, *(m.id for m in messages[-6:])]
    assert plan.history[2:] == tuple(messages[-6:])


def test_summary_has_a_line_per_substantive_message() -> None:
    messages = thread(
        ("architect-1", T.PROPOSAL),
        ("security-1", T.DISAGREE, 2),
        ("reviewer-1", T.QUESTION, 2),
        ("architect-1", T.ANSWER, 4),
        ("architect-1", T.PROPOSAL),
        ("reviewer-1", T.AGREE, 6),
        *comments(8),
    )
    text = summary_of(plan_context(messages, token_budget=100_000)).content
    assert "- #2 architect-1 proposed: proposal number 2" in text
    assert "- #3 security-1 disagreed:" in text
    assert "- #4 reviewer-1 asked:" in text
    assert "- #5 architect-1 answered #4:" in text
    assert "1 agreement (reviewer-1)" in text
    assert all(len(line) < 160 for line in text.splitlines()[1:])


def test_rounds_closed_by_a_decision_fold_into_one_line() -> None:
    messages = thread(
        ("architect-1", T.PROPOSAL),
        ("security-1", T.DISAGREE, 2),
        ("architect-1", T.PROPOSAL),
        ("reviewer-1", T.AGREE, 4),
        ("security-1", T.AGREE, 4),
        ("system", T.DECISION),
        ("architect-1", T.PROPOSAL),
        *comments(8),
    )
    plan = plan_context(messages, token_budget=100_000)
    text = summary_of(plan).content
    assert "- #2–#6, settled by decision #7: 2 proposals, 1 objection, 2 agreements" in text
    assert "proposed: proposal number 2" not in text
    assert f"{THREAD}#7" in ids(plan)


def test_every_settled_round_folds_into_one_line_naming_its_decisions() -> None:
    spec: list[tuple[str, MessageType] | tuple[str, MessageType, int]] = []
    for _ in range(3):  # rounds at 2-5, 6-9, 10-13: proposal, objection, agreement, decision
        spec += [("architect-1", T.PROPOSAL), ("security-1", T.DISAGREE), ("reviewer-1", T.AGREE)]
        spec += [("system", T.DECISION)]
    messages = thread(*spec, ("architect-1", T.PROPOSAL), ("security-1", T.QUESTION), *comments(6))
    plan = plan_context(messages, token_budget=100_000)
    text = summary_of(plan).content
    settled = [line for line in text.splitlines() if "settled by" in line]
    assert settled == ["- #2–#12, settled by decisions #5, #9, #13: 3 proposals, 3 objections, 3 agreements"]
    assert all(f"{THREAD}#{n}" in ids(plan) for n in (5, 9, 13))


def test_summary_excerpts_end_on_a_word() -> None:
    words = " ".join(f"word{n:03d}" for n in range(60))
    messages = thread(("security-1", T.DISAGREE), ("architect-1", T.PROPOSAL), *comments(12))
    messages[1] = msg(2, "security-1", T.DISAGREE, words)
    line = next(
        x
        for x in summary_of(plan_context(messages, token_budget=100_000)).content.splitlines()
        if x.startswith("- #2 ")
    )
    excerpt = line.split(": ", 1)[1]
    assert excerpt.endswith("…") and len(excerpt) <= 90
    assert excerpt[:-1].split(" ")[-1] in words.split(" ")  # the last word is whole


# -- decisions that repeat each other ---------------------------------------------------------------------------

AGREED = "Proposed by architect-1; agreed by reviewer-1, security-1."
FOLLOW_UP = "Follow-up tasks are opened for the implementation and the runbook."


def _decided_rounds(n: int) -> list[ThreadMessage]:
    """``n`` rounds (proposal, agreement, decision) whose decisions end with the same two sentences."""
    out = [msg(1, "system", T.SYSTEM, "Task: design the limiter. " + "y" * 300)]
    for r in range(n):
        out.append(msg(len(out) + 1, "architect-1", T.PROPOSAL))
        out.append(msg(len(out) + 1, "reviewer-1", T.AGREE, reply_to=len(out)))
        out.append(
            msg(len(out) + 1, "system", T.DECISION, f"Decision {r}: use plan {r}. {AGREED}\n\n{FOLLOW_UP}")
        )
    return out


def test_pinned_decisions_say_repeated_sentences_once() -> None:
    messages = [*_decided_rounds(3), *(msg(11 + i, "reviewer-1", T.COMMENT) for i in range(8))]
    plan = plan_context(messages, token_budget=100_000, keep_recent=3, summarize_after=6)
    sent = {m.id: m for m in plan.history}
    first, second, third = (sent[f"{THREAD}#{n}"] for n in (4, 7, 10))
    assert first == messages[3]  # the first statement of the repeated sentences stays verbatim
    for later, r in ((second, 1), (third, 2)):
        assert later.type is T.DECISION and later.seq == messages[later.seq - 1].seq
        assert later.content == f"Decision {r}: use plan {r}. (+ 2 sentences as in decision #4)"
    text = "\n".join(m.content for m in plan.history)
    assert text.count(AGREED) == 1 and text.count(FOLLOW_UP) == 1
    assert plan.sent_tokens == history_tokens(plan.history)


def test_recent_decisions_and_unique_ones_stay_verbatim() -> None:
    messages = _decided_rounds(3)  # the third decision (#10) is in the recent window
    plan = plan_context(messages, token_budget=100_000, keep_recent=3, summarize_after=6)
    assert messages[-1] in plan.history
    assert "as in decision" in next(m for m in plan.history if m.id == f"{THREAD}#7").content
    distinct = thread(("system", T.DECISION), ("system", T.DECISION), *comments(12))
    distinct[1:3] = [
        msg(2, "system", T.DECISION, "Decision: counters live in Redis. Proposed by architect-1."),
        msg(3, "system", T.DECISION, "Decision: limits come from billing. Proposed by reviewer-1."),
    ]
    plan = plan_context(distinct, token_budget=100_000)
    assert plan.summarized is not None
    assert distinct[1] in plan.history and distinct[2] in plan.history  # nothing repeated: verbatim


# -- what is pinned ------------------------------------------------------------------------------------------


def test_pinned_messages_survive_inside_the_summarized_span() -> None:
    messages = thread(
        ("architect-1", T.PROPOSAL),  # 2: superseded, folded
        ("system", T.DECISION),  # 3
        *comments(3),  # 4-6
        ("ops", T.HUMAN),  # 7
        ("security-1", T.QUESTION),  # 8: never answered
        ("architect-1", T.PROPOSAL),  # 9: the latest proposal
        *comments(12),  # 10-21
    )
    plan = plan_context(messages, token_budget=100_000)
    assert plan.summarized == (2, 15)
    pinned = [f"{THREAD}#{n}" for n in (3, 7, 8, 9)]
    assert list(plan.pinned) == [messages[0].id, *pinned]
    kept = ids(plan)
    assert all(p in kept for p in pinned)
    assert f"{THREAD}#2" not in kept
    assert [m.seq for m in plan.history] == sorted(m.seq for m in plan.history)
    for p in pinned:
        original = next(m for m in messages if m.id == p)
        assert original in plan.history  # verbatim


def test_pinned_right_after_the_opening_come_before_the_summary() -> None:
    messages = thread(("ops", T.HUMAN), ("architect-1", T.PROPOSAL), *comments(12))
    plan = plan_context(messages, token_budget=100_000)
    assert ids(plan)[:4] == [f"{THREAD}#1", f"{THREAD}#2", f"{THREAD}#3", f"{THREAD}#summary-4-9"]


def test_answered_questions_are_not_pinned() -> None:
    messages = thread(
        ("reviewer-1", T.QUESTION),  # 2: answered by reply_to
        ("security-1", T.QUESTION),  # 3: answered by the bare answer at 5 (latest open question)
        ("architect-1", T.ANSWER, 2),  # 4
        ("architect-1", T.ANSWER),  # 5
        ("reviewer-1", T.QUESTION),  # 6: the answer at 7 names another message, so it stays open
        ("architect-1", T.ANSWER, 4),  # 7
        *comments(10),
    )
    assert [q.seq for q in open_questions(messages)] == [6]
    plan = plan_context(messages, token_budget=100_000)
    kept = ids(plan)
    assert f"{THREAD}#6" in kept and f"{THREAD}#6" in plan.pinned
    assert f"{THREAD}#2" not in kept and f"{THREAD}#3" not in kept


def test_bare_answer_closes_only_the_latest_open_question() -> None:
    messages = thread(("reviewer-1", T.QUESTION), ("security-1", T.QUESTION), ("architect-1", T.ANSWER))
    assert [q.seq for q in open_questions(messages)] == [2]


def test_over_budget_shortens_the_summary_but_keeps_every_pinned_message() -> None:
    spec: list[tuple[str, MessageType] | tuple[str, MessageType, int]] = [("system", T.DECISION)]
    for _ in range(6):
        spec += [("architect-1", T.PROPOSAL), ("security-1", T.DISAGREE), ("reviewer-1", T.QUESTION)]
        spec += [("architect-1", T.ANSWER)]
    messages = thread(*spec, *comments(8))
    roomy = plan_context(messages, token_budget=100_000)
    tight = plan_context(messages, token_budget=1_000)
    assert "earlier lines omitted" not in summary_of(roomy).content
    assert "earlier lines omitted" in summary_of(tight).content
    assert tight.sent_tokens < roomy.sent_tokens
    assert summary_of(tight).content.splitlines()[-1] == summary_of(roomy).content.splitlines()[-1]
    assert all(p in ids(tight) for p in tight.pinned)
    assert set(tight.pinned) == set(roomy.pinned)


def test_falls_back_to_the_full_history_when_compression_saves_nothing() -> None:
    messages = [msg(i, "reviewer-1", T.AGREE, "ok") for i in range(1, 15)]
    assert plan_context(messages, token_budget=100_000).summarized == (2, 8)
    plan = plan_context(messages, token_budget=100_000, keep_recent=12)  # would fold one two-letter message
    assert plan.history == tuple(messages)
    assert plan.summarized is None
    assert plan.ratio == 0.0


def test_deterministic() -> None:
    messages = scripted_thread()
    assert plan_context(messages, token_budget=2000) == plan_context(list(messages), token_budget=2000)


def test_scripted_fifty_turn_thread_saves_seventy_percent_and_keeps_every_decision() -> None:
    messages = scripted_thread()
    assert len(messages) == 50
    assert 300 <= sum(len(m.content) for m in messages) / len(messages) <= 600
    plan = plan_context(messages, token_budget=2000)
    assert plan.ratio >= 0.70, (plan.sent_tokens, plan.full_tokens)
    assert plan.sent_tokens <= 2000
    kept = ids(plan)
    decisions = [m.id for m in messages if m.type is T.DECISION]
    assert len(decisions) == 4
    assert all(d in kept for d in decisions)
    assert any(m.type is T.HUMAN for m in plan.history)


def test_scripted_thread_with_the_default_settings_keeps_what_agents_need_at_every_turn() -> None:
    options = OptimizerSettings()
    messages = scripted_thread()
    first_decision = next(m for m in messages if m.type is T.DECISION)
    full = sent = 0
    for t in range(1, len(messages) + 1):
        seen = messages[:t]
        plan = plan_context(
            seen,
            token_budget=4000,
            compress_at=options.compress_at,
            summarize_after=options.summarize_after,
            keep_recent=options.keep_recent,
        )
        full, sent = full + plan.full_tokens, sent + plan.sent_tokens
        kept = ids(plan)
        text = "\n".join(m.content for m in plan.history)
        for decision in (m for m in seen if m.type is T.DECISION):
            assert decision.id in kept and all(s in text for s in _sentences(decision.content)), t
        assert all(q in plan.history for q in open_questions(seen)), t
        assert [m for m in seen if m.type is T.PROPOSAL][-1:] == [
            m for m in plan.history if m.type is T.PROPOSAL
        ][-1:]
        assert all(m in plan.history for m in seen if m.type is T.HUMAN), t
        assert plan.history[-options.keep_recent :] == tuple(seen[-options.keep_recent :]), t
    assert (
        first_decision.seq < 15 and first_decision in plan.history
    )  # decided early, verbatim in the last prompt
    assert 1 - sent / full >= 0.70, (sent, full)  # the target, summed over every turn


# -- cheaper models --------------------------------------------------------------------------------------------

LADDER = {"gpt-4o": "gpt-4o-mini", "gpt-4o-mini": "gpt-4o-nano"}


def test_choose_model_steps_down_one_rung_for_routine_turns() -> None:
    assert choose_model("gpt-4o", LADDER, routine=True) == "gpt-4o-mini"
    assert choose_model("gpt-4o", LADDER, routine=False) == "gpt-4o"
    assert choose_model("claude-x", LADDER, routine=True) == "claude-x"
    assert choose_model("gpt-4o", {}, routine=True) == "gpt-4o"


@pytest.mark.parametrize(
    ("spec", "agent", "expected"),
    [
        ([("architect-1", T.PROPOSAL)], "reviewer-1", True),
        ([("architect-1", T.PROPOSAL), ("security-1", T.AGREE, 2)], "reviewer-1", True),
        ([], "reviewer-1", False),  # no proposal
        ([("architect-1", T.PROPOSAL)], "architect-1", False),  # the proposer
        ([("architect-1", T.PROPOSAL), ("reviewer-1", T.AGREE, 2)], "reviewer-1", False),  # already voted
        ([("architect-1", T.PROPOSAL), ("security-1", T.DISAGREE, 2)], "reviewer-1", False),
        ([("architect-1", T.PROPOSAL), ("security-1", T.QUESTION)], "reviewer-1", False),  # open question
        ([("architect-1", T.PROPOSAL), ("ops", T.HUMAN)], "reviewer-1", False),  # an operator spoke
        (
            [("architect-1", T.PROPOSAL), ("security-1", T.QUESTION), ("architect-1", T.ANSWER, 3)],
            "reviewer-1",
            True,
        ),
        (  # an objection to an older proposal does not count against the new one
            [("architect-1", T.PROPOSAL), ("security-1", T.DISAGREE, 2), ("architect-1", T.PROPOSAL)],
            "reviewer-1",
            True,
        ),
        (  # a vote on an older proposal does not carry over
            [("architect-1", T.PROPOSAL), ("reviewer-1", T.AGREE, 2), ("architect-1", T.PROPOSAL)],
            "reviewer-1",
            True,
        ),
    ],
)
def test_is_routine_turn(spec: list[Any], agent: str, expected: bool) -> None:
    assert is_routine_turn(agent, thread(*spec)) is expected


# -- properties --------------------------------------------------------------------------------------------------

_KINDS = [T.PROPOSAL, T.AGREE, T.DISAGREE, T.QUESTION, T.ANSWER, T.COMMENT, T.DECISION, T.HUMAN]
_AUTHORS = ["architect-1", "reviewer-1", "security-1", "ops"]


_DECIDED = [
    f"Plan {x} is chosen. Proposed by architect-1; agreed by reviewer-1 and security-1." for x in "AB"
]


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


@st.composite
def threads(draw: st.DrawFn) -> list[ThreadMessage]:
    n = draw(st.integers(min_value=0, max_value=40))
    out = [msg(1, "system", T.SYSTEM, "Task: " + "t" * draw(st.integers(0, 400)))]
    for seq in range(2, n + 2):
        kind = draw(st.sampled_from(_KINDS))
        reply = draw(st.one_of(st.none(), st.integers(1, seq - 1))) if kind is T.ANSWER else None
        text = draw(st.sampled_from(["ok", "a short note", "z" * 250, "long " * 120, *_DECIDED]))
        out.append(msg(seq, draw(st.sampled_from(_AUTHORS)), kind, text, reply))
    return out


@settings(max_examples=200, deadline=None)
@given(
    threads(),
    st.integers(min_value=50, max_value=6000),
    st.integers(min_value=0, max_value=8),
    st.integers(min_value=0, max_value=15),
)
def test_never_drops_a_pinned_message(
    messages: list[ThreadMessage], budget: int, keep_recent: int, summarize_after: int
) -> None:
    plan = plan_context(
        messages, token_budget=budget, keep_recent=keep_recent, summarize_after=summarize_after
    )
    if not messages:
        assert plan.history == ()
        return
    kept = {m.id: m for m in plan.history}
    by_id = {m.id: m for m in messages}
    assert messages[0].id in kept
    text = "\n".join(m.content for m in plan.history)
    for m in messages:
        if m.type is T.DECISION:  # kept; sentences repeated from an earlier decision may be said only there
            sent = kept[m.id]
            assert m.id in plan.pinned and (sent.seq, sent.type, sent.author) == (m.seq, m.type, m.author)
            assert sent == m or "as in decision #" in sent.content
            assert all(s in text for s in _sentences(m.content))
        elif m.type is T.HUMAN or m in open_questions(messages):
            assert m.id in plan.pinned and kept[m.id] == m
    latest = [m for m in messages if m.type is T.PROPOSAL]
    if latest:
        assert latest[-1].id in kept
    assert all(p in kept for p in plan.pinned)
    seqs = [m.seq for m in plan.history]
    assert seqs == sorted(set(seqs))
    summaries = [m for m in plan.history if m.type is T.SUMMARY]
    assert len(summaries) == (plan.summarized is not None)
    assert all(m.id in by_id for m in plan.history if m.type is not T.SUMMARY)
    assert plan.sent_tokens == history_tokens(plan.history) <= plan.full_tokens
    assert plan == plan_context(
        messages, token_budget=budget, keep_recent=keep_recent, summarize_after=summarize_after
    )


# -- the task card -----------------------------------------------------------------------------------------------


def test_task_card_leaves_out_the_description_the_opening_already_carries() -> None:
    from bzzz_console.domain.lifecycle import AgentState
    from bzzz_console.domain.specs import AgentSpec
    from bzzz_console.domain.state import Agent, Participant, ThreadState
    from bzzz_console.domain.threads import ThreadStatus
    from bzzz_console.runtime.llm.prompts import build_messages

    description = "Limit requests per API key across all gateway nodes; bursts are allowed, abuse is not."
    spec = AgentSpec(role="architect", model="gpt-4o", capabilities=("x",), reasoning_prompts={"system": "S"})
    agent = Agent("architect-1", spec, "gpt-4o", AgentState.ACTIVE)
    state = ThreadState(
        id=THREAD,
        project="default",
        topic="Collaborative Review: the limiter",
        status=ThreadStatus.ACTIVE,
        participants=[Participant("architect-1", "architect"), Participant("reviewer-1", "reviewer")],
        messages=[],
        turn_count=0,
        created_at=_T0,
        task={"id": "task-1", "title": "the limiter", "description": description, "priority": "high"},
    )
    opening = msg(
        1, "system", T.SYSTEM, f"Collaborative review of task task-1: the limiter\n\n{description}\n\nGo."
    )
    history = [opening, msg(2, "reviewer-1", T.PROPOSAL)]
    prompt = "\n".join(m.content or "" for m in build_messages(agent, state, history, []))
    assert prompt.count(description) == 1  # in the opening, not repeated by the card
    card = build_messages(agent, state, history, [])[-1].content or ""
    assert "Task task-1: the limiter (priority high)" in card and "opening message #1" in card
    # without the opening in the history (or with another text in it) the card still carries the description
    for other in ([history[1]], [msg(1, "system", T.SYSTEM, "Something else."), history[1]]):
        card = build_messages(agent, state, other, [])[-1].content or ""
        assert description in card
