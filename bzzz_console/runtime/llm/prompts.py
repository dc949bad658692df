"""Context building, as the seed's ``buildSystemPrompt``: base prompt + role context + collaboration context +
tools, then the thread history and the task.

The trailing ``## Context`` card is plain ``key: value`` lines: a real model reads it as prose, and the scripted
demo model parses it to know who it is speaking as.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bzzz_console.domain.llm import ChatMessage, ChatRole, ToolSpec
from bzzz_console.domain.state import Agent, ThreadState
from bzzz_console.domain.threads import ThreadMessage

PROTOCOL = """\
How to take your turn: call `bzzz_post` once, addressed to this thread, with `message_type` one of
proposal (a concrete plan others can accept), agree, disagree (say exactly what would change your mind),
question, answer or comment, and your text in `content.text`. Agree only with the latest proposal.
Read with `bzzz_get` / `bzzz_lookup` first if you need to. If the team cannot resolve something without a
human decision, call `request_human` with the reason instead of arguing further."""


def format_history_line(message: ThreadMessage) -> str:
    reply = f" ↩ {message.reply_to}" if message.reply_to else ""
    return (
        f"[{message.author} ({message.role}) · {message.type.value} #{message.seq}{reply}]: {message.content}"
    )


def build_system_prompt(
    agent: Agent, thread: ThreadState, tools: Sequence[ToolSpec], lessons: Sequence[str]
) -> str:
    spec = agent.spec
    guidance = "\n".join(
        f"- {name}: {text}" for name, text in spec.reasoning_prompts.items() if name != "system"
    )
    others = [p for p in thread.participants if p.agent_id != agent.id]
    patterns = "\n".join(f"- with {who}: {how}" for who, how in spec.interaction_patterns.items())
    parts = [
        spec.reasoning_prompts["system"],
        f"\nYour capabilities: {', '.join(spec.capabilities)}.\nGuidance for your role:\n{guidance}",
        f"\nYou are collaborating with {len(others)} other agents in thread '{thread.id}'.\n"
        f"Current participants: {', '.join(f'{p.agent_id} ({p.role})' for p in thread.participants)}\n"
        f"Thread topic: {thread.topic}\nYour role in this collaboration: {spec.role}",
    ]
    if patterns:
        parts.append(f"Interaction patterns:\n{patterns}")
    parts.append("\nAvailable BZZZ tools:\n" + "\n".join(f"- {t.name}: {t.description}" for t in tools))
    parts.append("\n" + PROTOCOL)
    if lessons:
        parts.append(
            "\nLessons from your earlier work in this project:\n" + "\n".join(f"- {x}" for x in lessons)
        )
    parts.append(
        "\n## Context\n"
        f"agent_id: {agent.id}\nrole: {spec.role}\nthread_id: {thread.id}\nproject: {thread.project}\n"
        f"topic: {thread.topic}\n"
        f"participants: {', '.join(f'{p.agent_id}:{p.role}' for p in thread.participants)}"
    )
    return "\n".join(parts)


def format_task(agent: Agent, thread: ThreadState, history: Sequence[ThreadMessage] = ()) -> str:
    """The closing card of a turn. The task's description is left out when the opening message in ``history``
    (the thread's statement, which every compression keeps) already says it word for word: once a prompt."""
    task = thread.task
    lines = [f"It is your turn, {agent.id}."]
    if task:
        lines.append(
            f"Task {task.get('id', '')}: {task.get('title', thread.topic)} (priority {task.get('priority', 'medium')})"
        )
        description = str(task.get("description") or "").strip()
        opening = history[0] if history and history[0].seq == 1 else None
        if description and opening is not None and description in opening.content:
            lines.append(f"(Its description is in the opening message #{opening.seq} above.)")
        elif description:
            lines.append(description)
    if agent.inbox:  # delivered once: the agent reads its messages at the top of its next turn
        lines.append("Messages addressed to you:\n" + "\n".join(f"- {m}" for m in agent.inbox))
        agent.inbox.clear()
    notes = agent.working.get(thread.id, {}).get("notes")
    if notes:
        lines.append("Your notes so far: " + "; ".join(notes[-5:]))
    return "\n".join(lines)


def build_messages(
    agent: Agent,
    thread: ThreadState,
    history: Sequence[ThreadMessage],
    tools: Sequence[ToolSpec],
    lessons: Sequence[str] = (),
    *,
    redact: Callable[[str], str] | None = None,
) -> list[ChatMessage]:
    """The whole prompt of one turn. Own messages go back as ``assistant`` turns, everyone else's as ``user``.

    ``redact`` (the LLM target of :class:`~bzzz_console.security.redaction.Redactor`) is applied to every message: API
    keys, emails, phone and card numbers in tasks, history or lessons never reach the model."""
    clean = redact or _same
    messages = [ChatMessage("system", clean(build_system_prompt(agent, thread, tools, lessons)))]
    for message in history:
        role: ChatRole = "assistant" if message.author == agent.id else "user"
        messages.append(ChatMessage(role, clean(format_history_line(message))))
    messages.append(ChatMessage("user", clean(format_task(agent, thread, history))))
    return messages


def _same(text: str) -> str:
    return text


def estimate_tokens(text: str) -> int:
    """A cheap estimate (~4 characters a token) good enough for budgets; billing uses the server's usage."""
    return (len(text) + 3) // 4
