"""Escalations announced off-screen through Apprise: its ``json://`` target against a local receiver."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import eventually
from local_model_server import LocalModelServer

from bzzz_console.app import make_runtime
from bzzz_console.config import Settings
from bzzz_console.domain import events as ev
from bzzz_console.runtime.notify import quiet_now
from bzzz_console.store.tables import utc


class Receiver:
    """An HTTP endpoint that records what Apprise's JSON target posts (and can refuse it)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.posts.append(json.loads(body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture(scope="module")
def models() -> Iterator[LocalModelServer]:
    with LocalModelServer(listed=("gemma:2b",)) as srv:
        yield srv


def settings_for(tmp_path: Path, models: LocalModelServer, **notify: Any) -> Settings:
    return Settings.model_validate(
        {
            "data_dir": str(tmp_path / "data"),
            "store": {"url": f"sqlite:///{tmp_path / 'bzzz.db'}"},
            "model": {"provider": "openai", "base_url": models.base_url},
            "models": {"default": "gemma:2b"},  # no tool support: a Model Trouble escalation (high) at once
            "runtime": {"poll_interval_s": 0.05, "fleet": {"architect": 1, "reviewer": 1}},
            "notify": {"retry_delay_s": 0.05, **notify},
        }
    )


async def escalate(settings: Settings) -> tuple[Any, list[ev.Event]]:
    rt = make_runtime(settings)
    subscription = rt.bus.subscribe(maxsize=10_000)
    await rt.start()
    rt.store.add_task(
        title="Rate limiting", description="", roles=["architect"], priority="high", project="default"
    )
    rt.capacity_changed()
    await eventually(lambda: rt.store.escalations("open"), "the escalation")
    return rt, subscription.drain


async def test_a_new_escalation_is_announced_with_what_the_operator_needs(
    tmp_path: Path, models: LocalModelServer, receiver: Receiver
) -> None:
    settings = settings_for(
        tmp_path, models, urls=[receiver.url], before_deadline_s=0, console_url="http://console.example:8080/"
    )
    rt, _ = await escalate(settings)
    try:
        await eventually(lambda: receiver.posts, "the announcement")
        [escalation] = rt.store.escalations("open")
    finally:
        await rt.close()
    [post] = receiver.posts
    assert post["title"] == "[high] escalation raised: Model Trouble"
    body = post["message"]
    assert "does not support tools" in body  # the reason
    assert (
        f"deadline: {utc(escalation.deadline).isoformat(timespec='seconds')}" in body and "then: hold" in body
    )
    assert f"http://console.example:8080/?escalation={escalation.id}" in body


async def test_a_reminder_before_the_deadline_and_a_minimum_priority(
    tmp_path: Path, models: LocalModelServer, receiver: Receiver
) -> None:
    settings = settings_for(tmp_path, models, urls=[receiver.url], before_deadline_s=7200)
    rt, _ = await escalate(settings)
    try:
        await eventually(lambda: len(receiver.posts) >= 2, "the announcement and the reminder")
    finally:
        await rt.close()
    titles = [p["title"] for p in receiver.posts]
    assert titles[0].endswith("raised: Model Trouble") and "due in 59 min" in titles[1] + titles[0]

    quiet = settings_for(
        tmp_path / "2", models, urls=[receiver.url], min_priority="urgent", before_deadline_s=0
    )
    receiver.posts.clear()
    rt, _ = await escalate(quiet)
    try:
        await asyncio.sleep(0.5)  # long enough for an announcement to arrive if one were sent
    finally:
        await rt.close()
    assert receiver.posts == []  # a high escalation is below "urgent"


async def test_a_failing_service_is_retried_shown_and_never_blocks(
    tmp_path: Path, models: LocalModelServer, receiver: Receiver
) -> None:
    receiver.status = 500
    settings = settings_for(tmp_path, models, urls=[receiver.url], before_deadline_s=0, max_attempts=3)
    rt, drain = await escalate(settings)
    try:
        errors = await eventually(
            lambda: [e for e in drain() if isinstance(e, ev.ErrorRaised) and e.where == "notify"], "the error"
        )
        assert rt.store.escalations("open")  # the runtime went on
    finally:
        await rt.close()
    assert len(receiver.posts) == 3  # one message, three attempts
    assert "after 3 attempts" in errors[0].message


async def test_an_expired_escalation_is_announced_with_what_happens_next(
    tmp_path: Path, models: LocalModelServer, receiver: Receiver
) -> None:
    from bzzz_console.domain.clock import ManualClock

    clock = ManualClock(datetime.now(UTC))
    settings = settings_for(tmp_path, models, urls=[receiver.url], before_deadline_s=0)
    rt = make_runtime(settings, clock=clock)
    await rt.start()
    try:
        rt.store.add_task(title="x", description="", roles=["architect"], priority="high", project="default")
        rt.capacity_changed()
        await eventually(lambda: rt.store.escalations("open"), "the escalation")
        await eventually(lambda: receiver.posts, "the announcement")
        clock.advance(hours=2)  # past the Model Trouble rule's 1 h deadline
        rt.escalations.tick()
        await eventually(lambda: len(receiver.posts) >= 2, "the expiry")
    finally:
        await rt.close()
    assert receiver.posts[1]["title"] == "[high] escalation expired (then: hold): Model Trouble"
    [expired] = [e for e in rt.store.escalations() if e.state == "expired"]
    assert expired.decision["surface"] == "deadline"


@pytest.mark.parametrize(
    ("hours", "now", "quiet"),
    [
        ("22:00-07:00", time(23, 30), True),
        ("22:00-07:00", time(6, 59), True),
        ("22:00-07:00", time(7, 0), False),
        ("22:00-07:00", time(12, 0), False),
        ("12:00-13:00", time(12, 30), True),
        ("12:00-13:00", time(13, 0), False),
        (None, time(3, 0), False),
    ],
)
def test_quiet_hours(hours: str | None, now: time, quiet: bool) -> None:
    assert quiet_now(hours, now) is quiet


def test_quiet_hours_must_be_times() -> None:
    from bzzz_console.domain.errors import ConfigError

    with pytest.raises((ConfigError, ValueError), match="22:00-07:00"):
        Settings.model_validate({"notify": {"quiet_hours": "10pm-7am"}})


def test_config_show_does_not_print_the_tokens_in_notification_urls(tmp_path: Path) -> None:
    import subprocess

    from helpers import BIN, cli_env

    config = tmp_path / "bzzz.toml"
    config.write_text('[notify]\nurls = ["slack://T000/B000/SECRETTOKEN", "ntfy://ntfy.sh/topic"]\n')
    for extra in ([], ["--json"]):
        done = subprocess.run(
            [str(BIN), "config", "show", *extra],
            env=cli_env(tmp_path, BZZZ_CONFIG=str(config)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "SECRETTOKEN" not in done.stdout
        assert "slack://" in done.stdout and "ntfy://" in done.stdout
