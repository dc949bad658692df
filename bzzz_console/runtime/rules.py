"""Escalation rules as data (``agents/escalation.toml``) and their evaluation against a thread's facts.

Evaluation is pure: the caller gathers :class:`ThreadFacts` (from memory and the store) and the time from its
clock, so tests move time instead of sleeping.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bzzz_console.domain.errors import ConfigError
from bzzz_console.domain.threads import PRIORITIES

CONDITIONS = (
    "thread_duration",
    "no_progress",
    "disagreement_count",
    "no_resolution",
    "error_rate",
    "budget",
    "request_human",
    "model_trouble",
)
ACTIONS = ("notify_human", "request_expert", "escalate_to_architect", "create_decision_thread")
EXPIRY_ACTIONS = ("hold", "approve", "reject")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    threshold: Any
    timeframe: timedelta | None = None
    min_calls: int = 1


@dataclass(frozen=True, slots=True)
class Action:
    type: str
    target: str | None = None
    expertise: tuple[str, ...] = ()
    priority: str | None = None
    participants: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    conditions: tuple[Condition, ...]
    actions: tuple[Action, ...]
    priority: str = "medium"
    deadline: timedelta = timedelta(hours=1)
    on_expiry: str = "hold"
    options: tuple[str, ...] = ()

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(c.type for c in self.conditions)

    @property
    def effective_priority(self) -> str:
        """``escalate_to_architect`` may raise the rule's priority, never lower it."""
        wanted = [a.priority for a in self.actions if a.type == "escalate_to_architect" and a.priority]
        return max([self.priority, *wanted], key=PRIORITIES.index)


@dataclass(frozen=True, slots=True)
class ThreadFacts:
    """What the rules look at, gathered at one instant."""

    created_at: datetime
    last_progress_at: datetime
    disagreements: int = 0
    first_disagreement_at: datetime | None = None
    resolved: bool = False
    calls: Sequence[tuple[datetime, bool]] = ()
    """(when, ok) of the thread's model calls, oldest first."""
    budget_fraction: float = 0.0
    requested: bool = False


def holds(condition: Condition, facts: ThreadFacts, now: datetime) -> bool:
    kind, threshold, window = condition.type, condition.threshold, condition.timeframe or timedelta(0)
    if kind == "thread_duration":
        return bool(now - facts.created_at >= threshold)
    if kind == "no_progress":
        return bool(threshold) and now - facts.last_progress_at >= window
    if kind == "disagreement_count":
        return facts.disagreements >= int(threshold)
    if kind == "no_resolution":
        started = facts.first_disagreement_at
        return bool(threshold) and not facts.resolved and started is not None and now - started >= window
    if kind == "error_rate":
        recent = [ok for when, ok in facts.calls if condition.timeframe is None or now - when <= window]
        failed = sum(1 for ok in recent if not ok)
        return len(recent) >= condition.min_calls and failed / len(recent) >= float(threshold)
    if kind == "budget":
        return facts.budget_fraction >= float(threshold)
    if kind == "request_human":
        return facts.requested == bool(threshold)
    return False


def matching(rules: Sequence[Rule], facts: ThreadFacts, now: datetime) -> list[Rule]:
    return [r for r in rules if r.conditions and all(holds(c, facts, now) for c in r.conditions)]


def parse_duration(value: Any, where: str) -> timedelta:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=float(value))
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise ConfigError(f'{where}: expected a duration like "90s", "30m", "2h" or "1d", got {value!r}')
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


