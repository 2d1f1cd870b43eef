"""Strict durability in the audit writer: :meth:`AuditLog.commit` returns only once its record
is committed (durably), concurrent callers share commits, and a record that cannot be committed
is an error the caller sees; :meth:`AuditLog.room` holds callers back while the queue is full.
On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from catalyst_mcp.errors import AuditUnavailable
from catalyst_mcp.observability.audit import AuditLog, verify
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.migrate import upgrade
from tests.live import poll
from tests.observability.conftest import Outage, event_, rows, sqlite_database, writes_held
from tests.storage.conftest import PG_URL, pg_schema


def commits_of(log: AuditLog, db: Database) -> list[int]:
    """A list that grows by one at every transaction the log's connections commit."""
    seen: list[int] = []
    engine = log._thread_engine or db.engine.sync_engine
    event.listen(engine, "commit", lambda conn: seen.append(1))
    return seen


async def writing(log: AuditLog) -> None:
    """Until the writer is inside a batch's transaction (there it waits for a held lock)."""
    await poll(lambda: log._writing, what="the writer writing")
    await asyncio.sleep(0.1)  # and waiting for the lock by now


async def test_commit_returns_only_once_its_record_is_committed(place: str, db: Database) -> None:
    async with AuditLog(db, flush_interval=0.001) as log:
        async with writes_held(place):
            waiting = asyncio.create_task(log.commit(event_(1), timeout=30))
            await writing(log)
            assert not waiting.done()
            assert (log.committed, len(await rows(db))) == (0, 0)
        await asyncio.wait_for(waiting, 10)
        assert [r.target for r in await rows(db)] == ["github__tool_1"]  # before any flush
        assert (log.committed, log.commits) == (1, 1)
    assert (await verify(db)).ok


async def test_concurrent_commits_share_one_transaction(place: str, db: Database) -> None:
    """Group commit: while a batch waits for the database, the records queued meanwhile wait
    together, and all of them go in the next transaction."""
    log = AuditLog(db, flush_interval=0.001)
    seen = commits_of(log, db)
    async with log:
        async with writes_held(place):
            first = asyncio.create_task(log.commit(event_(0), timeout=30))
            await writing(log)
            rest = [asyncio.create_task(log.commit(event_(n), timeout=30)) for n in range(1, 64)]
            await asyncio.sleep(0.05)
            assert not any(task.done() for task in [first, *rest])
        await asyncio.wait_for(asyncio.gather(first, *rest), 10)
        assert (log.committed, log.commits, len(seen)) == (64, 2, 2)
    report = await verify(db)
    assert (report.ok, report.records) == (True, 64)


async def test_strict_callers_do_not_wait_for_a_batch_to_gather(db: Database) -> None:
    async with AuditLog(db, flush_interval=30.0) as log:
        await asyncio.wait_for(log.commit(event_(1)), 5)  # not 30 s
        assert log.committed == 1


def synchronous_at_commit(engine: Any, setting: str) -> list[str]:
    """A list that gets ``setting`` as it is at every commit on ``engine``."""
    seen: list[str] = []

    def look(conn: Any) -> None:
        cursor = conn.connection.dbapi_connection.cursor()
        cursor.execute(setting)
        seen.append(str(cursor.fetchone()[0]))

    event.listen(engine, "commit", look)
    return seen


