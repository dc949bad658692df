"""Event subscriptions for outside agents (``bzzz_subscribe``): a bounded queue read with ``bzzz_get`` on the
subscription's address, and optionally a webhook POST per event (allow-listed hosts, retried with back-off)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bzzz_console.domain import events as ev
from bzzz_console.domain.addresses import SemanticAddress
from bzzz_console.store.repo import NotFound, new_id

if TYPE_CHECKING:
    from bzzz_console.runtime.runtime import Runtime

QUEUE_LIMIT = 1000
WEBHOOK_ATTEMPTS = 3


@dataclass
class Subscription:
    id: str
    owner: str | None
    event_types: frozenset[str]
    filter: SemanticAddress | None
    webhook: str | None
    queue: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=QUEUE_LIMIT))
    dropped: int = 0
    delivered: int = 0
    failed: int = 0

    @property
    def address(self) -> str:
        return f"bzzz://*@*/subscriptions/{self.id}"


class Subscriptions:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.by_id: dict[str, Subscription] = {}
        self._pump: asyncio.Task[None] | None = None
        self._webhooks: set[asyncio.Task[None]] = set()
        self._client: Any = None

    def add(
        self,
        owner: str | None,
        event_types: list[str],
        filter_address: SemanticAddress | None,
        webhook: str | None,
    ) -> Subscription:
        sub = Subscription(new_id("sub"), owner, frozenset(event_types), filter_address, webhook)
        self.by_id[sub.id] = sub
        if self._pump is None:
            self._pump = asyncio.create_task(self._deliver(self.rt.bus.subscribe(maxsize=50_000)))
        return sub

    def take(self, subscription_id: str, limit: int) -> dict[str, Any]:
        sub = self.by_id.get(subscription_id)
        if sub is None:
            raise KeyError(subscription_id)
        events = [sub.queue.popleft() for _ in range(min(limit or len(sub.queue), len(sub.queue)))]
        return {
            "subscription_id": sub.id,
            "events": events,
            "remaining": len(sub.queue),
            "dropped": sub.dropped,
            "webhook": sub.webhook,
            "webhook_delivered": sub.delivered,
            "webhook_failed": sub.failed,
        }

    def _wanted(self, sub: Subscription, event: ev.Event, data: dict[str, Any]) -> bool:
        if sub.event_types and data["kind"] not in sub.event_types:
            return False
        if sub.filter is None:
            return True
        thread_id, agent_id = data.get("thread_id"), data.get("agent_id")
        if sub.filter.path_kind == "agents":  # one agent: the events about it, in whatever thread
            agent = self.rt.agents.get(agent_id or "")
            return agent is not None and sub.filter.matches_agent(agent.id, agent.role)
        if sub.filter.path_kind in ("threads", "tasks") and not thread_id:
            return False  # the filter names a thread (or a task's): an event about no thread is not about it
        if thread_id and not sub.filter.matches_thread(thread_id, *self._where(thread_id)):
            return False
        if agent_id and (sub.filter.agent or sub.filter.role):
            agent = self.rt.agents.get(agent_id)
            return agent is not None and sub.filter.matches_agent(agent.id, agent.role)
        return bool(thread_id or agent_id) or sub.filter.target is None

    def _where(self, thread_id: str) -> tuple[str, str | None]:
        """(project, task id) of a thread; a closed one is no longer in memory (its last events arrive after it
        closed), so it is read from the store."""
        thread = self.rt.conversations.threads.get(thread_id)
        if thread is not None:
            return thread.project, thread.task_id
        try:
            row = self.rt.store.get_thread(thread_id)
        except NotFound:
            return "*", None
        return row.project, row.task_id

    async def _deliver(self, events: Any) -> None:
        async for event in events:
            data = ev.to_dict(event)
            for sub in list(self.by_id.values()):
                if not self._wanted(sub, event, data):
                    continue
                if len(sub.queue) == sub.queue.maxlen:
                    sub.dropped += 1
                sub.queue.append(data)
                if sub.webhook:
                    task = asyncio.create_task(self._post(sub, data))
                    self._webhooks.add(task)
                    task.add_done_callback(self._webhooks.discard)

    async def _post(self, sub: Subscription, data: dict[str, Any]) -> None:
        import httpx2 as httpx  # the HTTP client openai and mcp already bring

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=5)
        for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
            try:
                response = await self._client.post(
                    sub.webhook, json={"subscription_id": sub.id, "event": data}
                )
                if response.status_code < 500 and response.status_code != 429:
                    sub.delivered += response.is_success
                    sub.failed += not response.is_success
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2 * 2 ** (attempt - 1))
        sub.failed += 1

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        for task in list(self._webhooks):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()


def check_webhook(url: str, allowed_hosts: list[str]) -> str:
    """The webhook URL if its host is on the allow-list; raises ValueError saying what is wrong otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"callback_webhook: {url!r} is not an http(s) URL")
    if parts.hostname not in allowed_hosts:
        raise ValueError(
            f"callback_webhook: host {parts.hostname!r} is not on the allow-list "
            f"(mcp.webhook_hosts = {allowed_hosts})"
        )
    return url
