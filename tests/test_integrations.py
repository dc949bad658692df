"""The seed's integrations as outbound hooks (SLURP on consensus, WHOOSH registration and health), against a real
HTTP server on 127.0.0.1 that records every request."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bzzz_console.app import make_runtime
from bzzz_console.config import ConfigError, Settings, load_settings
from bzzz_console.demo.team import DEMO_TASKS, add_demo_tasks
from bzzz_console.domain import events as ev
from bzzz_console.runtime.integrations import _retry_after


class Recorder:
    """A real HTTP server: records each POST (path, headers, JSON body) and answers from a per-path script."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with recorder.lock:
                    recorder.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
                    )
                    queued = recorder.script.get(self.path) or []
                    status, headers = queued.pop(0) if queued else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def posts(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.close()


def dead_url() -> str:
    """A port nothing listens on (bound, then released): connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/dead"


def make_settings(tmp_path: Path, fleet: dict[str, int] | None = None, **integrations: Any) -> Settings:
    data: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "store": {"url": f"sqlite:///{tmp_path / 'bzzz.db'}"},
        "demo": {"latency_ms": 0, "seed": 7},
        "runtime": {"poll_interval_s": 0.05, **({"fleet": fleet} if fleet else {})},
        "integrations": {"backoff_s": 0.01, "timeout_s": 5, **integrations},
    }
    return Settings.model_validate(data)


async def until(condition: Callable[[], Any], timeout: float = 20) -> None:
    """Poll until ``condition()`` is true (arrival over real HTTP takes a moment); fails on the timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def integration_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("integrations-") and not t.done()]


def errors(seen: list[ev.Event]) -> list[ev.ErrorRaised]:
    return [e for e in seen if isinstance(e, ev.ErrorRaised) and e.where == "integrations"]


# --------------------------------------------------------------------------- end to end with the demo team


async def test_consensus_goes_to_slurp_and_agents_to_whoosh(tmp_path: Path, server: Recorder) -> None:
    settings = make_settings(
        tmp_path, slurp_url=f"{server.url}/slurp", whoosh_url=f"{server.url}/whoosh", health_interval_s=0.05
    )
    rt = make_runtime(settings, force_demo=True)
    events = rt.bus.subscribe()
    async with rt:
        add_demo_tasks(rt.store)
        rt.capacity_changed()
        await asyncio.wait_for(rt.wait_idle(), 60)
        seen = events.drain()
        consensus = [e for e in seen if isinstance(e, ev.ConsensusReached)]
        assert len(consensus) == 2
        await until(lambda: len(server.posts("/slurp")) == len(consensus))
        health = lambda: [r for r in server.posts("/whoosh") if r["json"]["event"] == "agent_health"]  # noqa: E731
        await until(lambda: len(health()) >= 1)
        local_agents = {a.id: a for a in rt.agents.values() if a.origin == "local"}
        states_at_idle = {a.id: a.state.value for a in local_agents.values()}
        reported = lambda: {a["agent_id"]: a["status"] for a in health()[-1]["json"]["agents"]}  # noqa: E731
        await until(lambda: reported() == states_at_idle)  # reports follow the real states (queued ones lag)
        threads = {row.id: row for row in rt.store.threads()}
    assert integration_tasks() == []  # stopped cleanly with the runtime
    assert errors(seen) == []

    # SLURP: one context event per consensus, the seed's shape, about the right thread
    slurp = [r["json"] for r in server.posts("/slurp")]
    assert {e["context"]["conversation_id"] for e in slurp} == {c.thread_id for c in consensus}
    for event, reached in zip(
        sorted(slurp, key=lambda e: e["context"]["conversation_id"]),
        sorted(consensus, key=lambda c: c.thread_id),
        strict=True,
    ):
        assert (event["type"], event["source"]) == ("agent_consensus", "bzzz_mcp_integration")
        ctx, meta = event["context"], event["metadata"]
        thread = threads[reached.thread_id]
        assert ctx["topic"] == thread.topic
        assert set(ctx["participant_ids"]) >= {reached.proposer, *reached.agreed_by}
        assert set(ctx["participants"]) <= {"architect", "reviewer", "documentation"}
        [decision] = ctx["decision_points"]
        assert decision["made_by"] == reached.proposer and decision["summary"].startswith("Decision: ")
        assert ctx["insights"] and all(
            i["type"] in ("proposal", "answer", "disagree", "question") for i in ctx["insights"]
        )
        assert ctx["confidence"] == 1.0 and meta["consensus_type"] == "unanimous"
        assert meta["message_count"] == thread.message_count and meta["agent_count"] == len(
            ctx["participants"]
        )
        assert meta["proposal_id"] == reached.proposal_id and meta["thread_duration"] >= 0
        assert meta["closed_at"] and meta["created_at"] and event["timestamp"]
    assert all(r["headers"]["X-BZZZ-Event"] == "agent_consensus" for r in server.posts("/slurp"))

    # WHOOSH: a registration of every local agent (once each), then health reports of all of them
    registrations = [r["json"] for r in server.posts("/whoosh") if r["json"]["event"] == "agent_registration"]
    assert sorted(r["agent_id"] for r in registrations) == sorted(local_agents)
    for reg in registrations:
        agent = local_agents[reg["agent_id"]]
        assert (reg["type"], reg["role"], reg["capabilities"]) == (
            "gpt_agent",
            agent.role,
            list(agent.spec.capabilities),
        )
        assert reg["metadata"]["bzzz_address"] == f"bzzz://{agent.id}:{agent.role}@*"
        assert (
            reg["metadata"]["model"] == agent.model
            and reg["metadata"]["max_tokens"] == agent.spec.token_limit
        )
        assert reg["metadata"]["cost_per_token"]["output"] > 0  # the demo uses priced OpenAI model names
        assert set(reg["endpoints"]) == {"status_check", "task_assign", "collaborate"}
        assert reg["health_check"] == {"interval": 0.05, "timeout": 5.0, "retries": 3}
    report = health()[-1]["json"]
    assert sorted(a["agent_id"] for a in report["agents"]) == sorted(local_agents)
    for entry in report["agents"]:
        assert set(entry) >= {"status", "load", "current_threads", "spend_usd", "tokens"}
    assert any(a["spend_usd"] > 0 and a["tokens"] > 0 for a in report["agents"])


