"""Escalations across nodes: raised on A, shown on every node, answered anywhere, applied once by A.

- A raises an escalation → ``escalation_trigger`` (its id, reason, priority, deadline, context). Every other node
  stores a *mirror* (``origin_peer`` = A) and shows it like its own.
- An operator on B answers the mirror → B sends ``escalation_decision`` with ``status: "request"``, signed with
  B's node key inside ``data`` (:mod:`bzzz_console.p2p.signing`) and a ``request_id``, then waits for A.
- A verifies the signature against B's peer id, checks ``p2p.decision_peers`` and read-only mode, and records the
  decision through the same atomic claim as a local one (with B's peer, request id and signature kept in the
  record), which resumes A's agent. A then announces the outcome (``status: "applied"``, or ``"refused"`` with the
  reason for that request); every node settles its mirror, so all stores agree, and B's operator gets either
  the confirmation or A's error. Two nodes answering at once: A's claim lets one through, the other is refused.
- A's own decisions, expiries and cancellations go out the same way (``applied``/``expired``/``cancelled``).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bzzz_console.domain import commands as cmd
from bzzz_console.domain import events as ev
from bzzz_console.domain.threads import PRIORITIES
from bzzz_console.p2p.agents import NAME, remote_name
from bzzz_console.p2p.signing import SignatureError, sign, verify
from bzzz_console.p2p.wire import MessageType, format_timestamp, parse_timestamp
from bzzz_console.store.tables import EscalationRow, utc

if TYPE_CHECKING:
    from bzzz_console.p2p.service import Network

DEFAULT_ACTIONS = ("hold", "approve", "reject")
DETAILS = ("note", "reason", "text", "to", "amount_usd", "model")
OUTCOME_OF_STATE = {"answered": "applied", "expired": "expired", "cancelled": "cancelled"}
STATE_OF_OUTCOME = {v: k for k, v in OUTCOME_OF_STATE.items()}
GREET_WINDOW_S = 24 * 3600
GREET_LIMIT = 20


def _stamp(when: datetime | None) -> str | None:
    return format_timestamp(utc(when)) if when is not None else None


def _when(value: object) -> datetime | None:
    try:
        return parse_timestamp(value) if isinstance(value, str) else None
    except ValueError:
        return None


class EscalationSync:
    def __init__(self, net: Network) -> None:
        self.net = net
        self.rt = net.rt
        self.pending: dict[str, tuple[str, asyncio.Future[EscalationRow]]] = {}
        """Our requests waiting for the owner's answer: request id → (escalation id, future)."""

    def close(self) -> None:
        from bzzz_console.domain.errors import CommandError

        for _, future in self.pending.values():
            if not future.done():
                future.set_exception(
                    CommandError("the network stopped before the owner confirmed the decision")
                )

    # -- this node's escalations, out --------------------------------------------------------------------
    def on_event(self, event: ev.Event) -> None:
        kinds = (ev.EscalationRaised, ev.EscalationAnswered, ev.EscalationExpired, ev.EscalationCancelled)
        if not isinstance(event, kinds):
            return
        row = self.rt.store.get_escalation(event.escalation_id)
        if row is None or row.origin_peer:
            return  # a mirror: its owner speaks for it
        if isinstance(event, ev.EscalationRaised):
            self.net.queue(MessageType.ESCALATION_TRIGGER, self.trigger(row))
        elif row.state in OUTCOME_OF_STATE:
            self.net.queue(MessageType.ESCALATION_DECISION, self.outcome(row))

    def trigger(self, row: EscalationRow) -> dict[str, Any]:
        agent = self.rt.agents.get(row.agent_id or "")
        return {
            "escalation_id": row.id,
            "reason": row.reason[:4000],
            "priority": row.priority,
            "rule": row.rule,
            "thread_id": row.thread_id,
            "agent_id": row.agent_id,
            "agent_role": agent.role if agent else None,
            "default_action": row.default_action,
            "created_at": _stamp(row.created_at),
            "deadline": _stamp(row.deadline),
            "context": row.context,
            "node_id": self.net.peer_id,
        }

    def outcome(self, row: EscalationRow) -> dict[str, Any]:
        decision = dict(row.decision or {})
        data = {
            "escalation_id": row.id,
            "decision": str(decision.get("kind", row.default_action)),
            "by": row.answered_by or str(decision.get("by") or "deadline"),
            "decided_at": _stamp(row.answered_at or datetime.now(UTC)),
            "status": OUTCOME_OF_STATE.get(row.state, "applied"),
            "origin": self.net.peer_id,
            "request_id": decision.get("request_id"),
            "decider": decision.get("peer"),
            "details": {k: decision[k] for k in DETAILS if k in decision},
        }
        return self._signed(data)

    def _signed(self, data: dict[str, Any]) -> dict[str, Any]:
        assert self.net.key is not None
        return sign(data, self.net.key)

    def greet(self) -> None:
        """A peer joined (new, or restarted): send our open escalations and the last day's outcomes again."""
        now, sent = datetime.now(UTC), 0
        for row in sorted(self.rt.store.escalations(), key=lambda r: utc(r.created_at), reverse=True):
            if row.origin_peer:
                continue
            if sent >= GREET_LIMIT:
                break  # peers accept ~50 messages/s from one node: the most recent ones matter most
            sent += 1
            if row.state == "open" or (row.state == "expired" and row.default_action == "hold"):
                self.net.queue(MessageType.ESCALATION_TRIGGER, self.trigger(row))
                if row.state == "expired":
                    self.net.queue(MessageType.ESCALATION_DECISION, self.outcome(row))
            elif (
                row.answered_at is not None and (now - utc(row.answered_at)).total_seconds() < GREET_WINDOW_S
            ):
                self.net.queue(MessageType.ESCALATION_TRIGGER, self.trigger(row))
                self.net.queue(MessageType.ESCALATION_DECISION, self.outcome(row))

    # -- other nodes' escalations, in ---------------------------------------------------------------------
    def on_trigger(self, data: dict[str, Any], author: str) -> None:
        esc_id = data.get("escalation_id")
        if not isinstance(esc_id, str) or not isinstance(
            data.get("priority"), str
        ):  # a v1 node's: shown only
            summary = f"escalation: {data['reason'][:180]}"
            self.rt.publish(ev.NetworkMessage(type="escalation_trigger", sender=author, summary=summary))
            return
        if not NAME.match(esc_id):
            self.net.refuse("escalation_trigger", "bad_escalation_id", f"{esc_id[:80]!r}: not a name", author)
            return
        if self.rt.store.get_escalation(esc_id) is not None:
            return  # known already (a replay, or ours)
        context = data.get("context") if isinstance(data.get("context"), dict) else {}
        names = {k: str(data[k]) for k in ("thread_id", "agent_id") if isinstance(data.get(k), str)}
        priority = data["priority"] if data["priority"] in PRIORITIES else "medium"
        default = data.get("default_action") if data.get("default_action") in DEFAULT_ACTIONS else "hold"
        row = EscalationRow(
            id=esc_id,
            thread_id=remote_name(names["thread_id"], author)[:64] if "thread_id" in names else None,
            agent_id=remote_name(names["agent_id"], author)[:64] if "agent_id" in names else None,
            rule=str(data.get("rule") or "remote")[:128],
            reason=data["reason"][:4000],
            priority=priority,
            default_action=str(default),
            context={**(context or {}), "node": author},
            created_at=_when(data.get("created_at")) or datetime.now(UTC),
            deadline=_when(data.get("deadline")),
            origin_peer=author,
        )
        if self.rt.store.mirror_escalation(row):
            self.rt.publish(
                ev.EscalationRaised(
                    escalation_id=row.id,
                    thread_id=row.thread_id,
                    agent_id=row.agent_id,
                    rule=row.rule,
                    reason=row.reason,
                    priority=row.priority,
                    deadline=row.deadline,
                )
            )

    def on_decision(self, data: dict[str, Any], author: str) -> None:
        try:
            verify(data, author)
        except SignatureError as exc:
            self.net.dropped["bad_signature"] += 1
            self.net.show_error(f"dropped an escalation decision from {author}: {exc}")
            return
        status = data.get("status", "request")
        if status == "request":
            if data.get("origin") == self.net.peer_id:
                self._apply_request(data, author)
        elif status in STATE_OF_OUTCOME:
            self._settle(data, author, status)
        elif status == "refused":
            waiting = self.pending.get(str(data.get("request_id")))
            if waiting is not None and not waiting[1].done():
                from bzzz_console.domain.errors import CommandError

                waiting[1].set_exception(CommandError(str(data.get("error") or "refused by its node")))
        else:
            self.net.refuse("escalation_decision", "bad_status", f"status {str(status)[:40]!r}", author)

    def _apply_request(self, data: dict[str, Any], author: str) -> None:
        from bzzz_console.domain.errors import CommandError

        request_id = str(data.get("request_id") or "")
        row = self.rt.store.get_escalation(data["escalation_id"])
        try:
            if row is None or row.origin_peer:
                raise CommandError(f"node {self.net.peer_id} has no escalation {data['escalation_id']!r}")
            allowed = self.net.settings.decision_peers
            if allowed and author not in allowed:
                raise CommandError(
                    f"node {self.net.peer_id} does not take decisions from {author} (p2p.decision_peers)"
                )
            if self.rt.settings.security.readonly:
                raise CommandError(f"node {self.net.peer_id} is read-only: it takes no decisions")
            command = replace(
                command_from(data, row, author, self.net.peer_id[-6:]), surface=f"peer {author}"
            )
            extra = {
                "peer": author,
                "request_id": request_id,
                "signed": data,
            }  # the proof stays with the record
            decided = self.rt.decide(
                command, extra
            )  # publishes EscalationAnswered → on_event sends the outcome
            if (
                decided.state == "open"
            ):  # the two-person rule: one approval recorded, the escalation stays open
                raise CommandError(
                    f"recorded as 1 of 2 approvals on node {self.net.peer_id}: a second operator must confirm"
                )
        except (CommandError, ValueError, TypeError) as exc:
            refusal = {
                "escalation_id": data["escalation_id"],
                "decision": data["decision"],
                "by": data["by"],
                "decided_at": format_timestamp(datetime.now(UTC)),
                "status": "refused",
                "origin": self.net.peer_id,
                "request_id": request_id,
                "error": str(exc),
            }
            self.net.queue(MessageType.ESCALATION_DECISION, self._signed(refusal))

    def _settle(self, data: dict[str, Any], author: str, status: str) -> None:
        from bzzz_console.domain.errors import CommandError

        esc_id, kind, by = data["escalation_id"], data["decision"], data["by"]
        details = data.get("details") if isinstance(data.get("details"), dict) else {}
        decision = {"kind": kind, "by": by, **(details or {}), "request_id": data.get("request_id")}
        when = _when(data["decided_at"]) or datetime.now(UTC)
        row = self.rt.store.settle_mirror(esc_id, author, STATE_OF_OUTCOME[status], decision, by, when)
        if row is not None:
            self.rt.publish(self._settled_event(row, status, kind, by, details or {}))
        if status != "applied":
            return
        for request_id, (waiting_on, future) in list(self.pending.items()):
            if waiting_on != esc_id or future.done():
                continue
            if request_id == data.get("request_id"):
                future.set_result(row or self.rt.store.get_escalation(esc_id))  # type: ignore[arg-type]
            else:
                future.set_exception(
                    CommandError(
                        f"escalation {esc_id} is already answered (by {by}); a decision is applied once"
                    )
                )

    @staticmethod
    def _settled_event(
        row: EscalationRow, status: str, kind: str, by: str, details: dict[str, Any]
    ) -> ev.Event:
        if status == "expired":
            return ev.EscalationExpired(
                escalation_id=row.id, thread_id=row.thread_id, default_action=row.default_action
            )
        if status == "cancelled":
            return ev.EscalationCancelled(
                escalation_id=row.id,
                thread_id=row.thread_id,
                reason=str(details.get("reason") or "cancelled"),
            )
        detail = str(next((details[k] for k in DETAILS if k in details), ""))[:200]
        return ev.EscalationAnswered(
            escalation_id=row.id,
            thread_id=row.thread_id,
            agent_id=row.agent_id,
            decision=kind,
            by=by,
            detail=detail,
        )

    # -- answering another node's escalation --------------------------------------------------------------
    async def decide_remote(self, command: cmd.Decision, row: EscalationRow) -> EscalationRow:
        """Ask the owner to apply ``command``; its confirmation (the settled mirror) or a CommandError."""
        from bzzz_console.domain.decisions import decision_record, validate_decision
        from bzzz_console.domain.errors import CommandError
        from bzzz_console.store.repo import new_id

        if (row.context or {}).get("read_only"):
            raise CommandError(f"escalation {row.id} is read-only: {row.context['read_only']}")
        validate_decision(command, self.rt.settings.budgets.max_raise_usd)
        origin = row.origin_peer or ""
        if not self.net.running:
            raise CommandError("the network is not running: another node's escalation cannot be answered")
        record = decision_record(command)
        request_id = new_id("req")
        data = self._signed(
            {
                "escalation_id": row.id,
                "decision": command.kind,
                "by": command.operator,
                "decided_at": format_timestamp(datetime.now(UTC)),
                "status": "request",
                "origin": origin,
                "request_id": request_id,
                "details": {k: record[k] for k in DETAILS if k in record},
            }
        )
        future: asyncio.Future[EscalationRow] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = (row.id, future)
        timeout = self.net.settings.decision_timeout_s
        try:
            await self.net.send(MessageType.ESCALATION_DECISION, data)
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise CommandError(
                f"node {origin} did not confirm the decision on {row.id} within {timeout:g} s (is it connected?); "
                "if the decision reaches it later the escalations pane will show it applied"
            ) from None
        except Exception as exc:
            if isinstance(exc, CommandError):
                raise
            raise CommandError(f"cannot send the decision to node {origin}: {exc}") from None
        finally:
            self.pending.pop(request_id, None)


