"""Faults: the model misbehaves, the database is locked or gone. Agents retry, rules escalate, nothing crashes.

LLM faults are real HTTP answers of the scripted OpenAI-compatible server (429 with Retry-After, 500/503, a
request that never answers, malformed JSON, a response cut mid-way), injected mid-run into a Runtime whose agents
propose and agree over the real ``openai`` SDK. Database faults are real too: an exclusive SQLite lock held by
another connection, a table that disappears under the running node, and URLs of databases that are not there.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import eventually

from bzzz_console.app import make_runtime
from bzzz_console.config import Settings
from bzzz_console.demo.scripted_server import Fault, ScriptedReply, ScriptedServer, ScriptedToolCall
from bzzz_console.domain import events as ev
from bzzz_console.runtime.llm.client import OpenAIBackend, RetryPolicy
from bzzz_console.runtime.runtime import Runtime

BIN = Path(sys.executable).with_name("bzzz-console")
BASE_DELAY_S = 0.02
TIMEOUT_S = 0.5


def make_settings(tmp_path: Path, **runtime: Any) -> Settings:
    return Settings.model_validate(
        {
            "data_dir": str(tmp_path / "data"),
            "store": {"url": f"sqlite:///{tmp_path / 'bzzz.db'}"},
            "runtime": {"poll_interval_s": 0.05, "fleet": {"architect": 1, "reviewer": 1}, **runtime},
            "budgets": {"daily_usd": None, "thread_usd": None},
        }
    )


def _post(thread_id: str, kind: str, text: str) -> ScriptedToolCall:
    return ScriptedToolCall(
        "bzzz_post",
        {
            "target_address": f"bzzz://*@default/threads/{thread_id}",
            "message_type": kind,
            "content": {"text": text},
        },
    )


@dataclass
class Team:
    """A stateless scripted team: whoever speaks first proposes, the next agrees. A reply that is lost (a cut
    response) is simply asked for again. After call ``inject_after`` it injects ``faults`` into the server, so
    they hit the run mid-way, not its first request."""

    server: ScriptedServer | None = None
    faults: tuple[Fault, ...] = ()
    inject_after: int = 1
    calls: int = 0
    on_call: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, body: dict[str, Any]) -> ScriptedReply:
        with self.lock:
            self.calls += 1
            if self.calls == self.inject_after and self.server is not None and self.faults:
                self.server.inject(*self.faults)
        if self.on_call is not None:
            self.on_call(self.calls)
        system = body["messages"][0]["content"]
        thread_id = system.split("thread_id: ", 1)[1].split("\n", 1)[0]
        history = "\n".join(str(m.get("content") or "") for m in body["messages"][1:])
        if "· proposal #" in history:
            return ScriptedReply(tool_calls=(_post(thread_id, "agree", "Agreed: ship it."),))
        return ScriptedReply(tool_calls=(_post(thread_id, "proposal", "Use a token bucket per key."),))


@dataclass
class Run:
    rt: Runtime
    server: ScriptedServer
    team: Team
    slept: list[float]
    events: list[ev.Event] = field(default_factory=list)
    threads: list[Any] = field(default_factory=list)
    tasks: list[Any] = field(default_factory=list)
    usage: list[Any] = field(default_factory=list)
    escalations: list[Any] = field(default_factory=list)
    messages: list[Any] = field(default_factory=list)

    def of(self, kind: type[ev.Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def run_with(tmp_path: Path) -> Iterator[Any]:
    servers: list[ScriptedServer] = []

    def build(team: Team, *, max_attempts: int = 4, max_delay_s: float = 20.0, **runtime: Any) -> Run:
        server = ScriptedServer(team).start()
        servers.append(server)
        team.server = server
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)
            await asyncio.sleep(seconds)

        backend = OpenAIBackend(
            base_url=server.base_url,
            api_key="test",
            policy=RetryPolicy(
                max_attempts=max_attempts,
                base_delay_s=BASE_DELAY_S,
                max_delay_s=max_delay_s,
                timeout_s=TIMEOUT_S,
            ),
            sleep=sleep,
        )
        return Run(make_runtime(make_settings(tmp_path, **runtime), backend=backend), server, team, slept)

    yield build
    for server in servers:
        server.stop()


async def play(run: Run, tasks: int = 2, timeout: float = 30) -> None:
    """Add ``tasks`` tasks for the architect and the reviewer and run until idle, collecting every event."""
    subscription = run.rt.bus.subscribe(maxsize=100_000)
    async with run.rt:
        for i in range(tasks):
            run.rt.store.add_task(
                title=f"Task {i}",
                description="",
                roles=["architect", "reviewer"],
                priority="medium",
                project="default",
            )
        run.rt.capacity_changed()
        await asyncio.wait_for(run.rt.wait_idle(), timeout)
        run.events = subscription.drain()
        run.threads = run.rt.store.threads()
        run.tasks = run.rt.store.tasks()
        run.usage = run.rt.store.usage()
        run.escalations = run.rt.store.escalations()
        run.messages = [m for t in run.threads for m in run.rt.store.messages(t.id)]


def assert_completed_cleanly(run: Run, tasks: int = 2) -> None:
    """Every thread closed by consensus, every task done, no internal error, no call that failed for good."""
    threads: list[Any] = run.threads
    assert len(threads) == tasks
    assert {(t.status, t.outcome) for t in threads} == {("closed", "consensus")}, threads
    assert {t.status for t in run.tasks} == {"done"}
    assert run.of(ev.ErrorRaised) == []
    assert run.of(ev.LLMFailed) == []
    assert len(run.of(ev.ConsensusReached)) == tasks
    assert run.escalations == []
    # Usage of every successful call is recorded, with the attempts it took; no failed rows.
    usage = run.usage
    called = run.of(ev.LLMCalled)
    assert len(usage) == len(called) >= 2 * tasks
    assert all(u.error is None and u.prompt_tokens > 0 and u.cost_usd is not None for u in usage)
    assert sum(u.attempts for u in usage) == len(usage) + len(run.of(ev.LLMRetry))
    # Nothing was lost or posted twice: a proposal and an agreement per thread, seqs 1..n.
    for thread in threads:
        said = [(m.type, m.seq) for m in run.messages if m.thread_id == thread.id]
        assert [kind for kind, _ in said if kind in ("proposal", "agree")] == ["proposal", "agree"], said
        assert [seq for _, seq in said] == list(range(1, len(said) + 1))


# -- LLM faults, one kind at a time --------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultCase:
    faults: tuple[Fault, ...]
    reason: str
    """Text every LLMRetry reason of this fault contains."""
    delays: tuple[float, ...] | None = None
    """Exact back-off delays (from Retry-After); None: jittered, within the policy's bounds."""
    max_delay_s: float = 20.0
    max_attempts: int = 4
    """Enough that no call fails for good even if every fault hits the same call (two threads share them)."""


