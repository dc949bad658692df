"""The operator console: a Textual app that runs the agent runtime in-process on its own event loop.

The first frame paints before any heavy library is imported (the plain launch even reads its settings later);
the runtime (sqlmodel, openai …) is imported in a thread and started right after. One task drains the event
bus in windows of ``console.refresh_ms`` and tells the visible screen which parts changed: one repaint a burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import App
from textual.binding import Binding
from textual.notifications import SeverityLevel

from bzzz_console.domain.principals import os_user
from bzzz_console.domain.text import inert, inert_line
from bzzz_console.resources import screens_dir
from bzzz_console.tui.commands import FleetCommands, OperatorIntent
from bzzz_console.tui.dashboard import STARTING, DashboardScreen
from bzzz_console.tui.help_screen import warn_config  # [console] mistakes: toasts (and the CLI's stderr)
from bzzz_console.tui.view import FleetView

if TYPE_CHECKING:
    from bzzz_console.config import Settings
    from bzzz_console.domain.bus import Subscription
    from bzzz_console.runtime.runtime import Runtime


class BzzzApp(OperatorIntent):
    TITLE = "bzzz-console"
    CSS_PATH: ClassVar[list[Any]] = [screens_dir() / name for name in ("app.tcss", "dashboard.tcss")]
    COMMANDS = App.COMMANDS | {FleetCommands}
    BINDINGS: ClassVar[list[Any]] = [
        Binding("question_mark", "help", "help", id="app.help"),
        Binding("N", "network", "network: peers, topics, rejected", show=False, id="app.network"),
        Binding("ctrl+q", "quit", "quit", id="app.quit", priority=True),
    ]

    def __init__(
        self,
        settings: Settings | None,
        *,
        demo: bool = False,
        demo_tasks: bool = False,
        readonly: bool = False,
        runtime: Runtime | None = None,
        mcp_port: int | None = None,
        shared_runtime: bool = False,
        operator: str | None = None,
        surface: str = "console",
        settings_from: Callable[[], Settings] | None = None,
        console_hint: Mapping[str, Any] | None = None,
    ) -> None:
        """``settings`` None: ``settings_from`` reads them in a thread after the first frame (an error ends
        the app, kept in ``start_error`` for the CLI); ``console_hint``: ``[console]`` as written, for its look."""
        super().__init__()
        self.demo = demo
        self.demo_tasks = demo_tasks  # --demo: an empty store gets the demo tasks, after the paint
        self.view = FleetView()
        self._readonly_flag = self.readonly = self.view.status.readonly = readonly
        self.operator = operator or os_user()  # what decisions record; escalation.operator is only a label
        self._operator_given, self.operator_label = operator is not None, ""
        self._settings_from, self._console_hint = settings_from, console_hint or {}
        self.start_error: Exception | None = None
        if settings is not None:
            self._use(settings)
        self.surface = surface  # where decisions are made: "console", or "browser <token id>" under serve
        self.shared_runtime = shared_runtime
        """The runtime is started and closed by its owner (``serve``): this app is one view onto it."""
        self._dashboard_behind: set[str] = set()
        """Panes whose events arrived while another screen was shown."""
        self.rt: Runtime | None = runtime
        self._pump: asyncio.Task[None] | None = None
        self._boot: asyncio.Task[None] | None = None  # reads the settings if it has to, starts the runtime
        self._events: Subscription | None = None
        self.failed: str | None = None
        self.mcp_port = mcp_port
        self._mcp: Any = None

    # -- start and stop -----------------------------------------------------------------------------------
    def _use(self, settings: Settings) -> None:
        self.settings = settings
        self.readonly = self.view.status.readonly = self._readonly_flag or settings.security.readonly
        self.operator_label = "" if self._operator_given else settings.escalation.operator

    def _look(self, theme: object, keys: object) -> None:  # a hint's may be anything: what cannot be, is not
        if isinstance(theme, str) and theme in self.available_themes and theme != self.theme:
            self.theme = theme
        if isinstance(keys, Mapping) and keys and all(isinstance(v, str) for v in keys.values()):
            self.set_keymap(dict(keys))

    def get_default_screen(self) -> DashboardScreen:  # not pushed in on_mount: one screen less to lay out
        return DashboardScreen()  # its panes say STARTING in the first frame

    async def on_mount(self) -> None:
        if self._settings_from is None:
            self._look(self.settings.console.theme, self.settings.console.keys)
            self.call_after_refresh(warn_config, self)
        else:
            self._look(self._console_hint.get("theme"), self._console_hint.get("keys"))
        self.set_interval(1.0, self._tick)
        self.call_after_refresh(self._start)  # the first frame paints before the heavy imports

    def _starting(self, note: str) -> None:  # the dashboard panes' subtitles: STARTING, or why not started
        for pane in self.screen.query("Pane"):
            if pane.border_subtitle in (None, "", STARTING):
                pane.border_subtitle = note

    def _start(self) -> None:
        if not gc.isenabled():  # cli/launch.py paints with the collector off; what start-up made lives on:
            gc.freeze()  # frozen, it is not scanned again (nor at once, in a collection that delays the frame)
            gc.enable()
        self._boot = asyncio.create_task(self._boot_runtime())

    async def _read_settings(self, read: Callable[[], Settings]) -> bool:  # False: the app ends, CLI says why
        try:
            self._use(await asyncio.to_thread(read))
        except Exception as exc:
            self.start_error = exc
            self.exit(2)
            return False
        self._look(self.settings.console.theme, self.settings.console.keys)
        warn_config(self)
        self._refresh({"status"})
        return True

    async def _boot_runtime(self) -> None:
        if self._settings_from is not None and not await self._read_settings(self._settings_from):
            return
        try:
            await asyncio.to_thread(importlib.import_module, "bzzz_console.runtime.runtime")  # off the loop
            if self.rt is None:
                from bzzz_console.app import make_runtime, open_store

                seed = self.demo_tasks and not self.readonly  # a watching console adds nothing
                store = await asyncio.to_thread(open_store, self.settings, demo_tasks=seed)
                self.rt = make_runtime(
                    self.settings, force_demo=self.demo, readonly=self.readonly, store=store
                )
            events = self._events = self.rt.bus.subscribe(maxsize=200_000)
            if not self.shared_runtime:
                await self.rt.start()
            elif (started := getattr(self.rt, "started_as", None)) is not None:
                self.view.apply(started)  # it started before this view opened: its status line
            await asyncio.to_thread(self.view.load, self.rt)
            self._starting("")
            self._refresh({"agents", "threads", "escalations", "spend", "status"})
            self._pump = asyncio.create_task(self._drain(events))
            if self.mcp_port is not None:
                await self._serve_mcp(self.mcp_port)
            if self.view.open_escalations():
                self.notify(
                    f"{len(self.view.open_escalations())} escalation(s) waiting for a decision",
                    title="Escalations",
                    severity="warning",
                )
        except Exception as exc:  # show what is wrong and keep the console up, so the operator can read it
            self.failed = inert_line(str(exc) or type(exc).__name__, 300)
            self.view.status.provider = f"not started: {self.failed}"
            self._starting("not started")
            self.notify(self.failed, title="The runtime could not start", severity="error", timeout=30)
            self._refresh({"status"})

    async def _serve_mcp(self, port: int) -> None:
        from bzzz_console.mcp.serve import HttpServer
        from bzzz_console.security.tokens import TokenBook

        assert self.rt is not None
        tokens = TokenBook(self.settings.resolved_data_dir())
        self._mcp = HttpServer(self.rt, port, tokens, self.readonly)
        try:
            await self._mcp.start()
            self.view.status.mcp = self._mcp.url
            self._refresh({"status"})
        except Exception as exc:  # the console stays useful without MCP: say why it is off
            self._mcp = None
            self.notify(f"MCP over HTTP is off: {exc}", severity="error", timeout=15)

    async def _stop_runtime(self) -> None:
        if self._mcp is not None:
            mcp, self._mcp = self._mcp, None
            await mcp.stop()
        if self._boot is not None and not self._boot.done():
            self._boot.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._boot
        if self._pump is not None:  # first: the events of the shutdown have no screen left to land on
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        if self.rt is not None:
            rt, self.rt = self.rt, None
            if self.shared_runtime:  # one browser session closing leaves the fleet to the others
                if self._events is not None:
                    self._events.close()
                return
            with contextlib.suppress(Exception):
                await rt.close("console closed")

    async def action_quit(self) -> None:
        await self._stop_runtime()
        self.exit(0)

    async def on_unmount(self) -> None:
        await self._stop_runtime()

    # -- toasts and display errors ------------------------------------------------------------------------
    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Every toast of the console (screens' ``notify`` lands here too): inert text, never markup.

        Toasts quote titles, reasons, names and error messages, which come from agents, peers and MCP clients;
        ``markup`` is ignored (Widget.notify passes True by default), so no data is ever parsed as markup."""
        super().notify(
            inert(message), title=inert_line(title), severity=severity, timeout=timeout, markup=False
        )

    def action_help_quit(self) -> None:
        """ctrl+c: say how to quit, in plain words (Textual's own notice is markup, and toasts are plain here)."""
        keys = [k for k, b in self.active_bindings.items() if b.binding.action in ("quit", "app.quit")]
        if keys:
            self.notify(f"Press {keys[0]} to quit the app", title="Do you want to quit?")

    DISPLAY_ERROR_REPEAT_S = 30.0
    """The same display error is toasted at most this often (the once-a-second tick would repeat it)."""

    def guarded(self, what: str, step: Callable[..., Any], *args: Any) -> Any:
        """Run one step of showing the fleet. If it raises, the operator sees a toast, the log has the traceback,
        and the console and its runtime go on: a bad event or a repaint that fails must never stop the agents.
        Returns the step's result, or None when it failed."""
        try:
            return step(*args)
        except Exception as exc:
            logging.getLogger(__name__).exception("display error while %s", what)
            message = f"display error while {what}: {type(exc).__name__}: {exc}"
            last, at = getattr(self, "_last_display_error", ("", 0.0))
            if message != last or time.monotonic() - at > self.DISPLAY_ERROR_REPEAT_S:
                self._last_display_error = (message, time.monotonic())
                with contextlib.suppress(Exception):
                    self.notify(message[:500], title="The console could not show something", severity="error")
            return None

    # -- events → panes -----------------------------------------------------------------------------------
    async def _drain(self, events: Subscription) -> None:
        window = self.settings.console.refresh_ms / 1000
        while (first := await events.get()) is not None:
            await asyncio.sleep(window)  # merge whatever else arrives in this window into one repaint
            touched: set[str] = set()
            for event in [first, *events.drain()]:  # one event that cannot be shown costs only itself
                touched |= (
                    self.guarded(f"showing a {getattr(event, 'kind', '?')} event", self._route, event)
                    or set()
                )
            self.guarded("repainting", self._refresh, touched)

    def _route(self, event: Any) -> set[str]:
        touched = self.view.apply(event)
        self._notice(event)
        return touched

    def _notice(self, event: Any) -> None:
        kind = getattr(event, "kind", "")
        if kind == "escalation_raised":
            self.notify(
                f"{event.agent_id or event.thread_id}: {event.reason[:160]}",
                title=f"Escalation ({event.priority}) — {event.rule}",
                severity="warning",
                timeout=8,
            )
            if self.settings.console.bell:
                self.bell()
        elif kind == "events_dropped":
            self.notify(f"{event.count} events were dropped; reloading", severity="warning")
            if self.rt is not None:
                self.view.load(self.rt)
        elif kind == "error":
            self.notify(event.message[:300], title=event.where, severity="error")

    def _refresh(self, touched: set[str]) -> None:
        if not self.is_running or not self.screen_stack:  # shutting down: the screens are going away
            return
        screen = self.screen
        if not screen.is_mounted:  # pushed but not composed yet: its on_mount draws the current picture
            return
        if isinstance(screen, DashboardScreen):
            screen.refresh_panes(touched | self._dashboard_behind)
            self._dashboard_behind = set()
            return
        self._dashboard_behind |= touched  # hidden: it catches up when it is shown again (see _tick)
        from bzzz_console.tui.escalation_screen import EscalationScreen
        from bzzz_console.tui.network_screen import NetworkScreen
        from bzzz_console.tui.thread_screen import ThreadScreen

        if isinstance(screen, NetworkScreen):
            if touched & {"network", "status"}:
                screen.refresh_network()
        elif isinstance(screen, ThreadScreen) and (
            f"thread:{screen.thread_id}" in touched or "agents" in touched
        ):
            screen.refresh_thread()
        elif isinstance(screen, EscalationScreen) and touched:
            screen.refresh_escalation()
        elif getattr(screen, "identity", ("",))[0] == "agent" and touched & {"agents", "threads", "spend"}:
            screen.refresh_agent()  # type: ignore[attr-defined]
        # an escalation screen under a dialog or a thread: answered elsewhere is toasted at once
        for below in self.screen_stack[:-1]:
            if (
                isinstance(below, EscalationScreen)
                and below.is_mounted
                and f"escalation:{below.escalation_id}" in touched
            ):
                below.refresh_escalation()

    def _tick(self) -> None:
        self.guarded("refreshing the clock", self._tick_once)

    def _tick_once(self) -> None:
        if not self.is_running or not self.screen_stack or not self.screen.is_mounted:
            return
        if self._dashboard_behind and isinstance(self.screen, DashboardScreen):
            self._refresh(set())  # back from another screen: draw what changed meanwhile
        tick = getattr(self.screen, "tick", None)
        if tick is not None:
            tick()

    # -- navigation ---------------------------------------------------------------------------------------
    def _show_once(
        self, key: tuple[str, str], make: Callable[[], Any], load: Callable[[], None] | None
    ) -> None:
        """One screen per thread, escalation or agent: a second enter (or the palette) goes back to the one
        already open instead of stacking another; ``key`` is (screen kind, id)."""
        opening: set[tuple[str, str]] = self.__dict__.setdefault("_opening", set())
        if key in opening:
            return
        for screen in self.screen_stack:
            if getattr(screen, "identity", None) == key:
                while self.screen is not screen and len(self.screen_stack) > 1:
                    self.pop_screen()
                return
        opening.add(key)

        async def load_and_show() -> None:
            try:
                if load is not None and self.rt is not None:
                    await asyncio.to_thread(load)
                await self.push_screen(make())
            finally:
                opening.discard(key)

        self.run_worker(load_and_show(), group="navigate")

    def open_thread(self, thread_id: str) -> None:
        from bzzz_console.tui.thread_screen import ThreadScreen

        def load() -> None:
            self.view.load_transcript(self.rt, thread_id)

        self._show_once(("thread", thread_id), lambda: ThreadScreen(thread_id), load)

    def open_escalation(self, escalation_id: str) -> None:
        from bzzz_console.tui.escalation_screen import EscalationScreen

        def load() -> None:  # the event carried the headline; the store has the full context
            self.view.load_escalation(self.rt, escalation_id)

        self._show_once(("escalation", escalation_id), lambda: EscalationScreen(escalation_id), load)

    def open_agent(self, agent_id: str) -> None:
        from bzzz_console.tui.agent_screen import AgentScreen

        self._show_once(("agent", agent_id), lambda: AgentScreen(agent_id), None)

    def action_network(self) -> None:
        from bzzz_console.tui.network_screen import NetworkScreen

        if not isinstance(self.screen, NetworkScreen):
            self.push_screen(NetworkScreen())

    def action_help(self) -> None:
        from bzzz_console.tui.help_screen import HelpScreen

        self.push_screen(HelpScreen(self.screen))
