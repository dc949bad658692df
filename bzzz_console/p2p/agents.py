"""Other nodes' agents, as this node knows them: ``remote`` agents named ``<agent>.<last 6 of the peer id>``.

``capability_broadcast`` registers them (first-class here: ``bzzz_lookup`` finds them, a thread can invite them
by name, their turns then travel as ``thread_message``); ``availability_broadcast`` and ``agent_state`` keep their
states. Their lifecycle was checked on their node; here it is only mirrored. Nothing from the network may replace
one of this node's own agents. A broadcast without ``agents`` is a Go BZZZ node's (:mod:`~bzzz_console.p2p.gometa`
keeps it for the network view); an agent entry that cannot be used is counted, never skipped silently.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from bzzz_console.domain import events as ev
from bzzz_console.domain.lifecycle import AgentState

if TYPE_CHECKING:
    from bzzz_console.p2p.service import Network, RemoteNode


NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,56}$")
"""An agent, role or escalation id from the network that this node accepts as a name."""


def remote_name(name: str, peer_id: str) -> str:
    """How another node's agent (or thread) is named here: ``architect-1.Q9YSYt``."""
    return f"{name}.{peer_id[-6:]}"


class RemoteAgents:
    def __init__(self, net: Network) -> None:
        self.net = net
        self.rt = net.rt

    def on_capabilities(self, data: dict[str, Any], author: str) -> None:
        agents = data.get("agents")
        if "agents" not in data:
            self.net.go.on_broadcast("capability_broadcast", data, author)  # a Go node: one node, one agent
            return
        if not isinstance(agents, list):
            self.net.refuse("capability_broadcast", "schema", "data.agents: must be a list", author)
            return
        node = self.net.nodes[author]
        for info in agents:
            if isinstance(info, dict):
                self._register(node, info)
            else:
                self.net.refuse("capability_broadcast", "schema", "data.agents[]: must be objects", author)

    def _register(self, node: RemoteNode, info: dict[str, Any]) -> None:
        their_id, role = str(info.get("id", "")), str(info.get("role", ""))
        if not NAME.match(their_id) or not NAME.match(role):
            detail = f"agent {their_id[:80]!r} ({role[:80]!r}): not a name"
            self.net.refuse("capability_broadcast", "bad_agent_name", detail, node.peer_id)
            return
        name = remote_name(their_id, node.peer_id)
        existing = self.rt.agents.get(name)
        if existing is not None and existing.origin != "remote":
            return  # never let the network replace one of ours
        caps = [str(c)[:64] for c in info.get("capabilities", []) if isinstance(c, str)][:64]
        raw_max = info.get("max_tasks", 2)
        max_tasks = raw_max if isinstance(raw_max, int) and 0 < raw_max < 1000 else 2
        changed = existing is None or (
            existing.role,
            existing.spec.capabilities,
            existing.spec.max_tasks,
        ) != (role, tuple(caps), max_tasks)
        if changed:
            speciality = str(info.get("specialization") or "")[:200] or None
            self.rt.register_external(name, role, caps, speciality, max_tasks, "remote", node_id=node.peer_id)
        node.agents[their_id] = name
        self._set_state(name, info.get("state"), node.peer_id)

    def on_availability(self, data: dict[str, Any], author: str) -> None:
        node = self.net.nodes[author]
        node.availability = {k: v for k, v in data.items() if k != "agents"}
        if "agents" not in data:
            self.net.go.on_broadcast("availability_broadcast", data, author)
        for info in data.get("agents") or []:
            if isinstance(info, dict) and str(info.get("id")) in node.agents:
                self._set_state(node.agents[str(info["id"])], info.get("state"), author)

    def on_agent_state(self, data: dict[str, Any], author: str) -> None:
        name = self.net.nodes[author].agents.get(data["agent_id"])
        if name is None:
            detail = f"agent {data['agent_id'][:80]!r} was not in a capability_broadcast of its node"
            self.net.refuse("agent_state", "unknown_agent", detail, author)
            return
        self._set_state(name, data["state"], author)

    def _set_state(self, name: str, value: object, peer_id: str) -> None:
        agent = self.rt.agents.get(name)
        try:
            state = AgentState(str(value))
        except ValueError:
            self.net.refuse("agent_state", "bad_state", f"{str(value)[:80]!r} is not an agent state", peer_id)
            return
        if agent is None or agent.origin != "remote" or agent.state is state:
            return
        old, agent.state = agent.state, state  # their lifecycle was checked there; we only mirror it
        self.rt.store.set_agent_state(name, state.value)
        self.rt.publish(
            ev.AgentStateChanged(
                agent_id=name, old=old.value, new=state.value, reason=f"on node {peer_id[-6:]}"
            )
        )