def _condition(raw: Any, where: str) -> Condition:
    if not isinstance(raw, Mapping):
        raise ConfigError(f'{where}: expected a table like {{ type = "disagreement_count", threshold = 3 }}')
    kind = raw.get("type")
    if kind not in CONDITIONS:
        raise ConfigError(f"{where}.type: expected one of {', '.join(CONDITIONS)}, got {kind!r}")
    unknown = set(raw) - {"type", "threshold", "timeframe", "min_calls"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    threshold = raw.get("threshold", True)
    if kind == "thread_duration":
        threshold = parse_duration(threshold, f"{where}.threshold")
    elif kind in ("disagreement_count", "error_rate", "budget"):
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold < 0:
            raise ConfigError(f"{where}.threshold: expected a non-negative number, got {threshold!r}")
    elif not isinstance(threshold, bool):
        raise ConfigError(f"{where}.threshold: expected true or false, got {threshold!r}")
    timeframe = parse_duration(raw["timeframe"], f"{where}.timeframe") if "timeframe" in raw else None
    if timeframe is None and kind in ("no_progress", "no_resolution"):
        raise ConfigError(f'{where}.timeframe: required for {kind} (how long, e.g. "30m")')
    min_calls = raw.get("min_calls", 1)
    if not isinstance(min_calls, int) or isinstance(min_calls, bool) or min_calls < 1:
        raise ConfigError(f"{where}.min_calls: expected a whole number ≥ 1, got {min_calls!r}")
    return Condition(kind, threshold, timeframe, min_calls)


def _strings(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        raise ConfigError(f"{where}: expected a list of names, got {raw!r}")
    return tuple(raw)


def _action(raw: Any, where: str) -> Action:
    if not isinstance(raw, Mapping):
        raise ConfigError(f'{where}: expected a table like {{ type = "notify_human" }}')
    kind = raw.get("type")
    if kind not in ACTIONS:
        raise ConfigError(f"{where}.type: expected one of {', '.join(ACTIONS)}, got {kind!r}")
    unknown = set(raw) - {"type", "target", "expertise", "priority", "participants"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    priority = raw.get("priority")
    if priority is not None and priority not in PRIORITIES:
        raise ConfigError(f"{where}.priority: expected one of {', '.join(PRIORITIES)}, got {priority!r}")
    expertise = _strings(raw.get("expertise", []), f"{where}.expertise")
    participants = _strings(raw.get("participants", []), f"{where}.participants")
    if kind == "request_expert" and not expertise:
        raise ConfigError(f"{where}.expertise: request_expert needs at least one capability")
    return Action(kind, raw.get("target"), expertise, priority, participants)


def _rule(raw: Any, index: int, path: Path) -> Rule:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str) or not raw["name"].strip():
        raise ConfigError(f"escalation rules {path}: rule #{index + 1}: field 'name' is required")
    where = f"escalation rules {path}: rule {raw['name']!r}"
    unknown = set(raw) - {"name", "priority", "deadline", "on_expiry", "options", "conditions", "actions"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    priority = raw.get("priority", "medium")
    if priority not in PRIORITIES:
        raise ConfigError(
            f"{where}: field 'priority': expected one of {', '.join(PRIORITIES)}, got {priority!r}"
        )
    on_expiry = raw.get("on_expiry", "hold")
    if on_expiry not in EXPIRY_ACTIONS:
        raise ConfigError(
            f"{where}: field 'on_expiry': expected one of {', '.join(EXPIRY_ACTIONS)}, got {on_expiry!r}"
        )
    conditions = raw.get("conditions")
    if not isinstance(conditions, list) or not conditions:
        raise ConfigError(f"{where}: field 'conditions': expected a non-empty list")
    actions = raw.get("actions", [])
    if not isinstance(actions, list):
        raise ConfigError(f"{where}: field 'actions': expected a list")
    return Rule(
        name=raw["name"].strip(),
        conditions=tuple(
            _condition(c, f"{where}: field 'conditions[{i}]'") for i, c in enumerate(conditions)
        ),
        actions=tuple(_action(a, f"{where}: field 'actions[{i}]'") for i, a in enumerate(actions)),
        priority=priority,
        deadline=parse_duration(raw.get("deadline", "1h"), f"{where}: field 'deadline'"),
        on_expiry=on_expiry,
        options=_strings(raw.get("options", []), f"{where}: field 'options'"),
    )


def load_rules(path: Path) -> list[Rule]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"escalation rules {path}: {exc}") from None
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list):
        raise ConfigError(f"escalation rules {path}: expected [[rules]] tables")
    rules = [_rule(raw, i, path) for i, raw in enumerate(raw_rules)]
    names = [r.name for r in rules]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        where = " and ".join(f"#{i + 1}" for i, n in enumerate(names) if n == duplicate)
        raise ConfigError(
            f"escalation rules {path}: rule {duplicate!r}: field 'name': defined twice (rules {where})"
        )
    return rules
