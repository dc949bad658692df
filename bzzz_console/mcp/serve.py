"""Serving MCP: stdio for a headless node (``bzzz-console mcp``), or streamable HTTP on 127.0.0.1 behind a bearer
token (``--http PORT``; also inside the console with ``--mcp-port``). Nothing is ever logged to stdout."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bzzz_console.config import Settings

if TYPE_CHECKING:
    from bzzz_console.runtime.runtime import Runtime

TOKEN_FILE = "mcp-token"


def token_path(settings: Settings) -> Path:
    return settings.resolved_data_dir() / TOKEN_FILE


def load_or_create_token(settings: Settings) -> str:
    """The HTTP bearer token: generated once, kept in the data dir readable by its owner only (0600)."""
    path = token_path(settings)
    if path.is_file():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            os.chmod(path, 0o600)
            return token
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token


class BearerAuth:
    """ASGI middleware: every HTTP request needs ``Authorization: Bearer <token>``; otherwise 401."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                body = json.dumps(
                    {
                        "error": "unauthorized",
                        "detail": "send Authorization: Bearer <token> (bzzz-console mcp token)",
                    }
                ).encode()
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
                return
        await self.app(scope, receive, send)


class HttpServer:
    """uvicorn as a plain asyncio task (not a Textual worker), without its own signal handlers."""

    def __init__(self, rt: Runtime, port: int, token: str, readonly: bool) -> None:
        import uvicorn

        from bzzz_console.mcp.server import build_server

        app = BearerAuth(build_server(rt, readonly=readonly).streamable_http_app(host="127.0.0.1"), token)

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
        self.server = Server(config)
        self.port = port
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


async def run_mcp(settings: Settings, *, http_port: int | None, demo: bool, readonly: bool) -> int:
    """``bzzz-console mcp``: a headless runtime on the configured database, serving the bzzz tools."""
    from bzzz_console.runtime.runtime import Runtime

    runtime = Runtime(settings, force_demo=demo)
    await runtime.start()
    try:
        if http_port is None:
            from bzzz_console.mcp.server import build_server

            await build_server(runtime, readonly=readonly).run_stdio_async()
            return 0
        http = HttpServer(runtime, http_port, load_or_create_token(settings), readonly)
        await http.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        import sys

        print(
            f"bzzz MCP server on {http.url} (bearer token: bzzz-console mcp token)",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
        await http.stop()
        return 0
    finally:
        await runtime.close("mcp server stopped")
