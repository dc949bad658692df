"""Outbound hooks of the seed's integrations (§4): SLURP and WHOOSH, each a JSON POST to a configured URL.

- **SLURP**: when a thread reaches consensus, a context event in the seed's ``slurp.ContextEvent`` shape
  (``type`` ``agent_consensus``, ``source``, ``timestamp``, ``context`` and ``metadata``), built from the store.
- **WHOOSH**: every local agent is registered at start (and each new one when it registers), in the seed's
  ``whoosh.AgentRegistration`` shape, and a health report of all of them follows every ``health_interval_s``.
  Both go to ``whoosh_url``; the ``event`` key (and the ``X-BZZZ-Event`` header) tells them apart.

Off by default: with neither URL set, nothing starts. Each target has its own bounded queue and sender, so a slow
or dead endpoint never blocks the runtime. A POST is retried on connection errors, timeouts, 429 and 5xx with
doubling back-off (``Retry-After`` wins), up to ``max_attempts``; if it still fails, one ``ErrorRaised`` is
published per outage (not per attempt), and while the target stays down each POST is tried once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bzzz_console import __version__
from bzzz_console.domain import events as ev
from bzzz_console.domain.addresses import agent_address
from bzzz_console.runtime.llm.client import parse_retry_after
from bzzz_console.runtime.memory import excerpt
from bzzz_console.store.tables import utc

if TYPE_CHECKING:
    from bzzz_console.domain.bus import Subscription
    from bzzz_console.domain.state import Agent
    from bzzz_console.runtime.runtime import Runtime

QUEUE_LIMIT = 500
"""POSTs waiting per target; past this the oldest are dropped (a dead endpoint must not grow memory)."""
MAX_DELAY_S = 60.0
FLUSH_S = 2.0
"""How long ``stop`` lets a reachable target's queue drain (a consensus just before shutdown still goes out)."""
INSIGHT_TYPES = ("proposal", "answer", "disagree", "question")
MAX_INSIGHTS = 8


