"""What Go BZZZ nodes say beyond tasks: their broadcasts, escalations and help requests, shown to the operator.

- ``availability_broadcast`` / ``capability_broadcast`` of a Go node (main.go: no ``agents`` list) are kept per
  node for the network view: status, tasks, capabilities, models, version, specialization.
- A ``meta_discussion`` with ``message_type: "escalation"`` (pkg/coordination/meta_coordinator.go
  ``escalateSession``) and a ``task_help_request`` (github/integration.go ``requestAssistance``) become
  escalations here, marked as from a Go node and read-only: a Go node has no way to receive a decision. A later
  ``resolution`` of the same session settles the escalation. Other meta-discussion is shown as a message.
- Help requests travel on ``bzzz/meta/issue/<n>``, which a Go node joins while it works on task *n*:
  :class:`IssueTopics` joins each such topic a connected peer is on, and leaves it when no peer is.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bzzz_console.domain import events as ev
from bzzz_console.p2p.gonodes import TaskRef, Unusable, go_task_id, repository_of, whole_number
from bzzz_console.store.tables import EscalationRow

if TYPE_CHECKING:
    from bzzz_console.p2p.node import P2PNode
    from bzzz_console.p2p.service import Network

ISSUE_TOPIC = re.compile(r"^bzzz/meta/issue/[0-9]{1,9}$")
MAX_ISSUE_TOPICS = 64
READ_ONLY = (
    "raised by a Go BZZZ node, which has no way to receive an answer: shown here to be read, it cannot be "
    "decided from this console"
)
GO_RULES = {"escalation": "go-node escalation", "help": "go-node help request"}
BROADCAST_FIELDS = {
    "availability_broadcast": (
        "available_for_work",
        "current_tasks",
        "max_tasks",
        "status",
        "last_activity",
    ),
    "capability_broadcast": ("capabilities", "models", "version", "specialization"),
}


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def _text(value: object, limit: int) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _plain(value: object) -> Any:
    """A broadcast field kept for display: strings, numbers, booleans and short lists of them."""
    if isinstance(value, str):
        return value[:200]
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, list):
        return [v[:64] for v in value if isinstance(v, str)][:32]
    return None


class GoMeta:
    def __init__(self, net: Network) -> None:
        self.net = net
        self.rt = net.rt
        self.nodes: dict[str, dict[str, Any]] = {}
        """Go nodes by peer id: the fields of their last availability and capability broadcasts."""

    # -- broadcasts ---------------------------------------------------------------------------------------
    def on_broadcast(self, kind: str, data: dict[str, Any], author: str) -> None:
        """A broadcast without an ``agents`` list: a Go node's (one node, one agent)."""
        seen = self.nodes.setdefault(author, {})
        for name in BROADCAST_FIELDS[kind]:
            if name in data:
                seen[name] = _plain(data[name])
        if isinstance(data.get("node_id"), str):
            seen["node_id"] = data["node_id"][:64]
        seen[f"{kind}_at"] = datetime.now(UTC).isoformat(timespec="seconds")

    # -- meta discussion ----------------------------------------------------------------------------------
    def on_meta_discussion(self, data: dict[str, Any], author: str) -> None:
        kind = data.get("message_type")
        if kind == "escalation":
            self._escalation(data, author)
        elif kind == "resolution":
            self._resolution(data, author)
        else:
            self.net.shown("meta_discussion", author, summary_of(data))

    def _escalation(self, data: dict[str, Any], author: str) -> None:
        reason = _text(data.get("escalation_reason"), 2000)
        if not reason:
            raise Unusable("no_reason", "data.escalation_reason: missing")
        session = _text(data.get("session_id"), 128)
        participants = data.get("participants")
        names = sorted(str(k)[:64] for k in participants)[:20] if isinstance(participants, dict) else []
        tasks = [
            f"{_text(t.get('repository'), 100)}#{t.get('task_id')}: {_text(t.get('title'), 120)}"
            for t in _list(data.get("tasks_involved"))
            if isinstance(t, dict)
        ][:20]
        summary = _text(data.get("session_summary"), 500)
        context = {
            "session_id": session or None,
            "participants": names,
            "tasks_involved": tasks,
            "excerpt": [
                line
                for line in (
                    summary,
                    f"participants: {', '.join(names)}" if names else "",
                    *(f"task {t}" for t in tasks),
                )
                if line
            ],
        }
        ident = f"go-esc-{_hash(author, session or reason)}"
        self._raise(ident, "escalation", f"{reason}\n\n{summary}".strip(), "high", context, author)

    def _resolution(self, data: dict[str, Any], author: str) -> None:
        session = _text(data.get("session_id"), 128)
        if not session:
            raise Unusable("no_session_id", "data.session_id: a resolution names its session")
        text = _text(data.get("resolution"), 500) or "resolved"
        by = f"Go node {author[-6:]}"
        decision = {"kind": "resolution", "text": text, "by": by, "summary": _text(data.get("summary"), 500)}
        row = self.rt.store.settle_mirror(
            f"go-esc-{_hash(author, session)}", author, "answered", decision, by, datetime.now(UTC)
        )
        if row is None:
            self.net.shown("meta_discussion", author, f"resolution: {text}")
            return
        self.rt.publish(
            ev.EscalationAnswered(
                escalation_id=row.id,
                thread_id=None,
                agent_id=None,
                decision="resolution",
                by=by,
                detail=text[:200],
            )
        )

    def on_help_request(self, data: dict[str, Any], author: str) -> None:
        number = whole_number(data.get("issue_id"), "data.issue_id")
        repository = repository_of(data.get("repository"), "data.repository")
        reason = _text(data.get("reason"), 2000) or "(no reason given)"
        ref = TaskRef(repository, number)
        context = {"repository": repository, "issue_id": number, "task_id": go_task_id(ref)}
        text = f"A Go BZZZ node asks for help with {ref.label}: {reason}"
        self._raise(f"go-help-{_hash(author, ref.key, reason)}", "help", text, "medium", context, author)

    def on_help_response(self, data: dict[str, Any], author: str) -> None:
        number = whole_number(data.get("issue_id"), "data.issue_id")
        caps = ", ".join(c[:40] for c in _list(data.get("capabilities")) if isinstance(c, str))
        can = "can help" if data.get("can_help") is True else "cannot help"
        self.net.shown("task_help_response", author, f"{can} with #{number}" + (f" ({caps})" if caps else ""))

    def _raise(
        self, ident: str, kind: str, reason: str, priority: str, context: dict[str, Any], author: str
    ) -> None:
        row = EscalationRow(
            id=ident,
            rule=GO_RULES[kind],
            reason=reason[:4000],
            priority=priority,
            default_action="hold",
            context={**context, "node": author, "go_node": True, "read_only": READ_ONLY},
            origin_peer=author,
        )
        if self.rt.store.mirror_escalation(row):  # False: the same one again (a replay, a repeated broadcast)
            self.rt.publish(
                ev.EscalationRaised(
                    escalation_id=row.id,
                    thread_id=None,
                    agent_id=None,
                    rule=row.rule,
                    reason=row.reason,
                    priority=row.priority,
                    deadline=None,
                )
            )


