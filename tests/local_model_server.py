"""An OpenAI-compatible server that behaves the way real local servers and small models do.

The behaviour is chosen by the model name's family (before the ``:``), so a test picks it per role with
``[models]``, exactly as an operator names local models. Responses follow what the servers document and send:

- ``tool-model``   a model that calls the tools properly (proposes, then agrees), with ``usage``
- ``prose``        answers in prose and never calls a tool ("I agree …")
- ``json-text``    writes the call as a bare JSON object in ``content``; ``fenced`` as a ```json block;
                   ``hermes`` in ``<tool_call>`` tags (Qwen/Hermes templates without the server's parser)
- ``broken``       tool calls with cut-off arguments or an unknown tool name
- ``gemma``        Ollama's 400 for a model without tool support: "… does not support tools"
- any model not in ``listed``: Ollama's 404 "model "…" not found, try pulling it first"
- ``cut``          ``finish_reason: "length"`` with half a sentence; asked again for a shorter reply, it
                   answers properly; ``always-cut`` never does
- ``no-usage``     like tool-model, but no ``usage`` in responses (llama.cpp builds, some proxies)
- ``thinker``      ``<think>…</think>`` before a call written as text, plus ``reasoning_content`` (DeepSeek-R1)
- ``parrot``       the same comment every turn
- ``slow``         answers after ``slow_s`` seconds, one request at a time (a one-slot llama.cpp / Ollama)
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bzzz_console.demo.scripted_server import ScriptedServer

THINKING = "The user wants a decision. I should propose something safe. SECRET-CHAIN-OF-THOUGHT"
PROPOSAL = "Use a token bucket per key."


@dataclass
class Seen:
    """What the server was asked: each request's model and whether it offered tools."""

    requests: list[dict[str, Any]] = field(default_factory=list)

    def of(self, family: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if str(r.get("model", "")).split(":")[0] == family]


class LocalModelServer(ScriptedServer):
    def __init__(self, *, listed: tuple[str, ...], slow_s: float = 3.0) -> None:
        super().__init__(lambda body: None)  # type: ignore[arg-type,return-value]  # the routes below answer
        self.listed = listed
        self.slow_s = slow_s
        self.seen = Seen()
        self._slot = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._complete, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    async def _models(self, request: Request) -> Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "library"} for m in self.listed]
        return JSONResponse({"object": "list", "data": data})

    async def _complete(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.seen.requests.append(body)
        model = str(body.get("model", ""))
        family = model.split(":")[0]
        if model not in self.listed:  # Ollama, word for word
            return _error(404, f'model "{model}" not found, try pulling it first')
        if family == "gemma" and body.get("tools"):
            return _error(400, f"registry.ollama.ai/library/{model} does not support tools")
        if family == "slow":
            await asyncio.to_thread(self._one_slot, self.slow_s)
        return JSONResponse(_reply(family, model, body))

    def _one_slot(self, seconds: float) -> None:
        with self._slot:  # the next request waits for this one, as on a server with one slot
            time.sleep(seconds)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "api_error", "param": None, "code": None}}, status_code=status
    )


def _thread_id(body: dict[str, Any]) -> str:
    system = str(body["messages"][0]["content"])
    return system.split("thread_id: ", 1)[1].split("\n", 1)[0]


def _post(body: dict[str, Any], kind: str, text: str) -> dict[str, Any]:
    args = {"target_address": f"bzzz://*@default/threads/{_thread_id(body)}", "message_type": kind}
    return {"name": "bzzz_post", "arguments": {**args, "content": {"text": text}}}


def _next_post(body: dict[str, Any]) -> dict[str, Any]:
    """Whoever speaks first proposes, the next agrees (the scripted team of the fault tests)."""
    history = "\n".join(str(m.get("content") or "") for m in body["messages"][1:])
    if "· proposal #" in history:
        return _post(body, "agree", "Agreed: ship it.")
    return _post(body, "proposal", PROPOSAL)


def _reply(family: str, model: str, body: dict[str, Any]) -> dict[str, Any]:
    content: str | None = None
    calls: list[dict[str, Any]] = []
    finish = "stop"
    extra: dict[str, Any] = {}
    asked_shorter = any("Reply again, shorter" in str(m.get("content") or "") for m in body["messages"])
    if family in ("tool-model", "no-usage", "slow"):
        calls = [_next_post(body)]
    elif family == "prose":
        turn = len(body["messages"])  # small models vary their words, not their habit
        content = f"I agree with the proposal (point {turn}). It looks good to me and I have nothing to add."
    elif family == "json-text":
        content = json.dumps(_next_post(body))
    elif family == "fenced":
        content = "Here is my message:\n```json\n" + json.dumps(_next_post(body), indent=2) + "\n```"
    elif family == "hermes":
        content = "<tool_call>\n" + json.dumps(_next_post(body)) + "\n</tool_call>"
    elif family == "broken":
        calls = [
            {"name": "bzzz_post", "arguments": '{"target_address": "bzzz://*@default/threads/'},
            {"name": "post_message", "arguments": "{}"},
        ]
    elif family in ("cut", "always-cut"):
        if family == "cut" and asked_shorter:
            calls = [_next_post(body)]
        else:
            content, finish = "I propose that we use a token bucket per key, because the", "length"
    elif family == "thinker":
        content = f"<think>{THINKING}</think>\n" + json.dumps(_next_post(body))
        extra["reasoning_content"] = THINKING
    elif family == "parrot":
        calls = [_post(body, "comment", "We should consider the options carefully.")]
    tool_calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {
                "name": c["name"],
                "arguments": c["arguments"]
                if isinstance(c["arguments"], str)
                else json.dumps(c["arguments"]),
            },
        }
        for i, c in enumerate(calls)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": content, **extra}
    if tool_calls:
        message["tool_calls"] = tool_calls
        finish = "tool_calls"
    response: dict[str, Any] = {
        "id": "chatcmpl-local",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    if family != "no-usage":
        response["usage"] = {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}
    return response
