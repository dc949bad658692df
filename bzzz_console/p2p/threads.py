"""Threads across nodes: another node's agent, named as a participant, takes its turns on its own node.

The node where the thread was opened *hosts* it; it stays the thread of record (turn order, consensus, closing).
Each node with a participant keeps a *mirror* (``<thread>.<last 6 of the host's peer id>``) in which the others'
agents are remote participants, so its own agent takes turns there with the normal machinery. Messages travel as
``thread_message``:

- the host sends every message of a thread that has remote participants (its own agents', the operator's,
  the system's, and relays the other nodes' agents' messages), with the participant list, the turn count and
  the thread's status; a participant node posts each into its mirror (an agent's message ends that agent's
  turn, as an outside agent's post does), follows the host's turn count, and closes the mirror when the host
  closes the thread;
- a participant node sends only what its own agents posted in the mirror; the host posts it as that remote
  agent's turn.

Agent names on the wire are global: a node's own agent ``reviewer-1`` travels as ``reviewer-1.<its suffix>``, the
name every other node knows it by. Nobody re-sends a message authored by the receiver's own agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from bzzz_console.domain import events as ev
from bzzz_console.domain.state import Participant, ThreadState
from bzzz_console.domain.threads import SYSTEM_AUTHOR, MessageType, ThreadStatus
from bzzz_console.p2p.agents import remote_name
from bzzz_console.p2p.wire import MessageType as Wire
from bzzz_console.store.tables import MessageRow, ParticipantRow, ThreadRow

if TYPE_CHECKING:
    from bzzz_console.p2p.service import Network

log = logging.getLogger(__name__)
MAX_CONTENT = 32_000
HISTORY = 20
"""Messages a newly invited remote agent's node receives from the thread so far."""


