"""``bzzz-console serve`` over real HTTP and websockets (aiohttp's client speaking textual-serve's page protocol):
operator tokens exchanged for cookies on every page, file and websocket; browser sessions as views onto the
node's one runtime; two operators who see each other on an escalation and race to answer it — applied once,
recorded with the winner's name and the browser as the surface. tests/test_serve_browser.py does the same
through a real headless Chromium and the installed command.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from helpers import eventually
from test_tui import copy_of
from test_tui import escalated_db as escalated_db

from bzzz_console.app import make_runtime
from bzzz_console.config import Settings
from bzzz_console.security.tokens import TokenBook
from bzzz_console.tui.escalation_screen import EscalationScreen
from bzzz_console.tui.web.gate import COOKIE
from bzzz_console.tui.web.server import ConsoleServer
from bzzz_console.tui.web.session import BrowserApp

ANSI = re.compile(r"\x1b(\[[0-9;?<>=$]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-Za-z]|[=>])")


@asynccontextmanager
async def served(settings: Settings, **options: Any) -> AsyncIterator[ConsoleServer]:
    async with make_runtime(settings, force_demo=True) as rt:
        book = TokenBook(settings.resolved_data_dir())
        server = ConsoleServer(settings, rt, book, link_operator="alice", port=0, **options)
        await server.start()
        try:
            yield server
        finally:
            await server.stop()


class Tab:
    """One browser tab: a cookie jar, the page's websocket, and the text the terminal was sent."""

    def __init__(self, server: ConsoleServer) -> None:
        self.server = server
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.received = ""
        self._reader: asyncio.Task[None] | None = None

    async def sign_in(self, token: str) -> aiohttp.ClientResponse:
        async with self.http.get(f"{self.server.url}?token={token}", allow_redirects=False) as response:
            return response

    async def open(self, width: int = 120, height: int = 40) -> None:
        self.ws = await self.http.ws_connect(f"{self.server.url}ws?width={width}&height={height}")
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.BINARY:
                self.received += ANSI.sub("", message.data.decode("utf-8", "replace"))

    async def keys(self, *keys: str) -> None:
        assert self.ws is not None
        for key in keys:
            await self.ws.send_str(json.dumps(["stdin", key]))
            await asyncio.sleep(0.05)

    async def shows(self, text: str, since: int = 0) -> None:
        await eventually(lambda: text in self.received[since:], f"{text!r} in the browser")

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader
        await self.http.close()


def app_of(server: ConsoleServer, operator: str) -> BrowserApp:
    [app] = [a for s, a in server.sessions.values() if s.operator == operator]
    return app


async def test_every_page_file_and_websocket_needs_an_operator_token(
    tmp_path: Path, escalated_db: Path
) -> None:
    settings = copy_of(escalated_db, tmp_path)
    book = TokenBook(settings.resolved_data_dir())
    agent_token, _ = book.issue("agent", "scout")
    async with served(settings) as server:
        async with aiohttp.ClientSession() as http:
            for path in ("", "ws", "static/js/textual.js", "?token=bzzz_nonsense"):
                async with http.get(server.url + path, allow_redirects=False) as response:
                    assert response.status == 401, path
                    assert "operator token" in await response.text() or "not valid" in await response.text()
            async with http.get(f"{server.url}?token={agent_token}") as response:
                assert response.status == 403 and "agents cannot operate the console" in await response.text()
        tab = Tab(server)
        try:
            signed = await tab.sign_in(server.gate.link_token)
            assert signed.status == 303 and signed.headers["Location"] == "/"  # the token leaves the address
            cookie = signed.headers["Set-Cookie"]
            assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
            async with tab.http.get(server.url) as page:
                assert page.status == 200 and f"ws://127.0.0.1:{server.port}/ws" in await page.text()
            async with tab.http.get(server.url + "static/js/textual.js") as script:
                assert script.status == 200
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:  # another site's page
                await tab.http.ws_connect(server.url + "ws", headers={"Origin": "http://evil.example"})
            assert refused.value.status == 403
            await tab.open()
            await tab.shows("Escalations")
        finally:
            await tab.close()


async def test_a_revoked_token_ends_its_sign_in(tmp_path: Path, escalated_db: Path) -> None:
    settings = copy_of(escalated_db, tmp_path)
    book = TokenBook(settings.resolved_data_dir())
    token, record = book.issue("operator", "bob")
    async with served(settings) as server:
        tab = Tab(server)
        try:
            assert (await tab.sign_in(token)).status == 303
            async with tab.http.get(server.url) as page:
                assert page.status == 200
            book.revoke(record.id)
            async with tab.http.get(server.url) as page:
                assert page.status == 401
        finally:
            await tab.close()


