"""Boundaries, each pinned exactly and one step either side: what the audit hash covers, a decision applied
once, the budget reserve and warning shares, an escalation deadline at ``now``, the wire's size and hop
limits, and the shortest value treated as a secret.

Each test here was written against a mutant that the rest of the suite let through (issue #15): it fails when
the boundary it names moves, by one byte, one hop, one microsecond, one character or one cent.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bzzz_console.config import Settings
from bzzz_console.domain import events as ev
from bzzz_console.domain.clock import ManualClock
from bzzz_console.p2p.validation import Admission
from bzzz_console.p2p.wire import (
    MAX_HOPS,
    MAX_MESSAGE_BYTES,
    MessageType,
    WireError,
    WireMessage,
    decode,
    encode,
)
from bzzz_console.runtime.escalation.escalations import Escalations
from bzzz_console.runtime.rules import Condition, ThreadFacts, holds
from bzzz_console.runtime.runtime import Runtime
from bzzz_console.security.audit import append_entry, verify
from bzzz_console.security.audit_checkpoint import Checkpoints
from bzzz_console.security.nodekey import load_or_create_node_key
from bzzz_console.security.redaction import Redactor, tag
from bzzz_console.security.secrets import MIN_SECRET_LEN, live_secrets, remember_secret
from bzzz_console.store.repo import Store
from bzzz_console.store.tables import EscalationRow, utc

MICRO = timedelta(microseconds=1)
START = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
PEER = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"


# -- 1. the audit hash covers author, type and at -------------------------------------------------------------
TRAIL = 5
TAMPERED = 2


def write_trail(db: Path) -> Settings:
    """A trail of TRAIL entries signed by this node's key (in the XDG data dir the CLI reads too), with its
    checkpoint, as ``escalations answer`` writes them."""
    settings = Settings.model_validate({"store": {"url": f"sqlite:///{db}"}})
    key = load_or_create_node_key(settings)
    store = Store.open(settings.database_url())
    try:
        book = Checkpoints.for_store(settings.resolved_data_dir(), store)
        for i in range(TRAIL):
            append_entry(
                store,
                key,
                author=f"operator-{i}",
                type="escalation_decided",
                data={"escalation_id": f"esc-{i}", "decision": {"kind": "approve"}},
                at=START + timedelta(seconds=i),
                checkpoints=book,
            )
    finally:
        store.close()
    return settings


def _one_microsecond_later(text: str) -> str:
    later = datetime.fromisoformat(text) + MICRO
    return later.strftime("%Y-%m-%d %H:%M:%S.%f")


TAMPERING = {
    "author": lambda conn: conn.execute(
        "UPDATE audit SET author = 'someone-else' WHERE idx = ?", (TAMPERED,)
    ),
    "type": lambda conn: conn.execute(
        "UPDATE audit SET type = 'escalation_expired' WHERE idx = ?", (TAMPERED,)
    ),
    "at": lambda conn: conn.execute(
        "UPDATE audit SET at = ? WHERE idx = ?",
        (
            _one_microsecond_later(
                conn.execute("SELECT at FROM audit WHERE idx = ?", (TAMPERED,)).fetchone()[0]
            ),
            TAMPERED,
        ),
    ),
}


def tamper(db: Path, column: str) -> None:
    """Change one column of entry #TAMPERED, and only that: its hash and signature stay the originals."""
    names = ["idx", "at", "author", "type", "data", "hash", "prev_hash", "signature"]
    query = f"SELECT {', '.join(names)} FROM audit WHERE idx = {TAMPERED}"
    with sqlite3.connect(db) as conn:
        before = conn.execute(query).fetchone()
        TAMPERING[column](conn)
        after = conn.execute(query).fetchone()
    conn.close()
    assert [n for n, a, b in zip(names, before, after, strict=True) if a != b] == [column]


@pytest.mark.parametrize("column", list(TAMPERING))
def test_verify_finds_a_changed_author_type_or_time(tmp_path: Path, column: str) -> None:
    settings = write_trail(tmp_path / "trail.db")
    tamper(tmp_path / "trail.db", column)
    store = Store.open(settings.database_url(), migrate=False)
    try:
        result = verify(store, load_or_create_node_key(settings))
    finally:
        store.close()
    assert (result.ok, result.first_bad_index, result.reason, result.checked) == (
        False,
        TAMPERED,
        "modified",
        TAMPERED,
    )


