"""Browser sessions under ``bzzz-console serve``: each one is a console app with its own operator, a view onto
the node's one runtime; and who is looking at which escalation, so operators see each other before they decide.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bzzz_console.tui.app import BzzzApp
from bzzz_console.tui.web.driver import SessionDriver

if TYPE_CHECKING:
    from bzzz_console.config import Settings
    from bzzz_console.runtime.runtime import Runtime


@dataclass(eq=False)
class BrowserSession:
    """One websocket of one operator. ``token_id`` names the token it signed in with (what decisions record)."""

    operator: str
    token_id: str
    send: Callable[[bytes], Awaitable[Any]]
    id: str = field(default_factory=lambda: secrets.token_hex(4))
    driver: SessionDriver | None = None
    pending: set[asyncio.Future[Any]] = field(default_factory=set)
    """Sends to the page under way (a pong, the closing frame)."""

    @property
    def surface(self) -> str:
        return f"browser token {self.token_id}"


class Presence:
    """Which sessions have which escalation open. A change redraws the other sessions' screens of it."""

    def __init__(self) -> None:
        self._viewing: dict[str, dict[str, str]] = {}  # escalation id -> session id -> operator
        self.apps: dict[str, BrowserApp] = {}  # session id -> its app, while it runs

    def enter(self, escalation_id: str, session: BrowserSession) -> None:
        self._viewing.setdefault(escalation_id, {})[session.id] = session.operator
        self._changed(escalation_id, session.id)

    def leave(self, escalation_id: str, session: BrowserSession) -> None:
        viewers = self._viewing.get(escalation_id, {})
        if viewers.pop(session.id, None) is not None:
            if not viewers:
                del self._viewing[escalation_id]
            self._changed(escalation_id, session.id)

    def leave_all(self, session: BrowserSession) -> None:
        for escalation_id in [e for e, viewers in self._viewing.items() if session.id in viewers]:
            self.leave(escalation_id, session)

    def others(self, escalation_id: str, session: BrowserSession) -> list[str]:
        """The other operators looking at it (one name per operator, however many tabs they have open)."""
        viewers = self._viewing.get(escalation_id, {})
        return sorted({name for sid, name in viewers.items() if sid != session.id})

    def _changed(self, escalation_id: str, by: str) -> None:
        for session_id, app in list(self.apps.items()):
            if session_id != by:
                app.presence_changed(escalation_id)


class BrowserApp(BzzzApp):
    """The console for one browser session: the node's runtime (never started or closed here), this session's
    operator on every decision, the browser as the surface, and the in-process driver."""

    def __init__(
        self,
        settings: Settings,
        runtime: Runtime,
        session: BrowserSession,
        presence: Presence,
        *,
        readonly: bool = False,
    ) -> None:
        super().__init__(
            settings,
            runtime=runtime,
            shared_runtime=True,
            readonly=readonly,
            operator=session.operator,
            surface=session.surface,
        )
        self.driver_class = SessionDriver
        self.session = session
        self.presence = presence
        self.view.status.signed_in = session.operator

    # the escalation screen calls these (a terminal console has no other viewers, so it has none of them)
    def viewing(self, escalation_id: str, on: bool) -> None:
        if on:
            self.presence.enter(escalation_id, self.session)
        else:
            self.presence.leave(escalation_id, self.session)

    def others_viewing(self, escalation_id: str) -> list[str]:
        return self.presence.others(escalation_id, self.session)

    def presence_changed(self, escalation_id: str) -> None:
        if not self.is_running:
            return
        for screen in self.screen_stack:
            if getattr(screen, "identity", None) == ("escalation", escalation_id) and screen.is_mounted:
                self.guarded("showing who is viewing", screen.refresh_escalation)  # type: ignore[attr-defined]