async def test_browser_sessions_are_views_onto_the_one_runtime(tmp_path: Path, escalated_db: Path) -> None:
    settings = copy_of(escalated_db, tmp_path)
    token, _ = TokenBook(settings.resolved_data_dir()).issue("operator", "bob")
    stdout, stderr = sys.stdout, sys.stderr
    async with served(settings) as server:
        alice, bob = Tab(server), Tab(server)
        try:
            await alice.sign_in(server.gate.link_token)
            await bob.sign_in(token)
            await alice.open()
            await bob.open(80, 24)
            await alice.shows("Escalations")
            await bob.shows("Escalations")
            await alice.shows("bzzz-console  ▸ alice ▸")  # each sees whose name its decisions carry
            await bob.shows("bzzz-console  ▸ bob ▸")
            apps = [app_of(server, "alice"), app_of(server, "bob")]
            await eventually(lambda: all(a.view.status.running for a in apps), "both views ready")
            assert all(a.rt is server.runtime and a.shared_runtime for a in apps)
            assert apps[1].size.width == 80  # each session has its own terminal size
            assert bob.ws is not None  # what a broken or hostile page sends is dropped, the session goes on
            for junk in ("not json", "[]", "{}", '["stdin"]', '["stdin", 42]', '["resize", "big"]', "[null]"):
                await bob.ws.send_str(junk)
            await bob.ws.send_str(json.dumps(["resize", {"width": 10**9, "height": -5}]))
            since = len(bob.received)
            await bob.keys("?")
            await bob.shows("help", since)
            await bob.keys("\x1b")
            await bob.keys("\x11")  # ctrl+q closes bob's session, not the fleet
            await eventually(lambda: len(server.sessions) == 1, "bob's session to end")
            assert (
                sys.stdout is not stdout
            )  # alice's app still holds the process's output (Textual's capture)
            assert server.runtime.store is not None and all(
                a.state.value for a in server.runtime.agents.values()
            )
            since = len(alice.received)
            await alice.keys("?")  # alice's console goes on
            await alice.shows("help", since)
            await server.stop()  # the server stopping ends the sessions still open, and says so to the page
            await eventually(lambda: alice.ws is not None and alice.ws.closed, "alice's page told")
            assert not server.sessions
            assert (sys.stdout, sys.stderr) == (stdout, stderr)  # nothing printed later goes to a dead app
        finally:
            await alice.close()
            await bob.close()


async def test_two_operators_see_each_other_and_the_second_answer_is_refused(
    tmp_path: Path, escalated_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notices: dict[str, list[str]] = {"alice": [], "bob": []}
    real_notify = BrowserApp.notify

    def notify(self: BrowserApp, message: str, **options: Any) -> None:
        notices[self.operator].append(message)
        real_notify(self, message, **options)

    monkeypatch.setattr(BrowserApp, "notify", notify)
    settings = copy_of(escalated_db, tmp_path)
    token, record = TokenBook(settings.resolved_data_dir()).issue("operator", "bob")
    async with served(settings) as server:
        [waiting] = server.runtime.store.escalations("open")
        alice, bob = Tab(server), Tab(server)
        try:
            for tab, key in ((alice, server.gate.link_token), (bob, token)):
                await tab.sign_in(key)
                await tab.open()
                await tab.shows("Escalations")
            for tab in (alice, bob):
                await eventually(lambda: app_of(server, "bob").view.open_escalations(), "the escalation")
                await tab.keys("e", "\r")  # the escalations pane, then open the highlighted one
            await alice.shows("also viewing: bob")
            await bob.shows("also viewing: alice")
            screens = [app_of(server, name).screen for name in ("alice", "bob")]
            assert all(isinstance(s, EscalationScreen) for s in screens)
            await alice.keys("A")
            await bob.keys("A")  # both confirmations are open; alice says yes first
            await eventually(
                lambda: all(type(app_of(server, n).screen).__name__ == "Confirm" for n in notices),
                "both confirmations open",
            )
            await alice.keys("Y")
            await eventually(
                lambda: server.runtime.store.get_escalation(waiting.id).state == "answered",
                "alice's approval applied",
            )
            await bob.keys("Y")
            await eventually(
                lambda: any("already answered (approve by alice)" in n for n in notices["bob"]),
                "bob told who answered",
            )
            row = server.runtime.store.get_escalation(waiting.id)
            assert row is not None and row.answered_by == "alice" and row.decision is not None
            assert (
                row.decision["surface"]
                == f"browser token {server.gate.sign_in(server.gate.link_token).token_id}"
            )  # type: ignore[union-attr]
            answered = [
                r for r in server.runtime.store.audit_rows() if waiting.id in r.data and "answer" in r.type
            ]
            assert len(answered) == 1, [(r.type, r.data) for r in answered]
            assert record.id not in json.dumps(row.decision)  # bob decided nothing
        finally:
            await alice.close()
            await bob.close()
