"""The event bus: the runtime publishes, each subscriber drains its own bounded queue.

Publishing never blocks and never waits on a slow subscriber. When a subscriber's queue is full, its oldest
events are dropped *for that subscriber only* and it receives an :class:`EventsDropped` marker with the count, so
a lagging view knows to reload from the store instead of silently showing a wrong picture.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable

from bzzz_console.domain.events import Event, EventsDropped


class Subscription:
    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self._items: deque[Event] = deque()
        self._maxsize = maxsize
        self._dropped = 0
        self._ready = asyncio.Event()
        self.closed = False

    def _put(self, event: Event) -> None:
        if len(self._items) >= self._maxsize:
            self._items.popleft()
            self._dropped += 1
        self._items.append(event)
        self._ready.set()

    def get_nowait(self) -> Event | None:
        if self._dropped:
            count, self._dropped = self._dropped, 0
            return EventsDropped(count=count)
        if self._items:
            return self._items.popleft()
        self._ready.clear()
        return None

    async def get(self) -> Event | None:
        """The next event, or None once the subscription is closed and drained."""
        while True:
            event = self.get_nowait()
            if event is not None:
                return event
            if self.closed:
                return None
            await self._ready.wait()

    def drain(self) -> list[Event]:
        """Everything queued right now (a UI takes a batch per frame)."""
        out = []
        while (event := self.get_nowait()) is not None:
            out.append(event)
        return out

    def close(self) -> None:
        self.closed = True
        self._ready.set()
        self._bus._subscribers.discard(self)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while (event := await self.get()) is not None:
            yield event


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self._taps: list[Callable[[Event], None]] = []
        self.published = 0

    def tap(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` synchronously with every event (it must be quick and must not raise): for parts of
        the runtime that may never miss one, as a bounded queue could; returns the function that removes it."""
        self._taps.append(callback)
        return lambda: self._taps.remove(callback) if callback in self._taps else None

    def subscribe(self, maxsize: int = 10_000) -> Subscription:
        sub = Subscription(self, maxsize)
        self._subscribers.add(sub)
        return sub

    def publish(self, event: Event) -> None:
        self.published += 1
        for tap in self._taps:
            tap(event)
        for sub in self._subscribers:
            sub._put(event)

    def close(self) -> None:
        for sub in list(self._subscribers):
            sub.close()
