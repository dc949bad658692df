"""Operator intent: frozen commands the UI, the CLI and remote consoles submit to the runtime.

The runtime is the only place that applies them, so a decision is recorded once, in one transaction, whoever
sent it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    operator: str = "operator"
    """Who decides: the OS user of a console or CLI, an operator token's name, or a remote node's operator."""
    label: str = ""
    """A name the operator chose to be shown as (``--operator``): recorded next to ``operator``, never instead."""
    surface: str = ""
    """Where it was decided: ``console``, ``cli``, ``mcp token <id>``, ``mcp-stdio``, ``peer <id>`` (recorded with
    the decision, signed in the audit trail)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AddTask(Command):
    kind: Literal["add_task"] = "add_task"
    title: str
    description: str = ""
    roles: tuple[str, ...] = ("architect", "reviewer")
    priority: str = "medium"
    project: str = "default"


@dataclass(frozen=True, slots=True, kw_only=True)
class PostHumanMessage(Command):
    kind: Literal["post_human_message"] = "post_human_message"
    thread_id: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Approve(Command):
    kind: Literal["approve"] = "approve"
    escalation_id: str
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reject(Command):
    kind: Literal["reject"] = "reject"
    escalation_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply(Command):
    kind: Literal["reply"] = "reply"
    escalation_id: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Reassign(Command):
    kind: Literal["reassign"] = "reassign"
    escalation_id: str
    to: str
    """An agent id or a role name."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RaiseBudget(Command):
    kind: Literal["raise_budget"] = "raise_budget"
    escalation_id: str
    amount_usd: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DowngradeModel(Command):
    kind: Literal["downgrade_model"] = "downgrade_model"
    escalation_id: str
    model: str | None = None
    """None: the next cheaper model of the configured ladder."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Terminate(Command):
    kind: Literal["terminate"] = "terminate"
    agent_id: str
    escalation_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HandBack(Command):
    """Budget escalations: the agent writes a final answer from its reserve and the thread closes as partial."""

    kind: Literal["hand_back"] = "hand_back"
    escalation_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause(Command):
    kind: Literal["pause"] = "pause"
    agent_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume(Command):
    kind: Literal["resume"] = "resume"
    agent_id: str


OperatorCommand = (
    AddTask
    | PostHumanMessage
    | Approve
    | Reject
    | Reply
    | Reassign
    | RaiseBudget
    | DowngradeModel
    | Terminate
    | HandBack
    | Pause
    | Resume
)


Decision = Approve | Reject | Reply | Reassign | RaiseBudget | DowngradeModel | Terminate | HandBack
"""The commands that answer an escalation."""