async def test_sqlite_syncs_strict_batches_only(tmp_path: Path) -> None:
    """synchronous=FULL (the WAL synced at the commit) for a batch a caller waits for, NORMAL
    (synced at checkpoints) for the others."""
    async with sqlite_database(tmp_path / "a.db") as db:
        log = AuditLog(db, flush_interval=0.001)
        assert log._thread_engine is not None
        seen = synchronous_at_commit(log._thread_engine, "PRAGMA synchronous")
        async with log:
            await log.commit(event_(1))
            log.record(event_(2))
            await log.flush()
            await log.commit(event_(3))
    assert seen == ["2", "1", "2"]  # FULL, NORMAL, FULL


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("configured", "strict", "buffered"),
    [("off", "on", "off"), ("on", "on", "on"), ("remote_apply", "remote_apply", "remote_apply")],
)
async def test_postgresql_commits_strict_batches_durably(
    configured: str, strict: str, buffered: str
) -> None:
    """Where the role or database turns synchronous_commit off, a strict batch's transaction
    turns it on; a stricter setting is left as it is."""
    async with pg_schema() as schema:
        db = Database(
            PG_URL,
            connect_args={
                "server_settings": {"search_path": schema, "synchronous_commit": configured}
            },
        )
        try:
            await upgrade(db)
            seen = synchronous_at_commit(db.engine.sync_engine, "SHOW synchronous_commit")
            async with AuditLog(db, flush_interval=0.001) as log:
                await log.commit(event_(1))
                log.record(event_(2))
                await log.flush()
                await log.commit(event_(3))
        finally:
            await db.close()
    assert seen == [strict, buffered, strict]


async def test_a_commit_not_made_in_time_is_an_error_and_stays_queued(db: Database) -> None:
    with Outage(db) as outage:
        log = outage.watch(AuditLog(db, flush_interval=0.001, max_backoff=0.02))
        async with log:
            assert log.writable
            outage.down = True
            with pytest.raises(AuditUnavailable, match=r"not committed within 0.3 s"):
                await log.commit(event_(1), timeout=0.3)
            assert not log.writable
            outage.down = False
            await asyncio.wait_for(log.flush(), 10)
            assert log.writable
            assert (log.committed, log.dropped) == (1, 0)
    assert [r.target for r in await rows(db)] == ["github__tool_1"]


async def test_a_dropped_or_closed_record_is_an_error_at_once(place: str, db: Database) -> None:
    log = AuditLog(db, batch_size=2, max_queue=2, flush_interval=0.001)
    log.start()
    async with writes_held(place):
        log.record(event_(1))
        log.record(event_(2))
        await writing(log)
        assert log.full
        with pytest.raises(AuditUnavailable, match="2 audit records already wait"):
            await asyncio.wait_for(log.commit(event_(3)), 5)
        kept = asyncio.create_task(log.commit(event_(4), timeout=30, keep=True))
        await asyncio.sleep(0.05)
        assert not kept.done()
    await asyncio.wait_for(kept, 10)
    await log.close()
    with pytest.raises(AuditUnavailable, match="closed"):
        await log.commit(event_(5))
    assert [r.target for r in await rows(db)] == [f"github__tool_{n}" for n in (1, 2, 4)]
    assert not log.writable


async def test_close_tells_waiting_callers_their_record_was_not_written(db: Database) -> None:
    with Outage(db) as outage:
        log = outage.watch(AuditLog(db, flush_interval=0.001, max_backoff=0.01))
        log.start()
        outage.down = True
        waiting = asyncio.create_task(log.commit(event_(1), timeout=30))
        await poll(lambda: outage.failures, what="a failed attempt")
        await log.close(timeout=0.1)
        with pytest.raises(AuditUnavailable, match="not written: the audit log is closed"):
            await asyncio.wait_for(waiting, 5)


async def test_a_cancelled_caller_leaves_its_record_to_be_written(place: str, db: Database) -> None:
    async with AuditLog(db, flush_interval=0.001) as log:
        async with writes_held(place):
            waiting = asyncio.create_task(log.commit(event_(1), timeout=30))
            await writing(log)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        await asyncio.wait_for(log.flush(), 10)
        assert log.committed == 1


async def test_room_waits_until_the_writer_catches_up(place: str, db: Database) -> None:
    async with AuditLog(db, batch_size=2, max_queue=3, flush_interval=0.001) as log:
        await log.room()  # empty: at once
        async with writes_held(place):
            for n in range(3):
                log.record(event_(n))
            await writing(log)
            with pytest.raises(AuditUnavailable, match="3 audit records still wait"):
                await log.room(timeout=0.1)
            waiting = asyncio.create_task(log.room(timeout=30))
            await asyncio.sleep(0.05)
            assert not waiting.done()
        await asyncio.wait_for(waiting, 10)
        assert not log.full
