"""Who may decide an escalation: never the agent it is about (or that raised it), never an operator listed as that
agent's owner, and, under the two-person rule, not one operator alone.

Used by every path that records a decision: the runtime (console, MCP ``bzzz_decide``, peers' requests) and
``bzzz-console escalations answer``, which writes to the store without a runtime.
"""

from __future__ import annotations

from collections.abc import Iterable

from bzzz_console.config import ConfigError, Settings
from bzzz_console.config_sections import EscalationSettings
from bzzz_console.domain.threads import PRIORITIES
from bzzz_console.store.tables import EscalationRow

PRIORITY_ALIASES = {"critical": "urgent"}


class NotAllowed(RuntimeError):
    """This operator may not decide this escalation; the message says why and who may."""


def approvals_needed(settings: EscalationSettings, row: EscalationRow) -> int:
    wanted = {PRIORITY_ALIASES.get(name, name) for name in settings.two_person}
    return 2 if row.priority in wanted or row.rule in wanted else 1


def check_two_person_names(settings: EscalationSettings, rule_names: Iterable[str]) -> None:
    """A misspelt entry would silently protect nothing: refuse it when the rules are loaded."""
    known = {*PRIORITIES, *PRIORITY_ALIASES, *rule_names}
    for name in settings.two_person:
        if name not in known:
            raise ConfigError(
                f"key 'escalation.two_person': {name!r} is neither a priority ({', '.join(PRIORITIES)}) nor "
                f"the name of an escalation rule ({', '.join(sorted(set(rule_names)))})"
            )


def owners_of(settings: Settings, agent_id: str) -> set[str]:
    from bzzz_console.security.tokens import TokenBook

    return TokenBook(settings.resolved_data_dir()).owners_of(agent_id)


def check_may_decide(settings: Settings, row: EscalationRow, operator: str) -> None:
    """Raises NotAllowed when ``operator`` (an identity, not a label) may not answer ``row``."""
    agent = row.agent_id
    if not agent:
        return
    if operator == agent:
        raise NotAllowed(f"{operator} may not answer escalation {row.id}: it was raised by or about {agent}")
    if operator in owners_of(settings, agent):
        raise NotAllowed(
            f"{operator} is listed as an owner of {agent} (its agent token), and escalation {row.id} is about "
            f"{agent}: another operator must decide it"
        )
