"""A database that can't be used, as the operator meets it with the installed command: one line on stderr naming
the file and what is wrong, the documented exit code (2: nothing usable there; 1: there but unusable), never a
traceback, and the file exactly as it was. Commands that only read never create, migrate or write a database.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest
from helpers import BIN, cli_env

CMD_TIMEOUT = 60  # seconds for a short command on a loaded 2-core machine
RUN_TIMEOUT = 120

READERS = [
    ("threads", "list"),
    ("threads", "list", "--json"),
    ("task", "list"),
    ("agents", "list"),
    ("escalations", "list"),
    ("escalations", "show", "esc-nope"),
    ("spend",),
    ("threads", "show", "thr-nope"),
    ("threads", "export", "thr-nope"),
]
WRITERS = [
    ("task", "add", "Write the docs"),
    ("db", "upgrade"),
    ("escalations", "answer", "esc-x", "--approve"),
]
FEW = [("threads", "list"), ("escalations", "show", "esc-nope"), ("task", "add", "Write the docs")]

pytestmark = pytest.mark.slow


def run(
    root: Path,
    *args: str,
    db: str | Path | None,
    prefix: list[str] | None = None,
    timeout: float = CMD_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    url = db if isinstance(db, str) or db is None else f"sqlite:///{db}"
    argv = [*(prefix or []), str(BIN), *args, *(["--db", url] if url is not None else [])]
    return subprocess.run(
        argv, env=cli_env(root), cwd=root, capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_one_line(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """Exit ``code``, nothing on stdout, and exactly one stderr line holding every fragment."""
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == code, (done.returncode, done.stderr)
    assert done.stdout == "", done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("bzzz-console: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database made by the CLI (migrated, one task), with everything checkpointed into the file."""
    root = tmp_path_factory.mktemp("good")
    path = root / "good.db"
    for args in (("db", "upgrade"), ("task", "add", "Review the schema")):
        done = run(root, *args, db=path)
        assert done.returncode == 0, done.stderr
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


def foreign_database(path: Path) -> None:
    """Another program's SQLite file (rollback journal, its own tables): what a typo in --db may name."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('mine')")
    conn.commit()
    conn.close()


# (how the file is broken, the commands tried, the exit code, what the line says)
BROKEN = {
    "garbage": (READERS + WRITERS, 1, "is not a bzzz-console database (file is not a database)"),
    "truncated": (
        READERS + WRITERS,
        1,
        "is corrupt (database disk image is malformed): restore it from a backup",
    ),
    "cut-in-header": (FEW, 1, "is not a bzzz-console database (file is not a database)"),
    "foreign": (FEW, 1, "is not a bzzz-console database (it has other tables and no bzzz-console schema)"),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_database_file_is_one_line_and_left_as_it_was(kind: str, good: Path, tmp_path: Path) -> None:
    path = tmp_path / f"{kind}.db"
    if kind == "garbage":
        path.write_bytes(b"\x00\x13not a database at all\n" * 300)
    elif kind == "truncated":  # the header and the first pages; the tables' pages are gone
        path.write_bytes(good.read_bytes()[:8192])
    elif kind == "cut-in-header":
        path.write_bytes(good.read_bytes()[:10])
    else:
        foreign_database(path)
    before = path.read_bytes()
    commands, code, says = BROKEN[kind]
    for command in commands:
        done = run(tmp_path, *command, db=path)
        assert_one_line(done, code, str(path), says)
        assert path.read_bytes() == before, command


def test_a_folder_where_the_database_should_be(tmp_path: Path) -> None:
    path = tmp_path / "bzzz.db"
    path.mkdir()
    for command in [*READERS, *WRITERS, ("status",)]:
        done = run(tmp_path, *command, db=path)
        assert_one_line(done, 2, f"cannot open the database {path}: it is a folder, not a database file")
    assert list(path.iterdir()) == []


def test_the_console_and_a_headless_run_say_it_before_starting(tmp_path: Path) -> None:
    path = tmp_path / "bzzz.db"
    path.write_bytes(b"garbage" * 100)
    for command in [(), ("run", "--headless", "--demo", "--exit-when-idle")]:
        done = run(tmp_path, *command, db=path, timeout=RUN_TIMEOUT)
        assert_one_line(done, 1, f"{path} is not a bzzz-console database")
    assert path.read_bytes() == b"garbage" * 100


def test_status_reports_a_corrupt_database_as_not_healthy(good: Path, tmp_path: Path) -> None:
    path = tmp_path / "truncated.db"
    path.write_bytes(good.read_bytes()[:8192])
    done = run(tmp_path, "status", db=path)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1
    database = done.stdout.splitlines()[0]
    assert database.startswith("database        FAIL") and f"the database {path} is corrupt" in database
    assert done.stdout.rstrip().endswith("NOT healthy")
    assert path.read_bytes() == good.read_bytes()[:8192]


# -- nothing there: readers never create a database ------------------------------------------------------------
def test_status_and_readers_never_create_a_database(tmp_path: Path) -> None:
    path = tmp_path / "typo" / "bzzz.db"
    for command in [("status",), ("status", "--json"), *READERS]:
        done = run(tmp_path, *command, db=path)
        assert_one_line(
            done,
            2,
            f"no database at {path} (start the console or run `bzzz-console db upgrade` to create one)",
        )
    assert not path.parent.exists()
    # a file there that is empty is no database either (and stays empty)
    path.parent.mkdir()
    path.touch()
    assert_one_line(run(tmp_path, "status", db=path), 2, f"no database at {path}: the file is empty")
    assert path.read_bytes() == b""


def test_commands_that_change_stored_state_never_create_a_database(tmp_path: Path) -> None:
    """Answering an escalation or pruning changes what is stored: with nothing there they say so (exit 2)
    instead of creating an empty database only to find nothing in it."""
    path = tmp_path / "typo" / "bzzz.db"
    for command in [
        ("escalations", "answer", "esc-x", "--approve"),
        ("db", "prune", "--older-than", "3", "--yes"),
    ]:
        done = run(tmp_path, *command, db=path)
        assert_one_line(done, 2, f"no database at {path}")
    assert not path.parent.exists()


def test_the_default_database_is_not_created_by_status(tmp_path: Path) -> None:
    done = run(tmp_path, "status", db=None)
    default = tmp_path / "xdg-data" / "bzzz-console" / "bzzz.db"
    assert_one_line(done, 2, f"no database at {default}")
    assert not default.exists()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        # a slash short: this was an in-memory database, "healthy" and empty
        ("sqlite://tmp/typo.db", "a SQLite URL has no host ('tmp')"),
        ("sqlte:///typo.db", "unsupported database 'sqlte'"),
        ("sqlite:/typo.db", "malformed database URL"),
        ("sqlite://", "is an in-memory database: there is nothing to read"),
    ],
)
def test_a_database_url_with_a_typo_is_refused(url: str, says: str, tmp_path: Path) -> None:
    assert_one_line(run(tmp_path, "status", db=url), 2, says)
    assert list(tmp_path.glob("**/*.db")) == []


# -- read-only -----------------------------------------------------------------------------------------------
def without_root_privileges(path: Path) -> list[str]:
    """What to run the command under so that a read-only file is read-only to it: nothing as a normal user; as
    root (CI) ``setpriv`` without the capabilities that let root ignore file permissions."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a read-only file would be writable")
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    probe = subprocess.run(
        [*prefix, "test", "-w", str(path)], capture_output=True, timeout=CMD_TIMEOUT, check=False
    )
    if probe.returncode != 1:  # 0: still writable; 1: read-only, as wanted; else setpriv failed
        pytest.skip(f"cannot drop root's file capabilities here: {probe.stderr!r}")
    return prefix


