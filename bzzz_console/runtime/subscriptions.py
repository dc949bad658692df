"""Event subscriptions for outside agents (``bzzz_subscribe``): a bounded queue read with ``bzzz_get`` on the
subscription's address, and optionally a webhook POST per event (allow-listed host:port, signed, retried with
back-off).

Webhook deliveries are signed the way Stripe and GitHub sign theirs: every subscription with a webhook gets its
own secret, returned once by ``bzzz_subscribe`` and kept in memory only (subscriptions do not outlive the
process); each POST carries ``X-Bzzz-Timestamp`` (Unix seconds) and ``X-Bzzz-Signature: v1=<hex>``, the
HMAC-SHA256 under that secret of ``"<timestamp>.<body>"`` — the exact bytes sent. The timestamp is inside the
MAC so a receiver can refuse replays of an old delivery (README: a five-minute window); each retry is signed
afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bzzz_console.domain import events as ev
from bzzz_console.domain.addresses import SemanticAddress
from bzzz_console.domain.hosts import host_port, is_local
from bzzz_console.store.errors import NotFound
from bzzz_console.store.repo import new_id

if TYPE_CHECKING:
    from bzzz_console.runtime.runtime import Runtime

QUEUE_LIMIT = 1000
WEBHOOK_ATTEMPTS = 3
TIMESTAMP_HEADER = "X-Bzzz-Timestamp"
SIGNATURE_HEADER = "X-Bzzz-Signature"
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass
class Subscription:
    id: str
    owner: str | None
    event_types: frozenset[str]
    filter: SemanticAddress | None
    webhook: str | None
    secret: str | None = field(default=None, repr=False)
    """The webhook's signing secret: given to the subscriber once, never shown again, never stored."""
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
        self.own_ports: set[int] = set()
        """Ports this process serves on loopback (its MCP HTTP server): never a webhook target."""

    def add(
        self,
        owner: str | None,
        event_types: list[str],
        filter_address: SemanticAddress | None,
        webhook: str | None,
    ) -> Subscription:
        secret = secrets.token_urlsafe(32) if webhook else None
        sub = Subscription(new_id("sub"), owner, frozenset(event_types), filter_address, webhook, secret)
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
            # No redirects: a 3xx must not carry a delivery to a host:port the allow-list never saw.
            self._client = httpx.AsyncClient(timeout=5, follow_redirects=False)
        body = json.dumps({"subscription_id": sub.id, "event": data}, separators=(",", ":")).encode("utf-8")
        for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
            try:
                response = await self._client.post(
                    sub.webhook, content=body, headers=signed_headers(sub.secret or "", body)
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


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``v1=`` and the hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under the subscription's secret."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    return {
        "content-type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def check_webhook(url: str, allowed: Collection[str], own_ports: Collection[int] = ()) -> str:
    """The webhook URL if its host:port (the scheme's port when none is given) is on the allow-list and is not
    this process's own server; raises ValueError saying what is wrong (and what would allow it) otherwise.
    Names that resolve to this machine are checked against ``own_ports`` by :func:`resolves_locally`."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a port that is not a number, or out of range
        raise ValueError(f"callback_webhook: {url!r} has an invalid port") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"callback_webhook: {url!r} is not an http(s) URL")
    target = host_port(parts.hostname, port or DEFAULT_PORTS[parts.scheme])
    if (port or DEFAULT_PORTS[parts.scheme]) in own_ports and is_local(parts.hostname):
        raise ValueError(f"callback_webhook: {target} is this node's own MCP server")
    if not allowed:
        raise ValueError(
            f"callback_webhook: webhooks are off (mcp.webhook_hosts is empty); to allow this one, set "
            f'mcp.webhook_hosts = ["{target}"] in the settings'
        )
    if target not in allowed:
        raise ValueError(
            f"callback_webhook: {target} is not on the allow-list (mcp.webhook_hosts = {sorted(allowed)}); "
            f'to allow it, add "{target}"'
        )
    return url


async def resolves_locally(url: str, own_ports: Collection[int]) -> bool:
    """Whether an allowed URL's host name resolves to this machine on one of ``own_ports`` (a name in
    /etc/hosts or DNS pointing at 127.0.0.1): checked only for those ports, so other webhooks cost no lookup."""
    parts = urlsplit(url)
    port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    if port not in own_ports or not parts.hostname:
        return False
    try:
        found = await asyncio.get_running_loop().getaddrinfo(parts.hostname, port)
    except OSError:
        return False  # it cannot be reached at all: delivery fails and is counted, nothing local is hit
    return any(is_local(str(info[4][0])) for info in found)
