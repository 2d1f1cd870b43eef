"""The SQLite row writer: what it writes reads back through SQLAlchemy unchanged, it never
waits for a lock on the event loop's thread, it checkpoints off that thread, and
``synchronous`` is the connection's PRAGMA."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import pytest_asyncio

from catalyst_mcp.context import Identity
from catalyst_mcp.errors import StorageError
from catalyst_mcp.orchestration.workflows import sqlitewriter
from catalyst_mcp.orchestration.workflows.runstate import RunState, StepState
from catalyst_mcp.orchestration.workflows.sqlitewriter import BUSY, SqliteRowWriter
from catalyst_mcp.orchestration.workflows.store import RunStore, _run_row, _step_row
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.migrate import upgrade

ALICE = Identity(subject="alice", kind="user", roles=("admin", "ops"), scopes=None, via="api_key")


@pytest_asyncio.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'state' / 'c.db'}")
    await upgrade(db)
    yield db
    await db.close()


def path_of(db: Database) -> Path:
    assert db.url.database is not None
    return Path(db.url.database)


async def test_rows_read_back_through_sqlalchemy_as_they_were(database: Database) -> None:
    created = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)  # whole seconds: no ".000000" lost
    run = RunState(
        "wr_roundtrip",
        "report",
        {"order": 7, "note": "12", "nested": {"list": [1, "2", None]}},
        ALICE,
        trigger="task",
        task_era="modern",
        created_at=created,
        updated_at=created,
    )
    paris = timezone(timedelta(hours=2))
    steps = {
        "fetch": StepState(
            "completed",
            attempts=2,
            result={"text": "hi", "n": 1.5},
            started_at=datetime(2026, 3, 1, 14, 0, 1, 5, tzinfo=paris),  # stored as UTC
            finished_at=created + timedelta(seconds=2),
        ),
        "check[0]": StepState("completed", attempts=1, result=42, finished_at=created),
        "count": StepState("completed", result="17", finished_at=created),  # numeric text
        "broken": StepState("failed", attempts=3, is_error=True, error="it broke"),
        "later": StepState("running", started_at=created),
    }
    writer = SqliteRowWriter(path_of(database))
    try:
        assert writer.write([_run_row(run, "me")], [])
        rows = [_step_row(run.id, key, state) for key, state in steps.items()]
        assert writer.write([], rows)
        run.status, run.output = "completed", {"total": 3}
        run.finished_at = created + timedelta(seconds=3)
        assert writer.write([_run_row(run, "me")], [])  # an upsert of the existing row
    finally:
        writer.close()
    store = RunStore(database, "reader")
    loaded = await store.load(run.id)
    assert loaded is not None
    assert (loaded.workflow, loaded.inputs, loaded.identity) == (run.workflow, run.inputs, ALICE)
    assert (loaded.trigger, loaded.task_era, loaded.status) == ("task", "modern", "completed")
    assert (loaded.output, loaded.error) == ({"total": 3}, None)
    assert (loaded.created_at, loaded.finished_at) == (created, run.finished_at)
    assert loaded.steps == steps
    record = await store.get(run.id)
    assert record is not None and record.instance is None  # a finished run belongs to none


async def test_a_taken_lock_is_reported_not_waited_for(database: Database) -> None:
    other = sqlite3.connect(path_of(database), isolation_level=None)
    writer = SqliteRowWriter(path_of(database))
    run = RunState("wr_busy", "w", {}, ALICE)
    step = _step_row(run.id, "one", StepState("completed"))
    try:
        other.execute("BEGIN IMMEDIATE")
        assert writer.write([_run_row(run, "me")], []) is BUSY  # one row: autocommit
        assert writer.write([_run_row(run, "me")], [step]) is BUSY  # BEGIN IMMEDIATE
        assert writer.busy == 2
        other.execute("COMMIT")
        assert writer.write([_run_row(run, "me")], [step])
    finally:
        other.close()
        writer.close()
    assert await RunStore(database, "reader").get(run.id) is not None


async def test_a_refused_batch_is_a_storage_error_and_writes_nothing(database: Database) -> None:
    writer = SqliteRowWriter(path_of(database))
    run = RunState("wr_fine", "w", {}, ALICE)
    orphan = _step_row("wr_nowhere", "one", StepState("completed"))  # no such run
    try:
        with pytest.raises(StorageError, match="FOREIGN KEY"):
            writer.write([_run_row(run, "me")], [orphan])
        assert writer.write([], []) is True  # the connection is usable again
    finally:
        writer.close()
    assert await RunStore(database, "reader").get(run.id) is None  # rolled back, run too


@pytest.mark.parametrize(("synchronous", "level"), [("normal", 1), ("full", 2)])
def test_synchronous_is_the_connections_pragma(
    tmp_path: Path, synchronous: sqlitewriter.Synchronous, level: int
) -> None:
    writer = SqliteRowWriter(tmp_path / "x.db", synchronous)
    try:
        assert writer.pragma("synchronous") == level
        assert writer.pragma("journal_mode") == "wal"
        assert writer.pragma("foreign_keys") == 1
        # normal writes on the event loop: it never checkpoints there (checkpoint() does)
        assert writer.pragma("wal_autocheckpoint") == (0 if synchronous == "normal" else 1000)
        assert writer.inline is (synchronous == "normal")
    finally:
        writer.close()


async def test_the_store_checkpoints_the_wal_off_the_loop(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlitewriter, "CHECKPOINT_EVERY", 3)
    store = RunStore(database, "me")
    wal = Path(f"{path_of(database)}-wal")
    try:
        for index in range(3):
            await store.save_run(RunState(f"wr_{index}", "w", {}, ALICE), durable=True)
        assert store.sqlite is not None and store.sqlite.commits == 3
        assert store._checkpointing is not None
        await store._checkpointing
        assert store.sqlite.checkpoints == 1
        size = wal.stat().st_size
        for index in range(3, 6):
            await store.save_run(RunState(f"wr_{index}", "w", {}, ALICE), durable=True)
        await store._checkpointing
        assert store.sqlite.checkpoints == 2
        # the checkpointed WAL is written again from its start, not grown
        assert wal.stat().st_size <= size
    finally:
        await store.close()
