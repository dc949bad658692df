"""Tests for the event bus (ordered fan-out, per-subscriber drops, close) and the event values themselves."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import time
import types
import typing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import pytest

from bzzz_console.domain import events as events_module
from bzzz_console.domain.bus import EventBus, Subscription
from bzzz_console.domain.events import (
    EscalationRaised,
    Event,
    EventsDropped,
    RuntimeEvent,
    TaskAdded,
    ThreadCreated,
    ThreadStatusChanged,
    to_dict,
    to_json,
)
from bzzz_console.domain.threads import ThreadStatus

EVENT_CLASSES: tuple[type[Event], ...] = typing.get_args(RuntimeEvent)


def ev(n: int) -> ThreadStatusChanged:
    return ThreadStatusChanged(thread_id=f"t{n}", status="active", reason=str(n))


def numbers(events: list[Event]) -> list[int | str]:
    """Event n -> n; a drop marker -> 'dropped:<count>'."""
    out: list[int | str] = []
    for e in events:
        if isinstance(e, EventsDropped):
            out.append(f"dropped:{e.count}")
        else:
            assert isinstance(e, ThreadStatusChanged)
            out.append(int(e.reason))
    return out


# --------------------------------------------------------------------------- delivery


def test_events_reach_every_subscriber_in_order() -> None:
    bus = EventBus()
    subs = [bus.subscribe() for _ in range(3)]
    for n in range(50):
        bus.publish(ev(n))
    for sub in subs:
        assert numbers(sub.drain()) == list(range(50))
    assert bus.published == 50


def test_subscriber_only_sees_events_after_subscribing() -> None:
    bus = EventBus()
    bus.publish(ev(0))
    sub = bus.subscribe()
    bus.publish(ev(1))
    assert numbers(sub.drain()) == [1]


def test_same_event_object_is_delivered() -> None:
    bus = EventBus()
    a, b = bus.subscribe(), bus.subscribe()
    event = ev(1)
    bus.publish(event)
    assert a.drain()[0] is event
    assert b.drain()[0] is event


async def test_async_iteration_receives_events_in_order() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    received: list[Event] = []

    async def consume() -> None:
        async for e in sub:
            received.append(e)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)  # the consumer is now waiting on an empty queue
    for n in range(5):
        bus.publish(ev(n))
        await asyncio.sleep(0)
    bus.publish(ev(5))
    bus.publish(ev(6))
    sub.close()
    await asyncio.wait_for(task, timeout=2)
    assert numbers(received) == [0, 1, 2, 3, 4, 5, 6]  # queued events are still delivered after close


async def test_get_waits_for_next_event() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    getter = asyncio.create_task(sub.get())
    await asyncio.sleep(0.01)  # deliberately lets time pass: with nothing published, nothing may arrive
    assert not getter.done()
    bus.publish(ev(7))
    result = await asyncio.wait_for(getter, timeout=2)
    assert isinstance(result, ThreadStatusChanged)
    assert result.reason == "7"


# --------------------------------------------------------------------------- slow subscribers


def test_slow_subscriber_gets_drop_marker_then_newest_while_fast_gets_everything() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=3)
    fast = bus.subscribe()
    fast_seen: list[Event] = []
    for n in range(10):
        bus.publish(ev(n))
        fast_seen.extend(fast.drain())
    assert numbers(fast_seen) == list(range(10))
    batch = slow.drain()
    assert numbers(batch) == ["dropped:7", 7, 8, 9]
    marker = batch[0]
    assert isinstance(marker, EventsDropped)
    assert marker.kind == "events_dropped"


def test_drop_count_resets_after_marker() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=2)
    for n in range(5):
        bus.publish(ev(n))
    assert numbers(slow.drain()) == ["dropped:3", 3, 4]
    bus.publish(ev(5))
    bus.publish(ev(6))
    assert numbers(slow.drain()) == [5, 6]
    for n in range(7, 10):
        bus.publish(ev(n))
    assert numbers(slow.drain()) == ["dropped:1", 8, 9]


def test_no_marker_when_queue_exactly_full() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=3)
    for n in range(3):
        bus.publish(ev(n))
    assert numbers(sub.drain()) == [0, 1, 2]


async def test_async_consumer_sees_marker_first() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=3)
    for n in range(6):
        bus.publish(ev(n))
    first = await sub.get()
    assert isinstance(first, EventsDropped)
    assert first.count == 3
    assert numbers([e for e in [await sub.get(), await sub.get(), await sub.get()] if e]) == [3, 4, 5]
    assert sub.get_nowait() is None


def test_publish_is_synchronous_and_never_waits_on_a_slow_subscriber() -> None:
    assert not inspect.iscoroutinefunction(EventBus.publish)
    bus = EventBus()
    stuck = bus.subscribe(maxsize=3)  # nobody ever reads this one
    started = time.perf_counter()
    for n in range(20_000):
        assert bus.publish(ev(n)) is None  # type: ignore[func-returns-value]
    assert time.perf_counter() - started < 2.0
    assert numbers(stuck.drain()) == ["dropped:19997", 19997, 19998, 19999]


async def test_publish_does_not_yield_to_the_event_loop() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=1)
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    task = asyncio.create_task(other())
    for n in range(100):
        bus.publish(ev(n))
    assert ran == []  # no await happened inside publish
    await task
    assert numbers(sub.drain()) == ["dropped:99", 99]


# --------------------------------------------------------------------------- draining and closing


def test_drain_returns_the_batch_and_empties_the_queue() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    assert sub.drain() == []
    for n in range(4):
        bus.publish(ev(n))
    assert numbers(sub.drain()) == [0, 1, 2, 3]
    assert sub.drain() == []
    assert sub.get_nowait() is None


def test_closed_subscription_gets_nothing_more() -> None:
    bus = EventBus()
    keep, gone = bus.subscribe(), bus.subscribe()
    bus.publish(ev(1))
    gone.close()
    bus.publish(ev(2))
    bus.publish(ev(3))
    assert gone.closed
    assert numbers(gone.drain()) == [1]
    assert numbers(keep.drain()) == [1, 2, 3]


async def test_get_on_closed_drained_subscription_returns_none() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    sub.close()
    assert await asyncio.wait_for(sub.get(), timeout=1) is None


async def test_close_ends_a_waiting_async_for() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    received: list[Event] = []

    async def consume() -> None:
        async for e in sub:
            received.append(e)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.01)  # deliberately lets time pass: the consumer waits, it must not end on its own
    assert not task.done()
    sub.close()
    await asyncio.wait_for(task, timeout=2)
    assert received == []


async def test_bus_close_ends_every_subscriber() -> None:
    bus = EventBus()
    subs = [bus.subscribe() for _ in range(3)]
    results: list[list[Event]] = [[] for _ in subs]

    async def consume(sub: Subscription, out: list[Event]) -> None:
        async for e in sub:
            out.append(e)

    tasks = [asyncio.create_task(consume(s, r)) for s, r in zip(subs, results, strict=True)]
    await asyncio.sleep(0)
    bus.publish(ev(1))
    bus.close()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=2)
    assert all(s.closed for s in subs)
    assert [numbers(r) for r in results] == [[1], [1], [1]]
    bus.publish(ev(2))
    assert all(s.drain() == [] for s in subs)


# --------------------------------------------------------------------------- event values


def test_to_json_puts_kind_first_and_formats_values() -> None:
    at = datetime(2025, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)
    deadline = datetime(2025, 3, 5, 9, 0, tzinfo=timezone(timedelta(hours=2)))
    event = EscalationRaised(
        at=at,
        escalation_id="e1",
        thread_id="t1",
        agent_id=None,
        rule="stalled",
        reason="no consensus",
        priority="high",
        deadline=deadline,
    )
    text = to_json(event)
    assert text.startswith('{"kind":"escalation_raised",')
    data = json.loads(text)
    assert next(iter(data)) == "kind"
    assert data["at"] == "2025-03-04T05:06:07.891000+00:00"
    assert data["deadline"] == "2025-03-05T09:00:00+02:00"
    assert datetime.fromisoformat(data["deadline"]) == deadline
    assert data["agent_id"] is None
    assert data["escalation_id"] == "e1"
    assert "\n" not in text


def test_to_json_tuples_become_lists() -> None:
    event = ThreadCreated(
        thread_id="t1",
        task_id=None,
        project="p",
        topic="caching",
        participants=("architect-1", "reviewer-1"),
    )
    data = json.loads(to_json(event))
    assert data["participants"] == ["architect-1", "reviewer-1"]
    assert next(iter(data)) == "kind"
    assert data["kind"] == "thread_created"
    roles = json.loads(to_json(TaskAdded(task_id="k", project="p", title="t", roles=(), priority="low")))[
        "roles"
    ]
    assert roles == []


def test_to_json_keeps_non_ascii_and_enum_values() -> None:
    event = ThreadStatusChanged(
        thread_id="t1", status=ThreadStatus.STALLED, reason="pas de consensus — arrêté"
    )
    text = to_json(event)
    assert "— arrêté" in text
    assert json.loads(text)["status"] == "stalled"


def test_default_timestamp_is_timezone_aware_now() -> None:
    before = datetime.now(UTC)
    event = ev(1)
    after = datetime.now(UTC)
    assert event.at.tzinfo is not None
    assert before <= event.at <= after
    assert to_dict(event)["at"].endswith("+00:00")


def _sample(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        return _sample(next(a for a in typing.get_args(annotation) if a is not type(None)))
    if origin is Literal:
        return typing.get_args(annotation)[0]
    if origin is tuple:
        return ("x",)
    samples = {str: "x", int: 1, float: 1.5, bool: True, datetime: datetime(2025, 1, 1, tzinfo=UTC)}
    return samples[annotation]


def _instance(cls: type[Event]) -> Event:
    hints = typing.get_type_hints(cls)
    kwargs = {
        f.name: _sample(hints[f.name])
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    return cls(**kwargs)


def test_union_covers_every_event_class_in_the_module() -> None:
    defined = {
        obj
        for obj in vars(events_module).values()
        if isinstance(obj, type) and issubclass(obj, Event) and obj is not Event
    }
    assert set(EVENT_CLASSES) == defined
    assert len(EVENT_CLASSES) >= 20


def test_every_event_kind_is_a_distinct_default() -> None:
    kinds = []
    for cls in EVENT_CLASSES:
        field = {f.name: f for f in dataclasses.fields(cls)}["kind"]
        assert isinstance(field.default, str) and field.default, cls
        assert typing.get_args(typing.get_type_hints(cls)["kind"]) == (field.default,), cls
        kinds.append(field.default)
    assert len(set(kinds)) == len(kinds)


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.__name__)
def test_every_event_is_frozen(cls: type[Event]) -> None:
    event = _instance(cls)
    for f in dataclasses.fields(cls):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(event, f.name, getattr(event, f.name))
    with pytest.raises((dataclasses.FrozenInstanceError, AttributeError, TypeError)):
        event.extra = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.__name__)
def test_every_event_serialises_with_kind_first(cls: type[Event]) -> None:
    event = _instance(cls)
    data = json.loads(to_json(event))
    assert next(iter(data)) == "kind"
    assert data["kind"] == event.kind  # type: ignore[attr-defined]
    assert set(data) == {f.name for f in dataclasses.fields(cls)}
