"""End to end in a real terminal: the installed ``bzzz-console --demo`` under a private tmux server.

In the smallest usual terminal, 80×24 (the dashboard's panes stacked), the operator waits for reviewer-1's
escalation on the dashboard, opens it with ``e`` ``Enter``, approves with ``A`` and confirms with ``Y``;
reviewer-1 goes back to work (the agents pane stops saying "Escalating", the thread reaches consensus and the
store says the escalation is answered), and ``ctrl+q`` ends the process with exit code 0.
Every wait polls the screen or the database against a deadline; nothing sleeps blindly.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bzzz_console.domain.principals import os_user

TMUX = shutil.which("tmux")
ENTRY_POINT = Path(sys.executable).with_name("bzzz-console")
WIDTH, HEIGHT = 80, 24
DEADLINE_S = 60.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        TMUX is None, reason="tmux is not installed: this test drives the console in a real terminal"
    ),
    pytest.mark.skipif(
        not ENTRY_POINT.exists(), reason=f"the bzzz-console entry point is not installed at {ENTRY_POINT}"
    ),
]


class Terminal:
    """One window of a private tmux server: run a command, read the screen, send keys, read the exit status.

    The pane stays after its command ends (``remain-on-exit``), so a crash leaves its traceback on the screen
    and its exit status readable.
    """

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.socket, self.env = folder / "sock", env
        self.config = folder / "tmux.conf"
        self.config.write_text("set -g remain-on-exit on\nset -g history-limit 0\n")

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert TMUX is not None
        return subprocess.run(
            [TMUX, "-S", str(self.socket), "-f", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=check,
        )

    def start(self, *argv: str, size: tuple[int, int] = (WIDTH, HEIGHT)) -> None:
        command = shlex.join(argv)
        self.tmux("new-session", "-d", "-s", "e2e", "-x", str(size[0]), "-y", str(size[1]), command)

    def screen(self) -> str:
        done = self.tmux("capture-pane", "-p", "-t", "e2e", check=False)
        return done.stdout if done.returncode == 0 else ""

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "e2e", *keys)

    def exit_status(self) -> int | None:
        """The command's exit status once it has ended, else None."""
        done = self.tmux(
            "display-message", "-p", "-t", "e2e", "#{pane_dead} #{pane_dead_status}", check=False
        )
        dead, _, status = done.stdout.strip().partition(" ")
        return int(status) if dead == "1" and status else None

    def close(self) -> None:
        self.tmux("kill-server", check=False)

    def wait_for(self, what: str, probe: Callable[[], Any], *, may_exit: bool = False) -> Any:
        """Poll ``probe`` until it returns something truthy; fail with the screen on a deadline or a crash."""
        deadline = time.monotonic() + DEADLINE_S
        while True:
            found = probe()
            if found:
                return found
            status = None if may_exit else self.exit_status()
            if status is not None:
                pytest.fail(f"bzzz-console exited ({status}) while waiting for {what}:\n{self.screen()}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; the screen was:\n{self.screen()}")
            time.sleep(0.05)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    env = {
        k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY" and not k.startswith(("BZZZ_", "TMUX"))
    }
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"):
        folder = tmp_path / var.lower()
        folder.mkdir(mode=0o700, exist_ok=True)
        env[var] = str(folder)
    env["TERM"] = "xterm-256color"
    # a folder with a short path for the socket: unix socket paths are limited to ~100 bytes
    folder = Path(tempfile.mkdtemp(prefix="bzzz-tmux-"))
    term = Terminal(folder, env)
    try:
        yield term
    finally:
        term.close()
        shutil.rmtree(folder, ignore_errors=True)


def agents_pane_row(screen: str, agent_id: str) -> str | None:
    """The row of one agent in the agents pane: between the pane's title ("Agents (N)") and its bottom border,
    wherever the layout put the pane."""
    inside = False
    for line in screen.splitlines():
        if "Agents (" in line:
            inside = True
        elif inside and line.lstrip()[:1] in ("╰", "┗"):
            return None
        elif inside and f" {agent_id} " in line:
            return line
    return None