def command_from(data: dict[str, Any], row: EscalationRow, author: str, own_suffix: str) -> cmd.Decision:
    """The operator command a remote decision stands for; ValueError naming the field otherwise."""
    details = data.get("details") if isinstance(data.get("details"), dict) else {}
    details = details or {}
    esc, kind = row.id, data["decision"]
    operator = f"{str(data['by'])[:96]} via {author[-6:]}"

    def text(name: str) -> str:
        value = details.get(name, "")
        if not isinstance(value, str):
            raise ValueError(f"data.details.{name}: must be text")
        return value

    if kind == "approve":
        return cmd.Approve(escalation_id=esc, note=text("note"), operator=operator)
    if kind == "reject":
        return cmd.Reject(escalation_id=esc, reason=text("reason"), operator=operator)
    if kind == "reply":
        return cmd.Reply(escalation_id=esc, text=text("text"), operator=operator)
    if kind == "reassign":  # the decider names our agents as it knows them: ``<id>.<our suffix>``
        return cmd.Reassign(
            escalation_id=esc, to=text("to").removesuffix(f".{own_suffix}"), operator=operator
        )
    if kind == "raise_budget":
        amount = details.get("amount_usd")
        if not isinstance(amount, int | float) or isinstance(amount, bool):
            raise ValueError("data.details.amount_usd: must be a number")
        return cmd.RaiseBudget(escalation_id=esc, amount_usd=float(amount), operator=operator)
    if kind == "downgrade_model":
        return cmd.DowngradeModel(escalation_id=esc, model=text("model") or None, operator=operator)
    if kind == "hand_back":
        return cmd.HandBack(escalation_id=esc, operator=operator)
    if kind == "terminate":
        return cmd.Terminate(agent_id=row.agent_id or "", escalation_id=esc, operator=operator)
    raise ValueError(f"data.decision: unknown decision {kind!r}")
