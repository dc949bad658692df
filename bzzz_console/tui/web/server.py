"""``bzzz-console serve``: the console in a browser, with textual-serve's page and terminal client.

Each websocket gets its own console app, run in this process over the node's one runtime (see driver.py for
why not textual-serve's subprocess per browser). The page speaks textual-serve's protocol: JSON envelopes in
(``["stdin", text]``, ``["resize", {"width", "height"}]``, ``["ping", x]``, ``["focus"]``, ``["blur"]``),
terminal output out as binary frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from html import escape
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from bzzz_console.domain.text import inert_line
from bzzz_console.resources import screens_dir
from bzzz_console.tui.web.gate import OPERATOR, OperatorGate, SignedIn
from bzzz_console.tui.web.session import BrowserApp, BrowserSession, Presence

if TYPE_CHECKING:
    from bzzz_console.config import Settings
    from bzzz_console.runtime.runtime import Runtime
    from bzzz_console.security.tokens import TokenBook

log = logging.getLogger(__name__)
APP_EXIT_WAIT_S = 5.0
"""How long a closed session's app gets to unmount before it is cancelled."""


def textual_serve_static() -> Path:
    import textual_serve

    return Path(textual_serve.__file__).resolve().parent / "static"


def clamp(value: Any, default: int, low: int = 10, high: int = 1000) -> int:
    try:
        return max(low, min(high, int(value)))
    except (TypeError, ValueError):
        return default


class ConsoleServer:
    def __init__(
        self,
        settings: Settings,
        runtime: Runtime,
        tokens: TokenBook,
        *,
        link_operator: str,
        host: str = "127.0.0.1",
        port: int = 8080,
        readonly: bool = False,
    ) -> None:
        self.settings, self.runtime, self.readonly = settings, runtime, readonly
        self.host, self.port = host, port
        self.gate = OperatorGate(tokens, link_operator)
        self.presence = Presence()
        self.sessions: dict[str, tuple[BrowserSession, BrowserApp]] = {}
        self._runner: web.AppRunner | None = None
        self._page = Template((screens_dir() / "serve.html").read_text(encoding="utf-8"))
        self._stdout, self._stderr = sys.stdout, sys.stderr

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def link(self) -> str:
        """The sign-in link for whoever started the server: shown once, never stored."""
        return f"{self.url}?token={self.gate.link_token}"

    async def start(self) -> None:
        app = web.Application(middlewares=[self.gate.middleware])
        app.add_routes(
            [
                web.get("/", self.handle_index),
                web.get("/ws", self.handle_websocket),
                web.static("/static", textual_serve_static()),
            ]
        )
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # a free port was asked for: say which one it got
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for session, app in list(self.sessions.values()):
            self._end(session, app)
        for _ in range(50):  # the apps unmount (each closes its websocket) before the server goes
            if not self.sessions:
                break
            await asyncio.sleep(0.1)
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        self._restore_output()

    def _restore_output(self) -> None:
        """Each app swaps sys.stdout/stderr for its own capture while it runs (Textual's redirect_stdout), and
        apps that end out of order leave a finished one's capture in place: with no session left, the process's
        own streams come back, so a later error or message is not swallowed."""
        sys.stdout, sys.stderr = self._stdout, self._stderr

    async def handle_index(self, request: web.Request) -> web.Response:
        signed_in: SignedIn = request[OPERATOR]
        page = self._page.substitute(
            static="/static/",
            ws_url=f"{'wss' if request.secure else 'ws'}://{request.host}/ws",
            title=escape(f"bzzz-console · {inert_line(signed_in.operator, 64)}"),
            font_size=clamp(request.query.get("fontsize"), 16, 6, 64),
        )
        return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        signed_in: SignedIn = request[OPERATOR]
        websocket = web.WebSocketResponse(heartbeat=15)
        await websocket.prepare(request)
        session = BrowserSession(signed_in.operator, signed_in.token_id, websocket.send_bytes)
        app = BrowserApp(self.settings, self.runtime, session, self.presence, readonly=self.readonly)
        size = (clamp(request.query.get("width"), 80), clamp(request.query.get("height"), 24))
        self.sessions[session.id] = (session, app)
        self.presence.apps[session.id] = app
        log.info("browser session %s opened by %s", session.id, signed_in.operator)
        running = asyncio.create_task(app.run_async(size=size))
        running.add_done_callback(lambda _: session.pending.add(asyncio.ensure_future(websocket.close())))
        try:
            async for message in websocket:
                if message.type != WSMsgType.TEXT:
                    continue
                self._receive(session, websocket, message.data)
                if running.done():
                    break
        finally:
            self._end(session, app)
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(running), APP_EXIT_WAIT_S)
            if not running.done():
                running.cancel()
            if session.driver is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(session.driver.drained(), 1.0)
            self.presence.leave_all(session)
            self.presence.apps.pop(session.id, None)
            self.sessions.pop(session.id, None)
            if not self.sessions:
                self._restore_output()
            log.info("browser session %s closed", session.id)
        return websocket

    def _receive(self, session: BrowserSession, websocket: web.WebSocketResponse, data: str) -> None:
        """One envelope from the page. Anything malformed is dropped: a browser tab cannot crash the node."""
        try:
            envelope = json.loads(data)
            kind = envelope[0]
        except (ValueError, TypeError, IndexError, KeyError):
            return
        driver = session.driver
        if kind == "ping" and len(envelope) > 1:
            pong = asyncio.ensure_future(websocket.send_json(["pong", envelope[1]]))
            session.pending.add(pong)  # held until sent: the loop keeps only weak references to tasks
            pong.add_done_callback(session.pending.discard)
        if driver is None:
            return
        if kind == "stdin" and len(envelope) > 1 and isinstance(envelope[1], str):
            driver.feed(envelope[1])
        elif kind == "resize" and len(envelope) > 1 and isinstance(envelope[1], dict):
            driver.resize(clamp(envelope[1].get("width"), 80), clamp(envelope[1].get("height"), 24))
        elif kind in ("focus", "blur"):
            driver.focus(kind == "focus")

    def _end(self, session: BrowserSession, app: BrowserApp) -> None:
        if app.is_running:
            app.exit()


async def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    demo: bool,
    readonly: bool,
    operator: str,
    announce: Any,
) -> int:
    """Run the node's runtime and serve its console until SIGINT/SIGTERM. ``announce(link)`` is called once the
    server listens (the CLI prints the link once)."""
    import signal

    from bzzz_console.app import make_runtime, open_store
    from bzzz_console.security.tokens import TokenBook

    store = await asyncio.to_thread(open_store, settings, demo_tasks=demo and not readonly)
    runtime = make_runtime(settings, force_demo=demo, readonly=readonly, store=store)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = ConsoleServer(
        settings,
        runtime,
        TokenBook(settings.resolved_data_dir()),
        link_operator=operator,
        host=host,
        port=port,
        readonly=readonly,
    )
    try:
        await runtime.start()
        try:
            await server.start()
            announce(server)
            await stop.wait()
        finally:
            await server.stop()
            await runtime.close("serve stopped")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0
