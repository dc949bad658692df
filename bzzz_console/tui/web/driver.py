"""A Textual driver for one browser session, in this process.

textual-serve starts one subprocess per browser and relays bytes over stdin/stdout (its ``WebDriver``). Under
``bzzz-console serve`` every browser session must be a view onto the node's one runtime, not a new fleet, so the
app runs here, in the server's event loop, and this driver speaks to its websocket directly: terminal output goes
out as binary frames (what textual-serve's page expects), keys and mouse come in as the terminal bytes the page
sends, parsed by Textual's own xterm parser, exactly as the subprocess driver does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from textual import events, messages
from textual._xterm_parser import XTermParser
from textual.driver import Driver
from textual.geometry import Size

ESCAPE_TIMEOUT_S = 0.1
"""A lone ESC is a key only once nothing follows it for this long (the parser's own timeout, ticked here)."""


class SessionDriver(Driver):
    """Output: ``write`` queues text for the websocket (one frame per batch). Input: ``feed`` and ``meta`` are
    called by the server with what the browser sent."""

    def __init__(
        self, app: Any, *, debug: bool = False, mouse: bool = True, size: tuple[int, int] | None = None
    ) -> None:
        super().__init__(app, debug=debug, mouse=mouse, size=size)
        self._parser = XTermParser(debug=debug)
        self._outbox: list[bytes] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._tick: asyncio.TimerHandle | None = None
        self.closed = False
        session = app.session  # a BrowserApp's: its websocket, and where the server finds this driver
        self.send: Callable[[bytes], Awaitable[Any]] = session.send
        session.driver = self

    @property
    def is_web(self) -> bool:
        return True

    # -- output --------------------------------------------------------------------------------------------
    def write(self, data: str) -> None:
        if not self.closed:
            self._outbox.append(data.encode("utf-8"))
            self._wake.set()

    async def _write_frames(self) -> None:
        send = self.send
        while not self.closed or self._outbox:
            await self._wake.wait()
            self._wake.clear()
            if self._outbox:
                frame, self._outbox = b"".join(self._outbox), []
                try:
                    await send(frame)
                except Exception:  # the browser went away: the server ends the app
                    self.closed = True
                    self._outbox.clear()
                    return

    def start_application_mode(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_frames())
        self.write("\x1b[?1049h")  # the alternate screen, as a terminal would get
        self.write("\x1b[?1000h\x1b[?1003h\x1b[?1015h\x1b[?1006h")  # mouse: buttons, motion, SGR coordinates
        self.write("\x1b[?25l")  # no cursor
        self.write("\x1b[?2004h")  # bracketed paste
        size = Size(*(self._size or (80, 24)))
        self._app.post_message(events.Resize(size, size))
        self._app.call_later(self._app.post_message, events.AppBlur())  # focused once the page says so

    def disable_input(self) -> None:
        if self._tick is not None:
            self._tick.cancel()

    def stop_application_mode(self) -> None:
        self.disable_input()
        self.write("\x1b[?1049l")
        self.closed = True
        self._wake.set()  # the writer sends what is left, then ends

    async def drained(self) -> None:
        """Wait until everything written has been sent (or the browser has gone)."""
        if self._writer is not None:
            self._wake.set()
            await self._writer

    # -- input ---------------------------------------------------------------------------------------------
    def feed(self, text: str) -> None:
        """What the page sent as the terminal's input (keys, mouse reports, pastes)."""
        for event in self._parser.feed(text):
            self.process_message(event)
        if self._tick is not None:
            self._tick.cancel()
        self._tick = asyncio.get_running_loop().call_later(ESCAPE_TIMEOUT_S * 1.5, self._timeout)

    def _timeout(self) -> None:
        self._tick = None
        for event in self._parser.tick():
            self.process_message(event)

    def resize(self, width: int, height: int) -> None:
        self._size = (width, height)
        size = Size(width, height)
        self._app.post_message(events.Resize(size, size))

    def focus(self, focused: bool) -> None:
        self._app.post_message(events.AppFocus() if focused else events.AppBlur())

    def quit(self) -> None:
        self._app.post_message(messages.ExitApp())
