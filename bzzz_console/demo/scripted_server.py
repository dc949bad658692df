"""A scripted OpenAI-compatible HTTP server (Chat Completions, plain and SSE) for tests and demos.

uvicorn runs in its own daemon thread with its own event loop, so the real SDK and its HTTP stack are
exercised end to end, from sync or async code. Replies come from a ``Responder``; one-shot ``Fault``s are
consumed in FIFO order by the next chat-completion requests (``GET /v1/models`` never consumes them).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from bzzz_console.domain.llm import Usage

__all__ = ["Fault", "Responder", "ScriptedReply", "ScriptedServer", "ScriptedToolCall"]

# uvicorn's connection protocol logs to "uvicorn.error" (a cut stream is an "error" to it); ours stays silent.
_QUIET = logging.getLogger("bzzz_console.demo.scripted_server.http")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False
_QUIET.setLevel(logging.CRITICAL + 10)


class _QuietH11Protocol(H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logger = _QUIET


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # never touch the host process's signal handlers

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self._ready.set()


@dataclass(frozen=True)
class ScriptedToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ScriptedReply:
    content: str | None = None
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    usage: Usage | None = None
    """None: estimated as ceil(chars / 4) of the request messages (prompt) and of the reply (completion)."""


Responder = Callable[[dict[str, Any]], ScriptedReply]
FaultKind = Literal["rate_limit", "server_error", "timeout", "malformed_json", "stream_cut"]


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status: int = 500
    retry_after: float | None = None
    delay_s: float = 0.0

    @classmethod
    def rate_limit(cls, retry_after: float | None = 0.1) -> Fault:
        return cls("rate_limit", status=429, retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500, retry_after: float | None = None) -> Fault:
        return cls("server_error", status=status, retry_after=retry_after)

    @classmethod
    def timeout(cls, delay_s: float = 5.0) -> Fault:
        return cls("timeout", delay_s=delay_s)

    @classmethod
    def malformed_json(cls) -> Fault:
        return cls("malformed_json")

    @classmethod
    def stream_cut(cls) -> Fault:
        return cls("stream_cut")


def _error(status: int, message: str, kind: str, code: str | None = None, **headers: str) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers or None)


def _text_len(value: Any) -> int:
    """Characters of message text: strings, content parts' ``text``, tool calls' name and arguments."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(map(_text_len, value))
    if isinstance(value, dict):
        keys = ("content", "text", "tool_calls", "function", "name", "arguments")
        return sum(_text_len(value.get(k)) for k in keys)
    return 0


def _estimate_usage(body: dict[str, Any], reply: ScriptedReply, args: list[str]) -> Usage:
    out = len(reply.content or "") + sum(map(len, args)) + sum(len(t.name) for t in reply.tool_calls)
    return Usage(math.ceil(_text_len(body.get("messages")) / 4), math.ceil(out / 4), 0)


def _usage_json(u: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    }


def _pieces(text: str, size: int = 8) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


class _CutResponse(Response):
    """Starts a response and closes the connection before it is complete (no [DONE], short body)."""

    def __init__(self, head: list[bytes], media_type: str, full_length: int | None = None) -> None:
        super().__init__(media_type=media_type)
        self._head = head
        if full_length is None:
            del self.headers["content-length"]  # chunked transfer, like a real SSE stream
        else:
            self.headers["content-length"] = str(full_length)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        for chunk in self._head:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        # Returning without the final body message makes uvicorn close the transport mid-response.