# --------------------------------------------------------------------------- retries and outages


async def test_503_twice_then_200_is_retried_and_delivered(tmp_path: Path, server: Recorder) -> None:
    server.script["/whoosh"] = [(503, {}), (503, {"Retry-After": "0"})]
    settings = make_settings(
        tmp_path, fleet={"architect": 1}, whoosh_url=f"{server.url}/whoosh", health_interval_s=60
    )
    rt = make_runtime(settings, force_demo=True)
    events = rt.bus.subscribe()
    async with rt:
        await until(lambda: rt.integrations.targets["whoosh"].sent == 1)
        seen = events.drain()
    posts = server.posts("/whoosh")
    assert [p["json"]["agent_id"] for p in posts] == ["architect-1"] * 3  # the same registration, three times
    assert errors(seen) == []
    assert rt.integrations.targets["whoosh"].failed == 0


async def test_a_client_error_is_not_retried_and_is_reported(tmp_path: Path, server: Recorder) -> None:
    server.script["/whoosh"] = [(400, {})]
    settings = make_settings(
        tmp_path, fleet={"architect": 1}, whoosh_url=f"{server.url}/whoosh", health_interval_s=60
    )
    rt = make_runtime(settings, force_demo=True)
    events = rt.bus.subscribe()
    async with rt:
        await until(lambda: rt.integrations.targets["whoosh"].failed == 1)
        seen = events.drain()
    assert len(server.posts("/whoosh")) == 1
    [error] = errors(seen)
    assert "HTTP 400" in error.message and "WHOOSH" in error.message


async def test_a_dead_url_raises_one_error_per_outage_and_the_runtime_carries_on(tmp_path: Path) -> None:
    url = dead_url()
    settings = make_settings(
        tmp_path, fleet={"architect": 1, "reviewer": 1}, whoosh_url=url, slurp_url=url, health_interval_s=0.02
    )
    rt = make_runtime(settings, force_demo=True)
    events = rt.bus.subscribe()
    async with rt:
        whoosh = rt.integrations.targets["whoosh"]
        await until(lambda: whoosh.failed >= 5)  # both registrations and several health reports failed
        task = DEMO_TASKS[0]  # the rate limiter: architect and reviewer agree
        rt.store.add_task(
            title=task["title"],
            description=task["description"],
            roles=task["roles"],
            priority=task["priority"],
            project="default",
        )
        rt.capacity_changed()
        await asyncio.wait_for(rt.wait_idle(), 60)
        await until(lambda: rt.integrations.targets["slurp"].failed == 1)
        seen = events.drain()
    assert [e.kind for e in seen if isinstance(e, ev.ConsensusReached)] == ["consensus_reached"]
    whoosh_errors = [e for e in errors(seen) if "WHOOSH" in e.message]
    slurp_errors = [e for e in errors(seen) if "SLURP" in e.message]
    assert len(whoosh_errors) == 1 and len(slurp_errors) == 1  # one per outage, not per attempt
    assert "ConnectError" in whoosh_errors[0].message and "/dead" in whoosh_errors[0].message
    assert integration_tasks() == []


