"""Turn taking: one driver task per active thread, and one agent turn (prompt → model → tools → post).

Mixed into :class:`~bzzz_console.runtime.threads.conversation.Conversations`, which provides posting and endings.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, TypedDict

from bzzz_console.domain import events as ev
from bzzz_console.domain.llm import ChatMessage, RetryInfo
from bzzz_console.domain.state import Agent, ThreadState
from bzzz_console.domain.threads import MessageType, ThreadMessage, ThreadStatus, Vote, tally
from bzzz_console.runtime.llm.client import LLMError
from bzzz_console.runtime.llm.optimizer import choose_model, history_tokens, is_routine_turn, plan_context
from bzzz_console.runtime.llm.prompts import build_messages
from bzzz_console.runtime.memory import excerpt, fit_history, recall
from bzzz_console.runtime.tools.base import ToolContext
from bzzz_console.runtime.tools.registry import agent_tool_specs, run_tool
from bzzz_console.security.redaction import redactor_for
from bzzz_console.store.errors import driver_detail, driver_error

if TYPE_CHECKING:
    from bzzz_console.runtime.runtime import Runtime

MAX_CONSECUTIVE_FAILURES = 6
"""A backstop for a rules file without an error-rate rule: the thread stalls instead of failing forever."""
FINAL_ANSWER = (
    "Your budget is exhausted and the operator asked for the partial work. Post your final answer now with "
    "bzzz_post, message_type summary: what is decided, what is open, and what you would do next."
)


class _KeyArgs(TypedDict, total=False):
    key_entry: str


class TurnTaking:
    rt: Runtime
    threads: dict[str, ThreadState]
    _drivers: dict[str, asyncio.Task[None]]

    # provided by Conversations
    async def post_from_agent(
        self,
        agent_id: str,
        thread_id: str,
        type: MessageType,
        text: str,
        *,
        reply_to: str | None = None,
        ends_turn: bool = False,
    ) -> ThreadMessage:
        raise NotImplementedError

    def _close_on_consensus(self, thread: ThreadState, vote: Vote) -> None:
        raise NotImplementedError

    def _stall(self, thread: ThreadState, reason: str) -> None:
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

    def _plan(
        self, thread: ThreadState, agent: Agent, final: bool
    ) -> tuple[list[ChatMessage], str, tuple[int, int]]:
        """The prompt and the model of one turn, after the optimizer had its say."""
        rt = self.rt
        settings = rt.settings.optimizer
        tools = agent_tool_specs()
        about = f"{thread.topic} {thread.task.get('description', '')}"
        lessons = recall(
            rt.episodes.of(agent.id, thread.project), about, rt.settings.runtime.episodes_in_prompt
        )
        model = agent.model
        if settings.enabled:
            plan = plan_context(
                thread.messages,
                token_budget=agent.spec.token_limit,
                compress_at=settings.compress_at,
                summarize_after=settings.summarize_after,
                keep_recent=settings.keep_recent,
            )
            history = list(plan.history)
            context = (plan.full_tokens, plan.sent_tokens)
            if plan.summarized is not None:
                rt.publish(
                    ev.ContextCompressed(
                        agent_id=agent.id,
                        thread_id=thread.id,
                        full_tokens=plan.full_tokens,
                        sent_tokens=plan.sent_tokens,
                    )
                )
            routine = settings.cheaper_for_routine and is_routine_turn(agent.id, thread.messages)
            model = choose_model(agent.model, settings.model_ladder, routine=routine)
        else:
            history = fit_history(thread.messages, int(agent.spec.token_limit * 0.8))
            context = (history_tokens(thread.messages), history_tokens(history))
        redact = redactor_for(rt.settings.security).for_target("llm")
        messages = build_messages(agent, thread, history, tools, lessons, redact=redact)
        if final:
            messages.append(ChatMessage("user", FINAL_ANSWER))
        return messages, model, context

    async def _take_turn(self, thread: ThreadState, agent: Agent, *, final: bool = False) -> None:
        rt = self.rt
        tools = agent_tool_specs()
        messages, model, context = self._plan(thread, agent, final)
        ctx = ToolContext(agent.id, thread.id)
        redactor = redactor_for(rt.settings.security)
        key: _KeyArgs = {}  # an agent whose spec names its own key entry calls with that key
        if agent.spec.api_key_entry is not None:
            key["key_entry"] = agent.spec.api_key_entry

        def on_retry(info: RetryInfo) -> None:
            rt.publish(
                ev.LLMRetry(
                    agent_id=agent.id,
                    thread_id=thread.id,
                    attempt=info.attempt,
                    delay_s=info.delay_s,
                    reason=info.reason,
                )
            )

        for _ in range(rt.settings.runtime.max_tool_rounds):
            try:
                async with rt.turn_slots:
                    result = await rt.backend.complete(
                        model=model,
                        messages=messages,
                        tools=tools,
                        max_tokens=rt.settings.model.max_output_tokens,
                        on_retry=on_retry,
                        **key,
                    )
            except LLMError as exc:  # a server may echo what it was sent: no key or address in the error
                self._failed_turn(thread, agent, model, redactor.redact(str(exc), "store"))
                return
            thread.consecutive_failures = 0
            rt.record_llm_call(agent, thread, result, model, context)
            context = (0, 0)  # the history is counted once per turn, not once per tool round
            if not result.tool_calls:
                text = (result.content or "").strip()
                if text:
                    kind = MessageType.SUMMARY if final else MessageType.COMMENT
                    await self.post_from_agent(agent.id, thread.id, kind, text, ends_turn=True)
                else:
                    self._end_turn(thread)
                return
            messages.append(ChatMessage("assistant", result.content, tool_calls=result.tool_calls))
            ended = False
            for call in result.tool_calls:
                if ended:  # the turn is over (posted or escalated): later calls of the same reply are not run
                    outcome_text = json.dumps({"error": "not run: your turn had already ended"})
                    messages.append(ChatMessage("tool", outcome_text, tool_call_id=call.id))
                    continue
                outcome = await run_tool(rt, ctx, call.name, call.arguments)
                rt.publish(
                    ev.ToolCalled(
                        agent_id=agent.id,
                        thread_id=thread.id,
                        tool=call.name,
                        ok=outcome.ok,
                        summary=excerpt(json.dumps(outcome.result), 200),
                    )
                )
                result = redactor.redact_data(outcome.result, "llm")  # strings only: the JSON stays JSON
                messages.append(ChatMessage("tool", json.dumps(result), tool_call_id=call.id))
                if call.name in ("bzzz_get", "bzzz_lookup") and outcome.ok:
                    agent.working.setdefault(thread.id, {}).setdefault("notes", []).append(
                        f"{call.name} → {outcome.result.get('count', 'ok')}"
                    )
                ended = ended or outcome.ends_turn
            if ended:
                return
        self._end_turn(thread)  # the model used all its tool rounds without posting: the turn passes

    def _end_turn(self, thread: ThreadState) -> None:
        self.rt.store.end_turn(thread.id)
        thread.turn_count += 1

    def _failed_turn(self, thread: ThreadState, agent: Agent, model: str, error: str) -> None:
        self.rt.record_failed_call(agent, thread, model, error)
        thread.consecutive_failures += 1
        self._end_turn(thread)
        if thread.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
            self._stall(thread, f"{thread.consecutive_failures} model calls in a row failed: {error}")
