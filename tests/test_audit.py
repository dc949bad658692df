"""The audit trail end to end: a real demo run writes a signed hash chain, ``audit verify`` (a real process)
accepts it and names the first bad entry of every kind of tampering; the node key; ``db prune``."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from helpers import BIN, cli_env, eventually
from typer.testing import CliRunner

from bzzz_console.app import make_runtime
from bzzz_console.config import Settings
from bzzz_console.demo.team import add_demo_tasks
from bzzz_console.domain import events as ev
from bzzz_console.security.audit import (
    GENESIS,
    AuditWriter,
    Draft,
    append_entries,
    append_entry,
    entry_hash,
    read_entries,
    sign,
    verify,
)
from bzzz_console.security.audit_checkpoint import Checkpoints, make_checkpoint
from bzzz_console.security.nodekey import (
    NodeKeyError,
    load_node_key,
    load_or_create_node_key,
    node_key_path,
    public_key_hex,
)
from bzzz_console.store.repo import Store
from bzzz_console.store.retention import prune

CMD_TIMEOUT = 60


@dataclass(frozen=True)
class Demo:
    root: Path
    db: Path
    data_dir: Path
    env: dict[str, str]
    public_key: str
    entries: int
    kinds: dict[str, int]
    runs: list[int]


def sqlite_copy(src: Path, dst: Path) -> Path:
    """A consistent copy of a SQLite database (WAL included)."""
    with sqlite3.connect(src) as source, sqlite3.connect(dst) as target:
        source.backup(target)
    source.close()
    target.close()
    return dst


def demo_settings(db: Path) -> Settings:
    return Settings.model_validate(
        {
            "store": {"url": f"sqlite:///{db}"},
            "demo": {"latency_ms": 0, "seed": 7},
            "runtime": {"poll_interval_s": 0.05},
        }
    )


async def demo_run(settings: Settings) -> int:
    """One demo run: the three demo tasks, until no agent can make progress; the entries it appended."""
    rt = make_runtime(settings, force_demo=True)
    async with rt:
        add_demo_tasks(rt.store)
        rt.capacity_changed()
        await asyncio.wait_for(rt.wait_idle(), 30)
    assert rt.audit is not None
    return rt.audit.appended


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """Two demo runs (a restart in between) on one database; the data dir is the XDG one a CLI would use."""
    root = tmp_path_factory.mktemp("audit")
    env = cli_env(root)
    db = root / "bzzz.db"
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("BZZZ_") and not n.startswith("BZZZ_TEST_")]:
            mp.delenv(name)
        mp.setenv("XDG_DATA_HOME", env["XDG_DATA_HOME"])
        mp.setenv("XDG_CONFIG_HOME", env["XDG_CONFIG_HOME"])
        settings = demo_settings(db)
        data_dir = settings.resolved_data_dir()
        assert data_dir.is_relative_to(root)  # the node key lands where the CLI will look for it
        runs = [asyncio.run(demo_run(settings)), asyncio.run(demo_run(settings))]
        key = load_node_key(settings)
    assert key is not None
    store = Store.open(f"sqlite:///{db}")
    try:
        entries = read_entries(store)
    finally:
        store.close()
    kinds: dict[str, int] = {}
    for e in entries:
        kinds[e.type] = kinds.get(e.type, 0) + 1
    yield Demo(root, db, data_dir, env, public_key_hex(key), len(entries), kinds, runs)


def audit_verify(demo: Demo, db: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``bzzz-console audit verify`` as a real process, finding the node key through the XDG data dir."""
    return subprocess.run(
        [str(BIN), "audit", "verify", "--db", f"sqlite:///{db}", *extra],
        env=demo.env,
        capture_output=True,
        text=True,
        timeout=CMD_TIMEOUT,
        check=False,
    )


def audit_verify_in_process(demo: Demo, db: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """The same command through typer's runner (a process start costs ~2 s on a loaded CI machine)."""
    from bzzz_console.cli.main import app

    env = {k: demo.env[k] for k in ("XDG_DATA_HOME", "XDG_CONFIG_HOME")}
    done = CliRunner().invoke(app, ["audit", "verify", "--db", f"sqlite:///{db}", *extra], env=env)
    if done.exception is not None and not isinstance(done.exception, SystemExit):
        raise done.exception
    return subprocess.CompletedProcess([], done.exit_code, done.stdout, done.stderr)


# -- the trail of a demo run -------------------------------------------------------------------------------
def test_demo_runs_write_one_signed_chain(demo: Demo) -> None:
    assert demo.runs[0] > 20 and demo.runs[1] > 0
    assert demo.entries == sum(demo.runs)  # the restart continued the same chain
    for kind in ("agent_state_changed", "tool_called", "task_added", "consensus_reached", "decision_logged"):
        assert demo.kinds.get(kind), (kind, demo.kinds)
    assert demo.kinds["escalation_raised"] >= 1
    assert "message_posted" not in demo.kinds and "llm_called" not in demo.kinds
    store = Store.open(f"sqlite:///{demo.db}")
    try:
        entries = read_entries(store)
        result = verify(store, demo.public_key)
    finally:
        store.close()
    assert [e.idx for e in entries] == list(range(demo.entries))
    assert entries[0].prev_hash == GENESIS
    assert all(e.data["signer"] == demo.public_key for e in entries)
    assert all("at" not in e.data and "kind" not in e.data for e in entries)
    state = next(e for e in entries if e.type == "agent_state_changed")
    assert state.author == state.data["agent_id"]
    assert result.ok and result.checked == demo.entries, result
    assert result.signers == {demo.public_key: demo.entries}


def test_audit_verify_accepts_the_intact_trail(demo: Demo) -> None:
    done = audit_verify(demo, demo.db)
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()  # signed by this node only
    assert line.startswith(f"intact: {demo.entries} entries (checkpoint of ")
    assert line.endswith(f": #{demo.entries - 1} matches)")
    done = audit_verify_in_process(demo, demo.db, "--json", "--key", demo.public_key)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["ok"], report["checked"], report["first_bad_index"]) == (True, demo.entries, None)
    assert report["node_key"] == demo.public_key
    assert (report["checkpoint"]["size"], report["checkpoint"]["signer"]) == (demo.entries, demo.public_key)


