"""What the original Go BZZZ nodes put on the wire, read into plain values (``docs/wire-format.md``).

Checked against the Go source (github.com/anthonyrawlins/bzzz): the two task shapes of ``task_announcement``
(test/task_simulator.go ``announceRandomTask`` and ``runCoordinationScenario``, cmd/test_coordination.go), and the
``meta_discussion`` escalation (pkg/coordination/meta_coordinator.go ``escalateSession``) and ``task_help_request``
(github/integration.go ``requestAssistance``) an operator should see. Go's ``encoding/json`` writes numbers as
numbers and nil slices as ``null``; a peer written in another language may send ``"15"`` or ``15.0``: each reads
as 15, anything else that cannot be used raises :class:`Unusable` with the counter it goes to.

A Go task's identity is (repository, number). Go names a repository ``owner/name`` in ``task_available`` but by
its bare name in ``dependencies``, ``blocked_by`` and scenario tasks (``"bzzz"``), and its own monitor reads only
``repository.name``: the key is therefore the name part, so ``deepblackcloud/hive#15``, a scenario's ``hive#15``
and a dependency on ``hive`` #15 are one task.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from bzzz_console.domain.threads import PRIORITIES

PRIORITY_NAMES = {1: "urgent", 2: "high", 3: "medium"}
"""Go scenario priorities (1 = most urgent); 4 and above are low, 0 (unset) and below are not a priority."""
MAX_NUMBER = 10**9
MAX_LIST = 32
_REPOSITORY = re.compile(r"^[A-Za-z0-9._-]{1,100}(/[A-Za-z0-9._-]{1,100})?$")
GO_TASK_SHAPES = ("task_available", "scenario_task")


class Unusable(ValueError):
    """Part of a peer's message that cannot be used: ``reason`` is the counter it goes to."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def whole_number(value: object, field: str) -> int:
    """A positive whole number as Go sends it (``15``), or as others may (``15.0``, ``"15"``)."""
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdecimal() and len(value.strip()) <= 10:
        number = int(value.strip())
    if number is None or not 0 < number < MAX_NUMBER:
        raise Unusable("bad_number", f"{field}: {value!r} is not a task number")
    return number


def priority_name(value: object) -> str | None:
    """Our priority for a Go ``priority`` (an int, 1 = most urgent) or one of ours by name; None if neither."""
    if isinstance(value, str) and value in PRIORITIES:
        return value
    try:
        number = whole_number(value, "priority")
    except Unusable:
        return None
    return PRIORITY_NAMES.get(number, "low")


def repository_of(value: object, field: str) -> str:
    """``owner/name`` or ``name``; from ``{"owner", "name"}`` as task_available sends it."""
    if isinstance(value, dict):
        owner, name = value.get("owner"), value.get("name")
        if not isinstance(name, str):
            raise Unusable("no_repository", f"{field}.name: missing")
        value = f"{owner}/{name}" if isinstance(owner, str) and owner else name
    if not isinstance(value, str) or not _REPOSITORY.match(value.strip()):
        raise Unusable("no_repository", f"{field}: {value!r} is not a repository (owner/name)")
    return value.strip()


def _strings(value: object, limit: int = 64) -> list[str]:
    if not isinstance(value, list):
        return []  # null (a nil slice in Go) or missing
    return [v.strip()[:limit] for v in value if isinstance(v, str) and v.strip()][:MAX_LIST]


def _text(value: object, limit: int) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class TaskRef:
    repository: str
    number: int

    @property
    def key(self) -> str:
        """The identity: repository name (no owner, lower case) and number."""
        return f"{self.repository.rsplit('/', 1)[-1].lower()}#{self.number}"

    @property
    def label(self) -> str:
        return f"{self.repository}#{self.number}"


def go_task_id(ref: TaskRef) -> str:
    """Our id of a Go task: the same on every node, whoever announced it."""
    return "go-" + hashlib.sha256(ref.key.encode()).hexdigest()[:20]


def _refs(value: object, field: str, number_field: str) -> list[dict[str, Any]]:
    """Dependencies (``{"repository", "task_number", "dependency_type"}``) or blockers; bad entries are left
    out (the rest of the task is still usable)."""
    found: list[dict[str, Any]] = []
    for i, item in enumerate(value if isinstance(value, list) else []):
        if not isinstance(item, dict):
            continue
        try:
            ref = TaskRef(
                repository_of(item.get("repository"), f"{field}[{i}].repository"),
                whole_number(item.get(number_field), f"{field}[{i}].{number_field}"),
            )
        except Unusable:
            continue
        entry: dict[str, Any] = {"repository": ref.repository, "task_number": ref.number, "key": ref.key}
        kind = _text(item.get("dependency_type"), 40)
        if kind:
            entry["dependency_type"] = kind
        found.append(entry)
    return found[:MAX_LIST]


@dataclass(frozen=True, slots=True)
class GoTask:
    """One Go task announcement, read: its reference, its shape, and the fields that shape carries (``title``
    and ``description`` only in task_available: a scenario task has none)."""

    ref: TaskRef
    shape: str
    details: dict[str, Any]

    @property
    def task_id(self) -> str:
        return go_task_id(self.ref)


