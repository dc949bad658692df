"""Tasks on the network: announced tasks are taken on, and a node that starts one claims it for everybody.

Inbound ``task_announcement`` (from our nodes, or the original Go nodes: ``task_id``/``id``, ``title``,
``description``/``body``, ``roles``/``required_roles``, ``priority``, ``project``/``repository``) becomes a task
here under a stable id (``net-`` + a hash of announcer and task id, so a replay is not a second task) when this
node has an agent for one of its roles and ``p2p.pick_up_tasks`` is on. The first node to start a thread on it
sends ``task_claim``; the others drop their copy if they have not started yet. With ``p2p.announce_tasks`` on,
tasks added here (console, CLI, MCP) are announced too.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from bzzz_console.domain import events as ev
from bzzz_console.domain.threads import PRIORITIES
from bzzz_console.p2p.wire import MessageType

if TYPE_CHECKING:
    from bzzz_console.p2p.service import Network

PRIORITY_NAMES = {1: "urgent", 2: "high", 3: "medium", 4: "low", 5: "low"}


def network_task_id(announcer: str, task_id: str) -> str:
    return "net-" + hashlib.sha256(f"{announcer}:{task_id}".encode()).hexdigest()[:20]


def _priority(value: object) -> str:
    if isinstance(value, str) and value in PRIORITIES:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return PRIORITY_NAMES.get(value, "medium")
    return "medium"


class TaskExchange:
    def __init__(self, net: Network) -> None:
        self.net = net
        self.rt = net.rt
        self.origin: dict[str, tuple[str, str]] = {}
        """Our task id → (announcer, their task id), for tasks we took from the network or announced."""

    def on_event(self, event: ev.Event) -> None:
        settings = self.net.settings
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

    def on_announcement(self, data: dict[str, Any], author: str) -> None:
        if not self.net.settings.pick_up_tasks:
            return
        raw_id = data.get("task_id", data.get("id"))
        title = data.get("title")
        if (
            not isinstance(raw_id, str | int)
            or isinstance(raw_id, bool)
            or not isinstance(title, str)
            or not title.strip()
        ):
            self.net.show_error(f"a task_announcement from {author} has no task_id or title: ignored")
            return
        roles_value = data.get("roles", data.get("required_roles"))
        roles = [r for r in roles_value if isinstance(r, str)] if isinstance(roles_value, list) else []
        roles = roles or ["architect", "reviewer"]
        if not any(spec.answers_to(role) for spec in self.rt.specs.values() for role in roles):
            return  # nobody here for it
        description = data.get("description", data.get("body", ""))
        project = data.get("project", self.rt.settings.runtime.project)
        task_id = network_task_id(author, str(raw_id))
        from bzzz_console.security.redaction import redactor_for

        redact = redactor_for(self.rt.settings.security)
        row = self.rt.store.add_network_task(
            task_id,
            title=redact.redact(title.strip()[:500], "store"),
            description=redact.redact(str(description)[:20000], "store"),
            roles=roles[:8],
            priority=_priority(data.get("priority")),
            project=project if isinstance(project, str) and project else self.rt.settings.runtime.project,
        )
        if row is not None:
            self.origin[row.id] = (author, str(raw_id))
            self.rt.capacity_changed()

    def on_claim(self, data: dict[str, Any], author: str) -> None:
        raw_id, announcer = data.get("task_id"), data.get("announcer") or author
        if not isinstance(raw_id, str | int) or not isinstance(announcer, str):
            return
        task_id = network_task_id(announcer, str(raw_id))
        if self.rt.store.withdraw_task(task_id):
            self.rt.publish(
                ev.TaskStatusChanged(task_id=task_id, status="claimed", reason=f"taken on by node {author}")
            )