def test_a_read_only_database_file_is_read_and_not_written(good: Path, tmp_path: Path) -> None:
    path = tmp_path / "read-only.db"
    shutil.copyfile(good, path)
    path.chmod(0o444)
    before = path.read_bytes()
    prefix = without_root_privileges(path)

    expected = run(tmp_path, "task", "list", "--json", db=good)
    assert expected.returncode == 0, expected.stderr
    listed = run(tmp_path, "task", "list", "--json", db=path, prefix=prefix)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == expected.stdout and "Review the schema" in listed.stdout
    for command in [*READERS, ("status",)]:
        done = run(tmp_path, *command, db=path, prefix=prefix)
        assert "Traceback" not in done.stderr, (command, done.stderr)
        assert "read-only" not in done.stderr, (command, done.stderr)
        assert done.returncode in (0, 1), (command, done.stderr)  # 1: no such escalation or thread

    for command in WRITERS:
        done = run(tmp_path, *command, db=path, prefix=prefix)
        assert_one_line(
            done, 1, f"cannot write the database {path}: the file is read-only (check its permissions)"
        )
    assert path.read_bytes() == before
    assert stat.S_IMODE(path.stat().st_mode) == 0o444  # never "fixed" to 0600 behind the operator's back


def test_a_database_at_an_older_schema_is_named_not_migrated_by_a_reader(good: Path, tmp_path: Path) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    from bzzz_console.store.engine import MIGRATIONS_DIR, _alembic_config, make_engine

    path = tmp_path / "old.db"
    shutil.copyfile(good, path)
    engine = make_engine(f"sqlite:///{path}")
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None
    previous = script.get_revision(head).down_revision
    assert isinstance(previous, str)
    cfg = _alembic_config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, previous)
    engine.dispose()
    before = path.read_bytes()

    done = run(tmp_path, "threads", "list", db=path)
    assert_one_line(
        done, 1, f"{path} is at schema revision {previous}", f"reads {head}", "bzzz-console db upgrade"
    )
    assert path.read_bytes() == before
    assert run(tmp_path, "db", "upgrade", db=path).returncode == 0
    assert run(tmp_path, "threads", "list", db=path).returncode == 0


# -- the message for each SQLite failure -----------------------------------------------------------------------
def test_a_locked_database_is_named_as_locked(tmp_path: Path) -> None:
    from sqlalchemy.exc import OperationalError

    from bzzz_console.store.errors import explain

    path = tmp_path / "bzzz.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError) as raised:
            other.execute("INSERT INTO t VALUES (1)")
    finally:
        other.close()
        holder.close()
    error = explain(OperationalError("INSERT …", None, raised.value), f"sqlite:///{path}")
    assert error.exit_code == 1
    assert str(error) == (
        f"the database {path} is locked by another process (database is locked): try again when it is done"
    )


def test_a_reader_cannot_write(store_url: str) -> None:
    """What readers open is read-only in the database itself (SQLite ``mode=ro``, PostgreSQL read-only
    transactions), not only by convention; an empty database is nothing to read."""
    from sqlalchemy.exc import DBAPIError

    from bzzz_console.store.errors import NoDatabase
    from bzzz_console.store.repo import Store

    with pytest.raises(NoDatabase, match=r"^no (bzzz-console )?database at .*\(start the console or run"):
        Store.open_readonly(store_url)
    Store.open(store_url).close()
    store = Store.open_readonly(store_url)
    try:
        assert store.tasks() == []
        with pytest.raises(DBAPIError, match=r"readonly database|read-only transaction"):
            store.add_task(title="T", description="", roles=["architect"], priority="low", project="p")
    finally:
        store.close()