class ScriptedServer:
    """Real HTTP, scripted answers. Use as a context manager or ``start()`` / ``stop()``."""

    def __init__(
        self,
        responder: Responder,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float = 0.0,
        api_key: str | None = None,
    ) -> None:
        self.responder = responder
        self.host = host
        self.port = port
        self.latency_s = latency_s
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._server: _Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._list_models, methods=["GET"]),
            ]
        )

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> ScriptedServer:
        if self._thread is not None and self._thread.is_alive():
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_config=None, access_log=False, lifespan="off", http=_QuietH11Protocol
        )
        config.timeout_graceful_shutdown = 2
        ready = threading.Event()
        self._server = _Server(config, ready)
        self._thread = threading.Thread(target=self._run, args=(sock,), name=f"scripted-openai:{self.port}")
        self._thread.daemon = True
        self._thread.start()
        while not ready.wait(0.01):
            if not self._thread.is_alive():
                raise RuntimeError(f"scripted server failed to start: {self._error!r}")
        return self

    def _run(self, sock: socket.socket) -> None:
        async def main() -> None:
            assert self._server is not None
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            await self._server.serve(sockets=[sock])

        try:
            asyncio.run(main())
        except BaseException as exc:  # SystemExit included: uvicorn exits on startup failures
            self._error = exc
        finally:
            sock.close()

    def stop(self) -> None:
        thread, server = self._thread, self._server
        if thread is None or server is None or not thread.is_alive():
            return
        server.should_exit = True
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=10)

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- endpoints ------------------------------------------------------------------------------------------

    async def _pause(self, request: Request, seconds: float) -> bool:
        """Sleep, cut short when the client hangs up (returns True) or the server stops."""
        if seconds <= 0:
            return False
        assert self._stopping is not None
        hangup = asyncio.ensure_future(
            request.receive()
        )  # body already read: the next message is a disconnect
        others = (asyncio.ensure_future(asyncio.sleep(seconds)), asyncio.ensure_future(self._stopping.wait()))
        done, pending = await asyncio.wait({hangup, *others}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return hangup in done and hangup.result().get("type") == "http.disconnect"

    async def _list_models(self, request: Request) -> Response:
        with self._lock:
            seen = [str(r["model"]) for r in self.requests if r.get("model")]
        ids = list(dict.fromkeys([*seen, "gpt-4o", "gpt-4o-mini"]))
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "scripted"} for m in ids]
        return JSONResponse({"object": "list", "data": data})

    async def _chat(self, request: Request) -> Response:
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        try:
            body = json.loads(await request.body())
            if not isinstance(body, dict):
                raise ValueError("request body must be a JSON object")
        except ValueError as exc:
            return _error(400, f"invalid request body: {exc}", "invalid_request_error")
        with self._lock:
            self.requests.append(body)
            fault = self._faults.popleft() if self._faults else None
        if await self._pause(request, self.latency_s):
            return Response(status_code=499)
        if fault is not None and fault.kind in ("rate_limit", "server_error"):
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            if fault.kind == "rate_limit":
                return _error(
                    429, "Rate limit reached (scripted).", "requests", "rate_limit_exceeded", **headers
                )
            return _error(fault.status, f"Server error (scripted {fault.status}).", "server_error", **headers)
        if fault is not None and fault.kind == "timeout" and await self._pause(request, fault.delay_s):
            return Response(status_code=499)  # nobody is listening any more
        if fault is not None and fault.kind == "malformed_json":
            return Response(b'{"id": "chatcmpl-x", "choices": [ <html>', media_type="application/json")
        try:
            reply = self.responder(body)
        except Exception as exc:
            return _error(500, f"responder failed: {type(exc).__name__}: {exc}", "server_error")
        cut = fault is not None and fault.kind == "stream_cut"
        return self._answer(body, reply, stream=bool(body.get("stream")), cut=cut)

    def _answer(self, body: dict[str, Any], reply: ScriptedReply, *, stream: bool, cut: bool) -> Response:
        n = next(self._ids)
        model = str(body.get("model") or "scripted")
        args = [json.dumps(tc.arguments) for tc in reply.tool_calls]
        usage = reply.usage or _estimate_usage(body, reply, args)
        finish = "tool_calls" if reply.tool_calls else "stop"
        calls: list[dict[str, Any]] = [
            {"id": f"call_{n}_{i}", "type": "function", "function": {"name": t.name, "arguments": a}}
            for i, (t, a) in enumerate(zip(reply.tool_calls, args, strict=True))
        ]
        base = {"id": f"chatcmpl-scripted-{n}", "created": int(time.time()), "model": model}
        if not stream:
            message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
            if calls:
                message["tool_calls"] = calls
            choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            full = json.dumps(
                {**base, "object": "chat.completion", "choices": [choice], "usage": _usage_json(usage)}
            ).encode()
            if cut:
                return _CutResponse([full[: len(full) // 2]], "application/json", full_length=len(full))
            return Response(full, media_type="application/json")

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any] | None, finish_reason: str | None = None) -> bytes:
            extra: dict[str, Any] = {"usage": None} if include_usage else {}
            if delta is None:  # the final usage chunk
                choices, extra = [], {"usage": _usage_json(usage)}
            else:
                choices = [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
            obj = {**base, "object": "chat.completion.chunk", "choices": choices, **extra}
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        chunks = [chunk({"role": "assistant", "content": ""})]
        chunks += [chunk({"content": piece}) for piece in _pieces(reply.content or "") if piece]
        for index, call in enumerate(calls):
            head = {"index": index, **call, "function": {**call["function"], "arguments": ""}}
            chunks.append(chunk({"tool_calls": [head]}))
            for piece in _pieces(call["function"]["arguments"]):
                chunks.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
        chunks.append(chunk({}, finish))
        if include_usage:
            chunks.append(chunk(None))
        chunks.append(b"data: [DONE]\n\n")
        if cut:
            return _CutResponse(chunks[:2], "text/event-stream")

        async def events() -> AsyncIterator[bytes]:
            for c in chunks:
                yield c

        return StreamingResponse(events(), media_type="text/event-stream")
