"""Serving MCP: stdio for a headless node (``bzzz-console mcp``), or streamable HTTP on 127.0.0.1 behind a bearer
token (``--http PORT``; also inside the console with ``--mcp-port``). Nothing is ever logged to stdout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from bzzz_console.config import Settings
from bzzz_console.domain.principals import Principal, local_operator
from bzzz_console.mcp.server import PRINCIPAL_SCOPE_KEY
from bzzz_console.security.tokens import TokenBook, TokenError

if TYPE_CHECKING:
    from bzzz_console.runtime.runtime import Runtime


class BearerAuth:
    """ASGI middleware: every HTTP request needs ``Authorization: Bearer <token>`` of an issued, unrevoked token;
    the token's principal (operator or agent) goes into the scope. Anything else gets a 401 that says what to do.
    """

    def __init__(self, app: Any, tokens: TokenBook) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
            scheme, _, token = given.partition(" ")
            found = None
            detail = "send Authorization: Bearer <token> (bzzz-console mcp token --operator, or --agent NAME)"
            if scheme.lower() == "bearer" and token.strip():
                try:
                    found = self.tokens.authenticate(token.strip())
                except TokenError as exc:
                    detail = str(exc)
                if found is None and not token.startswith("bzzz_"):
                    detail = (
                        "this is not a bzzz-console token (tokens from before per-principal tokens no longer "
                        "work): issue one with bzzz-console mcp token --operator, or --agent NAME"
                    )
            if found is None:
                await _unauthorized(send, detail)
                return
            scope = {**scope, PRINCIPAL_SCOPE_KEY: found[0]}
        await self.app(scope, receive, send)


async def _unauthorized(send: Any, detail: str) -> None:
    body = json.dumps({"error": "unauthorized", "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"www-authenticate", b'Bearer realm="bzzz"'),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HttpServer:
    """uvicorn as a plain asyncio task (not a Textual worker), without its own signal handlers."""

    def __init__(self, rt: Runtime, port: int, tokens: TokenBook, readonly: bool) -> None:
        import uvicorn

        from bzzz_console.mcp.server import build_server

        server = build_server(rt, readonly=readonly, tokens=tokens)
        app = BearerAuth(server.streamable_http_app(host="127.0.0.1"), tokens)

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
        self.server = Server(config)
        self.port = port
        rt.subscriptions.own_ports.add(port)  # a webhook must never POST to the MCP server itself
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():
                self._task.result()  # raises what went wrong (e.g. the port is taken)
                raise OSError(f"the MCP HTTP server on 127.0.0.1:{self.port} did not start")
            await asyncio.sleep(0.01)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5)


async def run_mcp(
    settings: Settings, *, http_port: int | None, demo: bool, readonly: bool, agent: str | None = None
) -> int:
    """``bzzz-console mcp``: a headless runtime on the configured database, serving the bzzz tools. stdio serves
    the local user as operator, or (``--agent NAME``) one outside agent; HTTP serves whoever holds a token."""
    from bzzz_console.app import make_runtime

    tokens = TokenBook(settings.resolved_data_dir())
    runtime = make_runtime(settings, force_demo=demo)
    await runtime.start()
    try:
        if http_port is None:
            from bzzz_console.mcp.server import build_server

            who = Principal("agent", agent, "mcp-stdio") if agent else local_operator("mcp-stdio")
            await build_server(runtime, readonly=readonly, tokens=tokens, principal=who).run_stdio_async()
            return 0
        http = HttpServer(runtime, http_port, tokens, readonly)
        await http.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        import sys

        print(
            f"bzzz MCP server on {http.url} (bearer tokens: bzzz-console mcp token --operator | --agent NAME)",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
        await http.stop()
        return 0
    finally:
        await runtime.close("mcp server stopped")
