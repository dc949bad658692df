"""The OpenAI backend over real HTTP against the scripted OpenAI-compatible server (no mocks)."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from helpers import wait_until

from bzzz_console.demo.scripted_server import Fault, ScriptedReply, ScriptedServer, ScriptedToolCall
from bzzz_console.domain.llm import ChatMessage, RetryInfo, ToolCall, ToolSpec, Usage
from bzzz_console.runtime.llm.client import LLMError, OpenAIBackend, RetryPolicy, parse_retry_after

pytestmark = pytest.mark.timeout(20)

HELLO = [ChatMessage("system", "You are terse."), ChatMessage("user", "Say hello")]


def echo(body: dict[str, Any]) -> ScriptedReply:
    return ScriptedReply(content=f"echo: {body['messages'][-1]['content']}")


class Sleeps:
    """An injected ``sleep`` that records the back-off instead of waiting it out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(echo) as srv:
        yield srv


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def backend(server: ScriptedServer, sleeps: Sleeps) -> AsyncIterator[OpenAIBackend]:
    policy = RetryPolicy(max_attempts=4, base_delay_s=0.05, timeout_s=5, rng=random.Random(7))
    b = OpenAIBackend(base_url=server.base_url, api_key="dummy", policy=policy, sleep=sleeps)
    yield b
    await b.aclose()


async def test_plain_reply_with_usage_and_cached_tokens(
    server: ScriptedServer, backend: OpenAIBackend
) -> None:
    server.responder = lambda body: ScriptedReply(content="hello", usage=Usage(120, 5, 96))
    result = await backend.complete(model="gpt-4o-mini", messages=HELLO, max_tokens=50)
    assert result.content == "hello"
    assert result.tool_calls == ()
    assert result.usage == Usage(prompt_tokens=120, completion_tokens=5, cached_tokens=96)
    assert result.usage.total_tokens == 125
    assert (result.model, result.finish_reason, result.attempts) == ("gpt-4o-mini", "stop", 1)
    assert 0 < result.latency_s < 2
    [sent] = server.requests
    assert sent["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello"},
    ]
    assert sent["max_tokens"] == 50
    assert "tools" not in sent


async def test_estimated_usage_when_the_script_gives_none(backend: OpenAIBackend) -> None:
    result = await backend.complete(model="m", messages=[ChatMessage("user", "x" * 40)])
    assert result.content == "echo: " + "x" * 40
    assert result.usage == Usage(prompt_tokens=10, completion_tokens=12, cached_tokens=0)


async def test_tool_call_round_trip(server: ScriptedServer, backend: OpenAIBackend) -> None:
    args = {"path": "notes/é.md", "lines": [1, 2], "opts": {"quote": 'say "hi"', "n": None}}

    def script(body: dict[str, Any]) -> ScriptedReply:
        if body["messages"][-1]["role"] == "tool":
            return ScriptedReply(content="done")
        return ScriptedReply(tool_calls=(ScriptedToolCall("read_file", args),))

    server.responder = script
    tool = ToolSpec(
        "read_file", "Read a file", {"type": "object", "properties": {"path": {"type": "string"}}}
    )
    first = await backend.complete(model="m", messages=HELLO, tools=[tool])
    assert first.finish_reason == "tool_calls"
    assert first.content is None
    [call] = first.tool_calls
    assert call.name == "read_file" and call.id.startswith("call_")
    assert json.loads(call.arguments) == args
    assert server.requests[0]["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "description": "Read a file",
                "parameters": dict(tool.parameters),
            },
        }
    ]

    history = [
        *HELLO,
        ChatMessage("assistant", None, tool_calls=first.tool_calls),
        ChatMessage("tool", "file body", tool_call_id=call.id),
    ]
    second = await backend.complete(model="m", messages=history, tools=[tool])
    assert (second.content, second.finish_reason) == ("done", "stop")
    sent = server.requests[1]["messages"]
    assert sent[2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": "read_file", "arguments": call.arguments},
            }
        ],
    }
    assert sent[3] == {"role": "tool", "tool_call_id": call.id, "content": "file body"}


async def test_rate_limit_honours_retry_after(
    server: ScriptedServer, backend: OpenAIBackend, sleeps: Sleeps
) -> None:
    server.inject(Fault.rate_limit(retry_after=1.5))
    retries: list[RetryInfo] = []
    result = await backend.complete(model="m", messages=HELLO, on_retry=retries.append)
    assert result.content == "echo: Say hello"
    assert result.attempts == 2
    [info] = retries
    assert (info.attempt, info.delay_s, info.status) == (1, 1.5, 429)
    assert "HTTP 429" in info.reason and "Rate limit reached" in info.reason
    assert sleeps.delays == [1.5]
    assert len(server.requests) == 2


