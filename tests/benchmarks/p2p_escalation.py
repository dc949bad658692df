"""Cross-node escalation round trip: two real Runtimes on one loop, each with its own libp2p node (127.0.0.1),
SQLite file, data dir (node key) and scripted model server. No assertions; called by ``p2p.py``.

Per sample, A gets a task for its one reviewer, whose first turn calls ``request_human``. A raises the
escalation and sends ``escalation_trigger``; B mirrors it, and code on B (a bus tap, standing in for the
operator's key press) answers ``approve`` through ``rt.submit``; B signs and sends ``escalation_decision``; A
verifies it, applies it once and its reviewer leaves ``escalating``. Timed on the same clock (perf_counter):

- round trip: A's ``escalation_raised`` → A's agent ``escalating → active`` (the issue's figure, target p95 ≤ 300 ms);
- answer → confirmed: B's ``submit`` until A's confirmation settled B's mirror.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bzzz_console.app import make_runtime
from bzzz_console.config import Settings
from bzzz_console.demo.scripted_server import ScriptedReply, ScriptedServer, ScriptedToolCall
from bzzz_console.domain import commands as cmd
from bzzz_console.domain import events as ev
from bzzz_console.runtime.llm.client import OpenAIBackend, RetryPolicy
from bzzz_console.runtime.runtime import Runtime


def reviewer_script(body: dict[str, Any]) -> ScriptedReply:
    """First turn of a thread: ask a human. After the answer: propose (alone, that closes the thread)."""
    prompt = "\n".join(m.get("content") or "" for m in body["messages"])
    if "approve" in prompt.lower() and "(human)" in prompt:
        thread = prompt.split("thread_id: ", 1)[1].split("\n", 1)[0]
        args = {
            "target_address": f"bzzz://*@*/threads/{thread}",
            "message_type": "proposal",
            "content": {"text": "Done."},
        }
        return ScriptedReply(tool_calls=(ScriptedToolCall("bzzz_post", args),))
    return ScriptedReply(tool_calls=(ScriptedToolCall("request_human", {"reason": "May I ship it?"}),))


def settings_for(folder: Path, peers: list[str]) -> Settings:
    return Settings.model_validate(
        {
            "data_dir": str(folder),
            "store": {"url": f"sqlite:///{folder / 'bzzz.db'}"},
            "runtime": {"fleet": {"reviewer": 1}, "poll_interval_s": 0.05},
            "budgets": {"daily_usd": None, "thread_usd": None},
            "p2p": {"enabled": True, "listen": ["/ip4/127.0.0.1/tcp/0"], "peers": peers},
        }
    )


@contextlib.asynccontextmanager
async def runtime(folder: Path, peers: list[str]) -> AsyncIterator[Runtime]:
    folder.mkdir()
    server = ScriptedServer(reviewer_script).start()
    backend = OpenAIBackend(base_url=server.base_url, api_key="bench", policy=RetryPolicy(max_attempts=2))
    try:
        async with make_runtime(settings_for(folder, peers), backend=backend) as rt:
            yield rt
    finally:
        server.stop()


async def until(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark waited 30 s for something that did not happen")
        await asyncio.sleep(0.005)
    return result


async def measure(samples: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bzzz-bench-p2p-") as tmp:
        root = Path(tmp)
        async with runtime(root / "a", []) as a:
            assert a.network is not None and a.network.node is not None
            async with runtime(root / "b", [a.network.node.addrs[0]]) as b:
                assert b.network is not None and b.network.node is not None
                await until(lambda: a.network.peer_id in b.network.node.subscribed_peers())  # type: ignore[union-attr]
                await until(lambda: b.network.peer_id in a.network.node.subscribed_peers())  # type: ignore[union-attr]
                raised: dict[str, float] = {}
                resumed: dict[str, float] = {}
                confirmed: dict[str, float] = {}
                answers: list[asyncio.Task[Any]] = []

                def on_a(event: ev.Event) -> None:
                    if isinstance(event, ev.EscalationRaised):
                        raised[event.escalation_id] = time.perf_counter()
                    elif (
                        isinstance(event, ev.AgentStateChanged)
                        and event.old == "escalating"
                        and event.new == "active"
                        and raised
                    ):
                        last = max(raised, key=raised.__getitem__)
                        resumed.setdefault(last, time.perf_counter())

                async def answer(escalation_id: str) -> None:
                    started = time.perf_counter()
                    await b.submit(cmd.Approve(escalation_id=escalation_id, operator="bench"))
                    confirmed[escalation_id] = (time.perf_counter() - started) * 1000

                def on_b(event: ev.Event) -> None:  # the operator's key press, as code
                    if isinstance(event, ev.EscalationRaised):
                        answers.append(asyncio.get_running_loop().create_task(answer(event.escalation_id)))

                a.bus.tap(on_a)
                b.bus.tap(on_b)
                for i in range(samples + 1):  # the first one warms up both sides
                    await a.submit(cmd.AddTask(title=f"Ship build {i}", roles=("reviewer",)))
                    await until(lambda i=i: len(resumed) > i)
                    await asyncio.wait_for(a.wait_idle(), 30)
                await asyncio.gather(*answers)
                first = min(raised, key=raised.__getitem__)
                round_trips = [(resumed[e] - raised[e]) * 1000 for e in resumed if e != first]
                confirms = [ms for e, ms in confirmed.items() if e != first]
                agree = all(
                    (x := a.store.get_escalation(e)) is not None
                    and (y := b.store.get_escalation(e)) is not None
                    and (x.state, x.answered_by) == (y.state, y.answered_by)
                    for e in raised
                )
                return {"round_trip": round_trips, "answer_confirmed": confirms, "stores_agree": agree}


def escalation_round_trip(samples: int) -> dict[str, Any]:
    return asyncio.run(measure(samples))
