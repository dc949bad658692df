"""The headless runtime: one asyncio object that owns the store, the agents, the threads and the event bus.

    rt = Runtime(settings)
    events = rt.bus.subscribe()      # before start, to see start-up events too
    async with rt:                   # migrate, register agents, restore open threads, start scheduling
        await rt.wait_idle()

It shares the caller's event loop (the console's, or ``asyncio.run`` headless) and runs unchanged in both.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from bzzz_console.config import Settings
from bzzz_console.domain import commands as cmd
from bzzz_console.domain import events as ev
from bzzz_console.domain.bus import EventBus
from bzzz_console.domain.clock import Clock, SystemClock
from bzzz_console.domain.errors import CommandError, ConfigError
from bzzz_console.domain.lifecycle import AgentState, check_transition, path_to
from bzzz_console.domain.llm import ChatResult
from bzzz_console.domain.specs import AgentSpec, load_specs
from bzzz_console.domain.state import Agent, ThreadState
from bzzz_console.resources import agents_dir
from bzzz_console.runtime.budgets import Budgets
from bzzz_console.runtime.escalation.escalations import Escalations
from bzzz_console.runtime.fleet import Fleet
from bzzz_console.runtime.integrations import Integrations
from bzzz_console.runtime.llm.client import LLMBackend, OpenAIBackend
from bzzz_console.runtime.llm.pricing import PricingTable, pricing_for
from bzzz_console.runtime.llm.provider import ProviderChoice, choose_provider, make_backend
from bzzz_console.runtime.memory import EpisodeCache
from bzzz_console.runtime.notify import Notifier
from bzzz_console.runtime.subscriptions import Subscriptions
from bzzz_console.runtime.threads.conversation import Conversations
from bzzz_console.runtime.threads.scheduling import Scheduling
from bzzz_console.security.audit import AuditWriter
from bzzz_console.store.repo import Store

if TYPE_CHECKING:
    from bzzz_console.p2p.service import Network

__all__ = ["CommandError", "Runtime"]


class Runtime(Scheduling, Fleet):
    def __init__(
        self,
        settings: Settings,
        *,
        backend: LLMBackend | None = None,
        clock: Clock | None = None,
        force_demo: bool = False,
        store: Store | None = None,
        join_network: Callable[[Runtime], Network] | None = None,
        demo_server: Callable[[Settings], Any] | None = None,
        readonly: bool = False,
    ) -> None:
        """``join_network`` and ``demo_server`` are given by the one place that assembles a node
        (:func:`bzzz_console.app.make_runtime`): the runtime itself knows neither libp2p nor the demo team.

        ``readonly`` (the console's ``--readonly`` or ``security.readonly``): the runtime only watches. It opens
        the store and, with ``p2p.enabled``, joins the network to hear other nodes, but registers and runs no
        agents, restores no thread, picks up no task (local or announced), expires no escalation and makes no
        model call."""
        self.readonly = readonly
        if self.readonly and (settings.p2p.pick_up_tasks or settings.p2p.announce_tasks):
            p2p = settings.p2p.model_copy(update={"pick_up_tasks": False, "announce_tasks": False})
            settings = settings.model_copy(update={"p2p": p2p})
        self.settings = settings
        self.bus = EventBus()
        self.clock = clock or SystemClock()
        self.agents: dict[str, Agent] = {}
        self.conversations = Conversations(self)
        self.budgets = Budgets(self)
        self.subscriptions = Subscriptions(self)
        self.episodes: EpisodeCache
        self.escalations: Escalations
        self.turn_slots = asyncio.Semaphore(settings.runtime.max_model_calls)
        """Model calls in flight at once: replies that arrive together are handled in one loop iteration, so
        this bounds how long the loop (and the console on it) can be busy with a burst of them."""
        self.node_id = socket.gethostname()
        self._backend = backend
        self._force_demo = force_demo
        self._store = store
        self._demo_server: Any = None
        self._network_for = join_network
        self._start_demo_server = demo_server
        self.provider: ProviderChoice | None = None
        self.specs: dict[str, AgentSpec] = {}
        self.pricing = PricingTable("unknown", {})
        self._busy: set[str] = set()
        self._inbox_ran = False
        self._schedulable_pending = False
        self._announced_tasks: set[str] = set()
        self._idle = asyncio.Event()
        self._inbox_wake = asyncio.Event()
        self._inbox_task: asyncio.Task[None] | None = None
        self._started = False
        self.audit: AuditWriter | None = None
        self.network: Network | None = None
        """The libp2p node and what it shares (``p2p.enabled``); None when this runtime runs alone."""
        self.integrations = Integrations(self)
        self.notifier = Notifier(self)

    # -- lifecycle ----------------------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the runtime is not started")
        return self._store

    @property
    def backend(self) -> LLMBackend:
        if self._backend is None:
            raise RuntimeError("the runtime is not started")
        return self._backend

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close("stopped")

    async def start(self) -> None:
        folder = self.settings.runtime.agents_dir or agents_dir()
        self.specs = load_specs(folder)
        self.escalations = Escalations(self)
        self.pricing = pricing_for(folder, self.settings.pricing)
        if self._store is None:
            self._store = await asyncio.to_thread(Store.open, self.settings.database_url())
        self.provider = choose_provider(self.settings, force_demo=self._force_demo)
        if self._backend is None and not self.readonly:  # a watcher calls no model: no backend, no server
            base_url = None
            if self.provider.is_demo:
                if self._start_demo_server is None:
                    raise ConfigError(
                        "the demo model was chosen but this runtime has no demo server to start"
                    )
                self._demo_server = self._start_demo_server(self.settings)
                base_url = self._demo_server.base_url
            self._backend = make_backend(self.provider, self.settings, base_url)
        self._started = True
        self.audit = AuditWriter(
            self.settings, self.store, self.bus, self.node_id
        )  # subscribes before anything audited is published
        self.audit.start()
        self.started_as = ev.RuntimeStarted(
            node=self.node_id,
            database=self.store.display_url,
            provider="no model calls (watching)" if self.readonly else self.provider.label,
            demo=self.provider.is_demo and not self.readonly,
            agents=0 if self.readonly else sum(self.settings.runtime.fleet.values()),
        )
        """What a view that opens later (a browser session under serve) shows on its status line."""
        self.publish(self.started_as)
        self.budgets.load()
        self.episodes = EpisodeCache(self.store)
        if self.readonly:
            await self._watch()
            return
        if isinstance(self._backend, OpenAIBackend):
            await asyncio.to_thread(self._backend.prepare)  # import openai and build the client off the loop
        await self._register_fleet()
        self._restore_threads()
        self.escalations.start()
        if self.settings.p2p.enabled:
            await self._join_network()
        self._inbox_task = asyncio.create_task(self._inbox_loop(), name="inbox")
        self.integrations.start()  # SLURP / WHOOSH hooks: nothing runs unless a URL is set
        self.notifier.start()  # escalations announced off-screen: nothing runs unless notify.urls is set

    async def _watch(self) -> None:
        """The read-only start: no agents, threads, inbox or escalation timer; the network (if on) only to
        hear other nodes (``pick_up_tasks`` and ``announce_tasks`` are off)."""
        if self.settings.p2p.enabled:
            await self._join_network()
        self._inbox_ran = True  # nothing here can make progress: idle from the start
        self._update_idle()

    async def _join_network(self) -> None:
        if self._network_for is None:
            raise ConfigError("p2p.enabled is set but this runtime was assembled without a network")
        network = self._network_for(self)
        try:
            await network.start()
        except BaseException:
            await network.stop()
            await self.close("the network did not start")
            raise
        self.network = network

    async def close(self, reason: str = "stopped") -> None:
        if not self._started:
            return
        self._started = False
        if self.network is not None:
            await self.network.stop()
        await self.integrations.stop()
        await self.notifier.stop()
        if self._inbox_task is not None:
            self._inbox_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._inbox_task
        await self.escalations.stop()
        await self.subscriptions.close()
        await self.conversations.stop()
        if self._backend is not None:
            await self._backend.aclose()
        if self._demo_server is not None:
            await asyncio.to_thread(self._demo_server.stop)
        self.publish(ev.RuntimeStopped(reason=reason))
        self.bus.close()
        if self.audit is not None:
            await self.audit.stop()  # writes what is still queued, before the store closes
        self.store.close()

    def publish(self, event: ev.Event) -> None:
        self.bus.publish(event)

    # -- agents -------------------------------------------------------------------------------------------
    def route_to(self, agent: Agent, target: AgentState) -> list[AgentState]:
        return path_to(agent.state, target)

    def transition(self, agent: Agent, target: AgentState, thread_id: str | None, reason: str) -> None:
        """Walk the lifecycle to ``target`` through every intermediate state, persisting each step."""
        for state in self.route_to(agent, target):
            check_transition(agent.id, agent.state, state)
            self.store.set_agent_state(agent.id, state.value)
            self.transition_published(agent, [state], thread_id, reason)

    def transition_published(
        self, agent: Agent, route: Sequence[AgentState], thread_id: str | None, reason: str
    ) -> None:
        """Apply and publish steps that are already persisted (e.g. inside an escalation's commit)."""
        for state in route:
            old = check_transition(agent.id, agent.state, state) and agent.state
            agent.state = state
            self.publish(
                ev.AgentStateChanged(
                    agent_id=agent.id, old=old.value, new=state.value, thread_id=thread_id, reason=reason
                )
            )
        self.capacity_changed()

    def record_llm_call(
        self,
        agent: Agent,
        thread: ThreadState | None,
        result: ChatResult,
        model: str,
        context: tuple[int, int] = (0, 0),
    ) -> None:
        """Persist a call's usage and cost (the money is spent even if the turn is later lost), then publish."""
        cost = self.pricing.cost(model, result.usage)
        usage = result.usage
        self._record_usage(
            agent,
            thread,
            model,
            ok=True,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            cost_usd=cost,
            context_full_tokens=context[0],
            context_sent_tokens=context[1],
            latency_ms=result.latency_s * 1000,
            attempts=result.attempts,
            estimated=result.usage_estimated,
        )
        self.publish(
            ev.LLMCalled(
                estimated=result.usage_estimated,
                agent_id=agent.id,
                thread_id=thread.id if thread else None,
                model=model,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
                cost_usd=cost,
                latency_ms=round(result.latency_s * 1000, 2),
                attempts=result.attempts,
            )
        )
        self.budgets.spent(agent.id, thread.id if thread else None, cost)

    def record_failed_call(self, agent: Agent, thread: ThreadState | None, model: str, error: str) -> None:
        self._record_usage(agent, thread, model, ok=False, error=error[:2000])
        self.publish(ev.LLMFailed(agent_id=agent.id, thread_id=thread.id if thread else None, error=error))

    def _record_usage(
        self, agent: Agent, thread: ThreadState | None, model: str, *, ok: bool, **columns: Any
    ) -> None:
        """One token_usage row (columns by name: a table model would cost more than the insert); the call also
        counts towards the thread's error rate."""
        now = self.clock.now()
        if thread is not None:
            thread.calls.append((now, ok))
        where = {"thread_id": thread.id if thread else None, "task_id": thread.task_id if thread else None}
        self.store.record_usage({"at": now, "agent_id": agent.id, "model": model, **where, **columns})

    # -- operator commands --------------------------------------------------------------------------------
    async def submit(self, command: cmd.OperatorCommand) -> Any:
        """Apply an operator command; raises CommandError with a clear message when it cannot be applied."""
        from bzzz_console.runtime.escalation.operator import apply_command, escalation_of

        if self.readonly:
            raise CommandError("this runtime is read-only (--readonly, security.readonly): it only watches")
        escalation_id = escalation_of(command)
        if escalation_id is not None and self.network is not None:
            row = self.store.get_escalation(escalation_id)
            if row is not None and row.origin_peer:  # another node's: it decides, we ask and wait
                return await self.network.escalations.decide_remote(command, row)  # type: ignore[arg-type]
        return apply_command(self, command)

    def decide(self, command: cmd.Decision, extra: dict[str, Any] | None = None) -> Any:
        """Check and apply a decision on one of this node's escalations, made elsewhere (a peer node); ``extra``
        is kept in the decision record (the peer and its signed request)."""
        from bzzz_console.runtime.escalation.operator import decide

        return decide(self, command, extra)