FAULT_CASES = {
    "429 Retry-After": FaultCase((Fault.rate_limit(retry_after=0.2),), "HTTP 429", (0.2,)),
    "429 twice": FaultCase((Fault.rate_limit(0.05), Fault.rate_limit(0.1)), "HTTP 429", (0.05, 0.1)),
    "429 Retry-After capped": FaultCase(
        (Fault.rate_limit(retry_after=30),), "HTTP 429", (0.3,), max_delay_s=0.3
    ),
    "500": FaultCase((Fault.server_error(500),), "HTTP 500"),
    "503 Retry-After": FaultCase((Fault.server_error(503, retry_after=0.15),), "HTTP 503", (0.15,)),
    "timeout": FaultCase((Fault.timeout(5.0),), f"no answer within {TIMEOUT_S:g}s"),
    "malformed JSON": FaultCase((Fault.malformed_json(),), "invalid JSON"),
    "cut response": FaultCase((Fault.stream_cut(),), "connection to"),
    "one of each": FaultCase(
        (
            Fault.rate_limit(0.01),
            Fault.server_error(500),
            Fault.timeout(5.0),
            Fault.malformed_json(),
            Fault.stream_cut(),
            Fault.server_error(503, retry_after=0.01),
        ),
        "",
        max_attempts=7,
    ),
}


@pytest.mark.parametrize("case", list(FAULT_CASES.values()), ids=list(FAULT_CASES))
async def test_an_llm_fault_mid_run_is_retried_and_the_run_completes(case: FaultCase, run_with: Any) -> None:
    team = Team(faults=case.faults, inject_after=1)
    run = run_with(team, max_attempts=case.max_attempts, max_delay_s=case.max_delay_s)
    await play(run)
    assert_completed_cleanly(run)
    retries = run.of(ev.LLMRetry)
    assert len(retries) == len(case.faults), retries
    assert all(case.reason in r.reason for r in retries), [r.reason for r in retries]
    assert run.slept == [r.delay_s for r in retries]  # the back-off announced is the back-off slept
    if case.delays is not None:
        assert tuple(r.delay_s for r in retries) == case.delays
    else:
        assert all(0 <= r.delay_s <= BASE_DELAY_S * 2 ** (r.attempt - 1) for r in retries), retries
    # the faults were injected after the first reply: the run was under way when they hit
    assert run.team.calls >= 4 and len(run.server.requests) == run.team.calls + sum(
        f.kind != "stream_cut" for f in case.faults
    )


