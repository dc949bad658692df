"""The store on a real database: SQLite always, PostgreSQL when ``BZZZ_TEST_POSTGRES_URL`` names a server."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from bzzz_console.domain.threads import MessageType
from bzzz_console.store.engine import MIGRATIONS_DIR, make_engine, upgrade
from bzzz_console.store.errors import DatabaseError, NotFound
from bzzz_console.store.repo import Store, new_id
from bzzz_console.store.tables import (
    DecisionRow,
    EpisodeRow,
    EscalationRow,
    MessageRow,
    ParticipantRow,
    TaskRow,
    ThreadRow,
    TokenUsageRow,
    utc,
)

TABLES = {
    "agents",
    "tasks",
    "threads",
    "participants",
    "messages",
    "escalations",
    "decisions",
    "token_usage",
    "episodes",
    "audit",
}

pytestmark = pytest.mark.timeout(60)


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head


def is_utc(value: datetime) -> bool:
    return value.tzinfo is not None and value.utcoffset() == timedelta(0)


def add_task(store: Store, title: str = "Write the parser", project: str = "alpha") -> TaskRow:
    return store.add_task(
        title=title, description="details", roles=["coder", "reviewer"], priority="high", project=project
    )


def open_thread(
    store: Store, *, task_id: str | None = None, opening: bool = True, thread_id: str | None = None
) -> ThreadRow:
    thread = ThreadRow(id=thread_id or new_id("thr"), task_id=task_id, project="alpha", topic="Parser design")
    participants = [
        ParticipantRow(thread_id=thread.id, agent_id=agent, role=role, position=i)
        for i, (agent, role) in enumerate([("coder-1", "coder"), ("reviewer-1", "reviewer")])
    ]
    first = (
        MessageRow(
            id=f"{thread.id}#1",
            thread_id=thread.id,
            seq=1,
            author="system",
            role="system",
            type="system",
            content="Thread opened",
        )
        if opening
        else None
    )
    store.create_thread(thread, participants, first)
    return thread


def post(
    store: Store, thread_id: str, content: str, *, end_turn: bool = False, author: str = "coder-1"
) -> int:
    return store.post_message(
        thread_id, author=author, role="coder", type="comment", content=content, end_turn=end_turn
    ).seq


@pytest.fixture
def second_store(store_url: str, store: Store) -> Iterator[Store]:
    """Another store (its own engine and connections) on the same database as ``store``."""
    other = Store.open(store_url)
    try:
        yield other
    finally:
        other.close()


# --------------------------------------------------------------------------------------------- migrations


def test_migrations_apply_on_a_fresh_database_and_are_idempotent(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        assert upgrade(engine) == head_revision()
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO tasks (id, project, title, description, roles, priority, status, source,"
                    " created_at, updated_at) VALUES ('task-keep', 'p', 't', '', '[]', 'low', 'pending', 'cli',"
                    " :at, :at)"
                ),
                {"at": datetime.now(UTC)},
            )
        assert upgrade(engine) == head_revision()
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
            kept = conn.execute(text("SELECT id FROM tasks")).scalars().all()
        assert versions == [head_revision()]
        assert kept == ["task-keep"]
    finally:
        engine.dispose()


def test_every_table_exists_and_matches_the_models(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    names = set(inspect(store.engine).get_table_names())
    assert names >= {*TABLES, "alembic_version"}
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], f"the migrations and tables.py disagree: {diff}"


def test_the_message_sequence_is_unique_per_thread(store: Store) -> None:
    thread = open_thread(store)
    duplicate = MessageRow(
        id=f"{thread.id}#dup",
        thread_id=thread.id,
        seq=1,
        author="x",
        role="x",
        type="comment",
        content="again",
    )
    with store.session() as s, pytest.raises(IntegrityError):
        s.add(duplicate)
        s.commit()
    assert [m.content for m in store.messages(thread.id)] == ["Thread opened"]


# ------------------------------------------------------------------------------------------------- tasks


def test_tasks_add_list_and_status(store: Store) -> None:
    first = add_task(store, "First")
    second = add_task(store, "Second", project="beta")
    assert first.id != second.id
    assert [t.title for t in store.tasks()] == ["First", "Second"]
    assert store.count_tasks() == 2

    stored = store.get_task(first.id)
    assert (stored.status, stored.priority, stored.roles, stored.project) == (
        "pending",
        "high",
        ["coder", "reviewer"],
        "alpha",
    )
    assert is_utc(utc(stored.created_at))

    store.set_task_status(second.id, "blocked")
    assert [t.id for t in store.tasks("blocked")] == [second.id]
    assert [t.id for t in store.tasks("pending")] == [first.id]
    assert store.tasks("done") == []
    with pytest.raises(NotFound):
        store.get_task("task-missing")


def test_create_thread_sets_the_task_in_progress(store: Store) -> None:
    task = add_task(store)
    thread = open_thread(store, task_id=task.id)

    stored_task = store.get_task(task.id)
    assert (stored_task.status, stored_task.thread_id) == ("in_progress", thread.id)
    stored = store.get_thread(thread.id)
    assert (stored.status, stored.message_count, stored.turn_count) == ("active", 1, 0)
    assert [(p.agent_id, p.position) for p in store.participants(thread.id)] == [
        ("coder-1", 0),
        ("reviewer-1", 1),
    ]
    assert [m.seq for m in store.messages(thread.id)] == [1]
    assert [t.id for t in store.threads("active")] == [thread.id]


def test_create_thread_is_all_or_nothing(store: Store) -> None:
    thread = open_thread(store)
    task = add_task(store)
    with pytest.raises(IntegrityError):
        open_thread(store, task_id=task.id, thread_id=thread.id)  # the same thread id again
    stored_task = store.get_task(task.id)
    assert (stored_task.status, stored_task.thread_id) == ("pending", None)
    assert len(store.participants(thread.id)) == 2
    assert len(store.messages(thread.id)) == 1


# ---------------------------------------------------------------------------------------------- messages


def test_post_message_assigns_consecutive_seqs_and_counts_turns(store: Store) -> None:
    thread = open_thread(store)
    before = utc(store.get_thread(thread.id).last_activity)

    message = store.post_message(
        thread.id, author="coder-1", role="coder", type="proposal", content="Use a PEG", tokens=12, model="m"
    )
    assert (message.seq, message.id, message.type) == (2, f"{thread.id}#2", MessageType.PROPOSAL)
    assert post(store, thread.id, "thinking") == 3
    assert store.get_thread(thread.id).turn_count == 0
    assert post(store, thread.id, "done for now", end_turn=True) == 4
    assert post(store, thread.id, "agreed", end_turn=True, author="reviewer-1") == 5

    stored = store.get_thread(thread.id)
    assert (stored.message_count, stored.turn_count) == (5, 2)
    assert utc(stored.last_activity) >= before
    rows = store.messages(thread.id)
    assert [m.seq for m in rows] == [1, 2, 3, 4, 5]
    assert (rows[1].type, rows[1].tokens, rows[1].model) == ("proposal", 12, "m")
    assert [m.seq for m in store.messages(thread.id, last=2)] == [4, 5]

    store.end_turn(thread.id)
    assert store.get_thread(thread.id).turn_count == 3


def test_post_message_to_a_missing_thread_leaves_the_store_usable(store: Store) -> None:
    thread = open_thread(store, opening=False)
    with pytest.raises(NotFound):
        post(store, "thr-missing", "hello?")
    assert post(store, thread.id, "first") == 1


def test_message_times_round_trip_in_utc(store: Store) -> None:
    thread = open_thread(store)
    at = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    store.post_message(thread.id, author="h", role="human", type="human", content="hi", at=at)
    row = store.messages(thread.id)[-1]
    assert is_utc(utc(row.created_at))
    assert utc(row.created_at) == at
    if store.backend == "postgresql":
        assert is_utc(row.created_at), "PostgreSQL hands back times in UTC whatever the server's zone"


def test_two_stores_posting_alternately_get_distinct_consecutive_seqs(
    store: Store, second_store: Store
) -> None:
    thread = open_thread(store)
    seqs = []
    for i in range(10):
        writer = store if i % 2 == 0 else second_store
        seqs.append(post(writer, thread.id, f"message {i}", end_turn=True))
    assert seqs == list(range(2, 12))
    assert [m.seq for m in second_store.messages(thread.id)] == list(range(1, 12))
    stored = store.get_thread(thread.id)
    assert (stored.message_count, stored.turn_count) == (11, 10)


def test_two_stores_posting_at_the_same_time_never_share_a_seq(store: Store, second_store: Store) -> None:
    thread = open_thread(store, opening=False)
    per_writer = 20
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def write(writer: Store, name: str) -> None:
        try:
            start.wait(timeout=10)
            for i in range(per_writer):
                post(writer, thread.id, f"{name} {i}", author=name)
        except BaseException as exc:
            errors.append(exc)

    workers = [
        threading.Thread(target=write, args=(store, "coder-1")),
        threading.Thread(target=write, args=(second_store, "reviewer-1")),
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=50)
    assert errors == []
    rows = store.messages(thread.id)
    assert [m.seq for m in rows] == list(range(1, 2 * per_writer + 1))
    for name in ("coder-1", "reviewer-1"):  # each writer's own messages stay in its order
        assert [m.content for m in rows if m.author == name] == [f"{name} {i}" for i in range(per_writer)]
    assert store.get_thread(thread.id).message_count == 2 * per_writer


# ------------------------------------------------------------------------------------------------- spend


def usage(
    thread_id: str | None, cost: float | None, agent: str = "coder-1", tokens: int = 10
) -> TokenUsageRow:
    return TokenUsageRow(
        agent_id=agent,
        thread_id=thread_id,
        model="m",
        prompt_tokens=tokens,
        completion_tokens=5,
        cost_usd=cost,
    )


def test_thread_costs_sum_known_costs_and_flag_unknown_ones(store: Store) -> None:
    for row in [
        usage("thr-known", 0.5),
        usage("thr-known", 0.25, agent="reviewer-1"),
        usage("thr-mixed", 0.125),
        usage("thr-mixed", None),
        usage("thr-unknown", None),
        usage(None, 1.0),
        usage("thr-free", 0.0),
    ]:
        store.record_usage(row)

    assert store.thread_costs() == {
        "thr-known": (0.75, False),
        "thr-mixed": (0.125, True),
        "thr-unknown": (0.0, True),
        "thr-free": (0.0, False),
    }
    assert store.agent_costs() == {"coder-1": (1.625, 90), "reviewer-1": (0.25, 15)}
    rows = store.usage()
    assert len(rows) == 7
    assert all(is_utc(utc(r.at)) for r in rows)
    assert rows[3].cost_usd is None


# ------------------------------------------------------------------------- escalations, decisions, memory


def test_escalations_round_trip_and_pause_the_thread(store: Store) -> None:
    thread = open_thread(store)
    deadline = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    store.raise_escalation(
        EscalationRow(
            id="esc-1",
            thread_id=thread.id,
            agent_id="coder-1",
            rule="budget",
            reason="Over budget: continue?",
            priority="urgent",
            context={"spent": 1.5, "options": ["continue", "stop"]},
            deadline=deadline,
        ),
        thread_status="waiting_human",
    )
    store.raise_escalation(EscalationRow(id="esc-2", rule="manual", reason="FYI"), thread_status="stalled")

    assert store.get_thread(thread.id).status == "waiting_human"
    assert [e.id for e in store.escalations()] == ["esc-1", "esc-2"]
    [esc] = [e for e in store.escalations("open") if e.id == "esc-1"]
    assert (esc.rule, esc.priority, esc.default_action, esc.answered_at) == ("budget", "urgent", "hold", None)
    assert esc.context == {"spent": 1.5, "options": ["continue", "stop"]}
    assert esc.deadline is not None
    assert utc(esc.deadline) == deadline
    assert is_utc(utc(esc.deadline))
    assert is_utc(utc(esc.created_at))
    assert store.escalations("answered") == []


def test_decisions_and_episodes_are_written_when_a_thread_closes(store: Store) -> None:
    task = add_task(store)
    thread = open_thread(store, task_id=task.id)
    decision = DecisionRow(
        id="dec-1",
        kind="consensus",
        thread_id=thread.id,
        summary="Use a PEG parser",
        made_by="coder-1,reviewer-1",
        data={"proposal": f"{thread.id}#2"},
    )
    episode = EpisodeRow(
        id="ep-1",
        agent_id="coder-1",
        project="alpha",
        thread_id=thread.id,
        topic="Parser design",
        participants=["coder-1", "reviewer-1"],
        summary="Agreed on PEG",
        outcome="consensus",
        lessons=["prototype first"],
    )
    store.set_thread_status(
        thread.id, "closed", outcome="consensus", task_status="done", decision=decision, episodes=[episode]
    )

    stored = store.get_thread(thread.id)
    assert (stored.status, stored.outcome) == ("closed", "consensus")
    assert stored.closed_at is not None and is_utc(utc(stored.closed_at))
    assert store.get_task(task.id).status == "done"
    [logged] = store.decisions(thread.id)
    assert (logged.kind, logged.summary, logged.data) == ("consensus", "Use a PEG parser", decision.data)
    assert is_utc(utc(logged.created_at))
    assert store.decisions("thr-other") == []
    [remembered] = store.episodes("coder-1", "alpha")
    assert (remembered.participants, remembered.lessons) == (["coder-1", "reviewer-1"], ["prototype first"])


def test_episodes_are_scoped_to_one_agent_and_project(store: Store) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i, (agent, project) in enumerate(
        [("coder-1", "alpha"), ("coder-1", "beta"), ("coder-1", "alpha"), ("reviewer-1", "alpha")]
    ):
        episode = EpisodeRow(
            id=f"ep-{i}",
            agent_id=agent,
            project=project,
            thread_id=f"thr-{i}",
            topic="t",
            summary=f"episode {i}",
            outcome="consensus",
            created_at=base + timedelta(hours=i),
        )
        store.set_thread_status(f"thr-{i}", "closed", episodes=[episode])

    assert [e.id for e in store.episodes("coder-1", "alpha")] == ["ep-2", "ep-0"]  # newest first
    assert [e.id for e in store.episodes("coder-1", "beta")] == ["ep-1"]
    assert [e.id for e in store.episodes("reviewer-1", "alpha")] == ["ep-3"]
    assert store.episodes("reviewer-1", "beta") == []
    assert store.episodes("coder-1", "gamma") == []


# ------------------------------------------------------------------------------------------- SQLite only


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    store = Store.open(sqlite_url)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        store.close()


def test_sqlite_file_is_private_to_its_owner(sqlite_url: str, tmp_path: Path) -> None:
    store = Store.open(sqlite_url)
    try:
        open_thread(store)
        database = tmp_path / "bzzz.db"
        assert stat.S_IMODE(database.stat().st_mode) == 0o600
        for extra in ("bzzz.db-wal", "bzzz.db-shm"):
            if (tmp_path / extra).exists():
                assert stat.S_IMODE((tmp_path / extra).stat().st_mode) == 0o600, extra
    finally:
        store.close()


def test_sqlite_folder_is_created(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'new' / 'deeper' / 'bzzz.db'}")
    try:
        assert (tmp_path / "new" / "deeper" / "bzzz.db").exists()
    finally:
        store.close()


def test_make_engine_rejects_a_malformed_url() -> None:
    with pytest.raises(DatabaseError, match=r"malformed database URL 'not a database url'"):
        make_engine("not a database url")


def test_make_engine_rejects_an_unsupported_backend() -> None:
    with pytest.raises(DatabaseError, match=r"unsupported database 'mysql'.*use sqlite or postgresql") as err:
        make_engine("mysql://bzzz:hunter2@localhost/bzzz")
    assert "hunter2" not in str(err.value)


def test_make_engine_names_a_folder_it_cannot_create(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DatabaseError, match=r"cannot create the database folder") as err:
        make_engine(f"sqlite:///{blocker / 'data' / 'bzzz.db'}")
    assert str(blocker / "data") in str(err.value)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write to read-only folders")
def test_opening_a_database_in_a_read_only_folder_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o500)
    try:
        with pytest.raises(DatabaseError, match=r"cannot open the database") as err:
            Store.open(f"sqlite:///{folder / 'bzzz.db'}")
        assert str(folder / "bzzz.db") in str(err.value)
    finally:
        folder.chmod(0o700)


def test_opening_a_folder_as_the_database_says_so(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match=r"cannot open the database") as err:
        Store.open(f"sqlite:///{tmp_path}")
    assert str(tmp_path) in str(err.value)


def test_an_unreachable_server_raises_database_error_without_the_password() -> None:
    with pytest.raises(DatabaseError, match=r"cannot open the database") as err:
        Store.open("postgresql+psycopg://bzzz:hunter2@127.0.0.1:1/bzzz")
    assert "hunter2" not in str(err.value)
    assert "***" in str(err.value)


# --------------------------------------------------------------------------------------- PostgreSQL only


@pytest.mark.postgres
def test_a_plain_postgresql_url_gets_the_psycopg_driver(postgres_url: str) -> None:
    from sqlalchemy.engine import make_url

    plain = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    engine = make_engine(plain)
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        assert engine.dialect.driver == "psycopg"
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
