"""Noticing a model that is of no use in a thread, early, and saying why in words.

Small and local models fail quietly: they answer in prose and never call a tool, their calls are all malformed,
or they write the same reply every turn. Left alone the thread burns its turns (and many model calls) until it
stalls with "no consensus". Instead, after a few such turns in a row the agent escalates to the operator with the
reason and what to do about it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from bzzz_console.domain.state import Agent, ThreadState
from bzzz_console.domain.text import inert_line

UNPRODUCTIVE_TURNS = 4
"""Turns in a row without any tool call before the agent escalates (the issue's "4 turns")."""
FAILED_CALLS = 4
"""Tool calls in a row that failed (malformed arguments, unknown tools) before the agent escalates."""
FAILED_ROUNDS = 2
"""Rounds of a turn in a row whose calls all failed before the turn ends early: the model is told the errors
once more, not ``max_tool_rounds`` times."""
SAME_REPLIES = 3
"""The same message this many times in a row from one agent is a model going round in circles."""
WRONG_FORM_NOTE = (
    "Note: you wrote your tool call into the message text ({form}) instead of calling the tool. It was run this "
    "time; from now on call tools through the tool-calling interface."
)
CUT_NOTE = (
    "Your reply was cut off at the output limit ({limit} tokens) before it was complete. Reply again, shorter: "
    "one tool call with brief arguments."
)
CUT_MARK = "\n\n[cut off: the model reached its output limit]"
MODEL_TROUBLE_OPTIONS = ("downgrade_model", "approve", "reassign", "hand_back", "terminate")
"""What the operator can do (decision names): another model, carry on after fixing the server, another agent,
the partial work, or stop the agent."""


@dataclass
class TurnReport:
    """What one agent turn did with the tools."""

    calls: int = 0
    worked: int = 0
    failed_rounds: int = 0
    """Rounds in a row (so far) whose calls all failed."""


@dataclass
class ModelWatch:
    """One agent's recent turns in one thread."""

    without_tools: int = 0
    failing: int = 0
    """Tool calls in a row that failed."""
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=FAILED_CALLS))
    told_form: bool = False
    since: int = 0
    """How many messages the agent had posted at the last reset: only later ones count as repeats."""

    def after(self, report: TurnReport) -> None:
        if report.calls:
            self.without_tools = 0
        else:
            self.without_tools += 1

    def call(self, ok: bool, error: str = "") -> None:
        if ok:
            self.failing = 0
            self.errors.clear()
        else:
            self.failing += 1
            self.errors.append(error)

    def reset(self, agent: Agent, thread: ThreadState) -> None:
        """After an escalation: the operator's answer gives the model a fresh start."""
        self.without_tools = self.failing = 0
        self.errors.clear()
        self.since = sum(1 for m in thread.messages if m.author == agent.id)


def verdict(watch: ModelWatch, agent: Agent, model: str, thread: ThreadState) -> str | None:
    """Why the agent should stop and ask the operator, in words; None while its turns are of use."""
    if watch.without_tools >= UNPRODUCTIVE_TURNS:
        return (
            f"{model} has not used the tools in {watch.without_tools} turns of {agent.id}; it may not support "
            "function calling — choose a tool-capable model"
        )
    if watch.failing >= FAILED_CALLS:
        shown = "; ".join(inert_line(e)[:160] for e in watch.errors)
        return f"{agent.id}'s last {watch.failing} tool calls failed ({model}): {shown}"
    # The same words as an answer to the same thing: agreeing to each new revision of a proposal with the same
    # sentence is a vote per revision (its reply_to differs), not a model going round in circles.
    said = [(m.type, m.content, m.reply_to) for m in thread.messages if m.author == agent.id][watch.since :]
    if len(said) >= SAME_REPLIES and len(set(said[-SAME_REPLIES:])) == 1:
        return (
            f"{agent.id} ({model}) wrote the same message {SAME_REPLIES} times in a row: "
            f"{inert_line(said[-1][1])[:160]!r}"
        )
    return None