async def test_persistent_model_failures_escalate_by_the_error_rate_rule(run_with: Any) -> None:
    """Every kind of fault, over and over: each call fails for good after its retries, the Error Rate rule
    raises an escalation, the thread waits for a human, and the runtime carries on without an internal error."""
    kinds = [
        Fault.rate_limit(0),
        Fault.server_error(500),
        Fault.malformed_json(),
        Fault.stream_cut(),
        Fault.server_error(503),
        Fault.timeout(5.0),
    ]
    team = Team()
    run = run_with(team, max_attempts=2)
    run.server.inject(*kinds * 4)
    await play(run, tasks=1)
    failures = run.of(ev.LLMFailed)
    assert len(failures) >= 3
    assert all("model call failed after 2 attempts" in f.error for f in failures), failures
    assert len(run.of(ev.LLMRetry)) == len(failures)  # one retry per call (max_attempts=2)
    assert run.of(ev.ErrorRaised) == []
    [escalation] = run.escalations
    assert (escalation.rule, escalation.state) == ("Error Rate", "open")
    [thread] = run.threads
    assert thread.status == "waiting_human"
    failed_rows = [u for u in run.usage if u.error]
    assert len(failed_rows) == len(failures)  # failed calls are recorded: they feed the error rate
    assert not [m for m in run.messages if m.author in run.rt.agents]  # no agent got a word in


# -- the database -------------------------------------------------------------------------------------------


class ExclusiveLock:
    """``BEGIN EXCLUSIVE`` on the database from another connection (and thread), held for ``hold_s``."""

    def __init__(self, path: Path, hold_s: float) -> None:
        self.path, self.hold_s = path, hold_s
        self.locked = threading.Event()
        self.released_at: float | None = None
        self.released_wall: datetime | None = None
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            self.locked.set()
            time.sleep(self.hold_s)
            self.released_wall = datetime.now(UTC)
            self.released_at = time.monotonic()
            conn.execute("COMMIT")
        finally:
            conn.close()

    def start(self) -> ExclusiveLock:
        self.thread.start()
        assert self.locked.wait(10), "could not take the lock"
        return self


async def test_a_locked_database_makes_writes_wait_and_nothing_is_lost(run_with: Any, tmp_path: Path) -> None:
    """Another connection holds an exclusive lock while the agents talk: the runtime's writes wait (busy
    timeout) and go through once it is released; the run completes as if nothing happened."""
    locks: list[ExclusiveLock] = []

    def lock_on_first_call(n: int) -> None:  # runs in the server's thread, before the first reply is sent
        if n == 1:
            locks.append(ExclusiveLock(tmp_path / "bzzz.db", hold_s=1.0).start())

    run = run_with(Team(on_call=lock_on_first_call))
    started = time.monotonic()
    await play(run)
    assert_completed_cleanly(run)
    [lock] = locks
    assert lock.released_at is not None and lock.released_wall is not None
    # The first reply arrived while the lock was held: its usage was timed before the release, and its
    # writes (the usage row, then the proposal) waited for the release and then went through.
    first_usage = min(run.usage, key=lambda u: u.id)
    first_message = min((m for m in run.messages if m.type == "proposal"), key=lambda m: m.created_at)
    assert _utc(first_usage.at) < lock.released_wall <= _utc(first_message.created_at)
    assert time.monotonic() - started >= 1.0


