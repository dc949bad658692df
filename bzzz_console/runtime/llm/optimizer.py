"""The seed's cost optimizer (§6.3): compress a thread's history before it reaches the model, and send routine
turns to a cheaper model.

``plan_context`` decides what history a turn's prompt carries. Nothing changes while the history is short. Once
its estimate passes ``compress_at`` × the token budget, or it holds more than ``summarize_after`` messages, the
opening message (the task statement) and the last ``keep_recent`` messages stay verbatim and everything between
is folded into one extractive summary message: everything a decision has since settled becomes ONE tally line
(which decisions settled it, and counts by kind: the decisions themselves are pinned and say what was agreed, so
the line stays one line however many rounds the thread has had); after the latest decision, one line per
proposal, disagreement, question, answer and note (a clipped excerpt), and counts for agreements and comments.
No model is asked to summarize, so the same input always gives the same plan.

Some messages are *pinned*: kept, in thread order, even inside the folded span.

* every ``decision`` and every human message (type ``human`` or role ``human``);
* the latest ``proposal`` (what the thread is voting on);
* every open question. Walking the thread in order, an ``answer`` whose ``reply_to`` names an open question
  closes that question; an ``answer`` without ``reply_to`` closes the most recent open question before it;
  an ``answer`` whose ``reply_to`` names anything else closes nothing. Questions still open at the end are open.

Pinned messages are sent verbatim, with one exception that loses nothing: a pinned decision that repeats whole
sentences of an earlier decision word for word (who proposed and agreed, the same follow-up note) says so in one
reference — ``(+ 2 sentences as in decision #13)`` — since that earlier decision is pinned too. The last
``keep_recent`` messages are always verbatim.

The summary message sits where the first message it folds sat (its ``seq``), so the history stays in ``seq``
order; unless messages right after the opening are pinned, it comes straight after the opening. If the
compressed history still exceeds the budget, the oldest summary lines are dropped (never a pinned message);
if compressing would not save anything, the full history is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from bzzz_console.domain.threads import HUMAN_ROLE, SYSTEM_AUTHOR, MessageType, ThreadMessage
from bzzz_console.runtime.llm.prompts import estimate_tokens, format_history_line

EXCERPT_CHARS = 90
"""How much of a folded message its summary line quotes."""
REPEAT_MIN_CHARS = 24
"""Sentences at least this long that a pinned decision repeats word for word from an earlier one are elided."""
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

_VERBS: dict[MessageType, str] = {
    MessageType.PROPOSAL: "proposed",
    MessageType.DISAGREE: "disagreed",
    MessageType.QUESTION: "asked",
    MessageType.ANSWER: "answered",
}


@dataclass(frozen=True, slots=True)
class ContextPlan:
    history: tuple[ThreadMessage, ...]
    """What goes into the prompt, in order; may hold ONE synthetic ``summary`` message."""
    summarized: tuple[int, int] | None
    """The ``seq`` range folded into the summary (pinned messages inside it are still sent verbatim)."""
    pinned: tuple[str, ...]
    """Ids of the messages that are never compressed away: the opening and the pinned messages, in order."""
    full_tokens: int
    """Estimate of the whole history as ``format_history_line`` renders it."""
    sent_tokens: int
    """Estimate of ``history``."""

    @property
    def ratio(self) -> float:
        """The share of tokens saved: ``1 - sent/full``, 0 when nothing was saved."""
        if self.full_tokens <= 0 or self.sent_tokens >= self.full_tokens:
            return 0.0
        return 1.0 - self.sent_tokens / self.full_tokens


def message_tokens(message: ThreadMessage) -> int:
    return estimate_tokens(format_history_line(message))


def history_tokens(messages: Sequence[ThreadMessage]) -> int:
    return sum(message_tokens(m) for m in messages)


def _clip(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The start of ``text`` on one line, at most ``limit`` characters, cut at a word boundary when one is near."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    if not flat[limit - 1].isspace() and " " in cut[limit // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "…"


def _is_human(message: ThreadMessage) -> bool:
    return message.type is MessageType.HUMAN or message.role == HUMAN_ROLE


def open_questions(messages: Sequence[ThreadMessage]) -> list[ThreadMessage]:
    """The questions not yet answered, in thread order (the rule is in the module docstring)."""
    open_: list[ThreadMessage] = []
    for message in messages:
        if message.type is MessageType.QUESTION:
            open_.append(message)
        elif message.type is MessageType.ANSWER and open_:
            if message.reply_to is None:
                open_.pop()
            else:
                open_ = [q for q in open_ if q.id != message.reply_to]
    return open_


def pinned_ids(messages: Sequence[ThreadMessage]) -> set[str]:
    """Ids of the messages no compression may drop (the opening is not included)."""
    pinned = {m.id for m in messages if m.type is MessageType.DECISION or _is_human(m)}
    pinned.update(q.id for q in open_questions(messages))
    latest = next((m for m in reversed(messages) if m.type is MessageType.PROPOSAL), None)
    if latest is not None:
        pinned.add(latest.id)
    return pinned


_NOUNS: dict[MessageType, str] = {
    MessageType.PROPOSAL: "proposal",
    MessageType.DISAGREE: "objection",
    MessageType.QUESTION: "question",
    MessageType.ANSWER: "answer",
    MessageType.AGREE: "agreement",
    MessageType.COMMENT: "comment",
}


def _tally(messages: Sequence[ThreadMessage], kinds: Sequence[MessageType], *, authors: bool = True) -> str:
    """``"2 proposals (architect-1); 1 objection (security-1)"`` for the ``kinds`` present, in that order;
    ``"2 proposals, 1 objection"`` without ``authors``."""
    parts = []
    for kind in kinds:
        count = sum(1 for m in messages if m.type is kind)
        if count:
            who = f" ({', '.join(sorted({m.author for m in messages if m.type is kind}))})" if authors else ""
            parts.append(f"{count} {_NOUNS[kind]}{'s' * (count != 1)}{who}")
    return ("; " if authors else ", ").join(parts)


def _summary_parts(
    folded: Sequence[ThreadMessage], decisions: Sequence[ThreadMessage], seq_of: Mapping[str, int]
) -> tuple[str, list[str]]:
    """The header and the summary lines, oldest first.

    Folded messages older than the latest decision are *settled*: together they become one tally line naming
    the decisions that closed them (pinned, and they say what was agreed). After the latest decision, every
    proposal, objection, question, answer and note gets its own line; agreements and comments are counted.
    """
    lines: list[str] = []
    settled_until = decisions[-1].seq if decisions else 0
    settled = [m for m in folded if m.seq < settled_until]
    if settled:
        closing = [
            d
            for i, d in enumerate(decisions)
            if any((decisions[i - 1].seq if i else 0) < m.seq < d.seq for m in settled)
        ]
        by = ", ".join(f"#{d.seq}" for d in closing)
        tally = _tally(settled, list(_NOUNS), authors=False)
        plural = "s" * (len(closing) != 1)
        lines.append(f"- #{settled[0].seq}–#{settled[-1].seq}, settled by decision{plural} {by}: {tally}")
    open_part = [m for m in folded if m.seq > settled_until]
    for m in open_part:
        if m.type in (MessageType.AGREE, MessageType.COMMENT):
            continue
        verb = _VERBS.get(m.type, "noted")
        if m.type is MessageType.ANSWER and m.reply_to is not None and m.reply_to in seq_of:
            verb += f" #{seq_of[m.reply_to]}"
        lines.append(f"- #{m.seq} {m.author} {verb}: {_clip(m.content)}")
    counts = _tally(open_part, (MessageType.AGREE, MessageType.COMMENT))
    since = f"after decision #{settled_until}: " if settled_until else ""
    header = f"Summary of #{folded[0].seq}–#{folded[-1].seq}" + (f" ({since}{counts})" if counts else "")
    return header + ":", lines


def _dedupe_decisions(pinned: Sequence[ThreadMessage]) -> list[ThreadMessage]:
    """``pinned`` with each decision's sentences that repeat an earlier decision word for word (who proposed
    and agreed, the same follow-up boilerplate) replaced by one reference to it; the earlier decision is pinned
    too, so every sentence is still in the prompt, once. Other messages and decisions without repeats as is."""
    seen: dict[str, int] = {}
    out: list[ThreadMessage] = []
    for m in pinned:
        if m.type is not MessageType.DECISION:
            out.append(m)
            continue
        kept: list[str] = []
        sources: list[int] = []
        for sentence in _SENTENCE_END.split(m.content.strip()):
            source = seen.get(sentence) if len(sentence) >= REPEAT_MIN_CHARS else None
            if source is None:
                kept.append(sentence)
                seen.setdefault(sentence, m.seq)
            else:
                sources.append(source)
        if not sources or not kept:
            out.append(m)
            continue
        where = ", ".join(f"#{n}" for n in sorted(set(sources)))
        plural = "s" * (len(sources) != 1)
        text = " ".join([*kept, f"(+ {len(sources)} sentence{plural} as in decision {where})"])
        out.append(replace(m, content=text, tokens=estimate_tokens(text)))
    return out


def _summary_message(folded: Sequence[ThreadMessage], text: str) -> ThreadMessage:
    first, last = folded[0], folded[-1]
    return ThreadMessage(
        id=f"{first.thread_id}#summary-{first.seq}-{last.seq}",
        thread_id=first.thread_id,
        seq=first.seq,
        author=SYSTEM_AUTHOR,
        role="system",
        type=MessageType.SUMMARY,
        content=text,
        created_at=first.created_at,
        tokens=estimate_tokens(text),
    )


def plan_context(
    messages: Sequence[ThreadMessage],
    *,
    token_budget: int,
    compress_at: float = 0.8,
    summarize_after: int = 12,
    keep_recent: int = 6,
) -> ContextPlan:
    """What history to send for one turn (rules in the module docstring). Pure and deterministic."""
    messages = tuple(messages)
    full = history_tokens(messages)
    must_keep = pinned_ids(messages)
    pinned = tuple(m.id for i, m in enumerate(messages) if i == 0 or m.id in must_keep)
    uncompressed = ContextPlan(messages, None, pinned, full, full)
    if full <= compress_at * token_budget and len(messages) <= summarize_after:
        return uncompressed
    recent_from = max(1, len(messages) - max(keep_recent, 0))
    span = messages[1:recent_from]
    folded = [m for m in span if m.id not in must_keep]
    if not folded:
        return uncompressed
    seq_of = {m.id: m.seq for m in messages}
    decisions = [m for m in messages if m.type is MessageType.DECISION]
    header, lines = _summary_parts(folded, decisions, seq_of)
    kept = _dedupe_decisions([m for m in span if m.id in must_keep])
    before = [m for m in kept if m.seq < folded[0].seq]
    after = [m for m in kept if m.seq > folded[0].seq]
    head = (messages[0], *before)
    tail = (*after, *messages[recent_from:])
    kept_tokens = history_tokens(head) + history_tokens(tail)

    def build(shown: list[str]) -> ThreadMessage:
        omitted = len(lines) - len(shown)
        note = [f"- ({omitted} earlier line{'s' * (omitted != 1)} omitted)"] if omitted else []
        return _summary_message(folded, "\n".join([header, *note, *shown]))

    summary = build(lines)
    drop = 0
    while drop < len(lines) and kept_tokens + message_tokens(summary) > token_budget:
        drop += 1
        summary = build(lines[drop:])
    sent = kept_tokens + message_tokens(summary)
    if sent >= full:
        return uncompressed
    return ContextPlan((*head, summary, *tail), (folded[0].seq, folded[-1].seq), pinned, full, sent)


def choose_model(model: str, ladder: Mapping[str, str], *, routine: bool) -> str:
    """One step down the ``ladder`` (e.g. ``{"gpt-4o": "gpt-4o-mini"}``) for a routine turn; else ``model``."""
    return ladder.get(model, model) if routine else model


def is_routine_turn(agent_id: str, messages: Sequence[ThreadMessage]) -> bool:
    """True when the turn is only a vote on a settled plan, so a cheaper model can take it.

    That is: there is a proposal, this agent did not make it and has not voted (agree/disagree) since, and
    since the latest proposal nobody disagreed, no question is still open and no human has spoken.
    """
    index = next(
        (i for i in range(len(messages) - 1, -1, -1) if messages[i].type is MessageType.PROPOSAL), None
    )
    if index is None or messages[index].author == agent_id:
        return False
    since = messages[index + 1 :]
    for message in since:
        if message.type is MessageType.DISAGREE or _is_human(message):
            return False
        if message.author == agent_id and message.type is MessageType.AGREE:
            return False
    proposal_seq = messages[index].seq
    return not any(q.seq > proposal_seq for q in open_questions(messages))