def audit_verify(settings: Settings) -> Any:
    """``bzzz-console audit verify`` in this process (the node key and checkpoint: the XDG data dir's)."""
    from bzzz_console.cli.main import app

    return CliRunner().invoke(app, ["audit", "verify", "--db", settings.database_url()])


@pytest.mark.parametrize("column", list(TAMPERING))
def test_audit_verify_reports_a_changed_author_type_or_time(tmp_path: Path, column: str) -> None:
    settings = write_trail(tmp_path / "trail.db")
    tamper(tmp_path / "trail.db", column)
    done = audit_verify(settings)
    assert done.exit_code == 1, done.output
    assert done.stdout.startswith(f"entry #{TAMPERED}: modified ("), done.stdout


def test_the_untouched_trail_verifies(tmp_path: Path) -> None:
    """The other side of the tampering tests: the same trail, unchanged, is intact (to the CLI as well)."""
    done = audit_verify(write_trail(tmp_path / "trail.db"))
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith(f"intact: {TRAIL} entries"), done.stdout


# -- 2. a recorded decision is applied once ---------------------------------------------------------------------
def open_escalation(store: Store, escalation_id: str, **fields: Any) -> EscalationRow:
    row = EscalationRow(
        id=escalation_id,
        rule="Agent Request",
        reason="Which TTL?",
        created_at=fields.pop("created_at", START),
        **fields,
    )
    store.raise_escalation(row, thread_status=None)
    return row


def test_a_decision_is_marked_applied_once(store: Store) -> None:
    open_escalation(store, "esc-once")
    store.claim_decision("esc-once", {"kind": "approve", "by": "operator"}, "ops", START)
    assert [r.id for r in store.decisions_to_apply()] == ["esc-once"]
    assert store.mark_applied("esc-once") is True
    assert store.mark_applied("esc-once") is False  # a second pass (or process) must not apply it again
    assert store.decisions_to_apply() == []
    stored = store.get_escalation("esc-once")
    assert stored is not None and stored.applied


def test_a_decision_claimed_for_applying_is_not_applied_again(store: Store) -> None:
    open_escalation(store, "esc-now")
    store.claim_decision("esc-now", {"kind": "approve", "by": "operator"}, "ops", START, applying=True)
    assert store.decisions_to_apply() == []
    assert store.mark_applied("esc-now") is False


# -- 3., 4. budgets: the reserve and the warning shares ---------------------------------------------------------
@pytest.fixture
def bare_rt(tmp_path: Path) -> Iterator[Runtime]:
    """A runtime that is not started (no agents, no model): its budgets on a real store. Only the thread budget
    applies (8 USD, a quarter of it reserved: 6 USD usable); the numbers are exact in binary floating point."""
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path / "data"),
            "store": {"url": f"sqlite:///{tmp_path / 'budgets.db'}"},
            "budgets": {
                "daily_usd": None,
                "thread_usd": 8.0,
                "reserve_fraction": 0.25,
                "warn_at": [0.8, 0.95],
            },
        }
    )
    store = Store.open(settings.database_url())
    rt = Runtime(settings, store=store, clock=ManualClock(START))
    rt.budgets.load()
    try:
        yield rt
    finally:
        store.close()


def breached(share: float) -> bool:
    """The escalation rule ``{ type = "budget", threshold = 1.0 }`` on a thread that spent ``share``."""
    facts = ThreadFacts(created_at=START, last_progress_at=START, budget_fraction=share)
    return holds(Condition("budget", 1.0), facts, START)


def test_the_reserve_is_held_back_exactly(bare_rt: Runtime) -> None:
    budgets = bare_rt.budgets
    budgets.spent("agent-x", "t-usable", 6.0)  # 8 * (1 - 0.25): all of the usable part
    budgets.spent("agent-x", "t-below", 5.99)
    assert budgets.breach_share(None, "t-usable") == 1.0
    assert budgets.breach_share(None, "t-below") == pytest.approx(5.99 / 6.0)
    assert budgets.breach_share(None, "t-below") < 1.0
    assert breached(budgets.breach_share(None, "t-usable"))
    assert not breached(budgets.breach_share(None, "t-below"))