def _utc(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@pytest.mark.slow
def test_the_cli_waits_for_a_locked_database(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """``task add`` from another process while the database is locked: it waits, then succeeds."""
    db = tmp_path / "bzzz.db"
    url = f"sqlite:///{db}"
    first = subprocess.run(
        [str(BIN), "task", "add", "first", "--db", url],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.returncode == 0, first.stderr
    lock = ExclusiveLock(db, hold_s=1.5).start()
    started = time.monotonic()
    done = subprocess.run(
        [str(BIN), "task", "add", "second", "--db", url],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    waited = time.monotonic() - started
    lock.thread.join(10)
    assert done.returncode == 0, done.stderr
    assert lock.released_at is not None and waited >= 1.0
    titles = [row[0] for row in sqlite3.connect(db).execute("SELECT title FROM tasks ORDER BY created_at")]
    assert titles == ["first", "second"]


async def test_a_database_error_in_the_inbox_loop_is_published_and_scheduling_goes_on(
    run_with: Any, tmp_path: Path
) -> None:
    """A real condition: the ``tasks`` table disappears under the running node (renamed by another
    connection), so the inbox loop's query fails with OperationalError. The loop publishes an ``error`` event
    and keeps polling; once the table is back, a new task is picked up and played to consensus."""
    run = run_with(Team())
    events = run.rt.bus.subscribe(maxsize=100_000)
    db = tmp_path / "bzzz.db"
    async with run.rt:
        await asyncio.wait_for(run.rt.wait_idle(), 10)
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("PRAGMA legacy_alter_table=ON")  # leave the other tables' references alone
        other.execute("ALTER TABLE tasks RENAME TO tasks_away")
        errors: list[ev.ErrorRaised] = []

        def inbox_failed() -> list[ev.ErrorRaised]:
            errors.extend(e for e in events.drain() if isinstance(e, ev.ErrorRaised))
            if not errors:
                run.rt.capacity_changed()  # wake the inbox loop (it also polls every 50 ms)
            return errors

        await eventually(inbox_failed, "the inbox loop to hit the missing table")
        other.execute("ALTER TABLE tasks_away RENAME TO tasks")
        other.close()
        assert errors[0].where == "inbox"
        assert errors[0].message.startswith("OperationalError") and "tasks" in errors[0].message
        task = run.rt.store.add_task(
            title="After the hiccup",
            description="",
            roles=["architect", "reviewer"],
            priority="low",
            project="default",
        )
        run.rt.capacity_changed()
        # until the scheduler takes the task the fleet may still look idle (its thread's start marks it busy)
        await eventually(lambda: run.rt.store.get_task(task.id).status != "pending", "the task to be taken")
        await asyncio.wait_for(run.rt.wait_idle(), 30)
        assert run.rt.store.get_task(task.id).status == "done"
        [thread] = run.rt.store.threads()
        assert (thread.status, thread.outcome) == ("closed", "consensus")


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_") and k != "OPENAI_API_KEY"}
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    return env


def _gone(tmp_path: Path, kind: str) -> str:
    if kind == "unreachable PostgreSQL":
        return "postgresql+psycopg://x@127.0.0.1:1/db"
    if kind == "folder blocked by a file":
        (tmp_path / "blocker").write_text("not a folder")
        return f"sqlite:///{tmp_path / 'blocker' / 'bzzz.db'}"
    if kind == "a folder where the file was":
        (tmp_path / "bzzz.db").mkdir()
        return f"sqlite:///{tmp_path / 'bzzz.db'}"
    if kind == "not a database":
        (tmp_path / "bzzz.db").write_bytes(b"this is not SQLite\n" * 300)
        return f"sqlite:///{tmp_path / 'bzzz.db'}"
    if kind == "home of nobody":
        return "sqlite:///~nobody-bzzz-test/bzzz.db"
    raise AssertionError(kind)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "code", "says"),
    [  # exit 2: nothing usable is there (README); 1: something is there but cannot be used
        ("unreachable PostgreSQL", 1, "cannot open the database postgresql+psycopg://x@127.0.0.1:1/db"),
        ("folder blocked by a file", 2, "no database at"),
        ("a folder where the file was", 2, "it is a folder, not a database file"),
        ("not a database", 1, "file is not a database"),
        ("home of nobody", 2, "cannot find the home folder"),
    ],
)
def test_a_database_that_is_not_there_is_one_clear_line(
    kind: str, code: int, says: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    url = _gone(tmp_path, kind)
    done = subprocess.run(
        [str(BIN), "threads", "list", "--db", url], env=cli_env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == code, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("bzzz-console: error: ") and says in lines[0], lines[0]


def rename(db: Path, old: str, new: str) -> None:
    other = sqlite3.connect(db, isolation_level=None, timeout=30)
    try:
        other.execute("PRAGMA legacy_alter_table=ON")  # leave the other tables' references alone
        other.execute(f"ALTER TABLE {old} RENAME TO {new}")
    finally:
        other.close()


async def test_a_database_error_in_a_turn_is_published_and_the_turn_is_retaken(
    run_with: Any, tmp_path: Path
) -> None:
    """A real condition: the ``messages`` table is gone for a moment while the first agent's reply is on its
    way, so posting it fails. The thread publishes the error, waits, retakes the turn once the table is back,
    and the run still ends in consensus with every message stored once."""
    db = tmp_path / "bzzz.db"
    restored = threading.Event()

    def hide_messages_on_first_call(n: int) -> None:  # the server's thread, before the first reply goes out
        if n != 1:
            return
        rename(db, "messages", "messages_away")

        def put_back() -> None:
            rename(db, "messages_away", "messages")
            restored.set()

        threading.Timer(0.6, put_back).start()

    run = run_with(Team(on_call=hide_messages_on_first_call))
    await play(run, tasks=1)
    assert restored.is_set()
    errors = run.of(ev.ErrorRaised)
    assert errors and errors[0].where.startswith("thread ") and "retrying" in errors[0].message
    [thread] = run.threads
    assert (thread.status, thread.outcome) == ("closed", "consensus")
    seqs = [m.seq for m in run.messages]
    assert seqs == list(range(1, len(seqs) + 1))  # nothing lost, nothing twice
