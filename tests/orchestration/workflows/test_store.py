"""The run store's writer: a durable write is committed when it returns, on SQLite and
PostgreSQL, with ``synchronous`` normal and full; a SQLite write lock held by another
connection is waited for without blocking the event loop; a cancelled write is not lost."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import event

from catalyst_mcp.context import Identity
from catalyst_mcp.errors import StorageError
from catalyst_mcp.orchestration.workflows import store as store_module
from catalyst_mcp.orchestration.workflows.runstate import RunState, StepState
from catalyst_mcp.orchestration.workflows.sqlitewriter import SqliteRowWriter, Synchronous
from catalyst_mcp.orchestration.workflows.store import DURABLE_COMMIT, RunStore
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.migrate import upgrade
from catalyst_mcp.storage.models import utcnow
from tests.orchestration.workflows.support import database_url

ALICE = Identity(subject="alice", kind="user", roles=("admin",), via="api_key")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest_asyncio.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'state' / 'c.db'}")
    await upgrade(db)
    yield db
    await db.close()


def file_of(db: Database) -> Path:
    assert db.url.database is not None
    return Path(db.url.database)


async def committed_steps(db: Database, run_id: str) -> dict[str, str]:
    """What another connection sees: only what is committed."""
    return {s.key: s.status for s in await RunStore(db, "reader").steps(run_id)}


@pytest.mark.parametrize("synchronous", ["normal", "full"])
@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_durable_write_is_committed_when_it_returns(
    backend: str, synchronous: Synchronous, tmp_path: Path
) -> None:
    async with database_url(backend, tmp_path) as url:
        db = Database(url)
        try:
            await upgrade(db)
            statements: list[str] = []
            event.listen(
                db.engine.sync_engine,
                "before_cursor_execute",
                lambda conn, cursor, sql, *rest: statements.append(sql),
            )
            store = RunStore(db, "me", synchronous=synchronous)  # not started: no writer
            run = RunState("wr_durable", "w", {"n": 1}, ALICE)
            await store.save_run(run)  # queued (no writer behind: until a durable write)
            started = StepState("running", started_at=utcnow())
            await store.step(run, "one", started, durable=False)
            done = StepState("completed", attempts=1, result={"text": "hi"}, finished_at=utcnow())
            await store.step(run, "one", done, durable=True)  # the run's row goes with it
            assert await committed_steps(db, run.id) == {"one": "completed"}
            run.status, run.finished_at = "completed", utcnow()
            await store.save_run(run, durable=True)
            record = await store.get(run.id)
            await store.close()
        finally:
            await db.close()
    assert record is not None and record.status == "completed"
    assert store.batches == 2  # one write per durable transition, the start rode along
    if backend == "sqlite":
        assert store.sqlite is not None and store.sqlite.synchronous == synchronous
        assert DURABLE_COMMIT not in statements  # written by sqlite3, not the engine
    else:
        assert store.sqlite is None
        assert (DURABLE_COMMIT in statements) is (synchronous == "full")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_run_that_ends_ends_its_running_steps_in_the_same_commit(
    backend: str, tmp_path: Path
) -> None:
    async with database_url(backend, tmp_path) as url:
        db = Database(url)
        try:
            await upgrade(db)
            store = RunStore(db, "me")
            run = RunState("wr_ended", "w", {}, ALICE)
            started = utcnow()
            run.steps["one"] = StepState("running", started_at=started)
            await store.step(run, "one", run.steps["one"], durable=True)
            run.steps["two"] = StepState("completed", attempts=1, finished_at=utcnow())
            await store.step(run, "two", run.steps["two"], durable=True)
            before = store.batches
            run.status = "cancelled"
            run.finished_at = run.updated_at = utcnow()
            await store.save_run(run, durable=True)
            steps = {s.key: s for s in await RunStore(db, "reader").steps(run.id)}
            await store.close()
        finally:
            await db.close()
    assert store.batches - before == 1  # the steps' ends went with the run's
    assert {key: s.status for key, s in steps.items()} == {"one": "cancelled", "two": "completed"}
    assert steps["one"].started_at == started
    assert steps["one"].finished_at == run.finished_at
    assert run.steps["one"].status == "cancelled"


async def test_full_writes_in_a_worker_thread_normal_on_the_loop(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    real = SqliteRowWriter.write

    def spy(self: SqliteRowWriter, *args: Any) -> bool:
        threads.append(self.synchronous + (":loop" if on_loop() else ":worker"))
        return real(self, *args)

    loop_thread = threading.get_ident()

    def on_loop() -> bool:
        return threading.get_ident() == loop_thread

    monkeypatch.setattr(SqliteRowWriter, "write", spy)
    for synchronous in ("normal", "full"):
        store = RunStore(sqlite_db, "me", synchronous=synchronous)  # type: ignore[arg-type]
        await store.save_run(RunState(f"wr_{synchronous}", "w", {}, ALICE), durable=True)
        await store.close()
    assert threads == ["normal:loop", "full:worker"]


async def test_a_lock_held_elsewhere_is_waited_for_without_blocking_the_loop(
    sqlite_db: Database,
) -> None:
    other = sqlite3.connect(file_of(sqlite_db), isolation_level=None, check_same_thread=False)
    store = RunStore(sqlite_db, "me")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    clock = asyncio.create_task(ticker())
    try:
        other.execute("BEGIN IMMEDIATE")  # e.g. the audit writer's transaction
        write = asyncio.create_task(
            store.save_run(RunState("wr_wait", "w", {}, ALICE), durable=True)
        )
        await asyncio.sleep(0.1)
        assert not write.done()
        assert ticks > 10  # the loop kept running
        other.execute("COMMIT")
        await asyncio.wait_for(write, 5)
    finally:
        clock.cancel()
        other.close()
        await store.close()
    assert store.sqlite is not None and store.sqlite.busy >= 2
    assert await store.get("wr_wait") is not None


async def test_a_lock_never_released_is_a_storage_error(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_SECONDS", 0.05)
    other = sqlite3.connect(file_of(sqlite_db), isolation_level=None)
    store = RunStore(sqlite_db, "me")
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageError, match="stayed locked by another writer"):
            await store.save_run(RunState("wr_stuck", "w", {}, ALICE), durable=True)
        other.execute("ROLLBACK")
    finally:
        other.close()
        await store.close()


async def test_a_write_cancelled_while_waiting_is_written_later(sqlite_db: Database) -> None:
    other = sqlite3.connect(file_of(sqlite_db), isolation_level=None)
    store = RunStore(sqlite_db, "me")
    run = RunState("wr_cancel", "w", {}, ALICE)
    try:
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.create_task(store.save_run(run, durable=True))
        await asyncio.sleep(0.02)
        write.cancel()
        with pytest.raises(asyncio.CancelledError):
            await write
        other.execute("COMMIT")
        await store.flush()  # e.g. at stop: what was queued is not lost
    finally:
        other.close()
        await store.close()
    assert await store.get(run.id) is not None


async def test_close_keeps_a_batch_the_writer_behind_was_writing(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()
    real = SqliteRowWriter.write

    def slow(self: SqliteRowWriter, *args: Any) -> bool:
        entered.set()
        release.wait(5)
        return real(self, *args)

    monkeypatch.setattr(SqliteRowWriter, "write", slow)
    store = RunStore(sqlite_db, "me", synchronous="full")  # written in a worker thread
    store.start()
    await store.save_run(RunState("wr_behind", "w", {}, ALICE))  # behind
    assert await asyncio.to_thread(entered.wait, 5)
    closing = asyncio.create_task(store.close())  # the stop of a gateway
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.wait_for(closing, 5)
    assert await store.get("wr_behind") is not None