def warnings_for(rt: Runtime, thread_id: str, spend: float) -> list[float]:
    events = rt.bus.subscribe()
    rt.budgets.spent("agent-x", thread_id, spend)
    return [e.share for e in events.drain() if isinstance(e, ev.BudgetWarning) and e.key == thread_id]


@pytest.mark.parametrize(
    ("spend", "shares"),
    [
        (7.99, []),  # just below 80 % of 10 USD
        (8.0, [0.8]),  # exactly 80 %
        (9.49, [0.8]),  # just below 95 %
        (9.5, [0.8, 0.95]),  # exactly 95 %
        (9.99, [0.8, 0.95]),
        (10.0, [0.8, 0.95, 1.0]),  # the limit itself
    ],
)
def test_budget_warnings_at_exactly_their_share(bare_rt: Runtime, spend: float, shares: list[float]) -> None:
    bare_rt.budgets.raise_limit("thread", "t-warn", 2.0, by="ops")  # 8 + 2 = 10 USD
    assert warnings_for(bare_rt, "t-warn", spend) == shares


def test_each_warning_comes_once_as_spend_crosses_it(bare_rt: Runtime) -> None:
    bare_rt.budgets.raise_limit("thread", "t-step", 2.0, by="ops")  # 10 USD
    assert warnings_for(bare_rt, "t-step", 7.99) == []
    assert warnings_for(bare_rt, "t-step", 0.01) == [0.8]  # 8.00 (7.99 + 0.01 is 8.0 in floating point)
    assert warnings_for(bare_rt, "t-step", 1.49) == []  # 9.49
    assert warnings_for(bare_rt, "t-step", 0.01) == [0.95]  # 9.50
    assert warnings_for(bare_rt, "t-step", 0.0) == []


# -- 5. an escalation deadline at exactly now -------------------------------------------------------------------
def test_a_deadline_at_exactly_now_has_expired(bare_rt: Runtime) -> None:
    """The rule: an escalation whose deadline is ``<= now`` expires on the next timer pass."""
    rt, now = bare_rt, bare_rt.clock.now()
    deadlines = {"esc-past": now - MICRO, "esc-now": now, "esc-future": now + MICRO}
    for escalation_id, deadline in deadlines.items():
        open_escalation(rt.store, escalation_id, deadline=deadline)
    assert {e.id: utc(e.deadline) for e in rt.store.escalations()} == deadlines  # stored to the microsecond
    events = rt.bus.subscribe()
    Escalations(rt).tick()
    states = {e.id: e.state for e in rt.store.escalations()}
    assert states == {"esc-past": "expired", "esc-now": "expired", "esc-future": "open"}
    expired = sorted(e.escalation_id for e in events.drain() if isinstance(e, ev.EscalationExpired))
    assert expired == ["esc-now", "esc-past"]


def test_a_failed_decision_at_exactly_the_deadline_drops_it(store: Store) -> None:
    """A decision that fails reopens its escalation; a deadline ``<= now`` is dropped (it would expire again at
    once), a later one is kept."""
    deadline = START + timedelta(hours=1)
    for escalation_id, at in (
        ("esc-before", deadline - MICRO),
        ("esc-at", deadline),
        ("esc-after", deadline + MICRO),
    ):
        open_escalation(store, escalation_id, deadline=deadline)
        store.claim_decision(escalation_id, {"kind": "approve", "by": "operator"}, "ops", at)
        reopened = store.reopen_escalation(escalation_id, {"kind": "approve", "error": "boom"}, at)
        assert reopened is not None and reopened.state == "open"
    kept = {e.id: (utc(e.deadline) if e.deadline else None) for e in store.escalations()}
    assert kept == {"esc-before": deadline, "esc-at": None, "esc-after": None}