async def test_server_errors_twice_then_success(
    server: ScriptedServer, backend: OpenAIBackend, sleeps: Sleeps
) -> None:
    server.inject(Fault.server_error(500), Fault.server_error(503))
    retries: list[RetryInfo] = []
    result = await backend.complete(model="m", messages=HELLO, on_retry=retries.append)
    assert result.attempts == 3
    assert [r.status for r in retries] == [500, 503]
    # full jitter: uniform in [0, base * 2**(attempt-1)]
    assert 0 <= sleeps.delays[0] <= 0.05 and 0 <= sleeps.delays[1] <= 0.1
    assert sleeps.delays == [r.delay_s for r in retries]


async def test_timeout_then_success(server: ScriptedServer, sleeps: Sleeps) -> None:
    server.inject(Fault.timeout(delay_s=3.0))
    backend = OpenAIBackend(
        base_url=server.base_url, api_key="k", policy=RetryPolicy(timeout_s=0.3), sleep=sleeps
    )
    retries: list[RetryInfo] = []
    try:
        result = await backend.complete(model="m", messages=HELLO, on_retry=retries.append)
    finally:
        await backend.aclose()
    assert result.attempts == 2 and result.content == "echo: Say hello"  # the 3 s reply was not waited for
    assert retries[0].status is None and "no answer within 0.3s" in retries[0].reason


async def test_malformed_json_then_success(server: ScriptedServer, backend: OpenAIBackend) -> None:
    server.inject(Fault.malformed_json())
    retries: list[RetryInfo] = []
    result = await backend.complete(model="m", messages=HELLO, on_retry=retries.append)
    assert result.attempts == 2
    assert "invalid JSON" in retries[0].reason


async def test_cut_off_response_then_success(server: ScriptedServer, backend: OpenAIBackend) -> None:
    server.inject(Fault.stream_cut())
    retries: list[RetryInfo] = []
    result = await backend.complete(model="m", messages=HELLO, on_retry=retries.append)
    assert result.attempts == 2
    assert "connection to" in retries[0].reason and "peer closed connection" in retries[0].reason


async def test_bad_api_key_is_not_retried(sleeps: Sleeps) -> None:
    with ScriptedServer(echo, api_key="right") as srv:
        wrong = OpenAIBackend(base_url=srv.base_url, api_key="wrong", sleep=sleeps)
        right = OpenAIBackend(base_url=srv.base_url, api_key="right", sleep=sleeps)
        try:
            with pytest.raises(LLMError) as caught:
                await wrong.complete(model="m", messages=HELLO)
            assert (await right.complete(model="m", messages=HELLO)).content == "echo: Say hello"
        finally:
            await wrong.aclose()
            await right.aclose()
    err = caught.value
    assert (err.status, err.attempts, err.retryable) == (401, 1, False)
    assert "HTTP 401" in str(err) and "Incorrect API key provided" in str(err)
    assert sleeps.delays == []


async def test_exhausted_retries(server: ScriptedServer, backend: OpenAIBackend, sleeps: Sleeps) -> None:
    server.inject(*[Fault.server_error(503)] * 4)
    with pytest.raises(LLMError) as caught:
        await backend.complete(model="m", messages=HELLO)
    err = caught.value
    assert (err.attempts, err.status, err.retryable) == (4, 503, True)
    assert str(err).startswith(f"model call failed after 4 attempts: HTTP 503 from {server.base_url}")
    assert len(sleeps.delays) == 3


async def test_connection_refused_is_retried(sleeps: Sleeps) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    policy = RetryPolicy(max_attempts=2, timeout_s=2)
    backend = OpenAIBackend(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", policy=policy, sleep=sleeps)
    with pytest.raises(LLMError) as caught:
        await backend.complete(model="m", messages=HELLO)
    await backend.aclose()
    assert caught.value.attempts == 2 and caught.value.status is None
    assert "connection to" in str(caught.value)


async def test_streaming_with_the_sdk(server: ScriptedServer) -> None:
    import openai

    server.responder = lambda body: ScriptedReply(
        content="streamed words here",
        tool_calls=(ScriptedToolCall("lookup", {"q": "a long query to split"}),),
        usage=Usage(11, 7, 3),
    )
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0, timeout=5)
    try:
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        chunks = [c async for c in stream]
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        pieces = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
        assert content == "streamed words here"
        assert len(pieces) > 2 and {p.index for p in pieces} == {0}
        assert pieces[0].function is not None and pieces[0].function.name == "lookup"
        args = "".join(p.function.arguments or "" for p in pieces if p.function)
        assert json.loads(args) == {"q": "a long query to split"}
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
        last = chunks[-1]
        assert last.choices == [] and last.usage is not None
        assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (
            11,
            7,
            18,
        )
        assert last.usage.prompt_tokens_details is not None
        assert last.usage.prompt_tokens_details.cached_tokens == 3

        server.inject(Fault.stream_cut())
        got: list[object] = []
        with pytest.raises(openai.APIConnectionError):
            cut = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            async for c in cut:
                got.append(c)
        assert 0 < len(got) <= 2
    finally:
        await client.close()


