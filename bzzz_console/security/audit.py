"""The audit trail's writers: the runtime's :class:`AuditWriter`, and :func:`append_entry` for commands.

Entries (format, hashing, signing: :mod:`bzzz_console.security.audit_chain`; verification: :mod:`bzzz_console.security.audit_verify`)
are appended after the last row in the store, whoever wrote it, so restarts and several processes on one
database continue one chain; two writers racing for the same index are resolved by the primary key (the loser
reads the new tail and tries again). Every entry's ``data`` records the ``signer`` (this node's public key,
hex) and the ``node``. After each append the node's signed checkpoint of the trail's head is moved forward
(:mod:`bzzz_console.security.audit_checkpoint`), so entries later cut off the end are found missing.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bzzz_console.domain import events as ev
from bzzz_console.security.audit_chain import (
    GENESIS,
    Entry,
    StoredEntry,
    canonical,
    entry_hash,
    iso,
    iter_entries,
    plain,
    read_entries,
    sign,
    signature_valid,
)
from bzzz_console.security.audit_checkpoint import Checkpoints
from bzzz_console.security.audit_verify import VerifyResult, verify, verify_entries
from bzzz_console.store.tables import now_utc, utc

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from bzzz_console.config import Settings
    from bzzz_console.domain.bus import EventBus, Subscription
    from bzzz_console.store.repo import Store

__all__ = [
    "AUDITED_KINDS",
    "GENESIS",
    "AuditWriter",
    "Checkpoints",
    "Draft",
    "Entry",
    "StoredEntry",
    "VerifyResult",
    "append_entries",
    "append_entry",
    "canonical",
    "draft_for",
    "entry_hash",
    "iso",
    "iter_entries",
    "read_entries",
    "record_decision",
    "sign",
    "signature_valid",
    "verify",
    "verify_entries",
]

MAX_APPEND_ATTEMPTS = 100

AUDITED_KINDS = frozenset(
    {
        "agent_state_changed",
        "tool_called",
        "llm_failed",
        "escalation_raised",
        "escalation_answered",
        "escalation_expired",
        "decision_failed",
        "decision_logged",
        "consensus_reached",
        "thread_status_changed",
        "task_added",
        "budget_warning",
        "participants_changed",
    }
)
"""Event kinds the runtime's audit writer records (plus ``events_dropped``, should it ever fall behind)."""

SYSTEM = "system"


# -- entries ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Draft:
    """An entry before it has its place in the chain."""

    at: datetime
    author: str
    type: str
    data: dict[str, Any]


# -- writing -------------------------------------------------------------------------------------------------
def append_entries(
    store: Store,
    key: Ed25519PrivateKey,
    drafts: Sequence[Draft],
    checkpoints: Checkpoints | None = None,
) -> list[Entry]:
    """Append drafts to the chain in one transaction, after whatever the store's last entry is, then move
    ``checkpoints`` forward to the new head (after the commit: a checkpoint must never be ahead of the trail).

    If another writer (a second node or a CLI on the same database) takes an index first, the insert fails on
    the primary key, the transaction is rolled back and the batch is re-chained on the new tail.
    """
    if not drafts:
        return []
    prepared = [
        Draft(at=utc(d.at).astimezone(UTC), author=d.author[:128], type=d.type[:64], data=plain(d.data))
        for d in drafts
    ]
    entries: list[Entry] = []

    def chain(last: tuple[int, str] | None) -> list[dict[str, Any]]:
        idx, prev = (0, GENESIS) if last is None else (last[0] + 1, last[1])
        entries.clear()
        for i, d in enumerate(prepared):
            digest = entry_hash(idx + i, d.at, d.author, d.type, d.data, prev)
            entries.append(Entry(idx + i, d.at, d.author, d.type, d.data, digest, prev, sign(key, digest)))
            prev = digest
        return [
            {
                "idx": e.idx,
                "at": e.at,
                "author": e.author,
                "type": e.type,
                "data": e.data,
                "hash": e.hash,
                "prev_hash": e.prev_hash,
                "signature": e.signature,
            }
            for e in entries
        ]

    store.append_audit(chain, attempts=MAX_APPEND_ATTEMPTS)
    if checkpoints is not None:
        checkpoints.advance(store, key, entries)
    return entries


def append_entry(
    store: Store,
    key: Ed25519PrivateKey,
    *,
    author: str,
    type: str,
    data: dict[str, Any],
    at: datetime | None = None,
    checkpoints: Checkpoints | None = None,
) -> Entry:
    """Append one entry directly (no runtime: a CLI command). ``data`` gets ``signer`` and ``node`` added."""
    from bzzz_console.security.nodekey import public_key_hex

    body = {**data, "signer": public_key_hex(key), "node": socket.gethostname()}
    [entry] = append_entries(store, key, [Draft(at or now_utc(), author, type, body)], checkpoints)
    return entry


def record_decision(
    settings: Settings, store: Store, escalation: Any, decision: dict[str, Any], by: str
) -> Entry:
    """The audit entry of a decision recorded outside a runtime (``escalations answer``)."""
    from bzzz_console.security.nodekey import load_or_create_node_key

    return append_entry(
        store,
        load_or_create_node_key(settings),
        author=by,
        type="escalation_decided",
        data={
            "escalation_id": escalation.id,
            "thread_id": escalation.thread_id,
            "agent_id": escalation.agent_id,
            "rule": escalation.rule,
            "decision": decision,
            "by": by,
        },
        at=utc(escalation.answered_at) if escalation.answered_at else None,
        checkpoints=Checkpoints.for_store(settings.resolved_data_dir(), store),
    )


