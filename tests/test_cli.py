"""The installed ``bzzz-console`` command, run as a real process: what an operator or a script sees.

One headless demo run (module fixture) fills a database; the read-only commands are checked against it. Tests
that change a database work on a copy. Every process gets an explicit environment: no ``BZZZ_*`` settings and no
API key from the developer's shell, XDG dirs in a temporary folder, and ``--db`` naming a temporary SQLite file.
"""

from __future__ import annotations

import json
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

RUN_TIMEOUT = 120  # seconds a headless run may take before the test gives up (it takes ~4 s)
CMD_TIMEOUT = 60  # seconds for a short command (import time on a loaded 2-core machine)
SHUTDOWN_TIMEOUT = 10  # seconds between SIGTERM and the process's exit


@dataclass
class Cli:
    env: dict[str, str]
    db: str
    cwd: Path

    def __call__(
        self, *args: str, db: bool = True, timeout: float = CMD_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(BIN), *args, *(["--db", self.db] if db else [])]
        return subprocess.run(
            argv, env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=timeout, check=False
        )

    def json(self, *args: str) -> Any:
        done = self(*args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # the whole of stdout is one JSON document


def events_of(stdout: str) -> list[dict[str, Any]]:
    events = []
    for line in stdout.splitlines():
        event = json.loads(line)
        assert isinstance(event, dict), line
        assert isinstance(event.get("kind"), str), line
        events.append(event)
    return events


def assert_clean_stderr(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr


def copy_db(src: Path, dst: Path) -> str:
    """A consistent copy of a SQLite database (WAL included), for tests that change it."""
    with sqlite3.connect(src) as source, sqlite3.connect(dst) as target:
        source.backup(target)
    source.close()
    target.close()
    return f"sqlite:///{dst}"


@dataclass
class DemoRun:
    cli: Cli
    path: Path
    done: subprocess.CompletedProcess[str]
    events: list[dict[str, Any]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    root = tmp_path_factory.mktemp("demo")
    path = root / "x.db"
    cli = Cli(cli_env(root), f"sqlite:///{path}", root)
    done = cli("run", "--headless", "--demo", "--exit-when-idle", timeout=RUN_TIMEOUT)
    assert done.returncode == 0, done.stderr
    return DemoRun(cli, path, done, events_of(done.stdout))


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(cli_env(tmp_path), f"sqlite:///{tmp_path / 'x.db'}", tmp_path)


def thread_ids(cli: Cli) -> list[str]:
    return [t["id"] for t in cli.json("threads", "list", "--json")]


# -- basics ------------------------------------------------------------------------------------------------
def test_version(cli: Cli) -> None:
    done = cli("--version", db=False)
    assert done.returncode == 0, done.stderr
    from bzzz_console import __version__

    assert done.stdout.strip() == f"bzzz-console {__version__}"


def test_help(cli: Cli) -> None:
    done = cli("-h", db=False)
    assert done.returncode == 0, done.stderr
    for command in ("run", "task", "agents", "threads", "db", "config"):
        assert command in done.stdout
    sub = cli("threads", "-h", db=False)
    assert sub.returncode == 0, sub.stderr
    assert "export" in sub.stdout


# -- the headless demo run ---------------------------------------------------------------------------------
def test_headless_demo_prints_one_json_event_per_line(demo: DemoRun) -> None:
    events = demo.events
    kinds = Counter(e["kind"] for e in events)
    assert events[0]["kind"] == "runtime_started"
    assert events[0]["demo"] is True
    assert events[-1]["kind"] == "runtime_stopped"
    assert events[-1]["reason"] == "idle"
    assert kinds["consensus_reached"] == 2
    assert kinds["escalation_raised"] == 1
    assert kinds["runtime_idle"] >= 1
    assert kinds["error"] == 0, [e for e in events if e["kind"] == "error"]
    (escalation,) = [e for e in events if e["kind"] == "escalation_raised"]
    assert escalation["rule"] == "Agent Request"
    assert escalation["thread_id"]
    assert_clean_stderr(demo.done.stderr)


def test_threads_list_json(demo: DemoRun) -> None:
    threads = demo.cli.json("threads", "list", "--json")
    assert isinstance(threads, list)
    for t in threads:
        assert {"id", "topic", "status", "participants", "message_count", "cost_usd"} <= set(t)
        assert isinstance(t["participants"], list) and t["participants"]
        assert t["message_count"] >= 2
    assert sorted(t["status"] for t in threads) == ["closed", "closed", "waiting_human"]
    (escalated,) = [e for e in demo.events if e["kind"] == "escalation_raised"]
    assert {t["id"]: t["status"] for t in threads}[escalated["thread_id"]] == "waiting_human"


def test_threads_list_table(demo: DemoRun) -> None:
    done = demo.cli("threads", "list")
    assert done.returncode == 0, done.stderr
    for t in demo.cli.json("threads", "list", "--json"):
        assert t["id"] in done.stdout


def test_agents_and_tasks_list_json(demo: DemoRun) -> None:
    agents = demo.cli.json("agents", "list", "--json")
    registered = {e["agent_id"] for e in demo.events if e["kind"] == "agent_registered"}
    assert {a["id"] for a in agents} == registered
    for a in agents:
        assert {"id", "role", "state", "model", "tokens", "cost_usd"} <= set(a)
    assert sum(a["tokens"] for a in agents) > 0

    tasks = demo.cli.json("task", "list", "--json")
    assert len(tasks) == 3
    assert sorted(t["status"] for t in tasks) == ["done", "done", "in_progress"]
    assert all(t["thread_id"] for t in tasks)


def test_threads_show(demo: DemoRun) -> None:
    for t in demo.cli.json("threads", "list", "--json"):
        done = demo.cli("threads", "show", t["id"])
        assert done.returncode == 0, done.stderr
        assert t["topic"] in done.stdout
        assert t["id"] in done.stdout


def test_threads_export_markdown(demo: DemoRun, tmp_path: Path) -> None:
    thread_id = thread_ids(demo.cli)[0]
    doc = demo.cli.json("threads", "export", thread_id, "--format", "json")
    done = demo.cli("threads", "export", thread_id, "--format", "md")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"# {doc['topic']}\n")
    assert "## Transcript" in done.stdout
    for m in doc["messages"]:
        assert m["content"].splitlines()[0] in done.stdout

    target = tmp_path / "out" / "thread.md"
    target.parent.mkdir()
    written = demo.cli("threads", "export", thread_id, "--format", "md", "-o", str(target))
    assert written.returncode == 0, written.stderr
    assert written.stdout == ""
    assert target.read_text(encoding="utf-8") == done.stdout


def test_threads_export_json(demo: DemoRun, tmp_path: Path) -> None:
    posted = [e for e in demo.events if e["kind"] == "message_posted"]
    for thread_id in thread_ids(demo.cli):
        doc = demo.cli.json("threads", "export", thread_id, "--format", "json")
        assert doc["id"] == thread_id
        seqs = [m["seq"] for m in doc["messages"]]
        assert seqs == list(range(1, len(seqs) + 1))
        assert {m["content"] for m in doc["messages"]} == {
            e["content"] for e in posted if e["thread_id"] == thread_id
        }
        if doc["status"] == "closed":
            assert doc["outcome"] == "consensus"
            assert doc["decisions"]

    target = tmp_path / "thread.json"
    thread_id = thread_ids(demo.cli)[0]
    written = demo.cli("threads", "export", thread_id, "--format", "json", "-o", str(target))
    assert written.returncode == 0, written.stderr
    assert json.loads(target.read_text(encoding="utf-8"))["id"] == thread_id


def test_added_task_is_picked_up_by_a_second_run(demo: DemoRun, tmp_path: Path) -> None:
    cli = Cli(demo.cli.env, copy_db(demo.path, tmp_path / "copy.db"), tmp_path)
    added = cli.json("task", "add", "Title", "-r", "architect", "-r", "documentation", "-p", "high", "--json")
    task_id = added["id"]
    assert added["status"] == "pending"
    assert added["roles"] == ["architect", "documentation"]
    assert added["priority"] == "high"
    listed = {t["id"]: t for t in cli.json("task", "list", "--json")}
    assert listed[task_id]["status"] == "pending"

    # No --demo: the provider is "auto", and without an API key that is the demo model.
    done = cli("run", "--headless", "--exit-when-idle", timeout=RUN_TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert_clean_stderr(done.stderr)
    events = events_of(done.stdout)
    assert events[0]["kind"] == "runtime_started"
    assert events[0]["demo"] is True
    assert (events[-1]["kind"], events[-1]["reason"]) == ("runtime_stopped", "idle")
    assert not [e for e in events if e["kind"] == "error"]
    assert not [e for e in events if e["kind"] == "task_added" and e["task_id"] != task_id]
    assert any(
        e["kind"] == "task_status_changed" and e["task_id"] == task_id and e["status"] == "done"
        for e in events
    )
    task = {t["id"]: t for t in cli.json("task", "list", "--json")}[task_id]
    assert task["status"] == "done"
    thread = {t["id"]: t for t in cli.json("threads", "list", "--json")}[task["thread_id"]]
    assert thread["status"] == "closed"
    assert thread["outcome"] == "consensus"
    assert thread["topic"].endswith("Title")
    # The demo's threads are as they were: nothing was re-run or duplicated.
    before = {t["id"]: t for t in demo.cli.json("threads", "list", "--json")}
    after = {t["id"]: t for t in cli.json("threads", "list", "--json")}
    for thread_id, old in before.items():
        assert after[thread_id]["status"] == old["status"]
        assert after[thread_id]["message_count"] == old["message_count"]


# -- errors: one line, an exit code, no traceback ----------------------------------------------------------
def test_unknown_thread(demo: DemoRun) -> None:
    for command in (("threads", "show", "nope"), ("threads", "export", "nope")):
        done = demo.cli(*command)
        assert done.returncode == 1
        assert done.stdout == ""
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "'nope'" in done.stderr
        assert_clean_stderr(done.stderr)


def test_malformed_database_url(cli: Cli) -> None:
    done = cli("threads", "list", "--db", "not a url", db=False)
    assert done.returncode != 0
    assert "malformed database URL" in done.stderr
    assert_clean_stderr(done.stderr)


def test_unsupported_database(cli: Cli) -> None:
    done = cli("threads", "list", "--db", "mysql://x/y", db=False)
    assert done.returncode != 0
    assert "unsupported database" in done.stderr
    assert_clean_stderr(done.stderr)


def test_missing_config_file(cli: Cli) -> None:
    done = cli("threads", "list", "--config", "missing.toml")
    assert done.returncode == 2
    assert "missing.toml" in done.stderr
    assert_clean_stderr(done.stderr)


def test_invalid_config_value(cli: Cli) -> None:
    path = cli.cwd / "bad.toml"
    path.write_text('[runtime]\nmax_turns = "x"\n', encoding="utf-8")
    for command in (("threads", "list"), ("run", "--headless", "--demo", "--exit-when-idle")):
        done = cli(*command, "--config", str(path))
        assert done.returncode == 2, done.stderr
        assert "runtime.max_turns" in done.stderr
        assert "bad.toml" in done.stderr
        assert_clean_stderr(done.stderr)


def test_task_add_rejects_an_empty_title(cli: Cli) -> None:
    assert cli("db", "upgrade").returncode == 0  # the listing below reads; readers never create a database
    for title in ("", "   "):
        done = cli("task", "add", title)
        assert done.returncode == 2
        assert "title" in done.stderr
        assert_clean_stderr(done.stderr)
    assert cli.json("task", "list", "--json") == []


def test_task_add_rejects_an_unknown_role(cli: Cli) -> None:
    assert cli("db", "upgrade").returncode == 0
    done = cli("task", "add", "T", "-r", "wizard")
    assert done.returncode == 2
    assert "wizard" in done.stderr
    for role in ("architect", "reviewer", "documentation"):
        assert role in done.stderr
    assert_clean_stderr(done.stderr)
    assert cli.json("task", "list", "--json") == []


def test_task_add_plain_prints_the_id(cli: Cli) -> None:
    done = cli("task", "add", "Plain task")
    assert done.returncode == 0, done.stderr
    (task,) = cli.json("task", "list", "--json")
    assert done.stdout.strip() == task["id"]
    assert task["roles"] == ["architect", "reviewer"]
    assert task["status"] == "pending"


def test_db_upgrade_prints_the_revision(cli: Cli) -> None:
    done = cli("db", "upgrade")
    assert done.returncode == 0, done.stderr
    from alembic.script import ScriptDirectory

    from bzzz_console.store.engine import MIGRATIONS_DIR

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert done.stdout.strip().endswith(f"is at revision {head}")
    again = cli("db", "upgrade")  # idempotent
    assert again.returncode == 0, again.stderr
    assert again.stdout == done.stdout


def test_config_show_prints_commented_toml(cli: Cli) -> None:
    import tomllib

    done = cli("config", "show", db=False)
    assert done.returncode == 0, done.stderr
    assert any(line.startswith("#") for line in done.stdout.splitlines())
    parsed = tomllib.loads(done.stdout)
    assert parsed["runtime"]["max_turns"] >= 2
    assert "provider" in parsed["model"]

    as_json = cli("config", "show", "--json", db=False)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["runtime"]["max_turns"] == parsed["runtime"]["max_turns"]


def test_config_file_and_env_are_applied(cli: Cli) -> None:
    path = cli.cwd / "good.toml"
    path.write_text("[runtime]\nmax_turns = 9\n", encoding="utf-8")
    done = cli("config", "show", "--json", "--config", str(path), db=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["runtime"]["max_turns"] == 9


# -- SIGTERM -----------------------------------------------------------------------------------------------
class LineReader:
    """Reads a process's stdout on a thread, so the test can wait for lines with a timeout."""

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


@pytest.fixture
def popen(cli: Cli) -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test started; killed at the end if still running."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def test_sigterm_stops_cleanly(cli: Cli, popen: list[subprocess.Popen[str]]) -> None:
    env = {**cli.env, "BZZZ_DEMO__LATENCY_MS": "200"}
    proc = subprocess.Popen(
        [str(BIN), "run", "--headless", "--demo", "--db", cli.db],
        env=env,
        cwd=cli.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    popen.append(proc)
    reader = LineReader(proc)
    seen: list[dict[str, Any]] = []
    while sum(1 for e in seen if e["kind"] == "message_posted") < 3:
        event = reader.next_event(timeout=RUN_TIMEOUT)
        assert event is not None, f"the run ended early: {proc.wait(timeout=30)}"
        seen.append(event)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=SHUTDOWN_TIMEOUT) == 0
    seen += reader.rest(timeout=CMD_TIMEOUT)
    assert proc.stderr is not None
    assert_clean_stderr(proc.stderr.read())

    assert seen[0]["kind"] == "runtime_started"
    assert seen[-1]["kind"] == "runtime_stopped"
    assert seen[-1]["reason"] == "signal"
    assert not [e for e in seen if e["kind"] == "error"]

    posted = [e for e in seen if e["kind"] == "message_posted"]
    stored = {}
    for thread_id in {e["thread_id"] for e in posted}:
        doc = cli.json("threads", "export", thread_id, "--format", "json")
        seqs = [m["seq"] for m in doc["messages"]]
        assert seqs == list(range(1, len(seqs) + 1))
        stored.update({(thread_id, m["seq"]): m for m in doc["messages"]})
    for e in posted:
        m = stored[(e["thread_id"], e["seq"])]
        assert (m["id"], m["from"], m["type"], m["content"]) == (
            e["message_id"],
            e["author"],
            e["message_type"],
            e["content"],
        )


def test_stops_when_the_reader_goes_away(cli: Cli, popen: list[subprocess.Popen[str]]) -> None:
    """``run --headless | grep -m1 escalation_raised`` must not leave the runtime running with nobody reading."""
    proc = subprocess.Popen(
        [str(BIN), "run", "--headless", "--demo", "--db", cli.db],
        env=cli.env,
        cwd=cli.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    popen.append(proc)
    assert proc.stdout is not None and proc.stderr is not None
    for line in proc.stdout:
        if json.loads(line)["kind"] == "message_posted":
            break
    proc.stdout.close()
    proc.wait(timeout=RUN_TIMEOUT)  # exits (with any code) once it notices; no TimeoutExpired
    assert_clean_stderr(proc.stderr.read())


def test_startup_failure_ends_with_runtime_stopped(cli: Cli) -> None:
    path = cli.cwd / "fleet.toml"
    path.write_text("[runtime]\nfleet = { wizard = 1 }\n", encoding="utf-8")
    done = cli("run", "--headless", "--demo", "--exit-when-idle", "--config", str(path), timeout=RUN_TIMEOUT)
    assert done.returncode == 2, done.stderr
    assert "wizard" in done.stderr
    assert_clean_stderr(done.stderr)
    events = events_of(done.stdout)
    if events:  # when it got as far as starting, it says it stopped
        assert (events[-1]["kind"], events[-1]["reason"]) == ("runtime_stopped", "error")


def test_export_to_an_unwritable_path(demo: DemoRun, tmp_path: Path) -> None:
    thread_id = thread_ids(demo.cli)[0]
    target = tmp_path / "missing-dir" / "thread.md"
    done = demo.cli("threads", "export", thread_id, "-o", str(target))
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert str(target) in done.stderr
    assert_clean_stderr(done.stderr)