@dataclass
class _Target:
    name: str
    url: str
    token_env: str | None
    queue: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=QUEUE_LIMIT))
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    busy: bool = False
    down: bool = False
    sent: int = 0
    failed: int = 0

    @property
    def shown(self) -> str:
        """The URL without credentials or query, for messages."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


class Integrations:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.targets: dict[str, _Target] = {}
        self._sources: list[asyncio.Task[None]] = []
        """What produces POSTs: the event pump and the health loop."""
        self._senders: list[asyncio.Task[None]] = []
        self._events: Subscription | None = None
        self._client: Any = None
        self._registered: set[str] = set()
        self._failing: set[str] = set()

    @property
    def running(self) -> bool:
        return bool(self._sources or self._senders)

    def start(self) -> None:
        cfg = self.rt.settings.integrations
        self.targets, self._registered, self._failing = {}, set(), set()
        if cfg.slurp_url:
            self.targets["slurp"] = _Target("slurp", cfg.slurp_url, cfg.slurp_token_env)
        if cfg.whoosh_url:
            self.targets["whoosh"] = _Target("whoosh", cfg.whoosh_url, cfg.whoosh_token_env)
        if not self.targets:
            return
        self._events = self.rt.bus.subscribe()
        self._sources.append(asyncio.create_task(self._pump(self._events), name="integrations-events"))
        for t in self.targets.values():
            self._senders.append(asyncio.create_task(self._send_loop(t), name=f"integrations-{t.name}"))
        if "whoosh" in self.targets:
            for agent in list(self.rt.agents.values()):  # registered before we subscribed
                self._register(agent)
            self._sources.append(asyncio.create_task(self._health_loop(), name="integrations-health"))

    async def stop(self) -> None:
        if not self.running:
            return
        sources, senders, self._sources, self._senders = self._sources, self._senders, [], []
        for task in sources:  # no new events or health reports from here on
            await _cancel(task)
        if self._events is not None:
            for event in self._events.drain():  # published before the stop: still delivered
                self._handle(event)
            self._events.close()
            self._events = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FLUSH_S
        while loop.time() < deadline and any(
            (t.queue or t.busy) and not t.down for t in self.targets.values()
        ):
            await asyncio.sleep(0.02)
        for task in senders:
            await _cancel(task)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- events -------------------------------------------------------------------------------------------
    async def _pump(self, events: Subscription) -> None:
        async for event in events:
            self._handle(event)

    def _handle(self, event: ev.Event) -> None:
        try:
            if isinstance(event, ev.ConsensusReached) and "slurp" in self.targets:
                self._enqueue("slurp", self.slurp_event(event))
            elif isinstance(event, ev.AgentRegistered) and "whoosh" in self.targets:
                agent = self.rt.agents.get(event.agent_id)
                if agent is not None:
                    self._register(agent)
        except Exception as exc:  # a payload that cannot be built must not stop the hooks
            self._problem(f"build:{type(event).__name__}", f"cannot build the payload for {event}: {exc}")

    def _register(self, agent: Agent) -> None:
        if agent.origin == "local" and agent.id not in self._registered:
            self._registered.add(agent.id)
            self._enqueue("whoosh", self.registration(agent))

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.rt.settings.integrations.health_interval_s)
            try:
                self._enqueue("whoosh", self.health_report())
                self._failing.discard("build:health")
            except Exception as exc:  # e.g. the database is locked for a moment: report once, try next time
                self._problem("build:health", f"cannot build the WHOOSH health report: {exc}")

    # -- payloads (the seed's shapes, snake_case field names) ---------------------------------------------
    def slurp_event(self, event: ev.ConsensusReached) -> dict[str, Any]:
        """The seed's ``GenerateSLURPEventFromConsensus``: a context event from the closed thread."""
        store = self.rt.store
        thread = store.get_thread(event.thread_id)
        participants = sorted(store.participants(event.thread_id), key=lambda p: p.position)
        messages = store.messages(event.thread_id, last=50)
        decisions = [d for d in store.decisions(event.thread_id) if d.kind == "consensus"]
        voters = {p.agent_id for p in participants}
        agreed = {event.proposer, *event.agreed_by}
        ended = thread.closed_at or thread.last_activity
        insights = [
            {"author": m.author, "role": m.role, "type": m.type, "content": excerpt(m.content, 300)}
            for m in messages
            if m.type in INSIGHT_TYPES
        ][-MAX_INSIGHTS:]
        return {
            "type": "agent_consensus",
            "source": "bzzz_mcp_integration",
            "timestamp": _iso(self.rt.clock.now()),
            "context": {
                "conversation_id": thread.id,
                "participants": [p.role for p in participants],
                "participant_ids": [p.agent_id for p in participants],
                "topic": thread.topic,
                "insights": insights,
                "decision_points": [
                    {
                        "decision_id": d.id,
                        "summary": d.summary,
                        "made_by": d.made_by,
                        "agreed_by": list(d.data.get("agreed_by", [])),
                        "at": _iso(d.created_at),
                    }
                    for d in decisions
                ],
                "confidence": round(len(agreed & voters) / len(voters), 3) if voters else 1.0,
            },
            "metadata": {
                "thread_duration": round((utc(ended) - utc(thread.created_at)).total_seconds() / 60, 3),
                "message_count": thread.message_count,
                "agent_count": len(participants),
                "consensus_type": "unanimous" if voters <= agreed else "majority",
                "proposal_id": event.proposal_id,
                "proposer": event.proposer,
                "agreed_by": list(event.agreed_by),
                "project": thread.project,
                "task_id": thread.task_id,
                "node": self.rt.node_id,
                "created_at": _iso(thread.created_at),
                "closed_at": _iso(ended),
            },
        }

    def registration(self, agent: Agent) -> dict[str, Any]:
        """The seed's ``RegisterGPTAgentWithWHOOSH``. Endpoints are bzzz:// addresses, served by the MCP tools
        (``bzzz_get``, ``bzzz_post``): this node has no per-agent HTTP endpoints."""
        cfg = self.rt.settings.integrations
        address = agent_address(agent.id, agent.role)
        price = self.rt.pricing.price(agent.model)
        cost = None if price is None else {  # USD per token; unknown, never zero
            "input": price.input / 1e6, "cached_input": price.cached_input / 1e6, "output": price.output / 1e6
        }  # fmt: skip
        project = self.rt.settings.runtime.project
        return {
            "event": "agent_registration",
            "agent_id": agent.id,
            "type": "gpt_agent",
            "role": agent.role,
            "capabilities": list(agent.spec.capabilities),
            "metadata": {
                "model": agent.model,
                "max_tokens": agent.spec.token_limit,
                "cost_per_token": cost,
                "bzzz_address": address,
                "node": self.rt.node_id,
                "project": project,
            },
            "endpoints": {
                "status_check": f"{address}/agents/{agent.id}",
                "task_assign": agent_address(agent.id, agent.role, project),
                "collaborate": address,
            },
            "health_check": {
                "interval": cfg.health_interval_s,
                "timeout": cfg.timeout_s,
                "retries": cfg.max_attempts,
            },
            "timestamp": _iso(self.rt.clock.now()),
        }

    def health_report(self) -> dict[str, Any]:
        """State, load, current threads and spend (USD, tokens, all time) of every local agent."""
        costs = self.rt.store.agent_costs()
        agents = []
        for agent in list(self.rt.agents.values()):
            if agent.origin != "local":
                continue
            spend, tokens = costs.get(agent.id, (0.0, 0))
            agents.append(
                {
                    "agent_id": agent.id,
                    "role": agent.role,
                    "status": agent.state.value,
                    "paused": agent.paused,
                    "model": agent.model,
                    "load": agent.load,
                    "max_tasks": agent.spec.max_tasks,
                    "current_threads": sorted(agent.threads),
                    "spend_usd": round(spend, 6),
                    "tokens": tokens,
                }
            )
        return {
            "event": "agent_health",
            "node": self.rt.node_id,
            "timestamp": _iso(self.rt.clock.now()),
            "agents": agents,
        }

    # -- delivery -----------------------------------------------------------------------------------------
    def _enqueue(self, name: str, payload: dict[str, Any]) -> None:
        target = self.targets[name]
        target.queue.append(payload)
        target.ready.set()

    async def _send_loop(self, target: _Target) -> None:
        while True:
            while not target.queue:
                target.ready.clear()
                await target.ready.wait()
            target.busy = True
            try:
                await self._deliver(target, target.queue.popleft())
            finally:
                target.busy = False

    async def _deliver(self, target: _Target, payload: dict[str, Any]) -> bool:
        import httpx2 as httpx  # the HTTP client openai and mcp already bring

        cfg = self.rt.settings.integrations
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=cfg.timeout_s)
        headers = {
            "User-Agent": f"bzzz-console/{__version__}",
            "X-BZZZ-Event": str(payload.get("event") or payload.get("type")),
        }
        token = os.environ.get(target.token_env) if target.token_env else None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        attempts = 1 if target.down else cfg.max_attempts
        problem = ""
        for attempt in range(1, attempts + 1):
            delay = cfg.backoff_s * 2 ** (attempt - 1)
            try:
                response = await self._client.post(target.url, json=payload, headers=headers)
            except Exception as exc:  # connection refused, timeout, TLS …; never a crash of the runtime
                problem = f"{type(exc).__name__}: {exc}"[:300].rstrip(": ")
            else:
                if response.is_success:
                    target.sent += 1
                    target.down = False
                    self._failing.discard(target.name)
                    return True
                problem = f"HTTP {response.status_code}"
                if response.status_code != 429 and response.status_code < 500:
                    break  # the endpoint refuses this request: retrying will not help
                delay = _retry_after(response.headers.get("retry-after"), delay)
            if attempt < attempts:
                await asyncio.sleep(min(delay, MAX_DELAY_S))
        target.failed += 1
        target.down = True
        self._problem(
            target.name,
            f"{target.name.upper()} at {target.shown} failed ({problem}) after {attempts} attempt(s); "
            f"further failures are not reported until it answers again",
        )
        return False

    def _problem(self, key: str, message: str) -> None:
        """Publish once per outage: again only after ``key`` recovered."""
        if key not in self._failing:
            self._failing.add(key)
            self.rt.publish(ev.ErrorRaised(where="integrations", message=message))


def _retry_after(value: str | None, default: float) -> float:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date); ``default`` when absent or unreadable."""
    seconds = parse_retry_after({"retry-after": value} if value else {})
    return default if seconds is None else seconds


def _iso(when: datetime) -> str:
    return utc(when).isoformat()  # SQLite hands back naive UTC


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