def is_go_task(data: dict[str, Any]) -> bool:
    return data.get("type") in GO_TASK_SHAPES or isinstance(data.get("task"), dict) or "task_number" in data


def read_go_task(data: dict[str, Any]) -> GoTask:
    """A ``task_announcement``'s data in one of Go's two shapes; Unusable naming what is missing."""
    if data.get("type") == "scenario_task" or (
        "task_number" in data and not isinstance(data.get("task"), dict)
    ):
        return _scenario_task(data)
    task = data.get("task")
    if not isinstance(task, dict):
        raise Unusable("no_task", "task: missing (task_available carries the task as an object)")
    repository = data.get("repository")
    ref = TaskRef(repository_of(repository, "repository"), whole_number(task.get("number"), "task.number"))
    hours = task.get("estimated_hours")
    details: dict[str, Any] = {
        "title": _text(task.get("title"), 500) or None,
        "description": _text(task.get("description"), 20_000),
        "labels": _strings(task.get("labels")),
        "difficulty": _text(task.get("difficulty"), 32) or None,
        "task_type": _text(task.get("task_type"), 32) or None,
        "estimated_hours": hours
        if isinstance(hours, int | float) and not isinstance(hours, bool) and 0 <= hours < 100_000
        else None,
        "required_skills": _strings(task.get("required_skills")),
        "dependencies": _refs(task.get("dependencies"), "task.dependencies", "task_number"),
        "repository": ref.repository,
        "url": _text(repository.get("url"), 300) if isinstance(repository, dict) else "",
        "announced_by": _text(data.get("announced_by"), 64) or None,
    }
    if (priority := priority_name(task.get("priority"))) is not None:
        details["priority"] = priority
    return GoTask(ref, "task_available", details)


def _scenario_task(data: dict[str, Any]) -> GoTask:
    ref = TaskRef(
        repository_of(data.get("repository"), "repository"),
        whole_number(data.get("task_number"), "task_number"),
    )
    details: dict[str, Any] = {
        "scenario": _text(data.get("scenario_name"), 200) or None,
        "blocked_by": _refs(data.get("blocked_by"), "blocked_by", "task_number"),
    }
    if (priority := priority_name(data.get("priority"))) is not None:
        details["priority"] = priority
    return GoTask(ref, "scenario_task", details)


def merge_details(old: dict[str, Any], task: GoTask, announcer: str) -> dict[str, Any]:
    """What the store keeps after one more announcement: the fields this shape carries replace the old ones, the
    ones only the other shape carries stay (a scenario task does not erase a task_available's labels)."""
    return {
        "repository": task.ref.repository,
        **old,
        **task.details,
        "origin": "go",
        "number": task.ref.number,
        "key": task.ref.key,
        "shapes": sorted({*old.get("shapes", []), task.shape}),
        "announcer": announcer,
        "announcements": int(old.get("announcements", 0)) + 1,
    }


def title_of(details: dict[str, Any]) -> str:
    """The Go title, or for a scenario task a readable one: ``owner/name#42``."""
    return str(details.get("title") or f"{details['repository']}#{details['number']}")


def description_of(details: dict[str, Any], waiting_for: list[str]) -> str:
    """The Go description (or what a scenario task is) and the facts agents should know about, as text."""
    label = f"{details['repository']}#{details['number']}"
    text = details.get("description") or (
        f"Task {label} of the coordination scenario {details.get('scenario') or '?'!r}, announced by a Go "
        "BZZZ node (it carries no title or description)."
    )
    facts = [
        ("Repository", details.get("url") or details["repository"]),
        ("Labels", ", ".join(details.get("labels") or [])),
        ("Type", details.get("task_type")),
        ("Difficulty", details.get("difficulty")),
        (
            "Estimate",
            f"{details['estimated_hours']:g} h" if details.get("estimated_hours") is not None else None,
        ),
        ("Skills", ", ".join(details.get("required_skills") or [])),
        ("Depends on", ", ".join(dependency_labels(details))),
        ("Waiting for", ", ".join(waiting_for)),
    ]
    lines = [f"{name}: {value}" for name, value in facts if value]
    return text + ("\n\n" + "\n".join(lines) if lines else "")


def dependency_labels(details: dict[str, Any]) -> list[str]:
    return [
        f"{d['repository']}#{d['task_number']}"
        + (f" ({d['dependency_type']})" if d.get("dependency_type") else "")
        for d in depends_on(details)
    ]


def depends_on(details: dict[str, Any]) -> list[dict[str, Any]]:
    """Every task this one waits for: its dependencies and its blockers, once each."""
    seen: dict[str, dict[str, Any]] = {}
    for entry in [*details.get("dependencies", []), *details.get("blocked_by", [])]:
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            seen.setdefault(entry["key"], entry)
    return list(seen.values())


def ref_of(entry: dict[str, Any]) -> TaskRef:
    return TaskRef(str(entry["repository"]), int(entry["task_number"]))