async def test_recovery_ends_the_outage_and_a_new_one_is_reported_again(
    tmp_path: Path, server: Recorder
) -> None:
    server.script["/whoosh"] = [(500, {})] * 2 + [(200, {})] + [(500, {})] * 50
    settings = make_settings(
        tmp_path,
        fleet={"architect": 1},
        whoosh_url=f"{server.url}/whoosh",
        health_interval_s=0.02,
        max_attempts=1,
    )
    rt = make_runtime(settings, force_demo=True)
    events = rt.bus.subscribe()
    async with rt:
        whoosh = rt.integrations.targets["whoosh"]
        await until(lambda: whoosh.sent == 1 and whoosh.failed >= 4)
        seen = events.drain()
    assert len(errors(seen)) == 2  # down, (recovered), down again


# --------------------------------------------------------------------------- off by default, settings


async def test_nothing_runs_without_urls(tmp_path: Path) -> None:
    rt = make_runtime(make_settings(tmp_path, fleet={"architect": 1}), force_demo=True)
    async with rt:
        assert not rt.integrations.running
        assert rt.integrations.targets == {}
        assert integration_tasks() == []
    assert Settings().integrations.slurp_url is None and Settings().integrations.whoosh_url is None


async def test_stop_leaves_no_tasks(tmp_path: Path, server: Recorder) -> None:
    settings = make_settings(
        tmp_path,
        fleet={"architect": 1},
        slurp_url=f"{server.url}/s",
        whoosh_url=f"{server.url}/w",
        health_interval_s=0.02,
    )
    rt = make_runtime(settings, force_demo=True)
    async with rt:
        assert rt.integrations.running
        assert {t.get_name() for t in integration_tasks()} == {
            "integrations-events", "integrations-slurp", "integrations-whoosh", "integrations-health"
        }  # fmt: skip
        await until(lambda: len(server.posts("/w")) >= 2)
    assert integration_tasks() == [] and not rt.integrations.running


@pytest.mark.parametrize("url", ["ftp://example.com/x", "example.com/events", "http://", "https://h:99999/"])
def test_a_bad_url_names_the_key_and_what_was_expected(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"BZZZ_INTEGRATIONS__WHOOSH_URL": url})
    message = str(info.value)
    assert "key 'integrations.whoosh_url' in environment variable BZZZ_INTEGRATIONS__WHOOSH_URL" in message
    assert "expected an http:// or https:// URL" in message and repr(url) in message


def test_good_urls_and_tokens_are_read_from_a_file(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text(
        '[integrations]\nslurp_url = "https://slurp.example/events"\nwhoosh_url = "http://127.0.0.1:8080/agents"\n'
        'whoosh_token_env = "WHOOSH_TOKEN"\nhealth_interval_s = 10\n'
    )
    cfg = load_settings(file, environ={}).integrations
    assert (cfg.slurp_url, cfg.whoosh_url, cfg.whoosh_token_env, cfg.health_interval_s) == (
        "https://slurp.example/events", "http://127.0.0.1:8080/agents", "WHOOSH_TOKEN", 10
    )  # fmt: skip


async def test_bearer_token_comes_from_the_named_variable(
    tmp_path: Path, server: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_WHOOSH_TOKEN", "s3cret-token")
    settings = make_settings(
        tmp_path, fleet={"architect": 1}, whoosh_url=f"{server.url}/w", whoosh_token_env="TEST_WHOOSH_TOKEN"
    )
    async with make_runtime(settings, force_demo=True):
        await until(lambda: server.posts("/w"))
    assert server.posts("/w")[0]["headers"]["Authorization"] == "Bearer s3cret-token"


def test_retry_after_seconds_date_and_garbage() -> None:
    assert _retry_after("3", 0.5) == 3.0
    assert _retry_after(None, 0.5) == 0.5
    assert _retry_after("soon", 0.5) == 0.5
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 0.5) == 0.0  # in the past: at once
