"""The demo model: a scripted team played by an OpenAI-compatible server on 127.0.0.1.

The agents talk to it through the real ``openai`` SDK over real HTTP, exactly as to OpenAI. The script is a pure
function of the request (who speaks, the thread so far, the seed), so a restarted run continues the same story
and the same seed always plays the same conversation. Three kinds of thread:

* ``consensus`` — a plan is proposed (after a lookup of who is around), the others agree, the thread closes;
* ``clarify``   — a question, an answer folded into a revised proposal, then agreement;
* ``dispute``   — the reviewer objects to every revision and finally calls ``request_human``.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bzzz_console.config import Settings
from bzzz_console.demo.scripted_server import ScriptedReply, ScriptedServer, ScriptedToolCall
from bzzz_console.domain.llm import Usage

if TYPE_CHECKING:
    from bzzz_console.store.repo import Store
    from bzzz_console.store.tables import TaskRow

DEMO_TASKS: tuple[dict[str, Any], ...] = (
    {
        "title": "Design the rate limiter for the public API",
        "description": "Requests per API key must be limited across all gateway nodes; bursts are allowed, "
        "sustained abuse is not. Propose the algorithm, where state lives and how limits are configured.",
        "roles": ("architect", "reviewer"),
        "priority": "high",
    },
    {
        "title": "Review the schema migration for the audit table",
        "description": "The migration adds a hash chain to the audit table and rewrites 40M rows in place. "
        "Decide whether it can run online during business hours.",
        "roles": ("architect", "reviewer"),
        "priority": "urgent",
    },
    {
        "title": "Document the MCP tool surface",
        "description": "Outside agents and IDEs call our six bzzz tools over MCP. Write the reference: "
        "arguments, results, errors and examples for each tool.",
        "roles": ("documentation", "architect"),
        "priority": "medium",
    },
)


def add_demo_tasks(store: Store, project: str = "default", source: str = "demo") -> list[TaskRow]:
    """The demo scenario's three tasks, added to the store (a running runtime picks them up)."""
    return [store.add_task(project=project, source=source, **task) for task in DEMO_TASKS]


_CARD = re.compile(r"^(agent_id|role|thread_id|project|topic|participants): (.*)$", re.M)
_LINE = re.compile(
    r"^\[(?P<author>[^\s(]+) \((?P<role>[^)]*)\) · (?P<type>\w+) #(?P<seq>\d+)(?: ↩ [^\]]*)?\]: ", re.S
)


@dataclass(frozen=True, slots=True)
class Said:
    author: str
    role: str
    type: str
    seq: int
    content: str


def _parse(body: dict[str, Any]) -> tuple[dict[str, str], list[Said], bool]:
    messages = body.get("messages", [])
    system = next((m.get("content") or "" for m in messages if m.get("role") == "system"), "")
    card = dict(_CARD.findall(system))
    history: list[Said] = []
    for m in messages:
        text = m.get("content") or ""
        match = _LINE.match(text) if m.get("role") in ("user", "assistant") else None
        if match:
            history.append(
                Said(match["author"], match["role"], match["type"], int(match["seq"]), text[match.end() :])
            )
    after_tool = bool(messages) and messages[-1].get("role") == "tool"
    return card, history, after_tool


_VERSION = re.compile(r"\(v(\d+)\)")


def version_of(proposal: str) -> int:
    """Proposals are numbered in their text ("Revised proposal (v3)"); the first has no number."""
    match = _VERSION.search(proposal)
    return int(match[1]) if match else 1


def scenario_of(topic: str, seed: int) -> str:
    lowered = topic.lower()
    if any(w in lowered for w in ("migration", "schema", "database")):
        return "dispute"
    if any(w in lowered for w in ("document", "docs", "guide", "reference")):
        return "clarify"
    digest = hashlib.sha256(f"{seed}:{topic}".encode()).digest()
    return "clarify" if digest[0] % 3 == 0 else "consensus"


def _subject(topic: str) -> str:
    return topic.split(":", 1)[-1].strip().rstrip(".") or "the task"


