"""Announcing escalations where the operator is, through Apprise (Slack, Matrix, Telegram, ntfy, email, a JSON
webhook and 100+ more): when one is raised, ``notify.before_deadline_s`` before its deadline, and when it expires.

Each message carries the priority, the reason, the deadline and the default action (and a link into the served
console where one is configured). Quiet hours and a minimum priority filter what is sent. Sending runs in its own
task: a slow or failing service never blocks the runtime; a failure is shown in the console and retried.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from bzzz_console.domain import events as ev
from bzzz_console.domain.text import inert_line
from bzzz_console.domain.threads import PRIORITIES
from bzzz_console.store.tables import utc

if TYPE_CHECKING:
    from bzzz_console.config_sections import NotifySettings
    from bzzz_console.runtime.runtime import Runtime
    from bzzz_console.store.tables import EscalationRow

TICK_S = 5.0
"""How often open escalations are looked at for their deadline reminder."""


def quiet_now(hours: str | None, now: time) -> bool:
    """Whether ``now`` (local time of day) falls in ``"22:00-07:00"``-style quiet hours (across midnight too)."""
    if not hours:
        return False
    start, end = (time.fromisoformat(part) for part in hours.split("-"))
    return start <= now < end if start <= end else now >= start or now < end


def wanted(settings: NotifySettings, priority: str, now: datetime) -> bool:
    rank = PRIORITIES.index(priority) if priority in PRIORITIES else 0
    floor = settings.min_priority
    if quiet_now(settings.quiet_hours, now.astimezone().time()):
        floor = max(floor, settings.quiet_min_priority, key=PRIORITIES.index)
    return rank >= PRIORITIES.index(floor)


def message(settings: NotifySettings, what: str, row: EscalationRow) -> tuple[str, str]:
    """(title, body): plain text, one fact a line; the reason is the agent's words, made inert."""
    title = f"[{row.priority}] escalation {what}: {inert_line(row.rule, 60)}"
    deadline = utc(row.deadline).isoformat(timespec="seconds") if row.deadline else "none"
    lines = [
        inert_line(row.reason, 500),
        f"priority: {row.priority} · deadline: {deadline} · then: {row.default_action}",
        f"escalation {row.id} · thread {row.thread_id or '-'} · agent {row.agent_id or '-'}",
    ]
    if settings.console_url:
        lines.append(f"{settings.console_url.rstrip('/')}/?escalation={row.id}")
    return title, "\n".join(lines)


class Notifier:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.settings = rt.settings.notify
        self.sent = 0
        self._queue: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
        self._reminded: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._untap: Any = None

    def start(self) -> None:
        if not self.settings.urls:
            return
        self._untap = self.rt.bus.tap(self._on_event)
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="notify"),
            asyncio.create_task(self._deadline_loop(), name="notify-deadlines"),
        ]

    async def stop(self) -> None:
        if self._untap is not None:
            self._untap()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.EscalationRaised):
            self._announce(event.escalation_id, "raised")
        elif isinstance(event, ev.EscalationExpired):
            self._announce(event.escalation_id, f"expired (then: {event.default_action})")

    def _announce(self, escalation_id: str, what: str) -> None:
        row = self.rt.store.get_escalation(escalation_id)
        if row is None or not wanted(self.settings, row.priority, self.rt.clock.now()):
            return
        title, body = message(self.settings, what, row)
        self._queue.put_nowait((escalation_id, title, body))

    async def _deadline_loop(self) -> None:
        before = timedelta(seconds=self.settings.before_deadline_s)
        while before:
            now = self.rt.clock.now()
            for row in self.rt.store.escalations("open"):
                left = utc(row.deadline) - now if row.deadline is not None else None
                if row.id not in self._reminded and left is not None and left <= before:
                    self._reminded.add(row.id)
                    minutes = max(0, int(left.total_seconds() // 60))
                    self._announce(row.id, f"due in {minutes} min")
            await asyncio.sleep(TICK_S)

    async def _send_loop(self) -> None:
        import apprise  # lazy: only a node that notifies pays for it

        service = apprise.Apprise()
        for url in self.settings.urls:
            if not service.add(url):
                scheme = url.split("://", 1)[0]
                self.rt.publish(ev.ErrorRaised(where="notify", message=f"not an Apprise URL: {scheme}://…"))
        while True:
            escalation_id, title, body = await self._queue.get()
            delay = self.settings.retry_delay_s
            for attempt in range(1, self.settings.max_attempts + 1):
                if await service.async_notify(body=body, title=title):
                    self.sent += 1
                    break
                if attempt == self.settings.max_attempts:
                    self.rt.publish(
                        ev.ErrorRaised(
                            where="notify",
                            message=f"could not announce {escalation_id} after {attempt} attempts",
                        )
                    )
                else:
                    await asyncio.sleep(delay)
                    delay *= 2
