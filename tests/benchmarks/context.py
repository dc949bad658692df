"""Context benchmark: prompt tokens with the cost optimizer against sending the full history.

    python tests/benchmarks/context.py [--json-only]

A scripted 50-message thread (four design rounds: proposals, questions and answers, objections, revised
proposals, votes and a decision each, one operator message and one question nobody answers) is replayed turn by
turn: the prompt of turn ``t`` carries ``messages[:t]``. Prompt history tokens are estimated as the runtime
renders them (``format_history_line`` + ``estimate_tokens``) and summed over all turns, once with
``plan_context(token_budget=4000)`` and once with the full history. The system prompt and task card are the
same both ways and are left out. The optimizer runs with the defaults of ``OptimizerSettings``. Also reported:
the same sum over only the prompts agents really get (no model call precedes the system's decisions or the
operator's message), the final prompt alone, the "keep-rule floor" (the reduction if the summary message cost
nothing: the opening, the pinned messages and the last ``keep_recent`` are always sent), whether the final
prompt holds every decision (as a message, and every sentence of it in the prompt's text), every open question
and the latest proposal, and for reference the reduction with other ``keep_recent`` / ``summarize_after``.
Prints a table, then one JSON document; nothing asserts (exit status 0).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bzzz_console.domain.threads import MessageType, ThreadMessage
from bzzz_console.runtime.llm.optimizer import history_tokens, message_tokens, open_questions, plan_context
from bzzz_console.runtime.llm.prompts import format_history_line

THREAD_ID = "th-bench"
TOKEN_BUDGET = 4000
TARGET_REDUCTION = 0.70
_T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)

OPENING = (
    "Task T-42: design the rate limiter of the public API gateway (priority high). Today every tenant can "
    "burst without limit and one noisy integration took the gateway down twice last month. We need per-tenant "
    "limits that survive a gateway restart, work across the eight gateway replicas, cost under 1 ms of p99 "
    "latency, and can be rolled out without surprising paying customers. Review criteria: correctness, "
    "security, operability, clarity. Post a proposal, challenge it, and record each decision as it is made."
)

# Each round: the topic, a first plan, a question on it with its answer, an objection, a comment, the revised
# plan, a second question (answered unless the round says otherwise) and the decision.
ROUNDS: list[dict[str, str]] = [
    {
        "topic": "counter storage",
        "plan": "keep the per-tenant counters in the shared Redis cluster we already run for sessions, one hash "
        "per tenant with a 2-minute TTL, updated by a Lua script so check-and-decrement is a single round trip",
        "question": "what happens to limiting when the Redis primary fails over; do we fail open or closed, "
        "and for how long can replicas disagree about a tenant's remaining budget",
        "answer": "we fail open for at most 5 seconds and log every decision taken without Redis; during a "
        "failover the replicas can over-admit by one refill interval, which the load tests showed is harmless",
        "objection": "sharing the sessions cluster couples two failure domains: a limiter hot key would slow "
        "logins for everyone. I would accept Redis only on a dedicated, smaller cluster with its own alerts",
        "comment": "whichever store we pick, the runbook needs the exact command to inspect one tenant's "
        "counters, because support will be asked why a customer was throttled at 3 a.m.",
        "revised": "use a dedicated three-node Redis cluster for limiter counters only, same Lua script, "
        "fail open for at most 5 seconds with a metric and a log line per unlimited request",
        "question2": "do we need persistence on the dedicated cluster, or is losing counters on restart fine",
        "answer2": "no persistence: counters refill within a minute anyway, and AOF would add latency",
        "decision": "counters live in a dedicated three-node Redis cluster, updated atomically by one Lua "
        "script; on Redis failure the gateway fails open for at most 5 seconds and logs each request",
    },
    {
        "topic": "limiting algorithm",
        "plan": "a token bucket per tenant and route class, refilled continuously, with burst equal to ten "
        "seconds of the sustained rate, because it is cheap to compute and easy to explain to customers",
        "question": "how do we express plan tiers: is the bucket size per tenant configurable from billing, "
        "or do we hard-code three tiers in the gateway config and redeploy when sales invents a fourth",
        "answer": "limits come from the billing service's plan table, cached for 60 seconds in the gateway; "
        "a tenant override field covers the special contracts without a deploy",
        "objection": "a pure token bucket lets a tenant spend its whole burst on the expensive export "
        "endpoints; I want route classes weighted by cost, not one bucket that treats every call the same",
        "comment": "the response headers should follow the IETF RateLimit draft so client libraries can back "
        "off on their own instead of retrying blindly and making the overload worse",
        "revised": "token buckets per tenant with route-class weights (export = 20 tokens, read = 1, write = "
        "5), limits from the billing plan table cached 60 s, RateLimit headers on every response",
        "question2": "should internal service accounts bypass the limiter entirely, or get a very high tier",
        "answer2": "",
        "decision": "weighted token buckets per tenant (export 20, write 5, read 1), limits read from the "
        "billing plan table and cached for 60 seconds, IETF RateLimit headers on every response",
    },
    {
        "topic": "identity and keys",
        "plan": "limit by API key, falling back to the client IP for unauthenticated routes, with the key "
        "hashed before it is used as a Redis key so no secret ever lands in the counter store",
        "question": "tenants with many API keys could multiply their limit by minting keys; should the bucket "
        "belong to the key or to the tenant that owns it",
        "answer": "the bucket belongs to the tenant: the gateway resolves key to tenant from its auth cache "
        "and only unauthenticated traffic is keyed by IP, which also closes the key-minting loophole",
        "objection": "IP keying breaks for customers behind carrier-grade NAT; a whole mobile network would "
        "share one bucket. Use the /24 or a fingerprint only as a coarse abuse guard, not as the tenant limit",
        "comment": "please document how a tenant can see its current limits and remaining budget in the "
        "dashboard, or we will get the same support ticket every week from the large integrators",
        "revised": "buckets keyed by tenant id resolved from the API key; unauthenticated routes get a coarse "
        "per-/24 abuse guard with a generous limit; key hashes only, never raw keys, in Redis",
        "question2": "how long may the key-to-tenant cache be stale after a key is revoked",
        "answer2": "at most 30 seconds; revocation also publishes an event that evicts the entry at once",
        "decision": "limits are per tenant (resolved from the API key, cache at most 30 s stale); "
        "unauthenticated traffic gets a coarse per-/24 guard; only key hashes are stored",
    },
    {
        "topic": "rollout and observability",
        "plan": "ship in shadow mode for two weeks: compute every decision, emit metrics and logs, but never "
        "reject; then enforce per plan tier, free tier first, with a kill switch in the gateway config",
        "question": "which metrics tell us shadow mode is safe to end, and who decides that on which data",
        "answer": "would-reject rate per tenant and route class, p99 added latency, and Redis errors; the "
        "on-call lead signs off when fewer than 0.1% of paying tenants would have been throttled",
        "objection": "two weeks of shadow mode misses the month-end billing exports, our heaviest traffic. "
        "Run shadow mode across one month end, and alert on any paying tenant above 80% of its limit",
        "comment": "the customer announcement needs to go out before enforcement, with the header names and "
        "the per-tier numbers, and the status page should explain what a 429 from us means",
        "revised": "shadow mode through one month end (about five weeks), alerts at 80% of limit for paying "
        "tenants, enforcement free tier first, kill switch in config, customer notice two weeks ahead",
        "question2": "who owns the kill switch out of hours",
        "answer2": "the gateway on-call; flipping it pages the platform lead automatically",
        "decision": "shadow mode through one month end, then enforce free tier first; alerts at 80% of limit, "
        "a config kill switch owned by gateway on-call, customer notice two weeks before enforcement",
    },
]
HUMAN = (
    "Operator note: legal confirmed we may not throttle the two healthcare tenants below their contracted "
    "rates, whatever the plan table says. Treat contract overrides as hard floors in every remaining "
    "decision, and make sure the rollout plan names who checks them before enforcement starts. I will be "
    "away tomorrow; escalate to the platform lead if you get stuck on this."
)
REASONS = {
    "reviewer-1": "The failure mode is explicit now, the scope is small enough to review in one pass, and the "
    "runbook item covers what support will ask. I have no further blocking concerns on this part, and I "
    "will review the implementation pull requests against this text rather than against my memory of the "
    "discussion.",
    "security-1": "My objection is addressed: the blast radius is contained and nothing secret reaches the "
    "counter store. I would still like the audit log entries mentioned in the design doc, but that can "
    "follow as a task with its own review, and I will check the key hashing in the first pull request.",
    "docs-1": "This is explainable to customers in two paragraphs, which is my bar. I will draft the public "
    "documentation page and the changelog entry from the decision text once it is recorded, and ask the "
    "support team to read it before it is published.",
}


def scripted_thread() -> list[ThreadMessage]:
    """The 50 messages of the scripted thread, deterministic."""
    out: list[ThreadMessage] = []

    def post(author: str, role: str, kind: MessageType, text: str, reply_to: int | None = None) -> int:
        seq = len(out) + 1
        out.append(
            ThreadMessage(
                id=f"{THREAD_ID}#{seq}",
                thread_id=THREAD_ID,
                seq=seq,
                author=author,
                role=role,
                type=kind,
                content=text,
                created_at=_T0 + timedelta(minutes=seq),
                reply_to=f"{THREAD_ID}#{reply_to}" if reply_to else None,
            )
        )
        return seq

    arch, rev, sec, docs = "architect-1", "reviewer-1", "security-1", "docs-1"
    roles = {arch: "architect", rev: "reviewer", sec: "security", docs: "documentation"}
    post("system", "system", MessageType.SYSTEM, OPENING)
    for n, r in enumerate(ROUNDS):
        topic = r["topic"]
        if n == 3:
            post("ops-lead", "human", MessageType.HUMAN, HUMAN)
        p1 = post(
            arch,
            roles[arch],
            MessageType.PROPOSAL,
            f"Proposal on {topic}: {r['plan']}. This keeps the design small and testable, and it reuses what "
            "the platform team already operates. If we agree I will write it into the design doc and open "
            "the tracking tasks; please look hardest at the failure modes. The main risk I see is operational "
            "rather than functional, so the doc will ship with its dashboards and alerts from day one.",
        )
        q1 = post(
            rev,
            roles[rev],
            MessageType.QUESTION,
            f"Before I vote on the {topic} proposal: {r['question']}? I am asking because the answer decides "
            "whether on-call can reason about an incident at night without reading the code, and whether the "
            "load test plan covers it.",
            p1,
        )
        post(
            arch,
            roles[arch],
            MessageType.ANSWER,
            f"On {topic}: {r['answer']}. I will add this to the design doc as its own section with the test "
            "that demonstrates it, so the behaviour is pinned down and not just described.",
            q1,
        )
        post(
            sec,
            roles[sec],
            MessageType.DISAGREE,
            f"I disagree with the {topic} proposal as written: {r['objection']}. That change would make me "
            "agree; without it I would block this part of the design. I have seen this pattern cause a "
            "cross-service outage before, so I am not willing to wave it through on trust.",
            p1,
        )
        post(
            docs,
            roles[docs],
            MessageType.COMMENT,
            f"A note on {topic} for the documentation: {r['comment']}. I will track it as a docs task and link "
            "it from the design doc, so it is not lost when the implementation starts.",
        )
        p2 = post(
            arch,
            roles[arch],
            MessageType.PROPOSAL,
            f"Revised proposal on {topic}, taking the objection on board: {r['revised']}. Everything else "
            "stays as in my previous proposal. Please vote on this version; earlier votes do not carry over.",
        )
        post(rev, roles[rev], MessageType.AGREE, f"Agree with the revised {topic} plan. {REASONS[rev]}", p2)
        q2 = post(
            docs,
            roles[docs],
            MessageType.QUESTION,
            f"One detail on the revised {topic} plan that the public docs must state precisely: "
            f"{r['question2']}? Customers will ask, and I would rather we decide it now than improvise later.",
            p2,
        )
        if r["answer2"]:
            post(
                arch,
                roles[arch],
                MessageType.ANSWER,
                f"On the docs question: {r['answer2']}. I have added it to the revised plan's text, and it goes "
                "into the public page verbatim, so the wording above is what customers will read.",
                q2,
            )
        else:
            post(
                arch,
                roles[arch],
                MessageType.COMMENT,
                "Good question that I cannot settle alone: it depends on how platform accounts are billed. "
                "I am leaving it open for the platform lead rather than guessing; it does not block the vote.",
            )
        post(sec, roles[sec], MessageType.AGREE, f"Agree with the revised {topic} plan. {REASONS[sec]}", p2)
        post(
            docs, roles[docs], MessageType.AGREE, f"Agree with the revised {topic} plan. {REASONS[docs]}", p2
        )
        post(
            "system",
            "system",
            MessageType.DECISION,
            f"Decision on {topic}: {r['decision']}. Proposed by {arch}; agreed by {docs}, {rev}, {sec}. "
            "Follow-up tasks are opened for the implementation, the runbook and the public documentation.",
        )
    return out


def agent_turns(messages: list[ThreadMessage]) -> list[int]:
    """The ``t`` of every prompt an agent really gets: the turns that post ``messages[t]`` (the system's opening
    and decisions and the operator's message are posted without a model call)."""
    return [
        t for t in range(1, len(messages)) if messages[t].author != "system" and messages[t].role != "human"
    ]


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def replay(
    messages: list[ThreadMessage],
    token_budget: int = TOKEN_BUDGET,
    turns: list[int] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Prompt history tokens summed over every turn (``turns``: the ``t`` of each prompt, which carries
    ``messages[:t]``; every prefix by default), optimized and full, and the final prompt's checks."""
    full_total = optimized_total = summary_total = 0
    plan = plan_context(messages[:1], token_budget=token_budget, **options)
    for t in turns or range(1, len(messages) + 1):
        plan = plan_context(messages[:t], token_budget=token_budget, **options)
        full_total += history_tokens(messages[:t])
        optimized_total += plan.sent_tokens
        summary_total += sum(message_tokens(m) for m in plan.history if m.type is MessageType.SUMMARY)
    final = messages[: (turns or [len(messages)])[-1]]
    decisions = [m for m in final if m.type is MessageType.DECISION]
    sent_ids = {m.id for m in plan.history}
    prompt = "\n".join(format_history_line(m) for m in plan.history)
    latest = next((m for m in reversed(final) if m.type is MessageType.PROPOSAL), None)
    return {
        "turns": len(turns) if turns else len(messages),
        "token_budget": token_budget,
        "options": options,
        "full_tokens": full_total,
        "optimized_tokens": optimized_total,
        "reduction": round(1 - optimized_total / full_total, 4),
        "summary_tokens": summary_total,
        "floor_reduction": round(1 - (optimized_total - summary_total) / full_total, 4),
        "final_prompt_full_tokens": plan.full_tokens,
        "final_prompt_sent_tokens": plan.sent_tokens,
        "final_prompt_reduction": round(plan.ratio, 4),
        # each decision is in the final prompt as a message, and every sentence of it is in the prompt's text
        # (a decision may refer to an earlier, also pinned decision for sentences it repeats word for word)
        "decisions_in_final_prompt": all(
            d.id in sent_ids and all(s in prompt for s in _sentences(d.content)) for d in decisions
        ),
        "decisions": len(decisions),
        "open_questions_in_final_prompt": all(q in plan.history for q in open_questions(final)),
        "latest_proposal_in_final_prompt": latest is None or latest in plan.history,
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _escalation_round_trips(rounds: int) -> dict[str, Any]:
    """In-process: an agent calls request_human; we time raised → event seen by a subscriber, and
    decision submitted → the agent's ``active`` state seen by a subscriber. Real runtime, real SQLite, the
    real openai SDK over HTTP to a scripted server (its round trip is outside both intervals)."""
    import asyncio
    import tempfile

    from bzzz_console.app import make_runtime
    from bzzz_console.config import Settings
    from bzzz_console.demo.scripted_server import ScriptedReply, ScriptedServer, ScriptedToolCall
    from bzzz_console.domain import commands as cmd
    from bzzz_console.domain import events as ev
    from bzzz_console.runtime.llm.client import OpenAIBackend, RetryPolicy

    def responder(body: dict[str, Any]) -> ScriptedReply:
        system = body["messages"][0]["content"]
        thread_id = system.split("thread_id: ", 1)[1].split("\n", 1)[0]
        if any("Operator decision" in (m.get("content") or "") for m in body["messages"]):
            return ScriptedReply(
                tool_calls=(
                    ScriptedToolCall(
                        "bzzz_post",
                        {
                            "target_address": f"bzzz://*@*/threads/{thread_id}",
                            "message_type": "proposal",
                            "content": {"text": "Done as decided."},
                        },
                    ),
                )
            )
        return ScriptedReply(
            tool_calls=(ScriptedToolCall("request_human", {"reason": "Need a human call here"}),)
        )

    raised_ms: list[float] = []
    resumed_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, ScriptedServer(responder) as server:
        settings = Settings.model_validate(
            {
                "data_dir": tmp,
                "store": {"url": f"sqlite:///{tmp}/bench.db"},
                "runtime": {"fleet": {"architect": 1}, "poll_interval_s": 0.01},
            }
        )
        backend = OpenAIBackend(base_url=server.base_url, api_key="bench", policy=RetryPolicy(max_attempts=1))
        rt = make_runtime(settings, backend=backend)
        events = rt.bus.subscribe()
        async with rt:
            raise_started: list[float] = []
            original = rt.escalations.raise_for

            def timed_raise(*args: Any, **kwargs: Any) -> str:
                raise_started.append(time.perf_counter())
                return original(*args, **kwargs)

            rt.escalations.raise_for = timed_raise  # type: ignore[method-assign]
            for i in range(rounds):
                await rt.submit(cmd.AddTask(title=f"Round {i}", roles=("architect",)))
                escalation_id = None
                while escalation_id is None:
                    event = await events.get()
                    if isinstance(event, ev.EscalationRaised):
                        raised_ms.append((time.perf_counter() - raise_started[-1]) * 1000)
                        escalation_id = event.escalation_id
                submitted = time.perf_counter()
                await rt.submit(cmd.Approve(escalation_id=escalation_id))
                while True:
                    event = await events.get()
                    if isinstance(event, ev.AgentStateChanged) and event.new == "active":
                        resumed_ms.append((time.perf_counter() - submitted) * 1000)
                        break
                await asyncio.wait_for(rt.wait_idle(), 10)
    return {
        "rounds": rounds,
        "raised_to_event_ms_median": round(_percentile(raised_ms, 0.5), 3),
        "raised_to_event_ms_p95": round(_percentile(raised_ms, 0.95), 3),
        "decision_to_active_ms_median": round(_percentile(resumed_ms, 0.5), 3),
        "decision_to_active_ms_p95": round(_percentile(resumed_ms, 0.95), 3),
        "target_p95_ms": 20,
    }


def escalation_latency(rounds: int = 40) -> dict[str, Any]:
    import asyncio

    return asyncio.run(_escalation_round_trips(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    messages = scripted_thread()
    from bzzz_console.config import OptimizerSettings

    defaults = OptimizerSettings()
    settings = {
        "keep_recent": defaults.keep_recent,
        "summarize_after": defaults.summarize_after,
        "compress_at": defaults.compress_at,
    }
    main_run = replay(messages, **settings)
    # The same, counting only the prompts agents really get (no model call before a system or operator post).
    agent_run = replay(messages, turns=agent_turns(messages), **settings)
    # For reference only: how the figure moves with the knobs (not the headline number).
    knobs: dict[str, dict[str, Any]] = {
        "keep_recent=4,summarize_after=8 (old defaults)": {"keep_recent": 4, "summarize_after": 8},
        "keep_recent=4": {"keep_recent": 4, "summarize_after": defaults.summarize_after},
        "summarize_after=8": {"keep_recent": defaults.keep_recent, "summarize_after": 8},
        "keep_recent=2": {"keep_recent": 2, "summarize_after": defaults.summarize_after},
    }
    variants = {name: replay(messages, **options)["reduction"] for name, options in knobs.items()}
    latency = escalation_latency()
    report = {
        **main_run,
        "target_reduction": TARGET_REDUCTION,
        "ok": main_run["reduction"] >= TARGET_REDUCTION and main_run["decisions_in_final_prompt"],
        "agent_turns": {k: agent_run[k] for k in ("turns", "full_tokens", "optimized_tokens", "reduction")},
        "variants_reduction": variants,
        "escalation_latency": latency,
        "elapsed_s": round(time.perf_counter() - started, 3),
    }
    if not args.json_only:
        rows = [
            ("prompt tokens, full history (sum over turns)", f"{main_run['full_tokens']:,}", ""),
            ("prompt tokens, optimizer (sum over turns)", f"{main_run['optimized_tokens']:,}", ""),
            ("  of which the summary messages", f"{main_run['summary_tokens']:,}", ""),
            ("reduction", f"{main_run['reduction']:.1%}", f"≥ {TARGET_REDUCTION:.0%}"),
            (
                f"  same over the {agent_run['turns']} prompts agents really get",
                f"{agent_run['reduction']:.1%}",
                "",
            ),
            (
                "reduction if the summary were free (keep-rule floor)",
                f"{main_run['floor_reduction']:.1%}",
                "",
            ),
            (
                "final prompt: full → sent tokens",
                f"{main_run['final_prompt_full_tokens']:,} → {main_run['final_prompt_sent_tokens']:,} "
                f"({main_run['final_prompt_reduction']:.1%})",
                "",
            ),
            ("every decision in the final prompt", str(main_run["decisions_in_final_prompt"]), "True"),
            (
                "open questions, latest proposal in it",
                str(
                    main_run["open_questions_in_final_prompt"] and main_run["latest_proposal_in_final_prompt"]
                ),
                "True",
            ),
            *((f"  variant {k}: reduction", f"{v:.1%}", "") for k, v in variants.items()),
            ("escalation raised → event, p95 (ms)", f"{latency['raised_to_event_ms_p95']:.2f}", "≤ 20"),
            (
                "decision → agent active again, p95 (ms)",
                f"{latency['decision_to_active_ms_p95']:.2f}",
                "≤ 20",
            ),
        ]
        width = max(len(r[0]) for r in rows)
        print(f"{'metric':<{width}}  {'value':<28}  target")
        for name, value, target in rows:
            print(f"{name:<{width}}  {value:<28}  {target}")
        print()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
