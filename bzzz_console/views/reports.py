"""Read-only views of the store for the CLI: lists, a thread transcript, exports (Markdown and JSON)."""

from __future__ import annotations

from typing import Any

from bzzz_console.config_sections import SecuritySettings
from bzzz_console.domain.text import md_block, md_code, md_text, usd
from bzzz_console.store.repo import Store
from bzzz_console.store.tables import utc

ESCALATION_FIELDS = (
    "id",
    "thread_id",
    "agent_id",
    "rule",
    "reason",
    "priority",
    "state",
    "created_at",
    "deadline",
    "origin_peer",
)


def escalation_summary(e: Any) -> dict[str, Any]:
    """One escalation as plain data (``escalations list --json``, bzzz_get, bzzz_escalations); ``origin_peer``
    names the node that raised it when that is another node."""
    data = {f: getattr(e, f) for f in ESCALATION_FIELDS}
    for key in ("created_at", "deadline"):
        data[key] = utc(data[key]).isoformat() if data[key] else None
    return data


def agents_report(store: Store) -> list[dict[str, Any]]:
    costs = store.agent_costs()
    return [
        {
            "id": a.id,
            "role": a.role,
            "state": a.state,
            "model": a.model,
            "origin": a.origin,
            "paused": a.paused,
            "max_tasks": a.max_tasks,
            "capabilities": a.capabilities,
            "tokens": costs.get(a.id, (0.0, 0))[1],
            "cost_usd": round(costs.get(a.id, (0.0, 0))[0], 6),
        }
        for a in store.agents()
    ]


def _cost(known: float, unknown: bool) -> float | None:
    """A thread that includes a call of an unpriced model has an unknown cost: None, never a partial sum."""
    return None if unknown else round(known, 6)


def threads_report(store: Store) -> list[dict[str, Any]]:
    costs = store.thread_costs()
    participants: dict[str, list[str]] = {}
    for p in store.participants():
        participants.setdefault(p.thread_id, []).append(p.agent_id)
    return [
        {
            "id": t.id,
            "topic": t.topic,
            "status": t.status,
            "participants": participants.get(t.id, []),
            "message_count": t.message_count,
            "cost_usd": _cost(*costs.get(t.id, (0.0, False))),
            "task_id": t.task_id,
            "project": t.project,
            "turns": t.turn_count,
            "outcome": t.outcome,
            "created_at": utc(t.created_at).isoformat(),
        }
        for t in store.threads()
    ]


def thread_document(store: Store, thread_id: str, security: SecuritySettings | None = None) -> dict[str, Any]:
    """Everything about one thread, as exported to JSON (raises NotFound).

    Texts (topic, messages, decisions) are redacted for the ``export`` target of ``security`` (default settings
    when None: API keys, emails, phone and card numbers)."""
    from bzzz_console.security.redaction import redactor_for

    clean = redactor_for(security).for_target("export")
    thread = store.get_thread(thread_id)
    costs = store.thread_costs().get(thread_id, (0.0, False))
    return {
        "id": thread.id,
        "topic": clean(thread.topic),
        "status": thread.status,
        "outcome": thread.outcome,
        "project": thread.project,
        "task_id": thread.task_id,
        "turns": thread.turn_count,
        "cost_usd": _cost(*costs),
        "created_at": utc(thread.created_at).isoformat(),
        "participants": [{"agent_id": p.agent_id, "role": p.role} for p in store.participants(thread_id)],
        "messages": [
            {
                "seq": m.seq,
                "id": m.id,
                "from": m.author,
                "role": m.role,
                "type": m.type,
                "content": clean(m.content),
                "reply_to": m.reply_to,
                "model": m.model,
                "created_at": utc(m.created_at).isoformat(),
            }
            for m in store.messages(thread_id)
        ],
        "decisions": [
            {
                "id": d.id,
                "kind": d.kind,
                "summary": clean(d.summary),
                "made_by": d.made_by,
                "created_at": utc(d.created_at).isoformat(),
            }
            for d in store.decisions(thread_id)
        ],
    }


def thread_markdown(doc: dict[str, Any]) -> str:
    """The thread as a Markdown document (``threads export``, ``threads show``).

    Everything in it came from data, so it goes through :mod:`bzzz_console.domain.text`: names, the topic and
    decisions are literal text (``md_text``: no link, image, emphasis or HTML can start in them), ids are code
    spans, and each message body is the agent's Markdown, quoted and with HTML and images neutralised
    (``md_block``), so it cannot pass for the document's own headings."""
    cost = usd(doc["cost_usd"], 4)
    lines = [
        f"# {md_text(doc['topic'])}",
        "",
        f"- thread: {md_code(doc['id'])} · status: **{md_text(doc['status'])}** · turns: {doc['turns']} · "
        f"cost: {cost}",
        "- participants: "
        + ", ".join(f"{md_text(p['agent_id'])} ({md_text(p['role'])})" for p in doc["participants"]),
        "",
        "## Transcript",
        "",
    ]
    for m in doc["messages"]:
        marker = "🧑 " if m["role"] == "human" else ""
        lines.append(
            f"### #{m['seq']} {marker}{md_text(m['from'])} ({md_text(m['role'])}) · {md_text(m['type'])}"
        )
        lines.append("")
        lines.append(md_block(m["content"]))
        lines.append("")
    if doc["decisions"]:
        lines += ["## Decisions", ""]
        lines += [
            f"- {md_text((d['summary'].splitlines() or [''])[0])} — {md_text(d['made_by'])}"
            for d in doc["decisions"]
        ]
        lines.append("")
    return "\n".join(lines)
