"""kill -9 safety, with a real process: "After kill -9 mid-run, a restart resumes the open threads where they
stopped: no lost and no duplicated messages."

A headless demo run is killed with SIGKILL after it has published N messages. Then, on the database it left:

* every message it published exists with identical content (the runtime persists before it publishes);
* each thread's sequence numbers run 1..n without gaps or repeats.

A restart on the same database runs until idle; afterwards nothing that was stored changed, no message was
posted twice, and the end state is the one an uninterrupted run reaches (the demo model is a pure function of
the conversation so far, so a resumed thread continues the same story).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import BIN, cli_env

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 120  # generous: a whole demo run takes a few seconds
LATENCY_MS = "60"  # the demo model's think time: slow enough to kill mid-conversation

Key = tuple[str, int]  # (thread id, seq)


class LineReader:
    """Reads a process's stdout on a thread, so the test can wait for events with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        line = self.lines.get(timeout=timeout)
        return None if line is None else json.loads(line)

    def rest(self, timeout: float) -> list[dict[str, Any]]:
        out = []
        while (event := self.next_event(timeout)) is not None:
            out.append(event)
        return out


@dataclass(frozen=True)
class Snapshot:
    """What the database holds, read with plain sqlite3 (no code of the project involved)."""

    messages: dict[Key, dict[str, Any]]
    threads: dict[str, dict[str, Any]]
    tasks: list[dict[str, Any]]
    escalations: list[dict[str, Any]]

    def by_thread(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {tid: [] for tid in self.threads}
        for (tid, _), m in sorted(self.messages.items()):
            out.setdefault(tid, []).append(m)
        return out

    def story(self) -> dict[str, tuple[Any, ...]]:
        """Per topic (thread ids are random): status, outcome, and who said what kind of thing in which order."""
        return {
            t["topic"]: (
                t["status"],
                t["outcome"],
                t["message_count"],
                tuple((m["author"], m["type"]) for m in self.by_thread()[tid]),
            )
            for tid, t in self.threads.items()
        }


def read_db(path: Path) -> Snapshot:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        messages = {
            (r["thread_id"], r["seq"]): dict(r)
            for r in conn.execute(
                "SELECT id, thread_id, seq, author, role, type, content, reply_to FROM messages"
            )
        }
        threads = {
            r["id"]: dict(r)
            for r in conn.execute("SELECT id, topic, status, outcome, message_count, task_id FROM threads")
        }
        tasks = [dict(r) for r in conn.execute("SELECT id, title, status, thread_id FROM tasks")]
        escalations = [
            dict(r) for r in conn.execute("SELECT id, thread_id, agent_id, rule, state FROM escalations")
        ]
    finally:
        conn.close()
    return Snapshot(messages, threads, tasks, escalations)


def assert_consistent(db: Snapshot) -> None:
    """Per thread: seq 1..n, contiguous, no repeats, matching the thread's counter; no message posted twice."""
    for tid, messages in db.by_thread().items():
        seqs = [m["seq"] for m in messages]
        assert seqs == list(range(1, len(seqs) + 1)), f"{tid}: seqs {seqs}"
        assert db.threads[tid]["message_count"] == len(seqs), tid
        assert all(m["id"] == f"{tid}#{m['seq']}" for m in messages), tid
        # The demo never says the same thing twice in one thread; a duplicate would be a replayed turn.
        said = Counter((m["author"], m["type"], m["content"], m["reply_to"]) for m in messages)
        assert [k for k, n in said.items() if n > 1] == [], tid
    tasks_by_thread = {t["thread_id"]: t for t in db.tasks if t["thread_id"]}
    assert set(tasks_by_thread) == set(db.threads), "every thread belongs to one task, and every started task"


def assert_final_state(db: Snapshot) -> None:
    statuses = sorted((t["status"], t["outcome"]) for t in db.threads.values())
    assert statuses == [("closed", "consensus"), ("closed", "consensus"), ("waiting_human", None)]
    open_escalations = [e for e in db.escalations if e["state"] == "open"]
    assert len(db.escalations) == 1, db.escalations
    assert len(open_escalations) == 1, db.escalations
    (escalation,) = open_escalations
    assert escalation["rule"] == "Agent Request"  # the rules file's rule for request_human
    assert db.threads[escalation["thread_id"]]["status"] == "waiting_human"
    assert sorted(t["status"] for t in db.tasks) == ["done", "done", "in_progress"]


def run_to_idle(args: list[str], env: dict[str, str], cwd: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(BIN), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[0]["kind"] == "runtime_started"
    assert events[0]["demo"] is True
    assert (events[-1]["kind"], events[-1]["reason"]) == ("runtime_stopped", "idle")
    assert [e for e in events if e["kind"] == "error"] == []
    return events


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """An uninterrupted run: the end state every interrupted-and-resumed run must reach."""
    root = tmp_path_factory.mktemp("reference")
    path = root / "x.db"
    env = cli_env(root, BZZZ_DEMO__LATENCY_MS=LATENCY_MS)
    run_to_idle(["run", "--headless", "--demo", "--exit-when-idle", "--db", f"sqlite:///{path}"], env, root)
    db = read_db(path)
    assert_consistent(db)
    assert_final_state(db)
    return db


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


@pytest.mark.parametrize("kill_after", [4, 9, 15])
def test_kill_9_then_restart_loses_and_duplicates_nothing(
    kill_after: int, reference: Snapshot, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    path = tmp_path / "x.db"
    db_url = f"sqlite:///{path}"
    env = cli_env(tmp_path, BZZZ_DEMO__LATENCY_MS=LATENCY_MS)

    # 1. Run the demo, and kill -9 it after it has published `kill_after` messages.
    proc = subprocess.Popen(
        [str(BIN), "run", "--headless", "--demo", "--db", db_url],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    processes.append(proc)
    reader = LineReader(proc)
    seen: list[dict[str, Any]] = []
    while sum(1 for e in seen if e["kind"] == "message_posted") < kill_after:
        event = reader.next_event(timeout=RUN_TIMEOUT)
        assert event is not None, f"the run ended before it was killed (exit {proc.wait(timeout=30)})"
        seen.append(event)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    seen += reader.rest(timeout=30)  # lines already in the pipe were published before the kill, too

    # 2. Everything published is on disk, exactly as published; every thread is consistent.
    crashed = read_db(path)
    assert_consistent(crashed)
    posted = [e for e in seen if e["kind"] == "message_posted"]
    assert len(posted) >= kill_after
    for e in posted:
        stored = crashed.messages.get((e["thread_id"], e["seq"]))
        assert stored is not None, f"published but not persisted: {e}"
        assert (stored["id"], stored["author"], stored["type"], stored["content"], stored["reply_to"]) == (
            e["message_id"],
            e["author"],
            e["message_type"],
            e["content"],
            e["reply_to"],
        )
    for e in seen:
        if e["kind"] == "thread_created":
            assert e["thread_id"] in crashed.threads
        if e["kind"] == "escalation_raised":
            assert e["escalation_id"] in {x["id"] for x in crashed.escalations}

    # 3. Restart on the same database (no --demo: the tasks exist; provider auto = the demo model, no key).
    events = run_to_idle(["run", "--headless", "--exit-when-idle", "--db", db_url], env, tmp_path)
    known_tasks = {t["id"] for t in crashed.tasks}
    assert {e["task_id"] for e in events if e["kind"] == "task_added"} <= known_tasks, "no task seeded again"
    for e in events:
        if e["kind"] == "message_posted":
            assert (e["thread_id"], e["seq"]) not in crashed.messages, f"re-published a stored message: {e}"

    # 4. Nothing stored before the crash changed or went missing; the end state is an uninterrupted run's.
    final = read_db(path)
    assert_consistent(final)
    for key, message in crashed.messages.items():
        assert final.messages[key] == message
    assert_final_state(final)
    assert final.story() == reference.story()