def summary_of(data: dict[str, Any]) -> str:
    """One line for a message nobody acts on: its kind and its text, whichever field the Go code put it in."""
    kind = data.get("message_type") or data.get("type")
    text = next(
        (
            data[k]
            for k in ("message", "coordination_request", "resolution", "reason", "title", "text")
            if isinstance(data.get(k), str)
        ),
        "",
    )
    if not text and isinstance(data.get("scenario"), dict):
        text = str(data["scenario"].get("name") or "")
    head = f"{kind}: " if isinstance(kind, str) and kind else ""
    return (head + text)[:200]


class IssueTopics:
    """The ``bzzz/meta/issue/<n>`` topics this node is on because a peer is (at most ``MAX_ISSUE_TOPICS``)."""

    def __init__(self) -> None:
        self.joined: set[str] = set()

    @staticmethod
    def peers_on(node: P2PNode) -> set[str]:
        found = {t for t in node.topics_with_peers() if ISSUE_TOPIC.match(t)}
        return set(sorted(found)[:MAX_ISSUE_TOPICS])

    async def sync(self, node: P2PNode) -> None:
        wanted = self.peers_on(node)
        for topic in sorted(wanted - self.joined):
            await node.join_topic(topic)
            self.joined.add(topic)
        for topic in sorted(self.joined - wanted):
            await node.leave_topic(topic)
            self.joined.discard(topic)
