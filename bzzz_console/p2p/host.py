"""What the network needs from the node it joins: the protocol ``p2p`` is written against, so it never imports the
runtime. :class:`~bzzz_console.runtime.runtime.Runtime` satisfies it; ``app.py`` plugs the two together.

Kept to what the network really uses: the fleet and its threads (to follow and mirror them), the store (for
network tasks and mirrored escalations), the event bus (out: a tap; in: what peers did), and deciding one of this
node's escalations for a peer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bzzz_console.config import Settings
    from bzzz_console.domain import commands as cmd
    from bzzz_console.domain import events as ev
    from bzzz_console.domain.clock import Clock
    from bzzz_console.domain.specs import AgentSpec
    from bzzz_console.domain.state import Agent, ThreadState
    from bzzz_console.domain.threads import MessageType, ThreadMessage, ThreadStatus, Vote
    from bzzz_console.store.repo import Store
    from bzzz_console.store.tables import DecisionRow, EscalationRow


class Bus(Protocol):
    def tap(self, callback: Callable[[ev.Event], None]) -> Callable[[], None]: ...


class Threads(Protocol):
    """The node's live threads, and the few moves a shared thread makes in them."""

    threads: dict[str, ThreadState]

    async def post_from_agent(
        self,
        agent_id: str,
        thread_id: str,
        type: MessageType,
        text: str,
        *,
        reply_to: str | None = None,
        ends_turn: bool = False,
    ) -> Any: ...

    def post_human(self, thread_id: str, text: str, operator: str, *, wake: bool = True) -> ThreadMessage: ...

    def finish(
        self,
        thread: ThreadState,
        status: ThreadStatus,
        outcome: str,
        task_status: str,
        summary: str,
        decision: DecisionRow | None,
        vote: Vote | None,
    ) -> None: ...

    def publish_message(self, m: ThreadMessage) -> None: ...

    def wake(self, thread: ThreadState) -> None: ...

    def join(self, agent: Agent, thread: ThreadState) -> None: ...

    def start_driver(self, thread: ThreadState) -> None: ...


class Host(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> Store: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def agents(self) -> dict[str, Agent]: ...

    @property
    def specs(self) -> Mapping[str, AgentSpec]: ...

    @property
    def bus(self) -> Bus: ...

    @property
    def conversations(self) -> Threads: ...

    def publish(self, event: ev.Event) -> None: ...

    def capacity_changed(self) -> None: ...

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
    ) -> Agent: ...

    def decide(self, command: cmd.Decision, extra: dict[str, Any] | None = None) -> EscalationRow:
        """Check and apply a peer's decision on one of this node's escalations (CommandError if it can't)."""
        ...
