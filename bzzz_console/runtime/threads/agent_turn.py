"""One agent's turn in a thread: prompt → model → tools → post, and what to do when the model is of no use.

Mixed into :class:`~bzzz_console.runtime.threads.conversation.Conversations` (through
:class:`~bzzz_console.runtime.threads.turns.TurnTaking`, which drives the turns).

What local servers and small models do is handled here, bounded by ``runtime.max_tool_rounds`` per turn and by
:mod:`model_watch` across turns: tool calls written as text are run (and the model told once), ``<think>`` is
never posted, a reply cut at the output limit is asked for again once (shorter) and marked if it stays cut, a
setup error (model missing, no tool support) escalates at the first call, and turns that are of no use escalate
after a few with the reason in words.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, TypedDict

from bzzz_console.domain import events as ev
from bzzz_console.domain.llm import ChatMessage, ChatResult, RetryInfo, ToolCall, ToolSpec
from bzzz_console.domain.state import Agent, ThreadState
from bzzz_console.domain.threads import MessageType, ThreadMessage, ThreadStatus
from bzzz_console.runtime.llm.errors import LLMError
from bzzz_console.runtime.llm.optimizer import choose_model, history_tokens, is_routine_turn, plan_context
from bzzz_console.runtime.llm.prompts import build_messages
from bzzz_console.runtime.llm.text_calls import calls_in_text, split_thinking
from bzzz_console.runtime.memory import excerpt, fit_history, recall
from bzzz_console.runtime.threads.model_watch import (
    CUT_MARK,
    CUT_NOTE,
    FAILED_ROUNDS,
    MODEL_TROUBLE_OPTIONS,
    WRONG_FORM_NOTE,
    ModelWatch,
    TurnReport,
    verdict,
)
from bzzz_console.runtime.tools.base import ToolContext
from bzzz_console.runtime.tools.registry import agent_tool_specs, run_tool
from bzzz_console.security.redaction import redactor_for

if TYPE_CHECKING:
    from bzzz_console.runtime.runtime import Runtime

log = logging.getLogger(__name__)
MAX_CONSECUTIVE_FAILURES = 6
"""A backstop for a rules file without an error-rate rule: the thread stalls instead of failing forever."""
FINAL_ANSWER = (
    "Your budget is exhausted and the operator asked for the partial work. Post your final answer now with "
    "bzzz_post, message_type summary: what is decided, what is open, and what you would do next."
)


class _KeyArgs(TypedDict, total=False):
    key_entry: str


class AgentTurn:
    rt: Runtime
    watches: dict[tuple[str, str], ModelWatch]
    """Per (agent, thread): what the agent's model has been doing there (see :mod:`model_watch`)."""
    unusable: dict[str, str]
    """Models the server refused for good (missing, no tool support) → what it said; probed before reuse."""

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

    def _stall(self, thread: ThreadState, reason: str) -> None:
        raise NotImplementedError

    def watch_of(self, agent: Agent, thread: ThreadState) -> ModelWatch:
        return self.watches.setdefault((agent.id, thread.id), ModelWatch())

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
        watch = self.watch_of(agent, thread)
        if agent.model in self.unusable and not await self._usable_again(thread, agent, tools):
            return
        messages, model, context = self._plan(thread, agent, final)
        ctx = ToolContext(agent.id, thread.id)
        redactor = redactor_for(rt.settings.security)
        report = TurnReport()
        cut_retried = False
        for _ in range(rt.settings.runtime.max_tool_rounds):
            try:
                result = await self._call_model(thread, agent, model, messages, tools)
            except LLMError as exc:  # a server may echo what it was sent: no key or address in the error
                error = redactor.redact(str(exc), "store")
                if exc.setup is not None:
                    self._setup_error(thread, agent, model, error, exc.setup)
                else:
                    self._failed_turn(thread, agent, model, error)
                return
            thread.consecutive_failures = 0
            rt.record_llm_call(agent, thread, result, model, context)
            context = (0, 0)  # the history is counted once per turn, not once per tool round
            text, thinking = split_thinking(result.content)
            if thinking:  # kept for debugging only: never posted, stored or shown to other agents
                log.debug("%s thought in %s: %s", agent.id, thread.id, excerpt(thinking, 2000))
            calls = result.tool_calls
            if not calls and (written := calls_in_text(text, {t.name for t in tools})) is not None:
                calls, text = written.calls, written.rest
                if not watch.told_form:
                    watch.told_form = True
                    note = WRONG_FORM_NOTE.format(form=written.form)
                else:
                    note = None
            else:
                note = None
            if result.finish_reason == "length" and not cut_retried:
                cut_retried = True  # once: ask again for something shorter instead of posting half of it
                limit = rt.settings.model.max_output_tokens
                messages += [
                    ChatMessage("assistant", text or None),
                    ChatMessage("user", CUT_NOTE.format(limit=limit)),
                ]
                continue
            if not calls:
                if text:
                    kind = MessageType.SUMMARY if final else MessageType.COMMENT
                    cut = CUT_MARK if result.finish_reason == "length" else ""
                    await self.post_from_agent(agent.id, thread.id, kind, text + cut, ends_turn=True)
                else:
                    self._end_turn(thread)
                break
            worked_before = report.worked
            ended = await self._run_calls(thread, agent, ctx, calls, text, messages, report)
            report.failed_rounds = 0 if report.worked > worked_before else report.failed_rounds + 1
            if note is not None:
                messages.append(ChatMessage("user", note))
            if ended:
                break
            if report.failed_rounds >= FAILED_ROUNDS or verdict(watch, agent, model, thread) is not None:
                self._end_turn(thread)  # no more rounds of the same mistakes: the turn passes
                break
        else:
            self._end_turn(thread)  # the model used all its tool rounds without posting: the turn passes
        self._after_turn(thread, agent, model, watch, report)

    async def _call_model(
        self,
        thread: ThreadState,
        agent: Agent,
        model: str,
        messages: list[ChatMessage],
        tools: tuple[ToolSpec, ...],
        max_tokens: int | None = None,
    ) -> ChatResult:
        rt = self.rt
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

        async with rt.turn_slots:
            return await rt.backend.complete(
                model=model,
                messages=messages,
                tools=tools,
                max_tokens=max_tokens or rt.settings.model.max_output_tokens,
                on_retry=on_retry,
                **key,
            )

    async def _run_calls(
        self,
        thread: ThreadState,
        agent: Agent,
        ctx: ToolContext,
        calls: tuple[ToolCall, ...],
        text: str,
        messages: list[ChatMessage],
        report: TurnReport,
    ) -> bool:
        """Run one reply's tool calls in order; True when the turn ended (a post or an escalation)."""
        rt = self.rt
        redactor = redactor_for(rt.settings.security)
        messages.append(ChatMessage("assistant", text or None, tool_calls=calls))
        ended = False
        for call in calls:
            if ended:  # the turn is over (posted or escalated): later calls of the same reply are not run
                outcome_text = json.dumps({"error": "not run: your turn had already ended"})
                messages.append(ChatMessage("tool", outcome_text, tool_call_id=call.id))
                continue
            outcome = await run_tool(rt, ctx, call.name, call.arguments)
            report.calls += 1
            report.worked += outcome.ok
            self.watch_of(agent, thread).call(outcome.ok, str(outcome.result.get("error", "")))
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
        return ended

    def _after_turn(
        self, thread: ThreadState, agent: Agent, model: str, watch: ModelWatch, report: TurnReport
    ) -> None:
        """Count the turn; a model that has been of no use for a few turns stops here with the reason."""
        watch.after(report)
        reason = verdict(watch, agent, model, thread)
        if reason is not None and self._model_trouble(thread, agent, reason):
            watch.reset(agent, thread)

    def _model_trouble(self, thread: ThreadState, agent: Agent, reason: str, last_error: str = "") -> bool:
        """Escalate under the rules file's ``model_trouble`` rule (False if the thread is not active any more)."""
        if thread.status is not ThreadStatus.ACTIVE:
            return False
        rule = self.rt.escalations.rule_for("model_trouble")
        self.rt.escalations.raise_for(
            thread, agent, rule, reason, options=MODEL_TROUBLE_OPTIONS, model_error=last_error or None
        )
        return True

    def _setup_error(self, thread: ThreadState, agent: Agent, model: str, error: str, advice: str) -> None:
        """The server can't run this model with tools at all: one escalation at once, quoting the server. The
        turn is not taken (the agent keeps it), and every agent on the model probes it before its next turn."""
        self.rt.record_failed_call(agent, thread, model, error)
        thread.last_model_error = error
        self.unusable[model] = error
        self._model_trouble(thread, agent, f"{agent.id} cannot use {model}: {error} — {advice}", error)

    async def _usable_again(self, thread: ThreadState, agent: Agent, tools: tuple[ToolSpec, ...]) -> bool:
        """A model the server refused: a cheap probe (one short message, the tools offered) instead of the whole
        turn again. False (and a new escalation quoting the server) if it still fails."""
        probe = [ChatMessage("user", "Reply with the single word OK.")]
        try:
            await self._call_model(thread, agent, agent.model, probe, tools, max_tokens=16)
        except LLMError as exc:
            if exc.setup is None:
                raise
            error = redactor_for(self.rt.settings.security).redact(str(exc), "store")
            self._setup_error(thread, agent, agent.model, f"still, after the decision: {error}", exc.setup)
            return False
        self.unusable.pop(agent.model, None)
        return True

    def _end_turn(self, thread: ThreadState) -> None:
        self.rt.store.end_turn(thread.id)
        thread.turn_count += 1

    def _failed_turn(self, thread: ThreadState, agent: Agent, model: str, error: str) -> None:
        self.rt.record_failed_call(agent, thread, model, error)
        thread.last_model_error = error
        thread.consecutive_failures += 1
        self._end_turn(thread)
        if thread.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
            self._stall(thread, f"{thread.consecutive_failures} model calls in a row failed: {error}")