# -- tampering -----------------------------------------------------------------------------------------------
def rows(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT idx, at, author, type, data, hash, prev_hash, signature FROM audit ORDER BY idx"
    ).fetchall()


def forged(
    key: Ed25519PrivateKey, idx: int, prev_hash: str, signer: str, template: tuple[Any, ...]
) -> tuple[Any, ...]:
    """A well-formed entry (its hash right) signed by ``key``, whatever ``signer`` claims."""
    at = datetime.fromisoformat(template[1]).replace(tzinfo=UTC)
    data = {**json.loads(template[4]), "signer": signer, "note": "forged"}
    digest = entry_hash(idx, at, template[2], template[3], data, prev_hash)
    return (
        idx,
        template[1],
        template[2],
        template[3],
        json.dumps(data),
        digest,
        prev_hash,
        sign(key, digest),
    )


def insert(conn: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    conn.execute(
        "INSERT INTO audit (idx, at, author, type, data, hash, prev_hash, signature) VALUES (?,?,?,?,?,?,?,?)",
        row,
    )


def modify_data(conn: sqlite3.Connection, k: int) -> None:
    data = json.loads(conn.execute("SELECT data FROM audit WHERE idx = ?", (k,)).fetchone()[0])
    data["reason"] = "nothing to see here"
    conn.execute("UPDATE audit SET data = ? WHERE idx = ?", (json.dumps(data), k))


def delete_row(conn: sqlite3.Connection, k: int) -> None:
    conn.execute("DELETE FROM audit WHERE idx = ?", (k,))


def insert_middle(conn: sqlite3.Connection, k: int) -> None:
    """Make room at k (renumber the rest) and put a forged entry there that links to k - 1."""
    all_rows = rows(conn)
    conn.execute("UPDATE audit SET idx = -idx - 1 WHERE idx >= ?", (k,))
    conn.execute("UPDATE audit SET idx = -idx WHERE idx < 0")
    attacker = Ed25519PrivateKey.generate()
    insert(conn, forged(attacker, k, all_rows[k - 1][5], public_key_hex(attacker), all_rows[k]))


def append_forged_in_node_name(conn: sqlite3.Connection, demo: Demo) -> None:
    last = rows(conn)[-1]
    insert(conn, forged(Ed25519PrivateKey.generate(), last[0] + 1, last[5], demo.public_key, last))


def append_forged_own_signer(conn: sqlite3.Connection) -> None:
    last = rows(conn)[-1]
    attacker = Ed25519PrivateKey.generate()
    insert(conn, forged(attacker, last[0] + 1, last[5], public_key_hex(attacker), last))


def swap_data(conn: sqlite3.Connection, j: int, k: int) -> None:
    a = conn.execute("SELECT data FROM audit WHERE idx = ?", (j,)).fetchone()[0]
    b = conn.execute("SELECT data FROM audit WHERE idx = ?", (k,)).fetchone()[0]
    conn.execute("UPDATE audit SET data = ? WHERE idx = ?", (b, j))
    conn.execute("UPDATE audit SET data = ? WHERE idx = ?", (a, k))


def resign(conn: sqlite3.Connection, k: int) -> None:
    digest = conn.execute("SELECT hash FROM audit WHERE idx = ?", (k,)).fetchone()[0]
    conn.execute(
        "UPDATE audit SET signature = ? WHERE idx = ?", (sign(Ed25519PrivateKey.generate(), digest), k)
    )


def rehash_and_resign(conn: sqlite3.Connection, k: int) -> None:
    """Modify an entry and make it self-consistent again (new hash, signed by another key, signer unchanged)."""
    row = rows(conn)[k]
    data = {**json.loads(row[4]), "reason": "rewritten"}
    at = datetime.fromisoformat(row[1]).replace(tzinfo=UTC)
    digest = entry_hash(k, at, row[2], row[3], data, row[6])
    conn.execute(
        "UPDATE audit SET data = ?, hash = ?, signature = ? WHERE idx = ?",
        (json.dumps(data), digest, sign(Ed25519PrivateKey.generate(), digest), k),
    )


def test_audit_verify_names_the_first_bad_entry(demo: Demo, tmp_path: Path) -> None:
    n = demo.entries
    mid = n // 2
    # the kinds of tampering the issue names run the real command; variants run it in-process
    cases: dict[str, tuple[Callable[[sqlite3.Connection], None], tuple[str, ...], str, bool]] = {
        "modified": (lambda c: modify_data(c, mid), (), f"entry #{mid}: modified", True),
        "deleted": (lambda c: delete_row(c, mid), (), f"entry #{mid}: missing", True),
        "inserted": (lambda c: insert_middle(c, mid), (), f"entry #{mid}: inserted", True),
        "swapped": (lambda c: swap_data(c, mid - 3, mid + 2), (), f"entry #{mid - 3}: modified", True),
        "re-signed": (lambda c: resign(c, mid), (), f"entry #{mid}: bad signature", True),
        "deleted first": (lambda c: delete_row(c, 0), (), "entry #0: missing", False),
        "forged in the node's name": (
            lambda c: append_forged_in_node_name(c, demo),
            (),
            f"entry #{n}: bad signature",
            False,
        ),
        "forged, own key, pinned": (
            append_forged_own_signer,
            ("--key", demo.public_key),
            f"entry #{n}: bad signature",
            False,
        ),
        "re-hashed and re-signed": (
            lambda c: rehash_and_resign(c, mid),
            (),
            f"entry #{mid}: modified",
            False,
        ),
    }
    dbs: dict[str, Path] = {}
    for i, (name, (tamper, *_)) in enumerate(cases.items()):
        db = sqlite_copy(demo.db, tmp_path / f"case{i}.db")
        with sqlite3.connect(db) as conn:
            tamper(conn)
        conn.close()
        dbs[name] = db
    real = [name for name, case in cases.items() if case[3]]
    with ThreadPoolExecutor(max_workers=3) as pool:
        done = dict(
            zip(
                real, pool.map(lambda name: audit_verify(demo, dbs[name], *cases[name][1]), real), strict=True
            )
        )
    for name, case in cases.items():
        if name not in done:
            done[name] = audit_verify_in_process(demo, dbs[name], *case[1])
    for name, (_, _, expected, _) in cases.items():
        result = done[name]
        assert result.returncode == 1, (name, result.stdout, result.stderr)
        assert result.stdout.startswith(expected + " ("), (name, result.stdout)
        assert "Traceback" not in result.stderr, (name, result.stderr)


def test_a_foreign_signer_fails_by_default_and_verifies_when_trusted(demo: Demo, tmp_path: Path) -> None:
    """By default only this node's key is trusted; a trail written by several nodes verifies with --any-signer
    (or each peer's --key), and the output names every signer."""
    db = sqlite_copy(demo.db, tmp_path / "shared.db")
    with sqlite3.connect(db) as conn:
        append_forged_own_signer(conn)
    conn.close()
    refused = audit_verify_in_process(demo, db)
    assert refused.returncode == 1
    assert refused.stdout.startswith(f"entry #{demo.entries}: bad signature")
    done = audit_verify_in_process(demo, db, "--any-signer")
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first.startswith(f"intact: {demo.entries + 1} entries (no checkpoint of this database")
    assert f"{demo.public_key[:16]}… (this node) {demo.entries}" in second
    assert second.endswith(" 1")


def test_verify_in_process_reports_what_and_where(demo: Demo, tmp_path: Path) -> None:
    db = sqlite_copy(demo.db, tmp_path / "garbled.db")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit SET data = '{not json' WHERE idx = 3")
        conn.execute("UPDATE audit SET at = 'yesterday' WHERE idx = 7")
    conn.close()
    store = Store.open(f"sqlite:///{db}")
    try:
        result = verify(store, demo.public_key)
    finally:
        store.close()
    assert (result.ok, result.first_bad_index, result.reason, result.checked) == (False, 3, "modified", 3)
    assert result.message().startswith("entry #3: modified (")


# -- checkpoints: a cut-off end, duplicates, a broken database -------------------------------------------------
def checkpoint_for(demo: Demo, db: Path) -> Checkpoints:
    """The checkpoint file a copy of the demo database is held to (the node key keeps one per database)."""
    store = Store.open(f"sqlite:///{db}", migrate=False)
    try:
        book = Checkpoints.for_store(demo.data_dir, store)
    finally:
        store.close()
    assert book is not None
    return book


def copy_with_checkpoint(demo: Demo, db: Path) -> Path:
    """A copy of the demo database together with its checkpoint, re-signed by the node for the copy's location,
    as if the demo runs had written the copy."""
    sqlite_copy(demo.db, db)
    original = checkpoint_for(demo, demo.db).read(demo.public_key)
    assert original is not None
    key = load_node_key(Settings.model_validate({"data_dir": str(demo.data_dir)}))
    assert key is not None
    book = checkpoint_for(demo, db)
    book.folder.mkdir(mode=0o700, exist_ok=True)
    book._write(make_checkpoint(key, book.database, original.size, original.head))
    return db


def test_every_append_moves_a_private_signed_checkpoint(demo: Demo) -> None:
    book = checkpoint_for(demo, demo.db)
    checkpoint = book.read(demo.public_key)
    store = Store.open(f"sqlite:///{demo.db}", migrate=False)
    try:
        last = read_entries(store, last=1)[0]
    finally:
        store.close()
    assert checkpoint is not None
    assert (checkpoint.size, checkpoint.head) == (demo.entries, last.hash)
    assert book.path.parent == demo.data_dir / "audit-checkpoints"
    assert stat.S_IMODE(book.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(book.path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(book.path.with_suffix(".lock").stat().st_mode) == 0o600
    assert sorted(p.suffix for p in book.path.parent.iterdir()) == [".json", ".lock"]  # no temporary files
    assert str(demo.db) not in book.path.read_text()  # names the database by a hash of where it is


def test_entries_cut_off_the_end_or_all_of_them_are_missing(demo: Demo, tmp_path: Path) -> None:
    n = demo.entries
    cases = {
        "last 4": (
            f"DELETE FROM audit WHERE idx >= {n - 4}",
            f"entries #{n - 4}–#{n - 1} are missing: the trail ends at #{n - 5} but the checkpoint of ",
        ),
        "last one": (f"DELETE FROM audit WHERE idx = {n - 1}", f"entry #{n - 1} is missing: "),
        "all": ("DELETE FROM audit", f"entries #0–#{n - 1} are missing: the trail is empty but "),
    }
    for i, (name, (statement, expected)) in enumerate(cases.items()):
        db = copy_with_checkpoint(demo, tmp_path / f"cut{i}.db")
        with sqlite3.connect(db) as conn:
            conn.execute(statement)
        conn.close()
        done = audit_verify(demo, db) if name == "last 4" else audit_verify_in_process(demo, db)
        assert done.returncode == 1, (name, done.stdout, done.stderr)
        [line] = done.stdout.splitlines()
        assert line.startswith(expected), (name, line)
        assert line.endswith(f" UTC signed #{n - 1}"), (name, line)
    # the same cut without the checkpoint file is a shorter chain that verifies: the file is what tells
    checkpoint_for(demo, tmp_path / "cut0.db").path.unlink()
    alone = audit_verify_in_process(demo, tmp_path / "cut0.db")
    assert alone.returncode == 0 and "no checkpoint of this database" in alone.stdout


def test_a_trail_cut_and_written_again_keeps_its_checkpoint_and_fails(tmp_path: Path) -> None:
    """Rows deleted, then the node appends again (past the old head): the checkpoint is not moved over the
    gap, the writer says so, and verify names the entry the checkpoint signed."""
    from bzzz_console.cli.main import app

    settings = Settings()  # the XDG data dir of this test, where the CLI looks
    key = load_or_create_node_key(settings)
    url = f"sqlite:///{tmp_path / 'cut.db'}"
    store = Store.open(url)
    book = Checkpoints.for_store(settings.resolved_data_dir(), store)
    assert book is not None
    try:
        for n in range(4):
            drafts = [Draft(datetime.now(UTC), "a", "test", {"n": n, "k": k}) for k in range(4)]
            append_entries(store, key, drafts, book)
        written = book.read(public_key_hex(key))
        assert book.problem is None and written is not None and written.size == 16
        with store.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM audit WHERE idx >= 12")
        append_entries(
            store, key, [Draft(datetime.now(UTC), "a", "test", {"again": k}) for k in range(6)], book
        )
        assert book.problem and "no longer holds entry #15" in book.problem
        kept = book.read(public_key_hex(key))
        assert kept is not None and kept.size == 16  # the evidence stays
        assert len(read_entries(store)) == 18
    finally:
        store.close()
    done = CliRunner().invoke(app, ["audit", "verify", "--db", url])
    assert done.exit_code == 1
    assert done.stdout.startswith("entry #15: replaced (it is not the entry the checkpoint of ")


async def test_the_runtime_writer_reports_a_cut_trail(tmp_path: Path) -> None:
    class FakeRuntime:
        def __init__(self) -> None:
            from bzzz_console.domain.bus import EventBus

            self.settings = Settings.model_validate({"data_dir": str(tmp_path / "data")})
            self.bus = EventBus()
            self.node_id = "node-a"
            self.store = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
            self.errors: list[ev.Event] = []

        def publish(self, event: ev.Event) -> None:
            self.errors.append(event)

    rt = FakeRuntime()
    writer = AuditWriter(rt.settings, rt.store, rt.bus, rt.node_id, report=rt.publish)
    writer.start()

    def warnings(n: int) -> list[ev.Event]:  # each its own time, so a rewritten entry differs from the first
        return [
            ev.BudgetWarning(scope="global", key="*", share=0.8, spent_usd=4.0, limit_usd=5.0)
            for _ in range(n)
        ]

    writer.checkpoint_interval_s = 0.01
    book = Checkpoints.for_store(rt.settings.resolved_data_dir(), rt.store)
    assert book is not None
    writer.take(warnings(2))
    writer.take(warnings(1))
    assert not book.path.exists()  # batched: the checkpoint follows a moment later
    await eventually(book.path.exists, "the batched checkpoint")
    checkpoint = book.read(writer.signer)
    assert checkpoint is not None and checkpoint.size == 3
    with rt.store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM audit")
    writer.take(warnings(4))
    await eventually(lambda: rt.errors, "the checkpoint to find the trail cut")
    writer.take(warnings(1))
    rt.bus.close()
    await writer.stop()
    rt.store.close()
    assert [(e.kind, e.where) for e in rt.errors] == [("error", "audit trail")]  # type: ignore[attr-defined]
    assert "no longer holds entry #2" in rt.errors[0].message  # type: ignore[attr-defined]


def test_a_tampered_checkpoint_fails(demo: Demo, tmp_path: Path) -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["size"] -= 4  # would let the last 4 entries go unnoticed

    def other_key(raw: dict[str, Any]) -> None:
        forged = make_checkpoint(Ed25519PrivateKey.generate(), raw["database"], 1, raw["head"])
        raw.update(forged.to_dict())

    cases: dict[str, tuple[Callable[[dict[str, Any]], None] | str, str]] = {
        "edited": (edit, "the signature does not match its content"),
        "signed by another key": (other_key, "not by this node's key"),
        "garbage": ("{not json", "is malformed"),
        "wrong database": (lambda raw: raw.update(database="0" * 32), "names another database"),
    }
    for i, (name, (tamper, expected)) in enumerate(cases.items()):
        db = copy_with_checkpoint(demo, tmp_path / f"cp{i}.db")
        path = checkpoint_for(demo, db).path
        if isinstance(tamper, str):
            path.write_text(tamper)
        else:
            raw = json.loads(path.read_text())
            tamper(raw)
            path.write_text(json.dumps(raw))
        done = audit_verify(demo, db) if i == 0 else audit_verify_in_process(demo, db)
        assert done.returncode == 1, (name, done.stdout, done.stderr)
        assert done.stdout.startswith(f"checkpoint: {path}"), (name, done.stdout)
        assert expected in done.stdout, (name, done.stdout)


def duplicate(conn: sqlite3.Connection, k: int) -> None:
    """A verbatim copy of entry k appended after the last one (only the index differs: it is the key)."""
    conn.execute(
        "INSERT INTO audit SELECT (SELECT max(idx) + 1 FROM audit), at, author, type, data, hash, prev_hash, "
        "signature FROM audit WHERE idx = ?",
        (k,),
    )


def duplicate_in_place(conn: sqlite3.Connection, k: int) -> None:
    """A verbatim copy of entry k right after it, the rest renumbered to make room."""
    conn.execute("UPDATE audit SET idx = -idx - 2 WHERE idx > ?", (k,))
    conn.execute("UPDATE audit SET idx = -idx WHERE idx < 0")
    conn.execute(
        "INSERT INTO audit SELECT ?, at, author, type, data, hash, prev_hash, signature FROM audit WHERE idx = ?",
        (k + 1, k),
    )


def test_a_duplicate_is_named_as_the_copy(demo: Demo, tmp_path: Path) -> None:
    n, k = demo.entries, demo.entries // 2
    cases: dict[str, tuple[Callable[[sqlite3.Connection], None], str]] = {
        "appended": (lambda c: duplicate(c, k), f"entry #{n}: duplicate (a verbatim copy of entry #{k})"),
        "first entry": (lambda c: duplicate(c, 0), f"entry #{n}: duplicate (a verbatim copy of entry #0)"),
        "in place": (
            lambda c: duplicate_in_place(c, k),
            f"entry #{k + 1}: duplicate (a verbatim copy of entry #{k})",
        ),
    }
    for i, (name, (tamper, expected)) in enumerate(cases.items()):
        db = sqlite_copy(demo.db, tmp_path / f"dup{i}.db")
        with sqlite3.connect(db) as conn:
            tamper(conn)
        conn.close()
        done = audit_verify(demo, db) if i == 0 else audit_verify_in_process(demo, db)
        assert done.returncode == 1, (name, done.stdout, done.stderr)
        assert done.stdout.splitlines() == [expected], name


def test_a_copy_of_an_entry_long_gone_by_is_found(store: Store) -> None:
    """Past the entries verification remembers, a suspect entry's hash is looked up in the database."""
    key = Ed25519PrivateKey.generate()
    append_entries(store, key, [Draft(datetime.now(UTC), "a", "t", {"k": k}) for k in range(300)])
    from sqlalchemy import insert as sql_insert

    from bzzz_console.store.audit import audit_table

    first = read_entries(store)[1]
    with store.engine.begin() as conn:
        conn.execute(sql_insert(audit_table()), [{**first.to_dict(), "idx": 300, "at": first.at}])
    result = verify(store, key)
    assert (result.ok, result.first_bad_index, result.reason) == (False, 300, "duplicate")
    assert result.detail == "a verbatim copy of entry #1"


def test_a_database_that_cannot_be_read_is_one_line_and_exit_2(demo: Demo, tmp_path: Path) -> None:
    from bzzz_console.cli.main import app

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(64 * 1024))
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()  # a real SQLite file, but no audit trail in it
    cases = {
        garbage: "cannot read the audit trail in ",
        empty: "no such table: audit",
        tmp_path / "typo.db": f"no database at {tmp_path / 'typo.db'}",
    }
    for db, expected in cases.items():
        done = audit_verify(demo, db) if db == garbage else audit_verify_in_process(demo, db)
        assert done.returncode == 2, (db, done.stdout, done.stderr)
        assert done.stdout == ""
        [line] = done.stderr.splitlines()
        assert line.startswith("bzzz-console: error: ") and expected in line, line
    assert not (tmp_path / "typo.db").exists()
    shown = CliRunner().invoke(
        app,
        ["audit", "show", "--db", f"sqlite:///{garbage}"],
        env={k: demo.env[k] for k in ("XDG_DATA_HOME", "XDG_CONFIG_HOME")},
    )
    assert shown.exit_code == 2 and "Traceback" not in shown.output


def test_verify_help_documents_the_exit_codes() -> None:
    from bzzz_console.cli.main import app

    text = " ".join(
        CliRunner().invoke(app, ["audit", "verify", "--help"], env={"COLUMNS": "200"}).output.split()
    )
    assert "Exit codes: 0 intact; 1 tampered" in text and "2 cannot check" in text


# -- writers -------------------------------------------------------------------------------------------------
def test_racing_writers_keep_one_chain(store_url: str) -> None:
    """Two stores (two processes' worth of connections) append at once: the primary key decides, the loser
    re-chains on the new tail, and the trail stays one verifiable chain."""
    url = store_url
    keys = [Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()]
    stores = [Store.open(url), Store.open(url)]
    start = threading.Barrier(2)

    def write(i: int) -> None:
        start.wait()
        for n in range(40):
            drafts = [
                Draft(
                    datetime.now(UTC),
                    f"writer-{i}",
                    "test",
                    {"n": n, "k": k, "signer": public_key_hex(keys[i])},
                )
                for k in range(3)
            ]
            append_entries(stores[i], keys[i], drafts)

    try:
        threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        result = verify(stores[0])
        entries = read_entries(stores[0])
    finally:
        for s in stores:
            s.close()
    assert result.ok, result
    assert result.checked == len(entries) == 240
    assert set(result.signers) == {public_key_hex(k) for k in keys}
    batches = [tuple(e.data["k"] for e in entries[i : i + 3]) for i in range(0, 240, 3)]
    assert all(b == (0, 1, 2) for b in batches)  # a batch is one transaction: never interleaved


def test_two_writers_of_one_node_keep_one_checkpoint(store_url: str, tmp_path: Path) -> None:
    """The console and a CLI command (two stores, two checkpoint handles: two processes' worth) append at once:
    the checkpoint only moves forward, ends at the real head, and the trail verifies against it."""
    key = Ed25519PrivateKey.generate()
    stores = [Store.open(store_url), Store.open(store_url)]
    books = [Checkpoints.for_store(tmp_path / "data", s) for s in stores]
    start = threading.Barrier(2)

    def write(i: int) -> None:
        start.wait()
        for n in range(30):
            drafts = [Draft(datetime.now(UTC), f"writer-{i}", "test", {"n": n, "k": k}) for k in range(2)]
            append_entries(stores[i], key, drafts, books[i])

    try:
        threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        book = books[0]
        assert book is not None and books[1] is not None
        checkpoint = book.read(public_key_hex(key))
        result = verify(stores[0], key, checkpoint=checkpoint)
        last = read_entries(stores[0], last=1)[0]
    finally:
        for s in stores:
            s.close()
    assert book.path == books[1].path and book.problem is None and books[1].problem is None
    assert checkpoint is not None and (checkpoint.size, checkpoint.head) == (120, last.hash)
    assert result.ok and result.checked == 120, result
    assert result.message().endswith("#119 matches)")


def test_entries_round_trip_on_both_backends(store: Store) -> None:
    key = Ed25519PrivateKey.generate()
    awkward = {
        "text": 'üñí€ \u2028 "quoted"',
        "tuple": (1, 2.5, None, True),
        "nan": float("nan"),
        "when": datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        "nested": {"b": 1, "a": [{"z": 0}]},
        "lone": "\ud800",
    }
    first = append_entry(store, key, author="operator", type="note", data=awkward)
    append_entry(
        store, key, author="operator", type="note", data={"n": 2}, at=datetime(2024, 1, 1, tzinfo=UTC)
    )
    assert first.idx == 0 and first.prev_hash == GENESIS
    assert verify(store, key).ok
    assert verify(store, pinned=[public_key_hex(key)]).checked == 2
    other = Ed25519PrivateKey.generate()
    pinned_other = verify(store, pinned=[public_key_hex(other)])
    assert (pinned_other.ok, pinned_other.first_bad_index, pinned_other.reason) == (False, 0, "bad signature")


async def test_writer_records_audited_events_only(tmp_path: Path) -> None:
    """The writer alone on a bus: the kinds it records, who it names as author, and a drain on stop."""

    class FakeRuntime:
        def __init__(self) -> None:
            from bzzz_console.domain.bus import EventBus

            self.settings = Settings.model_validate({"data_dir": str(tmp_path / "data")})
            self.bus = EventBus()
            self.node_id = "node-a"
            self.store = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
            self.errors: list[ev.Event] = []

        def publish(self, event: ev.Event) -> None:
            self.errors.append(event)

    rt = FakeRuntime()
    writer = AuditWriter(rt.settings, rt.store, rt.bus, rt.node_id, report=rt.publish)
    writer.start()
    rt.bus.publish(
        ev.MessagePosted(
            thread_id="t", message_id="t#1", seq=1, author="a", role="r", message_type="comment", content="x"
        )
    )
    rt.bus.publish(
        ev.EscalationAnswered(
            escalation_id="e", thread_id="t", agent_id="a-1", decision="approve", by="alice"
        )
    )
    rt.bus.publish(ev.EscalationExpired(escalation_id="e2", thread_id="t", default_action="hold"))
    rt.bus.publish(ev.DecisionLogged(thread_id="t", decision_id="d", summary="s", made_by="architect-1"))
    rt.bus.publish(ev.LLMFailed(agent_id="reviewer-2", thread_id=None, error="boom"))
    rt.bus.publish(ev.BudgetWarning(scope="global", key="*", share=0.8, spent_usd=4.0, limit_usd=5.0))
    rt.bus.close()
    await writer.stop()
    entries = read_entries(rt.store)
    rt.store.close()
    assert [(e.type, e.author) for e in entries] == [
        ("escalation_answered", "alice"),
        ("escalation_expired", "system"),
        ("decision_logged", "architect-1"),
        ("llm_failed", "reviewer-2"),
        ("budget_warning", "system"),
    ]
    assert entries[0].data["decision"] == "approve" and entries[0].data["node"] == "node-a"
    assert writer.appended == 5 and not rt.errors


# -- the node key -------------------------------------------------------------------------------------------
def test_node_key_is_created_once_private_and_stable(tmp_path: Path) -> None:
    settings = Settings.model_validate({"data_dir": str(tmp_path / "data")})
    assert load_node_key(settings) is None
    first = load_or_create_node_key(settings)
    path = node_key_path(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(path.read_bytes()) == 32
    again = load_or_create_node_key(settings)
    loaded = load_node_key(settings)
    assert loaded is not None
    assert public_key_hex(first) == public_key_hex(again) == public_key_hex(loaded)


def test_node_key_created_by_racing_processes_is_one_key(tmp_path: Path) -> None:
    settings = Settings.model_validate({"data_dir": str(tmp_path / "data")})
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = list(pool.map(lambda _: public_key_hex(load_or_create_node_key(settings)), range(16)))
    assert len(set(keys)) == 1
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["node.key"]  # no temporary file left behind


def test_node_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    settings = Settings.model_validate({"data_dir": str(tmp_path / "data")})
    load_or_create_node_key(settings)
    path = node_key_path(settings)
    path.chmod(0o644)
    with pytest.raises(NodeKeyError, match="accessible by group or others") as caught:
        load_or_create_node_key(settings)
    assert str(path) in str(caught.value) and "0644" in str(caught.value)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # refused, not silently "fixed"


def test_corrupt_node_key_is_named(tmp_path: Path) -> None:
    settings = Settings.model_validate({"data_dir": str(tmp_path / "data")})
    path = node_key_path(settings)
    path.parent.mkdir(mode=0o700)
    path.write_bytes(b"not a key")
    path.chmod(0o600)
    with pytest.raises(NodeKeyError, match="corrupt") as caught:
        load_or_create_node_key(settings)
    assert str(path) in str(caught.value)


def test_cli_reports_a_bad_node_key_in_one_line(tmp_path: Path) -> None:
    from bzzz_console.cli.main import app

    settings = Settings()  # the XDG data dir of this test (conftest)
    load_or_create_node_key(settings)
    node_key_path(settings).chmod(0o640)
    done = CliRunner().invoke(app, ["audit", "key"])
    assert done.exit_code == 2
    assert "accessible by group or others" in done.output and "Traceback" not in done.output


# -- escalations answered from the CLI -------------------------------------------------------------------------
def test_cli_decision_is_audited(demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The decision's entry names the OS user who made it, and moves this node's checkpoint to it."""
    from bzzz_console.cli.main import app
    from bzzz_console.domain.principals import os_user

    db = sqlite_copy(demo.db, tmp_path / "answer.db")
    shutil.copytree(demo.data_dir, Settings().resolved_data_dir(), dirs_exist_ok=True)
    url = f"sqlite:///{db}"
    store = Store.open(url)
    waiting = store.escalations("open")[0]
    store.close()
    done = CliRunner().invoke(
        app, ["escalations", "answer", waiting.id, "--approve", "--note", "ok", "--db", url]
    )
    assert done.exit_code == 0, done.output
    store = Store.open(url)
    try:
        last = read_entries(store, last=1)[0]
        result = verify(store, demo.public_key, pinned=[demo.public_key])
    finally:
        store.close()
    assert (last.idx, last.type, last.author) == (demo.entries, "escalation_decided", os_user())
    assert last.data["escalation_id"] == waiting.id and last.data["decision"]["kind"] == "approve"
    assert last.data["decision"]["surface"] == "cli"  # where it was decided, signed with the entry
    assert result.ok and result.checked == demo.entries + 1
    opened = Store.open(url, migrate=False)
    book = Checkpoints.for_store(Settings().resolved_data_dir(), opened)
    opened.close()
    checkpoint = book.read(demo.public_key) if book is not None else None
    assert checkpoint is not None and (checkpoint.size, checkpoint.head) == (demo.entries + 1, last.hash)


# -- retention ---------------------------------------------------------------------------------------------
def age(conn: sqlite3.Connection, days: int) -> None:
    """Move every closed thread and all token usage ``days`` into the past (as SQLAlchemy writes times)."""
    then = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S.%f")
    conn.execute("UPDATE threads SET closed_at = ?, last_activity = ? WHERE status = 'closed'", (then, then))
    conn.execute("UPDATE threads SET last_activity = ? WHERE status != 'closed'", (then,))
    conn.execute("UPDATE token_usage SET at = ?", (then,))


def test_db_prune_keeps_what_is_in_play_and_the_trail(demo: Demo, tmp_path: Path) -> None:
    db = copy_with_checkpoint(demo, tmp_path / "prune.db")
    url = f"sqlite:///{db}"
    with sqlite3.connect(db) as conn:
        age(conn, 40)
        # a thread closed yesterday stays, and so does its usage
        recent = conn.execute(
            "SELECT id FROM threads WHERE status = 'closed' ORDER BY id LIMIT 1"
        ).fetchone()[0]
        yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
        conn.execute("UPDATE threads SET closed_at = ? WHERE id = ?", (yesterday, recent))
        conn.execute("UPDATE token_usage SET at = ? WHERE thread_id = ?", (yesterday, recent))
        before = {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("threads", "messages", "token_usage", "audit", "escalations")
        }
        closed = conn.execute("SELECT count(*) FROM threads WHERE status = 'closed'").fetchone()[0]
        recent_usage = conn.execute(
            "SELECT count(*) FROM token_usage WHERE thread_id = ?", (recent,)
        ).fetchone()[0]
        open_usage = conn.execute(
            "SELECT count(*) FROM token_usage WHERE thread_id IN (SELECT id FROM threads WHERE status != 'closed')"
        ).fetchone()[0]
    conn.close()
    assert closed >= 2 and open_usage > 0
    runner = CliRunner()
    from bzzz_console.cli.main import app

    for bad in ("0", "-3"):
        refused = runner.invoke(app, ["db", "prune", "--older-than", bad, "--yes", "--db", url])
        assert refused.exit_code == 2 and "at least 1 day" in refused.output, refused.output
    help_text = runner.invoke(app, ["db", "prune", "--help"], env={"COLUMNS": "200"}).output
    assert "audit" in help_text and "never pruned" in help_text
    done = runner.invoke(app, ["db", "prune", "--older-than", "30", "--yes", "--db", url])
    assert done.exit_code == 0, done.output
    assert f"deleted {closed - 1} threads" in done.output
    assert f"audit trail ({demo.entries} entries)" in done.output
    with sqlite3.connect(db) as conn:
        after = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in before}
        statuses = [r[0] for r in conn.execute("SELECT status FROM threads ORDER BY status")]
        usage_threads = {r[0] for r in conn.execute("SELECT DISTINCT thread_id FROM token_usage")}
        open_escalations = conn.execute("SELECT count(*) FROM escalations WHERE state = 'open'").fetchone()[0]
        orphans = conn.execute(
            "SELECT count(*) FROM messages WHERE thread_id NOT IN (SELECT id FROM threads)"
        ).fetchone()[0]
    conn.close()
    assert after["threads"] == before["threads"] - (closed - 1)
    assert statuses.count("closed") == 1 and len(statuses) == before["threads"] - closed + 1
    assert after["messages"] < before["messages"] and orphans == 0
    assert after["token_usage"] == open_usage + recent_usage  # old usage of closed threads (and none) is gone
    assert recent in usage_threads
    assert open_escalations >= 1 and after["escalations"] >= 1
    assert after["audit"] == before["audit"]
    verified = audit_verify_in_process(demo, db)
    assert verified.returncode == 0 and verified.stdout.startswith(f"intact: {demo.entries} entries"), (
        verified.stdout
    )
    assert verified.stdout.rstrip().endswith(f"#{demo.entries - 1} matches)")  # still the checkpointed trail
    # nothing left to prune: a second run deletes nothing
    again = runner.invoke(app, ["db", "prune", "--older-than", "30", "--yes", "--db", url])
    assert again.exit_code == 0 and "deleted 0 threads" in again.output


def test_prune_dry_run_counts_without_deleting(demo: Demo, tmp_path: Path) -> None:
    db = sqlite_copy(demo.db, tmp_path / "dry.db")
    with sqlite3.connect(db) as conn:
        age(conn, 10)
    conn.close()
    store = Store.open(f"sqlite:///{db}")
    try:
        preview = prune(store, 5, dry_run=True)
        nothing = prune(store, 30)
        done = prune(store, 5)
        with pytest.raises(ValueError, match="at least 1"):
            prune(store, 0)
    finally:
        store.close()
    assert nothing.total == 0
    assert (
        preview.deleted == done.deleted and done.deleted["threads"] >= 2 and done.deleted["token_usage"] > 0
    )


def test_prune_on_both_backends(store: Store) -> None:
    from bzzz_console.store.tables import (
        DecisionRow,
        EscalationRow,
        MessageRow,
        ParticipantRow,
        TaskRow,
        ThreadRow,
        TokenUsageRow,
    )

    old = datetime.now(UTC) - timedelta(days=40)
    key = Ed25519PrivateKey.generate()
    append_entry(store, key, author="operator", type="note", data={"n": 1}, at=old)
    with store.session() as s:
        for tid, status, closed in (
            ("t-old", "closed", old),
            ("t-held", "closed", old),
            ("t-open", "active", None),
        ):
            s.add(
                ThreadRow(id=tid, project="p", topic=tid, status=status, closed_at=closed, last_activity=old)
            )
            s.add(ParticipantRow(thread_id=tid, agent_id="a-1", role="architect"))
            s.add(
                MessageRow(
                    id=f"{tid}#1", thread_id=tid, seq=1, author="a-1", role="r", type="comment", content="x"
                )
            )
            s.add(TokenUsageRow(at=old, agent_id="a-1", thread_id=tid, model="m"))
        s.add(TaskRow(id="task-old", project="p", title="t", status="done", thread_id="t-old"))
        s.add(DecisionRow(id="d-old", kind="consensus", thread_id="t-old", summary="s", made_by="a-1"))
        s.add(
            EscalationRow(
                id="e-done", thread_id="t-old", rule="r", reason="x", state="answered", applied=True
            )
        )
        s.add(DecisionRow(id="d-esc", kind="operator", escalation_id="e-done", summary="s", made_by="op"))
        s.add(EscalationRow(id="e-open", thread_id="t-held", rule="r", reason="x", state="open"))
        s.add(TokenUsageRow(at=old, agent_id="a-1", model="m"))
        s.add(TokenUsageRow(agent_id="a-1", model="m"))
        s.commit()
    report = prune(store, 30)
    assert report.deleted == {
        "threads": 1,
        "messages": 1,
        "participants": 1,
        "decisions": 2,
        "escalations": 1,
        "tasks": 1,
        "budgets": 0,
        "token_usage": 3,  # t-old's, t-held's (closed) and the thread-less old one; t-open's and today's stay
    }
    assert report.kept == {"open_threads": 1, "open_escalations": 1, "audit_entries": 1}
    assert sorted(t.id for t in store.threads()) == ["t-held", "t-open"]
    assert len(store.usage()) == 2
    assert verify(store, key).ok
