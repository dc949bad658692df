"""The fleet: this node's agents registered from the settings and the role specs (``[runtime] fleet``, ``[models]``),
and agents that run elsewhere (an MCP client, another node) made first-class here. Mixed into :class:`Runtime`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from bzzz_console.domain import events as ev
from bzzz_console.domain.errors import ConfigError
from bzzz_console.domain.lifecycle import AgentState
from bzzz_console.domain.specs import AgentSpec
from bzzz_console.domain.state import Agent
from bzzz_console.store.tables import AgentRow

if TYPE_CHECKING:
    from bzzz_console.config import Settings
    from bzzz_console.store.repo import Store


class Fleet:
    """Needs from the runtime: its store, settings, role specs, node id, publish and transition."""

    settings: Settings
    specs: dict[str, AgentSpec]
    agents: dict[str, Agent]
    node_id: str

    @property
    def store(self) -> Store:
        raise NotImplementedError

    def publish(self, event: ev.Event) -> None:
        raise NotImplementedError

    def transition(self, agent: Agent, target: AgentState, thread_id: str | None, reason: str) -> None:
        raise NotImplementedError

    def roles(self) -> list[str]:
        return sorted(self.specs)

    async def _register_fleet(self) -> None:
        rows = {row.id: row for row in self.store.agents()}
        for role, count in self.settings.runtime.fleet.items():
            spec = self.specs.get(role)
            if spec is None:
                raise ConfigError(
                    f"key 'runtime.fleet' names role {role!r}, which has no spec in the agents folder "
                    f"(known roles: {', '.join(self.roles())})"
                )
            configured = self.settings.models.get(role) or self.settings.models.get("default")
            for i in range(1, count + 1):
                if i % 10 == 0:
                    await asyncio.sleep(0)  # a large fleet registers in steps, not in one stretch of the loop
                agent_id = f"{role}-{i}"
                row = rows.get(agent_id)
                if row is not None and configured and row.model != configured:
                    self.store.set_agent_model(agent_id, configured)  # [models] is the operator's word
                    row.model = configured
                if row is None:
                    row = self.store.save_agent(
                        AgentRow(
                            id=agent_id,
                            role=role,
                            model=configured or spec.model,
                            state=AgentState.INITIALIZING.value,
                            node_id=self.node_id,
                            capabilities=list(spec.capabilities),
                            max_tasks=spec.max_tasks,
                        )
                    )
                agent = Agent(agent_id, spec, row.model, AgentState(row.state), paused=row.paused)
                self.agents[agent_id] = agent
                self.publish(ev.AgentRegistered(agent_id=agent_id, role=role, model=agent.model))
                if agent.state is AgentState.INITIALIZING:
                    self.transition(agent, AgentState.IDLE, None, "registration complete")
        for row in rows.values():  # outside agents announced earlier stay first-class across restarts
            if row.origin != "local" and row.id not in self.agents:
                self.register_external(
                    row.id, row.role, list(row.capabilities), None, row.max_tasks, row.origin
                )

    def register_external(
        self,
        agent_id: str,
        role: str,
        capabilities: list[str],
        specialization: str | None,
        max_tasks: int,
        origin: str,
        publish: bool = True,
        node_id: str | None = None,
    ) -> Agent:
        """An agent that runs elsewhere (an MCP client, another node): first-class here, invited like any other,
        but it speaks for itself (its turns arrive through bzzz_post)."""
        spec = AgentSpec(
            role=role,
            model="external",
            max_tasks=max_tasks,
            capabilities=tuple(capabilities),
            description=specialization or "",
            reasoning_prompts={"system": specialization or role},
        )
        agent = self.agents.get(agent_id)
        if agent is None:
            row = self.store.save_agent(
                AgentRow(
                    id=agent_id,
                    role=role,
                    model="external",
                    origin=origin,
                    node_id=node_id,
                    state=AgentState.INITIALIZING.value,
                    capabilities=capabilities,
                    max_tasks=max_tasks,
                )
            )
            agent = Agent(agent_id, spec, row.model, AgentState(row.state), origin=origin)
            self.agents[agent_id] = agent
        else:
            agent.spec = spec
            self.store.save_agent(
                AgentRow(
                    id=agent_id,
                    role=role,
                    model="external",
                    origin=origin,
                    node_id=node_id,
                    state=agent.state.value,
                    capabilities=capabilities,
                    max_tasks=max_tasks,
                )
            )
        if publish:
            self.publish(ev.AgentRegistered(agent_id=agent_id, role=role, model="external", origin=origin))
        if agent.state is AgentState.INITIALIZING:
            self.transition(agent, AgentState.IDLE, None, "registration complete")
        return agent
