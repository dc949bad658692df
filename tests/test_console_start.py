"""Starting a node: the console's cheap database check before its first frame reads the usual SQLite URLs
without SQLAlchemy and finds the same file SQLAlchemy would (or none, for what has no file); a read-only node
only watches."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from bzzz_console.app import make_runtime, open_store
from bzzz_console.cli.db import _sqlite_file
from bzzz_console.cli.headless import run_headless, seed_demo_tasks
from bzzz_console.config import Settings
from bzzz_console.store.errors import sqlite_path


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///bzzz.db",
        "sqlite:////tmp/a%20b/bzzz.db",
        "sqlite:////tmp/x.db?timeout=3",
        "sqlite+pysqlite:///~/x.db",
        "sqlite://",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite://host/x.db",
        "sqlite:///file:x.db?uri=true",
        "SQLite:///x.db",
        "sqlite+aiosqlite:///x.db",
        "postgresql+psycopg://user@host/db",
        "not a url",
    ],
)
def test_the_cheap_check_finds_the_file_sqlalchemy_finds(url: str) -> None:
    assert _sqlite_file(url) == sqlite_path(url)


def test_run_headless_readonly_watches_and_is_idle_at_once(tmp_path: Path) -> None:
    """``run --headless --readonly --demo --exit-when-idle`` on pending tasks: nothing is taken up, no model is
    called, and it ends (idle from the start) with ``runtime_stopped``."""
    settings = Settings.model_validate(
        {"data_dir": str(tmp_path / "data"), "store": {"url": f"sqlite:///{tmp_path / 'bzzz.db'}"}}
    )
    assert seed_demo_tasks(settings) == 3
    out = io.StringIO()
    code = asyncio.run(run_headless(settings, demo=True, exit_when_idle=True, out=out, readonly=True))
    kinds = [json.loads(line)["kind"] for line in out.getvalue().splitlines()]
    assert code == 0 and kinds[0] == "runtime_started" and kinds[-1] == "runtime_stopped", kinds
    assert not {"agent_registered", "thread_created", "llm_called"} & set(kinds), kinds
    store = open_store(settings)
    try:
        assert [t.status for t in store.tasks()] == ["pending"] * 3
        assert store.agents() == [] and store.threads() == []
    finally:
        store.close()


def test_a_readonly_runtime_takes_no_task_from_the_network() -> None:
    settings = Settings.model_validate({"p2p": {"enabled": True, "announce_tasks": True}})
    assert settings.p2p.pick_up_tasks
    rt = make_runtime(settings, readonly=True)
    assert rt.readonly and not rt.settings.p2p.pick_up_tasks and not rt.settings.p2p.announce_tasks
    assert not make_runtime(settings).readonly  # security.readonly and --readonly are the console's to pass