def read_db(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Rows from the console's SQLite store, read-only (the console keeps writing)."""
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        try:
            return list(conn.execute(sql, params))
        except sqlite3.OperationalError:  # not migrated yet
            return []


def escalations(db: Path) -> list[dict[str, Any]]:
    rows = read_db(db, "SELECT id, agent_id, rule, state, decision, thread_id FROM escalations")
    keys = ("id", "agent_id", "rule", "state", "decision", "thread_id")
    return [{**dict(zip(keys, r, strict=True)), "decision": json.loads(r[4]) if r[4] else None} for r in rows]


def test_answer_an_escalation_with_keys_in_a_real_terminal(terminal: Terminal, tmp_path: Path) -> None:
    db = tmp_path / "bzzz.db"
    # the exit status through a file, as below: tmux does not always report a dead pane's status
    exited = tmp_path / "status"
    console = shlex.join([str(ENTRY_POINT), "--demo", "--db", f"sqlite:///{db}"])
    terminal.start("sh", "-c", f"{console}; echo $? > {shlex.quote(str(exited))}")

    # the dashboard shows reviewer-1's escalation
    def escalation_shown() -> bool:
        screen = terminal.screen()
        return "Escalations (1 open)" in screen and "Agent Request" in screen and "reviewer-1" in screen

    terminal.wait_for("the escalation on the dashboard", escalation_shown)
    [waiting] = [e for e in escalations(db) if e["state"] == "open"]
    assert (waiting["agent_id"], waiting["rule"]) == ("reviewer-1", "Agent Request")
    row = agents_pane_row(terminal.screen(), "reviewer-1")
    assert row is not None and "Escalating" in row, row

    # e focuses the escalations pane, Enter opens the escalation, A approves it once Y confirms
    terminal.send("e")
    terminal.send("Enter")
    terminal.wait_for(
        "the escalation screen",
        lambda: f"{waiting['id']} · rule Agent Request" in (s := terminal.screen()) and "approve" in s,
    )
    terminal.send("A")
    terminal.wait_for("the confirmation", lambda: "Approve (Y)" in terminal.screen())
    assert [e["state"] for e in escalations(db) if e["id"] == waiting["id"]] == ["open"]  # not before Y
    terminal.send("Y")

    # reviewer-1 went back to work: the store says answered, the agents pane no longer says Escalating
    answered = terminal.wait_for(
        "the escalation answered in the store",
        lambda: next(
            (e for e in escalations(db) if e["id"] == waiting["id"] and e["state"] == "answered"), None
        ),
    )
    assert answered["decision"]["kind"] == "approve"

    def reviewer_back_at_work() -> bool:
        screen = terminal.screen()
        row = agents_pane_row(screen, "reviewer-1")
        return "Escalations (0 open)" in screen and row is not None and "Escalating" not in row

    terminal.wait_for("reviewer-1 back at work in the agents pane", reviewer_back_at_work)
    [(status, outcome)] = terminal.wait_for(
        "the thread to reach consensus",
        lambda: read_db(
            db, "SELECT status, outcome FROM threads WHERE id = ? AND status = 'closed'", waiting["thread_id"]
        ),
    )
    assert (status, outcome) == ("closed", "consensus")
    authors = [
        a
        for (a,) in read_db(
            db, "SELECT author FROM messages WHERE thread_id = ? ORDER BY seq", waiting["thread_id"]
        )
    ]
    # the decision, posted to the thread as a human message signed by the OS user who runs the console
    decided_at = authors.index(os_user())
    assert "reviewer-1" in authors[decided_at + 1 :], authors  # reviewer-1 spoke again after it

    # ctrl+q quits with exit code 0
    terminal.send("C-q")
    terminal.wait_for("the console to exit", lambda: exited.is_file() and exited.read_text(), may_exit=True)
    assert exited.read_text().strip() == "0", terminal.screen()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_a_readonly_console_watches_in_a_real_terminal(
    terminal: Terminal, tmp_path: Path, size: tuple[int, int]
) -> None:
    """``--readonly`` on a database with pending tasks: READ-ONLY on the status line at 80 and 120 columns, the
    tasks are shown untouched and no agent of its own is registered; ctrl+q still quits with 0."""
    from bzzz_console.cli.headless import seed_demo_tasks
    from bzzz_console.config import Settings

    db = tmp_path / "bzzz.db"
    assert seed_demo_tasks(Settings.model_validate({"store": {"url": f"sqlite:///{db}"}})) == 3
    # the exit status through a file: tmux 3.3 does not always report the status of a pane whose process ends a
    # second or two after it started (the process stays a zombie, the pane dead without a status)
    status = tmp_path / "status"
    console = shlex.join([str(ENTRY_POINT), "--readonly", "--demo", "--db", f"sqlite:///{db}"])
    terminal.start("sh", "-c", f"{console}; echo $? > {shlex.quote(str(status))}", size=size)

    def ready() -> bool:
        screen = terminal.screen()
        status = screen.splitlines()[0] if screen else ""
        return "READ-ONLY" in status and "starting…" not in screen and "Agents (0)" in screen

    terminal.wait_for("the read-only dashboard, started", ready)
    terminal.send("C-q")
    terminal.wait_for("the console to exit", lambda: status.is_file() and status.read_text(), may_exit=True)
    assert status.read_text().strip() == "0", terminal.screen()
    assert read_db(db, "SELECT status FROM tasks") == [("pending",)] * 3
    assert read_db(db, "SELECT COUNT(*) FROM threads") == [(0,)]
    assert read_db(db, "SELECT COUNT(*) FROM agents") == [(0,)]
    assert read_db(db, "SELECT COUNT(*) FROM token_usage") == [(0,)]