PLAN_STEPS = {
    "consensus": [
        "keep the state in one place with a clear owner, and make every node a stateless reader",
        "start with the simplest algorithm that meets the limits, and measure before tuning",
        "expose the limits as configuration with safe defaults and a dry-run mode",
        "ship behind a flag, with dashboards for rejections per key",
    ],
    "dispute": [
        "add the new column as nullable, backfill in batches of 50k rows off-peak",
        "switch writers to fill the hash chain, then validate and set NOT NULL",
        "keep the old path for one release so we can roll back",
    ],
    "clarify": [
        "one page per tool: purpose, arguments table, result schema, errors, two examples",
        "a quick-start that calls bzzz_lookup and bzzz_post from an IDE",
        "generate the argument tables from the tool schemas so they never drift",
    ],
}
OBJECTIONS = [
    "rewriting 40M rows in place holds row locks long enough to stall writers; I need a batch size and a lock "
    "timeout before I can agree",
    "the backfill still runs during business hours and there is no measured throughput for the replica lag; "
    "without that number this is a guess",
    "the rollback path re-reads a half-migrated table; I will not sign off until someone owns the risk of a "
    "partial chain",
]


class DemoResponder:
    """Decides what the speaking agent does next, from the request alone."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __call__(self, body: dict[str, Any]) -> ScriptedReply:
        card, history, after_tool = _parse(body)
        me, role = card.get("agent_id", "agent"), card.get("role", "agent")
        thread_id, topic = card.get("thread_id", "thread"), card.get("topic", "the task")
        project = card.get("project", "*")
        participants = [p.split(":", 1) for p in card.get("participants", "").split(", ") if ":" in p]
        rng = random.Random(f"{self.seed}:{thread_id}:{len(history)}:{me}")
        kind = scenario_of(topic, self.seed)
        subject = _subject(topic)
        address = f"bzzz://*@{project}/threads/{thread_id}"
        proposals = [s for s in history if s.type == "proposal"]
        latest = proposals[-1] if proposals else None
        my_turns = [s for s in history if s.author == me]

        def post(kind_: str, text: str, reply_to: int | None = None) -> ScriptedToolCall:
            content: dict[str, Any] = {"text": text}
            if reply_to is not None:
                content["reply_to"] = f"{thread_id}#{reply_to}"
            return ScriptedToolCall(
                "bzzz_post", {"target_address": address, "message_type": kind_, "content": content}
            )

        if not my_turns and not after_tool and rng.random() < 0.5:
            # First look around: who else can help, and what the task says (real tool calls, real results).
            who = "reviewer" if role != "reviewer" else "architect"
            return self._reply(
                body,
                None,
                [
                    ScriptedToolCall(
                        "bzzz_lookup",
                        {"semantic_address": f"bzzz://{who}@*", "filter_criteria": {"availability": True}},
                    )
                ],
            )
        if latest is None:
            steps = PLAN_STEPS[kind]
            plan = "; ".join(f"({i + 1}) {s}" for i, s in enumerate(steps))
            return self._reply(body, None, [post("proposal", f"Proposal for {subject}: {plan}.")])

        voted = {s.author for s in history if s.seq > latest.seq and s.type in ("agree", "disagree")}
        objector = next((pid for pid, prole in participants if prole == "reviewer"), None)
        ruling = next((s for s in reversed(history) if s.type == "human"), None)
        if ruling is not None and kind == "dispute":
            # The operator has spoken: a rejection sends the plan back for a revision, anything else settles it.
            rejected = "rejected" in ruling.content.lower()
            if rejected and me == latest.author and latest.seq < ruling.seq:
                return self._reply(
                    body,
                    None,
                    [
                        post(
                            "proposal",
                            f"Revised proposal (v{version_of(latest.content) + 1}) for "
                            f"{subject}, as the operator decided: run it in a maintenance "
                            f"window; {'; '.join(PLAN_STEPS[kind])}.",
                            ruling.seq,
                        )
                    ],
                )
            if me == objector and me != latest.author and me not in voted:
                if rejected and latest.seq < ruling.seq:
                    return self._reply(
                        body,
                        None,
                        [post("comment", "Waiting for the plan revised after the operator's decision.")],
                    )
                return self._reply(
                    body,
                    None,
                    [
                        post(
                            "agree", f"Agreed, following the operator's decision (#{ruling.seq}).", latest.seq
                        )
                    ],
                )
        if kind == "dispute" and me == objector and me != latest.author:
            # Counted from the latest proposal's version (always in the prompt, even when the optimizer has folded
            # the older messages into a summary): one objection per version, a human after the third.
            mine = version_of(latest.content) - 1
            if mine >= 2:
                return self._reply(
                    body,
                    "Escalating: we are going in circles.",
                    [
                        ScriptedToolCall(
                            "request_human",
                            {
                                "reason": f"No agreement on '{subject}' after {mine} objections: {OBJECTIONS[mine % 3]}. "
                                "Can the migration run online during business hours?",
                                "priority": "high",
                                "options": [
                                    "approve online migration",
                                    "require a maintenance window",
                                    "split the migration",
                                ],
                            },
                        )
                    ],
                )
            if me not in voted:
                return self._reply(
                    body, None, [post("disagree", f"I disagree: {OBJECTIONS[mine % 3]}.", latest.seq)]
                )
        if me == latest.author:
            open_points = [s for s in history if s.seq > latest.seq and s.type in ("disagree", "question")]
            answered = {s.content for s in history if s.author == me and s.type == "answer"}
            if open_points and open_points[-1].type == "question" and not answered:
                return self._reply(
                    body,
                    None,
                    [
                        post(
                            "answer",
                            "Good question: every page links its errors to the "
                            "shared error table, and the examples run in CI.",
                            open_points[-1].seq,
                        )
                    ],
                )
            if open_points and open_points[-1].type == "disagree":
                revision = version_of(latest.content) + 1
                return self._reply(
                    body,
                    None,
                    [
                        post(
                            "proposal",
                            f"Revised proposal (v{revision}) for {subject}: "
                            f"{'; '.join(PLAN_STEPS[kind])}; plus: {rng.choice(REVISIONS)}.",
                            open_points[-1].seq,
                        )
                    ],
                )
            return self._reply(
                body, None, [post("comment", f"Waiting for the others to review proposal #{latest.seq}.")]
            )
        asked = any(s.type == "question" for s in history)
        if kind == "clarify" and not asked and me not in voted:
            return self._reply(
                body,
                None,
                [
                    post(
                        "question",
                        "Before I agree: how do readers find which errors each "
                        "tool can return, and are the examples kept working?",
                        latest.seq,
                    )
                ],
            )
        if me in voted:
            return self._reply(body, None, [post("comment", "Nothing to add until there is a new proposal.")])
        return self._reply(body, None, [post("agree", f"Agreed. {rng.choice(AGREEMENTS)}", latest.seq)])

    def _reply(
        self, body: dict[str, Any], content: str | None, calls: list[ScriptedToolCall]
    ) -> ScriptedReply:
        prompt_chars = sum(len(m.get("content") or "") for m in body.get("messages", []))
        system_chars = sum(
            len(m.get("content") or "") for m in body.get("messages", []) if m.get("role") == "system"
        )
        out_chars = len(content or "") + sum(len(str(c.arguments)) for c in calls)
        prompt = prompt_chars // 4 + 8 * len(body.get("tools", []) or ())
        history_len = len(body.get("messages", []))
        # OpenAI caches a repeated prompt prefix: from the second call of a thread on, the system part is cached.
        cached = min(prompt, system_chars // 4) if history_len > 3 else 0
        return ScriptedReply(
            content=content,
            tool_calls=tuple(calls),
            usage=Usage(prompt_tokens=prompt, completion_tokens=max(1, out_chars // 4), cached_tokens=cached),
        )


REVISIONS = [
    "a kill switch per key for incident response",
    "a load test at 3x peak before rollout",
    "an owner for every alert, written in the runbook",
]
AGREEMENTS = [
    "This is simple enough to operate and the failure modes are covered.",
    "The plan covers my concerns; let's record it.",
    "Good trade-off between cost and safety.",
]


def start_demo_server(settings: Settings) -> ScriptedServer:
    server = ScriptedServer(DemoResponder(settings.demo.seed), latency_s=settings.demo.latency_ms / 1000)
    return server.start()
