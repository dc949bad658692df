"""What makes a decision well formed, whoever sends it: the console, ``escalations answer``, MCP or a peer.

Pure: these checks need nothing but the command and the configured cap. Whether a well-formed decision can be
carried out on this node (is there a cheaper model, an agent to stop, a free agent to take over) needs the node's
state: :mod:`bzzz_console.runtime.escalation.checks`. Both run before anything is recorded, so a refused decision
leaves the escalation open.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bzzz_console.domain import commands as cmd
from bzzz_console.domain.errors import CommandError
from bzzz_console.domain.principals import shown_as
from bzzz_console.domain.text import usd


class InvalidDecision(ValueError):
    """A decision refused before it is recorded. ``field`` names what is wrong in the terms of the MCP tool's
    arguments (``amount_usd``, ``text``, ``to``, ``model``, ``agent_id``, ``escalation_id``), so each surface can
    point at its own spelling of it (an MCP argument, a CLI option)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_amount(amount: object, max_raise_usd: float) -> float:
    """A budget raise in USD: a finite number above 0 and at most the cap; returned as a float.

    NaN and infinity are refused by name: ``nan > 0`` is False but ``inf > 0`` is True, and either would be
    stored as a limit nothing can compare against (NaN becomes NULL in SQLite, ``Infinity`` is not JSON).
    """
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise InvalidDecision("amount_usd", f"raise the budget by a number of USD, not {amount!r}")
    value = float(amount)
    if not math.isfinite(value):
        raise InvalidDecision("amount_usd", f"raise the budget by a finite amount of USD, not {value!r}")
    if value <= 0:
        raise InvalidDecision("amount_usd", f"raise the budget by a positive amount of USD, not {value:g}")
    if value > max_raise_usd:
        # 1e308 would print 309 digits
        shown = usd(value, 2, grouped=True) if value < 1e12 else f"${value:.3g}"
        raise InvalidDecision(
            "amount_usd",
            f"raise the budget by at most {usd(max_raise_usd, 2, grouped=True)} at once (budgets.max_raise_usd), "
            f"not {shown}",
        )
    return value


def check_decision(command: cmd.Decision, *, max_raise_usd: float) -> None:
    """Refuse a malformed decision with InvalidDecision; the message says what would be accepted."""
    if not (command.escalation_id or "").strip():
        raise InvalidDecision("escalation_id", "name the escalation to decide")
    if isinstance(command, cmd.Reject) and not command.reason.strip():
        raise InvalidDecision("text", "a rejection needs a reason")
    if isinstance(command, cmd.Reply) and not command.text.strip():
        raise InvalidDecision("text", "a reply needs text")
    if isinstance(command, cmd.Reassign) and not command.to.strip():
        raise InvalidDecision("to", "reassign to an agent id or a role")
    if isinstance(command, cmd.RaiseBudget):
        check_amount(command.amount_usd, max_raise_usd)
    if isinstance(command, cmd.DowngradeModel) and command.model is not None and not command.model.strip():
        raise InvalidDecision(
            "model", "name the model to switch to, or leave it out for the next cheaper one"
        )


def failure_note(failure: Mapping[str, Any] | None) -> str | None:
    """How a decision that was recorded but could not be applied is shown (kept as ``context["last_error"]`` of
    the reopened escalation): what was decided, by whom, and why it failed."""
    if not isinstance(failure, Mapping):
        return None
    return (
        f"the last decision ({failure.get('kind', '?')} by {failure.get('by', '?')}) could not be applied: "
        f"{failure.get('error', 'unknown error')}"
    )


def validate_decision(command: cmd.Decision, max_raise_usd: float) -> None:
    """The form of a decision (text, amounts under ``budgets.max_raise_usd`` …), checked by every path; a
    CommandError naming the field if it is wrong."""
    try:
        check_decision(command, max_raise_usd=max_raise_usd)
    except InvalidDecision as exc:
        raise CommandError(str(exc), exc.field) from None


def decision_record(command: cmd.Decision) -> dict[str, Any]:
    """What is stored and signed of a decision: its kind, who made it (as shown), and its arguments."""
    data: dict[str, Any] = {"kind": command.kind, "by": shown_as(command.operator, command.label)}
    if command.surface:
        data["surface"] = command.surface
    for name in ("note", "reason", "text", "to", "amount_usd", "model"):
        value = getattr(command, name, None)
        if value not in (None, ""):
            data[name] = value
    return data
