"""Tasks on the network: announced tasks are taken on, and a node that starts one claims it for everybody.

Inbound ``task_announcement`` comes in three shapes. Our own nodes send a flat one (``task_id``, ``title``,
``description``, ``roles``, ``priority``, ``project``); it becomes a task under a stable id (``net-`` + a hash of
announcer and task id, so a replay is not a second task). Go BZZZ nodes send ``task_available`` or
``scenario_task`` (read by :mod:`~bzzz_console.p2p.gonodes`), whose identity is (repository, number): the id is
``go-`` + a hash of that, the same whoever announces it, and the same task announced again updates the one task
(its labels, difficulty, estimate, skills, dependencies and blockers are kept in ``details``). A Go task waiting
for a task that is not done here is ``blocked``, and becomes ``pending`` when the last one is done.

A task is taken when this node has an agent for one of its roles and ``p2p.pick_up_tasks`` is on; otherwise the
announcement is counted as unusable with the reason. The first node to start a thread on it sends
``task_claim``; the others drop their copy if they have not started yet. With ``p2p.announce_tasks`` on, tasks
added here (console, CLI, MCP) are announced too.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from bzzz_console.domain import events as ev
from bzzz_console.p2p.gonodes import (
    GoTask,
    Unusable,
    depends_on,
    description_of,
    go_task_id,
    is_go_task,
    merge_details,
    priority_name,
    read_go_task,
    ref_of,
    title_of,
)
from bzzz_console.p2p.wire import MessageType

if TYPE_CHECKING:
    from bzzz_console.p2p.service import Network

DEFAULT_ROLES = ["architect", "reviewer"]
SHOWN_TASKS = 200


def network_task_id(announcer: str, task_id: str) -> str:
    return "net-" + hashlib.sha256(f"{announcer}:{task_id}".encode()).hexdigest()[:20]


class TaskExchange:
    def __init__(self, net: Network) -> None:
        self.net = net
        self.rt = net.rt
        self.origin: dict[str, tuple[str, str]] = {}
        """Our task id → (announcer, their task id), for tasks we took from the network or announced."""
        self._shown: list[dict[str, Any]] | None = None
        """The network view's list, read from the store again only after something changed."""

    def on_event(self, event: ev.Event) -> None:
        settings = self.net.settings
        if isinstance(event, ev.TaskStatusChanged | ev.ThreadCreated):
            self._shown = None
        if isinstance(event, ev.TaskAdded) and settings.announce_tasks:
            from bzzz_console.store.errors import NotFound

            try:
                task = self.rt.store.get_task(event.task_id)
            except NotFound:
                return
            if task.source != "p2p":
                self.origin[task.id] = (self.net.peer_id, task.id)
                data = {
                    "task_id": task.id,
                    "title": task.title,
                    "description": task.description[:8000],
                    "roles": list(task.roles),
                    "priority": task.priority,
                    "project": task.project,
                    "node_id": self.net.peer_id,
                }
                self.net.queue(MessageType.TASK_ANNOUNCEMENT, data)
        elif isinstance(event, ev.ThreadCreated) and event.task_id in self.origin:
            announcer, their_id = self.origin[event.task_id]
            claim = {
                "task_id": their_id,
                "announcer": announcer,
                "node_id": self.net.peer_id,
                "thread_id": event.thread_id,
            }
            self.net.queue(MessageType.TASK_CLAIM, claim)
        elif isinstance(event, ev.TaskStatusChanged) and event.status == "done":
            self._unblock_waiting_for(event.task_id)

    # -- announcements ------------------------------------------------------------------------------------
    def on_announcement(self, data: dict[str, Any], author: str) -> None:
        if is_go_task(data):
            self._take_go_task(read_go_task(data), author)
            return
        raw_id = data.get("task_id", data.get("id"))
        title = data.get("title")
        if not isinstance(raw_id, str | int) or isinstance(raw_id, bool):
            raise Unusable("no_task_id", "neither task_id nor a Go task (task_available, scenario_task)")
        if not isinstance(title, str) or not title.strip():
            raise Unusable("no_title", f"task {str(raw_id)[:80]!r} has no title")
        roles = self._roles(data.get("roles", data.get("required_roles")), str(raw_id))
        description = data.get("description", data.get("body", ""))
        project = data.get("project")
        task_id = network_task_id(author, str(raw_id))
        redact = self._redactor()
        row = self.rt.store.add_network_task(
            task_id,
            title=redact(title.strip()[:500]),
            description=redact(str(description)[:20000]),
            roles=roles[:8],
            priority=priority_name(data.get("priority")) or "medium",
            project=project if isinstance(project, str) and project else self.rt.settings.runtime.project,
        )
        if row is not None:
            self.origin[row.id] = (author, str(raw_id))
            self.rt.capacity_changed()

    def _roles(self, value: object, what: str) -> list[str]:
        """The roles a task asks for, if this node takes tasks and has an agent for one; Unusable otherwise."""
        roles = [r for r in value if isinstance(r, str)] if isinstance(value, list) else []
        roles = roles or DEFAULT_ROLES
        if not self.net.settings.pick_up_tasks:
            raise Unusable("not_picked_up", f"task {what}: p2p.pick_up_tasks is off on this node")
        if not any(spec.answers_to(role) for spec in self.rt.specs.values() for role in roles):
            raise Unusable("no_agent_for_role", f"task {what}: nobody here for {', '.join(roles)[:120]}")
        return roles

    def _redactor(self) -> Any:
        from bzzz_console.security.redaction import redactor_for

        redactor = redactor_for(self.rt.settings.security)
        return lambda text: redactor.redact(text, "store")

    def _take_go_task(self, task: GoTask, author: str) -> None:
        roles = self._roles(None, task.ref.label)
        old = self.rt.store.find_task(task.task_id)
        if old is not None and old.source != "p2p":
            raise Unusable("not_ours_to_change", f"{task.task_id} is one of this node's own tasks")
        details = merge_details(dict(old.details) if old is not None else {}, task, author)
        roles = roles if old is None else list(old.roles)
        self._put(task.task_id, details, author, roles, old.status if old is not None else None)

    def _put(
        self, task_id: str, details: dict[str, Any], announcer: str, roles: list[str], before: str | None
    ) -> None:
        self._shown = None
        waiting = self._waiting_for(details)
        details = {**details, "waiting_for": waiting}
        redact = self._redactor()
        row, _ = self.rt.store.put_network_task(
            task_id,
            details=details,
            status="blocked" if waiting else "pending",
            title=redact(title_of(details)[:500]),
            description=redact(description_of(details, waiting)[:20000]),
            roles=roles[:8],
            priority=details.get("priority") or "medium",
            project=self.rt.settings.runtime.project,
        )
        self.origin.setdefault(task_id, (announcer, task_id))
        if row.status == before:
            return  # announced again: updated, nothing new to start or to say
        if row.status == "blocked":
            reason = f"waiting for {', '.join(waiting)}"
            self.rt.publish(ev.TaskStatusChanged(task_id=task_id, status="blocked", reason=reason))
        elif row.status == "pending":
            self.rt.capacity_changed()

    def _waiting_for(self, details: dict[str, Any]) -> list[str]:
        """The tasks this one depends on that are not done here (unknown ones count as not done)."""
        waiting = []
        for entry in depends_on(details):
            found = self.rt.store.find_task(go_task_id(ref_of(entry)))
            if found is None or found.status != "done":
                waiting.append(f"{entry['repository']}#{entry['task_number']}")
        return waiting

    def _unblock_waiting_for(self, done_id: str) -> None:
        for row in self.rt.store.network_tasks():
            waits = row.status == "blocked" and bool(row.details.get("waiting_for"))
            if waits and any(go_task_id(ref_of(e)) == done_id for e in depends_on(row.details)):
                announcer = str(row.details.get("announcer", ""))
                self._put(row.id, dict(row.details), announcer, list(row.roles), row.status)

    # -- claims -------------------------------------------------------------------------------------------
    def on_claim(self, data: dict[str, Any], author: str) -> None:
        raw_id, announcer = data.get("task_id"), data.get("announcer") or author
        if not isinstance(raw_id, str | int) or not isinstance(announcer, str):
            raise Unusable("no_task_id", "a task_claim names the task_id and its announcer")
        raw = str(raw_id)
        task_id = (
            raw if raw.startswith("go-") else network_task_id(announcer, raw)
        )  # Go tasks: one id for all
        self._shown = None
        if self.rt.store.withdraw_task(task_id):
            self.rt.publish(
                ev.TaskStatusChanged(task_id=task_id, status="claimed", reason=f"taken on by node {author}")
            )

    # -- for the network view -----------------------------------------------------------------------------
    def shown(self) -> list[dict[str, Any]]:
        """The tasks taken from the network (newest first), as plain data."""
        if self._shown is not None:
            return self._shown
        rows = self.rt.store.network_tasks()[-SHOWN_TASKS:]
        self._shown = [
            {
                "task_id": row.id,
                "title": row.title,
                "status": row.status,
                "priority": row.priority,
                "details": row.details,
            }
            for row in reversed(rows)
        ]
        return self._shown
