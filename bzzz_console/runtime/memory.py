"""Episodic memory: what an agent keeps from a finished thread, and which of it comes back in later prompts.

Episodes are stored per agent *and project*; recall filters on both, so nothing learned in one project can
reach a prompt of another. Relevance is word overlap with the new task (cheap, deterministic, explainable);
ties go to the most recent episode.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bzzz_console.domain.state import ThreadState
from bzzz_console.domain.threads import MessageType, ThreadMessage, Vote
from bzzz_console.store.repo import Store, new_id
from bzzz_console.store.tables import EpisodeRow

_WORD = re.compile(r"[a-z0-9]{4,}")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def excerpt(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def lessons_from(thread: ThreadState, outcome: str, vote: Vote | None) -> list[str]:
    """Plain statements an agent can use next time: what was decided, what was objected to, what stalled."""
    messages = thread.messages
    lessons: list[str] = []
    proposals = [m for m in messages if m.type is MessageType.PROPOSAL]
    objections = [m for m in messages if m.type is MessageType.DISAGREE]
    if outcome == "consensus" and vote is not None and proposals:
        rounds = len(proposals)
        lessons.append(
            f"Consensus on '{thread.topic}' after {rounds} proposal(s): {excerpt(proposals[-1].content, 120)}"
        )
    for objection in objections[-2:]:
        lessons.append(f"{objection.author} objected: {excerpt(objection.content, 120)}")
    if outcome != "consensus":
        lessons.append(
            f"'{thread.topic}' ended as {outcome} after {thread.turn_count} turns without agreement."
        )
    return lessons


def make_episodes(thread: ThreadState, outcome: str, summary: str, vote: Vote | None) -> list[EpisodeRow]:
    lessons = lessons_from(thread, outcome, vote)
    return [
        EpisodeRow(
            id=new_id("ep", 6),
            agent_id=p.agent_id,
            project=thread.project,
            thread_id=thread.id,
            topic=thread.topic,
            participants=thread.participant_ids,
            summary=summary,
            outcome=outcome,
            lessons=lessons,
        )
        for p in thread.participants
    ]


class EpisodeCache:
    """An agent's episodes per project, read from the store once and dropped when the agent learns more."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[tuple[str, str], list[EpisodeRow]] = {}

    def of(self, agent_id: str, project: str) -> list[EpisodeRow]:
        key = (agent_id, project)
        if key not in self._cache:
            self._cache[key] = self.store.episodes(agent_id, project)
        return self._cache[key]

    def forget(self, agent_id: str, project: str) -> None:
        self._cache.pop((agent_id, project), None)


def recall(episodes: Sequence[EpisodeRow], about: str, k: int) -> list[str]:
    """The lessons of the ``k`` episodes (of one agent in one project) most relevant to ``about``."""
    if k <= 0:
        return []
    wanted = _words(about)
    ranked = sorted(
        enumerate(episodes),
        key=lambda item: (-len(wanted & _words(item[1].topic + " " + item[1].summary)), item[0]),
    )
    out: list[str] = []
    for _, episode in ranked[:k]:
        out.append(f"[{episode.outcome}] {episode.topic}: {excerpt(episode.summary, 140)}")
        out.extend(episode.lessons[:2])
    return out


def fit_history(messages: Sequence[ThreadMessage], budget_tokens: int) -> list[ThreadMessage]:
    """Newest messages that fit the budget, always keeping the opening message and the latest proposal.

    A safety net for long threads; the cost optimizer does the smarter compression.
    """
    if not messages:
        return []
    total = 0
    kept: list[ThreadMessage] = []
    pinned = {messages[0].id}
    latest_proposal = next((m for m in reversed(messages) if m.type is MessageType.PROPOSAL), None)
    if latest_proposal is not None:
        pinned.add(latest_proposal.id)
    for message in reversed(messages):
        cost = len(message.content) // 4 + 12
        if message.id in pinned or total + cost <= budget_tokens:
            kept.append(message)
            total += cost
    return kept[::-1]
