"""Tests for the consensus rule: every participant but the proposer agrees to the latest proposal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bzzz_console.domain.threads import MessageType, ThreadMessage, Vote, disagreement_count, tally

T = MessageType
PARTICIPANTS = ("architect-1", "architect-2", "reviewer-1")
_T0 = datetime(2025, 1, 1, tzinfo=UTC)


def thread(*steps: tuple[str, MessageType]) -> list[ThreadMessage]:
    """Messages in thread order; ids are ``m<seq>``."""
    return [
        ThreadMessage(
            id=f"m{seq}",
            thread_id="t1",
            seq=seq,
            author=author,
            role=author.split("-")[0],
            type=kind,
            content=f"{kind.value} from {author}",
            created_at=_T0 + timedelta(seconds=seq),
        )
        for seq, (author, kind) in enumerate(steps, start=1)
    ]


def test_no_proposal_means_not_reached_and_everyone_pending() -> None:
    msgs = thread(("architect-1", T.COMMENT), ("reviewer-1", T.AGREE), ("architect-2", T.QUESTION))
    vote = tally(PARTICIPANTS, msgs)
    assert vote == Vote(None, None, frozenset(), frozenset(), frozenset(PARTICIPANTS))
    assert not vote.reached


def test_empty_thread() -> None:
    vote = tally(PARTICIPANTS, [])
    assert vote.proposal_id is None
    assert vote.pending == frozenset(PARTICIPANTS)
    assert not vote.reached


def test_proposal_alone_leaves_others_pending() -> None:
    vote = tally(PARTICIPANTS, thread(("architect-1", T.PROPOSAL)))
    assert vote.proposal_id == "m1"
    assert vote.proposer == "architect-1"
    assert vote.pending == {"architect-2", "reviewer-1"}
    assert vote.agreed == frozenset()
    assert not vote.reached


def test_all_others_agree_reaches_consensus() -> None:
    msgs = thread(
        ("architect-1", T.PROPOSAL),
        ("architect-2", T.AGREE),
        ("reviewer-1", T.COMMENT),
        ("reviewer-1", T.AGREE),
    )
    vote = tally(PARTICIPANTS, msgs)
    assert vote.reached
    assert vote.proposal_id == "m1"
    assert vote.agreed == {"architect-2", "reviewer-1"}
    assert vote.disagreed == frozenset()
    assert vote.pending == frozenset()


def test_one_missing_agree_is_not_consensus() -> None:
    msgs = thread(("architect-1", T.PROPOSAL), ("architect-2", T.AGREE))
    vote = tally(PARTICIPANTS, msgs)
    assert not vote.reached
    assert vote.pending == {"reviewer-1"}


def test_later_disagree_withdraws_agree() -> None:
    msgs = thread(
        ("architect-1", T.PROPOSAL),
        ("architect-2", T.AGREE),
        ("reviewer-1", T.AGREE),
        ("reviewer-1", T.DISAGREE),
    )
    vote = tally(PARTICIPANTS, msgs)
    assert not vote.reached
    assert vote.agreed == {"architect-2"}
    assert vote.disagreed == {"reviewer-1"}
    assert vote.pending == frozenset()


def test_later_agree_replaces_disagree() -> None:
    msgs = thread(
        ("architect-1", T.PROPOSAL),
        ("reviewer-1", T.DISAGREE),
        ("architect-2", T.AGREE),
        ("reviewer-1", T.AGREE),
    )
    vote = tally(PARTICIPANTS, msgs)
    assert vote.reached
    assert vote.disagreed == frozenset()


def test_newer_proposal_resets_votes() -> None:
    msgs = thread(
        ("architect-1", T.PROPOSAL),
        ("architect-2", T.AGREE),
        ("reviewer-1", T.AGREE),
        ("reviewer-1", T.PROPOSAL),
        ("architect-1", T.AGREE),
    )
    vote = tally(PARTICIPANTS, msgs)
    assert vote.proposal_id == "m4"
    assert vote.proposer == "reviewer-1"
    assert vote.agreed == {"architect-1"}
    assert vote.pending == {"architect-2"}  # their agree was to the old proposal
    assert not vote.reached


def test_votes_before_latest_proposal_do_not_count() -> None:
    msgs = thread(
        ("architect-2", T.AGREE),
        ("reviewer-1", T.DISAGREE),
        ("architect-1", T.PROPOSAL),
    )
    vote = tally(PARTICIPANTS, msgs)
    assert vote.agreed == frozenset()
    assert vote.disagreed == frozenset()
    assert vote.pending == {"architect-2", "reviewer-1"}


def test_proposers_own_agree_does_not_count() -> None:
    msgs = thread(("architect-1", T.PROPOSAL), ("architect-1", T.AGREE), ("architect-2", T.AGREE))
    vote = tally(PARTICIPANTS, msgs)
    assert "architect-1" not in vote.agreed
    assert "architect-1" not in vote.pending
    assert vote.pending == {"reviewer-1"}
    assert not vote.reached


def test_proposers_own_disagree_does_not_block() -> None:
    msgs = thread(
        ("architect-1", T.PROPOSAL),
        ("architect-2", T.AGREE),
        ("reviewer-1", T.AGREE),
        ("architect-1", T.DISAGREE),
    )
    vote = tally(PARTICIPANTS, msgs)
    assert vote.disagreed == frozenset()
    assert vote.reached


def test_non_participant_vote_is_ignored() -> None:
    msgs = thread(
        ("architect-1", T.PROPOSAL),
        ("intruder-9", T.AGREE),
        ("intruder-9", T.DISAGREE),
        ("architect-2", T.AGREE),
    )
    vote = tally(PARTICIPANTS, msgs)
    assert "intruder-9" not in vote.agreed | vote.disagreed | vote.pending
    assert vote.pending == {"reviewer-1"}
    assert not vote.reached
    msgs += thread(("reviewer-1", T.AGREE))
    assert tally(PARTICIPANTS, msgs).reached


def test_non_participant_proposal_needs_every_participant() -> None:
    msgs = thread(("human-1", T.PROPOSAL), ("architect-1", T.AGREE), ("architect-2", T.AGREE))
    vote = tally(PARTICIPANTS, msgs)
    assert vote.proposer == "human-1"
    assert vote.pending == {"reviewer-1"}
    assert not vote.reached


def test_other_message_types_are_not_votes() -> None:
    others = [t for t in T if t not in (T.PROPOSAL, T.AGREE, T.DISAGREE)]
    msgs = thread(("architect-1", T.PROPOSAL), *[("architect-2", t) for t in others])
    vote = tally(PARTICIPANTS, msgs)
    assert vote.pending == {"architect-2", "reviewer-1"}


def test_participants_may_be_any_iterable() -> None:
    msgs = thread(("architect-1", T.PROPOSAL), ("architect-2", T.AGREE), ("reviewer-1", T.AGREE))
    assert tally(iter(PARTICIPANTS), msgs).reached


def test_disagreement_count() -> None:
    msgs = thread(
        ("architect-1", T.PROPOSAL),
        ("architect-2", T.DISAGREE),
        ("reviewer-1", T.AGREE),
        ("architect-1", T.PROPOSAL),
        ("architect-2", T.DISAGREE),
        ("reviewer-1", T.DISAGREE),
        ("architect-2", T.COMMENT),
    )
    assert disagreement_count(msgs) == 3
    assert disagreement_count(iter(msgs)) == 3
    assert disagreement_count([]) == 0
    assert disagreement_count(thread(("a-1", T.AGREE), ("a-2", T.PROPOSAL))) == 0
