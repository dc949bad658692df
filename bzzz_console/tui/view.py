"""The console's picture of the fleet: plain Python state folded from runtime events.

The bridge applies events in batches and tells each pane which parts changed, so a pane redraws only its own
rows. Transcripts are bounded per thread: the console never holds more than it can show.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from bzzz_console.domain.text import usd
from bzzz_console.domain.threads import URGENCY
from bzzz_console.tui.view_rows import (
    AgentRowView,
    EscalationView,
    MessageView,
    SpendView,
    StatusView,
    ThreadRowView,
)

TRANSCRIPT_LIMIT = 500
"""Messages kept per thread in the console (older ones stay in the store and in exports)."""

if TYPE_CHECKING:
    from bzzz_console.domain import events as ev  # annotations only: the events module is slow to import


class FleetView:
    def __init__(self) -> None:
        self.agents: dict[str, AgentRowView] = {}
        self.threads: dict[str, ThreadRowView] = {}
        self.escalations: dict[str, EscalationView] = {}
        self.transcripts: dict[str, deque[MessageView]] = {}
        self.spend = SpendView()
        self.status = StatusView()
        self.errors: deque[str] = deque(maxlen=50)
        self.network_messages: deque[ev.NetworkMessage] = deque(maxlen=50)
        """Messages from other nodes that agents do not act on (meta discussion, help requests …)."""
        self._minute: int | None = None

    def transcript(self, thread_id: str) -> deque[MessageView]:
        if thread_id not in self.transcripts:
            self.transcripts[thread_id] = deque(maxlen=TRANSCRIPT_LIMIT)
        return self.transcripts[thread_id]

    def open_escalations(self) -> list[EscalationView]:
        waiting = [
            e
            for e in self.escalations.values()
            if e.state == "open" or (e.state == "expired" and e.default_action == "hold" and not e.decision)
        ]
        return sorted(waiting, key=lambda e: (URGENCY.get(e.priority, 9), e.deadline or e.created_at))

    # -- the picture at start-up -------------------------------------------------------------------------
    def load(self, rt: Any) -> None:
        """Read what the store already holds (threads, open escalations, spend). Runs in a worker thread."""
        from bzzz_console.store.tables import utc
        from bzzz_console.views.spend import spend_report

        store = rt.store
        for agent in rt.agents.values():
            row = self.agents.setdefault(agent.id, AgentRowView(agent.id, agent.role))
            row.state, row.model, row.paused = agent.state.value, agent.model, agent.paused
            row.origin = agent.origin
            row.thread = next(iter(sorted(agent.threads)), None)
        if getattr(rt, "readonly", False):  # a watching runtime runs no agents: show the ones the store holds
            for a in store.agents():
                row = self.agents.setdefault(a.id, AgentRowView(a.id, a.role))
                row.state, row.model, row.paused, row.origin = a.state, a.model, a.paused, a.origin
        costs = store.thread_costs()
        participants: dict[str, list[str]] = {}
        for p in store.participants():
            participants.setdefault(p.thread_id, []).append(p.agent_id)
        for t in store.threads():
            self.threads[t.id] = ThreadRowView(
                t.id,
                t.topic,
                t.status,
                tuple(participants.get(t.id, [])),
                t.message_count,
                costs.get(t.id, (0.0, False))[0],
                utc(t.created_at),
                t.task_id,
                "reached" if t.outcome == "consensus" else "",
            )
        for e in store.escalations():
            self.escalations[e.id] = EscalationView(
                e.id,
                e.thread_id,
                e.agent_id,
                e.rule,
                e.reason,
                e.priority,
                e.state,
                utc(e.created_at),
                utc(e.deadline) if e.deadline else None,
                e.default_action,
                dict(e.context),
                f"{(e.decision or {}).get('kind', '')} by {e.answered_by}" if e.state == "answered" else "",
            )
        report = spend_report(store, rt.settings, {a.id: a.spec.budget_usd for a in rt.agents.values()})
        spend = self.spend
        spend.total, spend.today = report["cost_usd"] or 0.0, report["today"]["cost_usd"] or 0.0
        spend.unknown_calls, spend.prompt_tokens = report["unknown_cost_calls"], report["prompt_tokens"]
        spend.cached_tokens = report["cached_tokens"]
        spend.by_model = {k: v["cost_usd"] or 0.0 for k, v in report["by_model"].items()}
        spend.unknown_models = {k for k, v in report["by_model"].items() if v["cost_usd"] is None}
        spend.by_agent = {k: v["cost_usd"] or 0.0 for k, v in report["by_agent"].items()}
        spend.daily_limit = rt.budgets.limit("global", "*")
        spend.agent_limits = {a.id: rt.budgets.limit("agent", a.id) for a in rt.agents.values()}
        for agent_id, cost in spend.by_agent.items():
            if agent_id in self.agents:
                self.agents[agent_id].cost = cost
                self.agents[agent_id].tokens = (
                    report["by_agent"][agent_id]["prompt_tokens"]
                    + report["by_agent"][agent_id]["completion_tokens"]
                )

    def load_transcript(self, rt: Any, thread_id: str) -> None:
        """The last messages of a thread, from the store (when the operator opens a thread)."""
        from bzzz_console.store.tables import utc

        live = list(self.transcript(thread_id))
        stored = [
            MessageView(m.seq, m.author, m.role, m.type, m.content, utc(m.created_at))
            for m in rt.store.messages(thread_id, last=TRANSCRIPT_LIMIT)
        ]
        newest = stored[-1].seq if stored else 0
        merged = deque(stored + [m for m in live if m.seq > newest], maxlen=TRANSCRIPT_LIMIT)
        self.transcripts[thread_id] = merged

    def load_escalation(self, rt: Any, escalation_id: str) -> None:
        row = rt.store.get_escalation(escalation_id)
        view = self.escalations.get(escalation_id)
        if row is not None and view is not None:
            view.context, view.default_action = dict(row.context), row.default_action

    # -- events -------------------------------------------------------------------------------------------
    def apply(self, event: ev.Event) -> set[str]:
        """Fold one event in; return what changed: pane names, and ``thread:<id>`` / ``escalation:<id>``."""
        handler = getattr(self, f"_on_{getattr(event, 'kind', '')}", None)
        return handler(event) if handler is not None else set()

    def _on_runtime_started(self, e: ev.RuntimeStarted) -> set[str]:
        self.status.node, self.status.database, self.status.provider = e.node, e.database, e.provider
        self.status.demo, self.status.running = e.demo, True
        return {"status"}

    def _on_runtime_stopped(self, e: ev.RuntimeStopped) -> set[str]:
        self.status.running = False
        return {"status"}

    def _on_agent_registered(self, e: ev.AgentRegistered) -> set[str]:
        row = self.agents.setdefault(e.agent_id, AgentRowView(e.agent_id, e.role))
        row.model, row.origin = e.model, e.origin
        return {"agents"}

    def _on_agent_state_changed(self, e: ev.AgentStateChanged) -> set[str]:
        row = self.agents.setdefault(e.agent_id, AgentRowView(e.agent_id, "?"))
        row.state, row.reason = e.new, e.reason
        row.history.append((e.at, e.new + (f" in {e.thread_id}" if e.thread_id else ""), e.reason))
        if e.reason.startswith("paused"):
            row.paused = True
        elif e.reason == "resumed":
            row.paused = False
        if e.thread_id:
            row.thread = e.thread_id
        if e.new == "idle":
            row.thread = None
        return {"agents"}

    def _on_thread_created(self, e: ev.ThreadCreated) -> set[str]:
        self.threads[e.thread_id] = ThreadRowView(
            e.thread_id, e.topic, participants=e.participants, created_at=e.at, task_id=e.task_id
        )
        return {"threads"}

    def _on_participants_changed(self, e: ev.ParticipantsChanged) -> set[str]:
        if e.thread_id in self.threads:
            self.threads[e.thread_id].participants = e.participants
        return {"threads", f"thread:{e.thread_id}"}

    def _on_message_posted(self, e: ev.MessagePosted) -> set[str]:
        thread = self.threads.get(e.thread_id)
        if thread is not None:
            thread.messages = max(thread.messages, e.seq)
        self.transcript(e.thread_id).append(
            MessageView(e.seq, e.author, e.role, e.message_type, e.content, e.at)
        )
        return {"threads", f"thread:{e.thread_id}"}

    def _on_thread_status_changed(self, e: ev.ThreadStatusChanged) -> set[str]:
        if e.thread_id in self.threads:
            self.threads[e.thread_id].status = e.status
        touched = {"threads", f"thread:{e.thread_id}"}
        if e.status in ("closed", "stalled"):
            # An agent's row names a thread it is still in: one that took part here and works on elsewhere
            # would otherwise point at the finished thread until its next model call.
            for agent in self.agents.values():
                if agent.thread == e.thread_id:
                    agent.thread = next(
                        (
                            t.id
                            for t in self.threads.values()
                            if agent.id in t.participants and t.status not in ("closed", "stalled")
                        ),
                        None,
                    )
                    touched.add("agents")
        return touched

    def _on_consensus_reached(self, e: ev.ConsensusReached) -> set[str]:
        if e.thread_id in self.threads:
            self.threads[e.thread_id].consensus = f"reached on #{e.proposal_id.rsplit('#', 1)[-1]}"
        return {"threads", f"thread:{e.thread_id}"}

    def _on_llm_called(self, e: ev.LLMCalled) -> set[str]:
        agent = self.agents.get(e.agent_id)
        cost = e.cost_usd or 0.0
        if agent is not None:
            agent.tokens += e.prompt_tokens + e.completion_tokens
            agent.tokens_estimated |= e.estimated
            agent.cost += cost
            agent.cost_unknown |= e.cost_usd is None
            agent.model_call = ""
            agent.last_call = (
                f"{e.model} · {e.prompt_tokens + e.completion_tokens:,} tokens · "
                f"{'cost unknown' if e.cost_usd is None else usd(e.cost_usd, 4)} · {e.at:%H:%M:%S}"
            )
            if e.thread_id:
                agent.thread = e.thread_id
        if e.thread_id in self.threads:
            self.threads[e.thread_id].cost += cost
            self.threads[e.thread_id].model_call = ""
        spend = self.spend
        spend.total += cost
        spend.today += cost
        spend.unknown_calls += e.cost_usd is None
        spend.prompt_tokens += e.prompt_tokens
        spend.cached_tokens += e.cached_tokens
        spend.by_model[e.model] = spend.by_model.get(e.model, 0.0) + cost
        if e.cost_usd is None:
            spend.unknown_models.add(e.model)
        spend.by_agent[e.agent_id] = spend.by_agent.get(e.agent_id, 0.0) + cost
        minute = int(e.at.timestamp() // 60)
        if self._minute is None:
            self._minute = minute
        while self._minute < minute:
            spend.series.append(0.0)
            self._minute += 1
        spend.series[-1] += cost
        return {"agents", "threads", "spend", "status"}

    def _on_llm_retry(self, e: ev.LLMRetry) -> set[str]:
        return self._model_call(e.agent_id, e.thread_id, f"retry {e.attempt} in {e.delay_s:.1f}s: {e.reason}")

    def _on_llm_failed(self, e: ev.LLMFailed) -> set[str]:
        self.errors.append(f"{e.agent_id}: model call failed: {e.error}")
        return self._model_call(e.agent_id, e.thread_id, f"failed: {e.error}") | {"errors"}

    def _model_call(self, agent_id: str, thread_id: str | None, note: str) -> set[str]:
        """Retries, timeouts and failures show on the agent and its thread while they happen."""
        if (agent := self.agents.get(agent_id)) is not None:
            agent.model_call = note
        if thread_id is not None and (thread := self.threads.get(thread_id)) is not None:
            thread.model_call = note
        return {"agents", "threads"}

    def _on_budget_warning(self, e: ev.BudgetWarning) -> set[str]:
        label = "breached" if e.share >= 1 else f"{e.share:.0%}"
        self.spend.warnings = [
            *self.spend.warnings[-4:],
            f"{e.scope} {e.key}: {label} of {usd(e.limit_usd, 2)}",
        ]
        return {"spend"}

    def _on_escalation_raised(self, e: ev.EscalationRaised) -> set[str]:
        self.escalations[e.escalation_id] = EscalationView(
            e.escalation_id,
            e.thread_id,
            e.agent_id,
            e.rule,
            e.reason,
            e.priority,
            created_at=e.at,
            deadline=e.deadline,
        )
        return {"escalations", f"escalation:{e.escalation_id}", "status"}

    def _on_escalation_answered(self, e: ev.EscalationAnswered) -> set[str]:
        view = self.escalations.get(e.escalation_id)
        if view is not None:
            view.state, view.decision = "answered", f"{e.decision} by {e.by}"
        return {"escalations", f"escalation:{e.escalation_id}", "status"}

    def _on_escalation_approval(self, e: ev.EscalationApproval) -> set[str]:
        view = self.escalations.get(e.escalation_id)
        if view is not None:
            view.approvals = (
                f"{e.decision}: {len(e.approvals)} of {e.needed} approvals ({', '.join(e.approvals)})"
            )
        return {"escalations", f"escalation:{e.escalation_id}"}

    def _on_escalation_expired(self, e: ev.EscalationExpired) -> set[str]:
        view = self.escalations.get(e.escalation_id)
        if view is not None:
            view.state = "expired"
            if e.default_action != "hold":
                view.decision = f"{e.default_action} (deadline)"
        return {"escalations", f"escalation:{e.escalation_id}", "status"}

    def _on_escalation_cancelled(self, e: ev.EscalationCancelled) -> set[str]:
        view = self.escalations.get(e.escalation_id)
        if view is not None:
            view.state, view.decision = "cancelled", e.reason
        return {"escalations", f"escalation:{e.escalation_id}", "status"}

    def _on_decision_failed(self, e: ev.DecisionFailed) -> set[str]:
        """The decision was recorded but could not be applied: the escalation waits again, saying why."""
        view = self.escalations.get(e.escalation_id)
        if view is not None:
            view.state, view.decision = "open", ""
            view.context = {**view.context, "last_error": {"kind": e.decision, "by": e.by, "error": e.error}}
        return {"escalations", f"escalation:{e.escalation_id}", "status"}

    def _on_network_status(self, e: ev.NetworkStatus) -> set[str]:
        self.status.peer_id, self.status.peers = e.peer_id, e.peers
        return {"status", "network"}

    def _on_network_message(self, e: ev.NetworkMessage) -> set[str]:
        self.network_messages.append(e)
        return {"network"}

    def _on_error(self, e: ev.ErrorRaised) -> set[str]:
        self.errors.append(f"{e.where}: {e.message}")
        return {"errors"}
