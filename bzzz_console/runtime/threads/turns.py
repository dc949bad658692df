"""Turn taking: one driver task per active thread, giving the turn to each participant in order (the turn itself
is :mod:`agent_turn`'s).

Mixed into :class:`~bzzz_console.runtime.threads.conversation.Conversations`, which provides posting and endings.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from bzzz_console.domain import events as ev
from bzzz_console.domain.state import Agent, ThreadState
from bzzz_console.domain.threads import ThreadStatus, Vote, tally
from bzzz_console.runtime.threads.agent_turn import AgentTurn
from bzzz_console.store.errors import driver_detail, driver_error

if TYPE_CHECKING:
    from bzzz_console.runtime.runtime import Runtime


class TurnTaking(AgentTurn):
    rt: Runtime
    threads: dict[str, ThreadState]
    _drivers: dict[str, asyncio.Task[None]]

    # provided by Conversations (post_from_agent is declared by AgentTurn)
    def _close_on_consensus(self, thread: ThreadState, vote: Vote) -> None:
        raise NotImplementedError

    def _finish_partial(self, thread: ThreadState) -> None:
        raise NotImplementedError

    # -- driving ------------------------------------------------------------------------------------------
    def wake(self, thread: ThreadState) -> None:
        """Something changed that may let the thread go on; it counts as busy until its driver has looked."""
        self.rt.mark_busy(thread.id)
        thread.wake.set()

    def start_driver(self, thread: ThreadState) -> None:
        if thread.id in self._drivers and not self._drivers[thread.id].done():
            self.wake(thread)
            return
        self.rt.mark_busy(thread.id)
        self._drivers[thread.id] = asyncio.create_task(self._drive(thread), name=f"thread {thread.id}")

    async def stop(self) -> None:
        for task in self._drivers.values():
            task.cancel()
        await asyncio.gather(*self._drivers.values(), return_exceptions=True)
        self._drivers.clear()

    async def _drive(self, thread: ThreadState) -> None:
        try:
            while thread.status is ThreadStatus.ACTIVE:
                self.rt.mark_busy(thread.id)
                if thread.finalizing:
                    await self._final_answer(thread)
                    break
                if thread.task_id is None and len(thread.participants) < 2:
                    thread.wake.clear()  # opened alone (bzzz_thread create): no turn, no consensus of one
                    self.rt.mark_waiting(thread.id)
                    await thread.wake.wait()
                    continue
                vote = tally(thread.participant_ids, thread.messages)
                if vote.reached:
                    self._close_on_consensus(thread, vote)
                    break
                if thread.turn_count >= self.rt.settings.runtime.max_turns:
                    self._stall(thread, f"no consensus after {thread.turn_count} turns")
                    break
                speaker = self._next_speaker(thread)
                if speaker is not None and self.rt.escalations.check(thread, speaker):
                    break  # a rule fired: the thread waits for a human
                if speaker is None:
                    thread.wake.clear()
                    self.rt.mark_waiting(thread.id)
                    await thread.wake.wait()
                    continue
                thread.in_turn = True
                try:
                    await self._take_turn(thread, speaker)
                    failures = 0
                except (
                    driver_error()
                ) as exc:  # locked or gone: nothing of the turn was committed, so retake it
                    failures = min(thread.db_failures + 1, 6)
                    delay = 0.25 * 2 ** (failures - 1)
                    self.rt.publish(
                        ev.ErrorRaised(
                            where=f"thread {thread.id}",
                            message=f"database error: {driver_detail(exc)}; retrying in {delay:g} s",
                        )
                    )
                    await asyncio.sleep(delay)
                finally:
                    thread.in_turn = False
                thread.db_failures = failures
                # The end of this turn and the start of the next in separate loop iterations: when a burst of
                # replies comes back together, no single iteration runs every one of them end to end.
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not take the whole runtime down: show it and stop this thread
            self.rt.publish(
                ev.ErrorRaised(where=f"thread {thread.id}", message=f"{type(exc).__name__}: {exc}")
            )
        finally:
            self.rt.mark_waiting(thread.id)

    async def _final_answer(self, thread: ThreadState) -> None:
        """A handed-back thread: its agent writes a final summary from the budget reserve, then it closes."""
        agent = self.rt.agents.get(thread.finalizing or "")
        thread.finalizing = None
        if agent is not None and agent.can_speak:
            thread.in_turn = True
            try:
                await self._take_turn(thread, agent, final=True)
            finally:
                thread.in_turn = False
        self._finish_partial(thread)

    def _next_speaker(self, thread: ThreadState) -> Agent | None:
        """Strict round robin: when the agent whose turn it is cannot speak (paused, escalating elsewhere), the
        thread waits for it rather than letting the others talk past a voice the consensus needs."""
        if not thread.participants:
            return None
        agent = self.rt.agents.get(thread.participants[thread.turn_count % len(thread.participants)].agent_id)
        return agent if agent is not None and agent.can_speak else None