def _author(event: ev.Event) -> str:
    if isinstance(event, ev.EscalationAnswered):
        return event.by
    if isinstance(event, ev.DecisionLogged):
        return event.made_by
    if isinstance(event, ev.ConsensusReached):
        return event.proposer
    agent_id = getattr(event, "agent_id", None)
    if isinstance(
        event,
        ev.EscalationExpired | ev.ThreadStatusChanged | ev.TaskAdded | ev.BudgetWarning | ev.DecisionFailed,
    ):  # the node reports these; a failed decision's decider is in its data (``by``)
        return SYSTEM
    return agent_id if isinstance(agent_id, str) and agent_id else SYSTEM


def draft_for(event: ev.Event, signer: str, node: str) -> Draft | None:
    """The audit entry for an event, or None for kinds that are not audited."""
    kind = str(getattr(event, "kind", ""))
    if isinstance(event, ev.EventsDropped):
        return Draft(
            event.at,
            SYSTEM,
            kind,
            {
                "count": event.count,
                "note": "the audit writer fell behind: this many events are missing from the trail",
                "signer": signer,
                "node": node,
            },
        )
    if kind not in AUDITED_KINDS:
        return None
    data = ev.to_dict(event)
    data.pop("kind", None)
    data.pop("at", None)
    data["signer"] = signer
    data["node"] = node
    return Draft(event.at, _author(event), kind, data)


class AuditWriter:
    """Records the runtime's audited events: one transaction per drain of its bus subscription.

    ``start`` (after the store is open) subscribes, so start-up events are recorded too; ``stop`` (after the
    bus is closed, before the store is) writes whatever is still queued. A failed write is kept and retried
    with the next batch, and reported once as an ``error`` event.

    The signed checkpoint follows at most ``checkpoint_interval_s`` behind the last append, and at once when the
    writer stops: moving it costs a signature and a file replaced (~0.7 ms), too much for every drain of a busy
    fleet, and a checkpoint only ever vouches for entries it has seen. A problem with it (a trail found cut) is
    reported once as an ``error`` event.
    """

    checkpoint_interval_s = 0.5

    def __init__(
        self,
        settings: Settings,
        store: Store,
        bus: EventBus,
        node_id: str,
        report: Callable[[ev.Event], None] | None = None,
    ) -> None:
        """Audits what is published on ``bus`` into ``store``, signed with the node key of ``settings``;
        ``report`` is where its own problems go (default: the bus)."""
        self.settings = settings
        self.store = store
        self.bus = bus
        self.node_id = node_id
        self.report = report or bus.publish
        self.appended = 0
        self.signer = ""
        self._key: Ed25519PrivateKey | None = None
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: list[Draft] = []
        self._failing = False
        self._checkpoints: Checkpoints | None = None
        self._unchecked: list[Entry] = []
        self._timer: asyncio.TimerHandle | None = None
        self._reported: str | None = None

    def start(self) -> None:
        from bzzz_console.security.nodekey import load_or_create_node_key, public_key_hex

        self._key = load_or_create_node_key(self.settings)
        self.signer = public_key_hex(self._key)
        self._checkpoints = Checkpoints.for_store(self.settings.resolved_data_dir(), self.store)
        self._sub = self.bus.subscribe(maxsize=100_000)
        self._task = asyncio.create_task(self._run(), name="audit writer")

    async def stop(self) -> None:
        if self._sub is not None:
            self._sub.close()  # what is queued is still delivered, then the loop ends
        if self._task is not None:
            await self._task
            self._task = None
        self.checkpoint()

    async def _run(self) -> None:
        sub = self._sub
        assert sub is not None
        while (event := await sub.get()) is not None:
            self.take([event, *sub.drain()])
        self.flush()
        self.checkpoint()

    def take(self, events: Iterable[ev.Event]) -> None:
        node = self.node_id
        for event in events:
            draft = draft_for(event, self.signer, node)
            if draft is not None:
                self._pending.append(draft)
        self.flush()

    def flush(self) -> None:
        if not self._pending or self._key is None:
            return
        try:
            entries = append_entries(self.store, self._key, self._pending)
        except (
            Exception
        ) as exc:  # a database hiccup must not stop the runtime; keep the entries for the retry
            if not self._failing:
                self._failing = True
                self.report(
                    ev.ErrorRaised(
                        where="audit trail",
                        message=f"{len(self._pending)} entries not written yet: {type(exc).__name__}: {exc}",
                    )
                )
            return
        self.appended += len(self._pending)
        self._pending = []
        self._failing = False
        if self._checkpoints is None:
            return
        self._unchecked = entries  # the last batch is enough: its hash covers everything before it
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop (a synchronous caller): move it now
                self.checkpoint()
                return
            self._timer = loop.call_later(self.checkpoint_interval_s, self.checkpoint)

    def checkpoint(self) -> None:
        """Move the signed checkpoint to the last entry written."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._checkpoints is None or not self._unchecked or self._key is None:
            return
        self._checkpoints.advance(self.store, self._key, self._unchecked)
        self._unchecked = []
        problem = self._checkpoints.problem
        if problem and problem != self._reported:  # once per problem: it stays until someone looks
            self.report(ev.ErrorRaised(where="audit trail", message=problem))
        self._reported = problem