async def test_latency_does_not_block_other_requests(server: ScriptedServer, backend: OpenAIBackend) -> None:
    server.latency_s = 0.3
    started = time.monotonic()
    results = await asyncio.gather(*(backend.complete(model="m", messages=HELLO) for _ in range(3)))
    assert all(r.content == "echo: Say hello" for r in results)
    assert 0.3 <= time.monotonic() - started < 0.8
    assert all(r.latency_s >= 0.3 for r in results)


def test_sync_use_errors_and_models() -> None:
    def boom(body: dict[str, Any]) -> ScriptedReply:
        if body["messages"][-1]["content"] == "boom":
            raise RuntimeError("script broke")
        return ScriptedReply(content="ok")

    def post(srv: ScriptedServer, content: str) -> tuple[int, dict[str, Any]]:
        payload = {"model": "local-llama", "messages": [{"role": "user", "content": content}]}
        request = urllib.request.Request(
            srv.base_url + "/chat/completions", data=json.dumps(payload).encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    with ScriptedServer(boom) as srv:
        status, body = post(srv, "boom")
        assert status == 500 and "script broke" in body["error"]["message"]
        status, body = post(srv, "fine")  # still serving
        assert status == 200 and body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["content"] == "ok" and body["model"] == "local-llama"
        with urllib.request.urlopen(srv.base_url + "/models", timeout=5) as response:
            ids = [m["id"] for m in json.load(response)["data"]]
        assert ids == ["local-llama", "gpt-4o", "gpt-4o-mini"]


def test_stop_is_clean_and_idempotent() -> None:
    srv = ScriptedServer(echo).start()
    thread, port = srv._thread, srv.port
    assert thread is not None and thread.is_alive() and thread.daemon
    srv.inject(Fault.timeout(delay_s=30))  # a stalled request must not hold up shutdown
    payload = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = urllib.request.Request(srv.base_url + "/chat/completions", data=payload, method="POST")
    answers: list[int] = []
    client = threading.Thread(
        target=lambda: answers.append(urllib.request.urlopen(request, timeout=10).status)
    )
    client.start()
    wait_until(lambda: srv.requests, "the request to reach the server")
    started = time.monotonic()
    srv.stop()
    srv.stop()
    assert not thread.is_alive()
    assert time.monotonic() - started < 2
    client.join(5)
    assert answers == [200]  # the stalled request was answered on the way out
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_retry_policy_delay() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=5.0, rng=random.Random(1))
    again = RetryPolicy(base_delay_s=1.0, max_delay_s=5.0, rng=random.Random(1))
    delays = [policy.delay(n, None) for n in range(1, 8)]
    assert delays == [again.delay(n, None) for n in range(1, 8)]
    assert all(0 <= d <= min(5.0, 2 ** (n - 1)) for n, d in enumerate(delays, start=1))
    assert policy.delay(1, 2.5) == 2.5
    assert policy.delay(1, 600) == 5.0
    assert policy.delay(3, 0) == 0


def test_parse_retry_after() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "soon"}) is None
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"retry-after": later}, now=now.timestamp()) == pytest.approx(30)


def test_tool_message_needs_an_id() -> None:
    from bzzz_console.runtime.llm.client import to_openai_messages

    with pytest.raises(ValueError, match="tool_call_id"):
        to_openai_messages([ChatMessage("tool", "x")])
    call = ToolCall("c1", "f", "{}")
    assert (
        to_openai_messages([ChatMessage("assistant", "thinking", tool_calls=(call,))])[0]["content"]
        == "thinking"
    )


def test_importing_the_backend_does_not_import_openai() -> None:
    code = (
        "import sys, bzzz_console.runtime.llm.client as m; "
        "m.OpenAIBackend(base_url=None, api_key='k'); "
        "assert 'openai' not in sys.modules, sorted(k for k in sys.modules if 'openai' in k)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