class ThreadSync:
    def __init__(self, net: Network) -> None:
        self.net = net
        self.rt = net.rt
        self.mirrors: dict[str, tuple[str, str]] = {}
        """Mirror thread id here → (host peer id, the host's thread id)."""
        self._seen: set[str] = set()
        self._inbox: asyncio.Queue[tuple[dict[str, Any], str]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._worker = asyncio.create_task(self._work(), name="p2p threads")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def _work(self) -> None:
        """One message after the other, in the order they arrived (posting is async)."""
        while True:
            data, sender = await self._inbox.get()
            try:
                await self._handle(data, sender)
            except Exception as exc:  # one bad message must not stop the others
                self.net.handler_errors += 1
                self.net.refuse("thread_message", "could_not_handle", f"{type(exc).__name__}: {exc}", sender)
                self.net.show_error(
                    f"a thread_message from {sender} could not be handled: {type(exc).__name__}: {exc}"
                )

    # -- names ----------------------------------------------------------------------------------------------
    @property
    def suffix(self) -> str:
        return self.net.peer_id[-6:]

    def global_name(self, name: str) -> str:
        agent = self.rt.agents.get(name)
        return name if agent is None or agent.origin == "remote" else f"{name}.{self.suffix}"

    def local_name(self, name: str) -> str:
        return name[: -len(self.suffix) - 1] if name.endswith(f".{self.suffix}") else name

    def _shared(self, thread: ThreadState) -> bool:
        return thread.id in self.mirrors or any(
            (a := self.rt.agents.get(p.agent_id)) is not None and a.origin == "remote"
            for p in thread.participants
        )

    # -- out ------------------------------------------------------------------------------------------------
    def on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.MessagePosted):
            thread = self.rt.conversations.threads.get(event.thread_id)
            if thread is None or not self._shared(thread):
                return
            author = self.rt.agents.get(event.author)
            if thread.id in self.mirrors and (author is None or author.origin != "local"):
                return  # a participant node speaks only for its own agents
            self._send(
                thread,
                event.message_id,
                event.seq,
                event.author,
                event.role,
                event.message_type,
                event.content,
            )
        elif isinstance(event, ev.ParticipantsChanged) and event.thread_id not in self.mirrors:
            thread = self.rt.conversations.threads.get(event.thread_id)
            joined = event.reason.split(" joined:", 1)[0]
            agent = self.rt.agents.get(joined)
            if thread is not None and agent is not None and agent.origin == "remote":
                for m in thread.messages[-HISTORY:]:  # the newcomer's node builds its mirror from these
                    self._send(thread, m.id, m.seq, m.author, m.role, m.type.value, m.content)

    def _send(
        self, thread: ThreadState, message_id: str, seq: int, author: str, role: str, kind: str, text: str
    ) -> None:
        host, host_thread = self.mirrors.get(thread.id, (self.net.peer_id, thread.id))
        data = {
            "thread_id": host_thread,
            "host": host,
            "message_id": message_id,
            "seq": seq,
            "author": self.global_name(author),
            "role": role,
            "type": kind,
            "content": text[:MAX_CONTENT],
            "topic": thread.topic,
            "project": thread.project,
            "participants": [[self.global_name(p.agent_id), p.role] for p in thread.participants],
            "turn": thread.turn_count,
            "status": thread.status.value,
        }
        self.net.queue(Wire.THREAD_MESSAGE, data)

    # -- in -------------------------------------------------------------------------------------------------
    def on_message(self, data: dict[str, Any], sender: str) -> None:
        self._inbox.put_nowait((data, sender))

    async def _handle(self, data: dict[str, Any], sender: str) -> None:
        key = f"{sender}:{data['message_id']}"
        if key in self._seen:
            return
        if len(data["content"]) > MAX_CONTENT:
            detail = f"{len(data['content'])} characters > {MAX_CONTENT}"
            self.net.refuse("thread_message", "too_long", detail, sender)
            return
        self._seen.add(key)
        author = self.local_name(data["author"])
        if (agent := self.rt.agents.get(author)) is not None and agent.origin == "local":
            return  # our own agent's message, relayed back by the host
        if data.get("host") == self.net.peer_id:
            if data["author"].endswith(f".{sender[-6:]}"):  # a node speaks for its own agents only
                await self._into_hosted(data, author)
            else:
                detail = f"{data['author'][:80]!r} is not an agent of node {sender}"
                self.net.refuse("thread_message", "not_its_agent", detail, sender)
        elif data.get("host") == sender:
            await self._into_mirror(data, author, sender)

    async def _into_hosted(self, data: dict[str, Any], author: str) -> None:
        thread = self.rt.conversations.threads.get(data["thread_id"])
        agent = self.rt.agents.get(author)
        if (
            thread is None
            or agent is None
            or agent.origin != "remote"
            or author not in thread.participant_ids
        ):
            return
        await self.rt.conversations.post_from_agent(
            author, thread.id, MessageType(data["type"]), data["content"], ends_turn=True
        )

    async def _into_mirror(self, data: dict[str, Any], author: str, host: str) -> None:
        mirror_id = remote_name(data["thread_id"], host)[:64]
        thread = self.rt.conversations.threads.get(mirror_id)
        if thread is None:
            thread = self._open_mirror(mirror_id, data, host)
            if thread is None:
                return
        kind = MessageType(data["type"])
        status = ThreadStatus(data.get("status", "active"))
        conv = self.rt.conversations
        if status is not ThreadStatus.ACTIVE and status is not ThreadStatus.WAITING_HUMAN:
            outcome = "consensus" if status is ThreadStatus.CLOSED else status.value
            conv.finish(thread, status, outcome, "done", data["content"], None, None)
            return
        if author in thread.participant_ids:
            await conv.post_from_agent(author, thread.id, kind, data["content"], ends_turn=True)
        elif kind is MessageType.HUMAN:
            conv.post_human(thread.id, data["content"], author, wake=False)
        elif data["seq"] > 1:
            message = self.rt.store.post_message(
                thread.id, author=SYSTEM_AUTHOR, role="system", type=kind.value, content=data["content"]
            )
            thread.messages.append(message)
            conv.publish_message(message)
        turn = data.get("turn")
        if isinstance(turn, int) and turn >= 0:
            thread.turn_count = turn  # the host's turn order is the thread's
        conv.wake(thread)

    def _open_mirror(self, mirror_id: str, data: dict[str, Any], host: str) -> ThreadState | None:
        members = [(self.local_name(str(name)), str(role)) for name, role in data.get("participants", [])]
        ours = [
            name for name, _ in members if (a := self.rt.agents.get(name)) is not None and a.origin == "local"
        ]
        if not ours or self._exists(mirror_id):
            return None  # not for us, or a mirror that closed already
        for name, role in members:
            if name not in self.rt.agents:  # an agent of the host or of a third node we have not heard of yet
                self.rt.register_external(
                    name, role, [], None, 2, "remote", node_id=host if name.endswith(host[-6:]) else None
                )
        from bzzz_console.store.repo import to_message

        given = data.get("project")
        project: str = given if isinstance(given, str) and given else self.rt.settings.runtime.project
        row = ThreadRow(
            id=mirror_id,
            project=project,
            topic=str(data.get("topic") or mirror_id)[:500],
            created_at=self.rt.clock.now(),
            shared_context={"host": host, "host_thread": data["thread_id"]},
        )
        opening_text = (
            data["content"] if data["seq"] == 1 else f"Joined thread {data['thread_id']} of node {host}."
        )
        opening = MessageRow(
            id=f"{mirror_id}#1",
            thread_id=mirror_id,
            seq=1,
            author=SYSTEM_AUTHOR,
            role="system",
            type=MessageType.SYSTEM.value,
            content=opening_text,
        )
        participants = [
            ParticipantRow(thread_id=mirror_id, agent_id=n, role=r, position=i)
            for i, (n, r) in enumerate(members)
        ]
        self.rt.store.create_thread(row, participants, opening)
        thread = ThreadState(
            id=mirror_id,
            project=project,
            topic=row.topic,
            status=ThreadStatus.ACTIVE,
            participants=[Participant(n, r) for n, r in members],
            messages=[to_message(opening)],
            turn_count=0,
            created_at=row.created_at,
        )
        self.mirrors[mirror_id] = (host, data["thread_id"])
        conv = self.rt.conversations
        conv.threads[mirror_id] = thread
        self.rt.publish(
            ev.ThreadCreated(
                thread_id=mirror_id,
                task_id=None,
                project=project,
                topic=row.topic,
                participants=tuple(thread.participant_ids),
            )
        )
        conv.publish_message(thread.messages[0])
        for name in ours:
            conv.join(self.rt.agents[name], thread)
        conv.start_driver(thread)
        if data["seq"] == 1:
            self._seen.add(f"{host}:{data['message_id']}")
        return thread

    def _exists(self, thread_id: str) -> bool:
        from bzzz_console.store.errors import NotFound

        try:
            self.rt.store.get_thread(thread_id)
        except NotFound:
            return False
        return True