# -- 6., 7. the wire: size and hops -----------------------------------------------------------------------------
def message(pad: int, hops: int = 0) -> WireMessage:
    return WireMessage(MessageType.META_DISCUSSION, PEER, START, {"pad": "x" * pad}, hops)


def of_size(size: int, hops: int = 0) -> WireMessage:
    """A message whose encoding is exactly ``size`` bytes."""
    pad = size - len(encode(message(0, hops)))  # ASCII padding: one character, one byte
    assert pad >= 0
    return message(pad, hops)


def test_a_message_of_exactly_the_size_limit_passes_and_one_byte_more_does_not() -> None:
    limit = MAX_MESSAGE_BYTES
    fits = encode(of_size(limit))
    assert len(fits) == limit
    assert decode(fits) == of_size(limit)
    with pytest.raises(WireError) as caught:
        encode(of_size(limit + 1))
    assert caught.value.reason == "too_large"
    over = fits.replace(b'"pad":"', b'"pad":"x', 1)  # the same message, one more byte of padding
    assert len(over) == limit + 1
    with pytest.raises(WireError) as caught:
        decode(over)
    assert caught.value.reason == "too_large"
    assert decode(over, max_bytes=limit + 1).data["pad"] == "x" * (len(decode(fits).data["pad"]) + 1)
    # padding that is not part of the JSON counts too: the limit is on the bytes received
    assert decode(fits[:-1] + b" " + fits[-1:], max_bytes=limit + 1)
    with pytest.raises(WireError, match="too_large"):
        decode(fits + b" ")


def test_admission_takes_exactly_its_size_limit() -> None:
    admission = Admission(max_bytes=300)
    fits = encode(of_size(300))
    assert admission.admit(fits, PEER).sender == PEER
    with pytest.raises(WireError) as caught:
        admission.admit(encode(of_size(301)), PEER)
    assert caught.value.reason == "too_large"
    assert (admission.accepted, dict(admission.rejected)) == (1, {"too_large": 1})


def test_exactly_max_hops_passes_and_one_more_does_not() -> None:
    at_limit = decode(encode(message(1, MAX_HOPS)))
    assert at_limit.hop_count == MAX_HOPS
    with pytest.raises(WireError) as caught:
        decode(encode(message(1, MAX_HOPS + 1)))
    assert caught.value.reason == "hop_limit"
    assert decode(encode(message(1, MAX_HOPS + 1)), max_hops=MAX_HOPS + 1).hop_count == MAX_HOPS + 1


def test_admission_takes_exactly_its_hop_limit() -> None:
    admission = Admission(max_hops=3)
    assert admission.admit(encode(message(1, 3)), PEER).hop_count == 3
    with pytest.raises(WireError) as caught:
        admission.admit(encode(message(2, 4)), PEER)
    assert caught.value.reason == "hop_limit"
    assert (admission.accepted, dict(admission.rejected)) == (1, {"hop_limit": 1})


# -- 8. the shortest secret -------------------------------------------------------------------------------------
def test_a_key_of_exactly_min_secret_len_is_remembered_and_one_character_less_is_not() -> None:
    assert MIN_SECRET_LEN == 8  # placeholders such as "test" are not secrets; real keys are far longer
    exact = "Kq7ZtLwX"
    short = exact[:-1].replace("K", "J")
    assert (len(exact), len(short)) == (MIN_SECRET_LEN, MIN_SECRET_LEN - 1)
    remember_secret(exact)
    remember_secret(short)
    assert exact in live_secrets()
    assert short not in live_secrets()
    # and a remembered key is redacted from any text that passes, whatever the settings say
    text = f"the key is {exact} and the word is {short}"
    assert Redactor().redact(text) == f"the key is {tag('api_key')} and the word is {short}"


def test_redaction_takes_given_secrets_of_exactly_min_secret_len() -> None:
    exact = "Pz4RvNcY"
    short = "Hb6WsDq"
    assert (len(exact), len(short)) == (MIN_SECRET_LEN, MIN_SECRET_LEN - 1)
    redactor = Redactor(secrets=[exact, short])
    assert redactor.redact(f"{exact} / {short}") == f"{tag('api_key')} / {short}"
