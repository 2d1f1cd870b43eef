"""Audit events, argument digests and the background writer: flush, close, outages,
overflow, two writers, two processes and SIGKILL; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import inspect
import json
import logging
import math
import os
import signal
import subprocess
import textwrap
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from catalyst_mcp.observability import audit as audit_module
from catalyst_mcp.observability.audit import (
    AuditEvent,
    AuditLog,
    DeferredDigest,
    digest_arguments,
    search,
    verify,
)
from catalyst_mcp.observability.auditevent import DEFER_MAX_BYTES
from catalyst_mcp.storage.audit_model import AuditRecord
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.migrate import upgrade
from tests.conftest import PYTHON
from tests.observability.conftest import (
    Outage,
    event_,
    open_db,
    rows,
    sqlite_database,
    write,
)


def test_digests_hide_values_but_correlate() -> None:
    key = b"k" * 32
    args = {"password": "hunter2", "query": {"b": 1, "a": [True, None]}, "city": "Paris"}
    out = digest_arguments(args, frozenset({"city"}), key=key)
    text_out = json.dumps(out)
    assert "hunter2" not in text_out
    assert out["city"] == {"value": "Paris"}
    assert out["password"] == {
        "hmac-sha256": hmac.new(key, b'"hunter2"', hashlib.sha256).hexdigest()
    }
    same = digest_arguments({"query": {"a": [True, None], "b": 1}}, key=key)
    assert same["query"] == out["query"]  # key order does not matter
    assert digest_arguments(args, key=b"other")["password"] != out["password"]
    unkeyed = digest_arguments({"password": "hunter2"})
    assert unkeyed == {"password": {"sha256": hashlib.sha256(b'"hunter2"').hexdigest()}}
    assert digest_arguments(None) == {}


def test_long_clear_values_are_digested() -> None:
    out = digest_arguments({"blob": "x" * 5000}, frozenset({"blob"}), key=b"k")
    assert set(out["blob"]) == {"hmac-sha256", "size"}
    assert out["blob"]["size"] == 5002


def test_an_event_from_an_identity() -> None:
    from catalyst_mcp.context import Identity

    who = Identity(subject="carol", kind="service")
    event = AuditEvent.by(who, "resources/read", "file:///x", "denied", latency_ms=2)
    assert (event.actor, event.actor_kind, event.outcome, event.detail) == (
        "carol",
        "service",
        "denied",
        {},
    )


# ---- the writer --------------------------------------------------------------------------


def test_record_is_synchronous_and_needs_no_loop(tmp_path: Path) -> None:
    assert not inspect.iscoroutinefunction(AuditLog.record)
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    log = AuditLog(db, max_queue=1000)
    for n in range(1500):
        log.record(event_(n))
    assert (log.recorded, log.queued, log.dropped, log.committed) == (1500, 1000, 500, 0)
    asyncio.run(db.close())


async def test_the_sqlite_writer_syncs_at_checkpoints_only(tmp_path: Path) -> None:
    async with sqlite_database(tmp_path / "a.db") as db:
        log = AuditLog(db)
        try:
            assert log._thread_engine is not None
            with log._thread_engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            async with db.engine.connect() as conn:  # everything else: FULL
                assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == 2
        finally:
            await log.close()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///file:audit-{id}?mode=memory&uri=true",
        "sqlite:///file:audit-{id}?mode=memory&cache=shared&uri=true",
        "sqlite:///:memory:",
        "sqlite://",
    ],
    ids=["uri-memory", "uri-shared-cache", "memory", "no-name"],
)
async def test_sqlite_that_is_not_a_plain_file_is_written_through_the_engine(url: str) -> None:
    """A second connection (the writer thread's) on a ``file:`` URI may open another database
    (``mode=memory``): the log must write through the database's own engine."""
    db = Database(url.format(id=uuid.uuid4().hex))
    try:
        await upgrade(db)
        async with AuditLog(db) as log:
            assert log._thread_engine is None
            log.record(event_(1))
            await asyncio.wait_for(log.flush(), 5)
        assert (log.committed, log.dropped) == (1, 0)
        assert (await verify(db)).records == 1
    finally:
        await db.close()


async def test_fields_are_cut_to_their_columns(db: Database) -> None:
    async with AuditLog(db) as log:
        log.record(event_(1, actor="a" * 500, target="t" * 600, outcome="x" * 40))
        log.record(event_(2, latency_ms=float("inf"), detail={"bad": float("nan")}))
    found = await search(db)
    assert len(found[0]["actor"]) == 128
    assert len(found[0]["target"]) == 512
    assert len(found[0]["outcome"]) == 16
    assert found[1]["latency_ms"] is None
    assert found[1]["detail"] == {"bad": None}
    assert (await verify(db)).ok


async def test_a_negative_zero_latency_is_stored_as_zero(db: Database) -> None:
    """SQLite gives -0.0 back as 0 (a whole REAL is stored as an integer): the record must
    have been hashed with 0.0."""
    async with AuditLog(db) as log:
        log.record(event_(1, latency_ms=-0.0))
        log.record(event_(2, latency_ms=-0.0001))  # rounds to -0.0
    assert [r["latency_ms"] for r in await search(db)] == [0.0, 0.0]
    assert [math.copysign(1, r["latency_ms"]) for r in await search(db)] == [1.0, 1.0]
    report = await verify(db)
    assert (report.ok, report.records) == (True, 2), report


async def test_flush_waits_for_everything_recorded(db: Database) -> None:
    log = AuditLog(db, batch_size=10, flush_interval=10.0)
    log.start()
    try:
        for n in range(25):
            log.record(event_(n))
        await asyncio.wait_for(log.flush(), 5)  # does not wait for flush_interval
        assert log.committed == 25
        assert len(await rows(db)) == 25
        await log.flush()  # nothing new: returns at once
    finally:
        await log.close()


async def test_records_commit_within_the_flush_interval(db: Database) -> None:
    async with AuditLog(db, flush_interval=0.02) as log:
        log.record(event_(1))
        for _ in range(200):
            if log.committed:
                break
            await asyncio.sleep(0.01)
        assert log.committed == 1


async def test_close_commits_what_was_recorded_then_refuses(db: Database) -> None:
    log = AuditLog(db, flush_interval=10.0)
    log.start()
    for n in range(5):
        log.record(event_(n))
    await log.close()
    assert log.committed == 5
    log.record(event_(6))
    assert log.dropped == 1
    await log.close()  # twice is fine
    with pytest.raises(RuntimeError):
        log.start()
    assert len(await rows(db)) == 5


async def test_flush_before_start_is_an_error(db: Database) -> None:
    log = AuditLog(db)
    await log.flush()  # nothing recorded: nothing to wait for
    log.record(event_(1))
    with pytest.raises(RuntimeError, match="start"):
        await log.flush()
    await log.close()
    assert (log.dropped, log.queued) == (1, 0)


async def test_an_outage_loses_nothing_while_the_queue_has_room(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "catalyst.audit")
    with Outage(db) as outage:
        log = outage.watch(AuditLog(db, batch_size=4, flush_interval=0.001, max_backoff=0.02))
        async with log:
            for n in range(3):
                log.record(event_(n))
            await log.flush()
            outage.down = True
            for n in range(3, 40):
                log.record(event_(n))
                if n % 5 == 0:
                    await asyncio.sleep(0.01)
            while outage.failures < 5:
                await asyncio.sleep(0.01)
            assert log.committed == 3
            outage.down = False
            await asyncio.wait_for(log.flush(), 10)
            assert (log.committed, log.dropped) == (40, 0)
    assert [line["detail"]["n"] for line in await search(db, limit=100)] == list(range(40))
    assert (await verify(db)).ok
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("cannot write" in w for w in warnings) == 1
    assert "OperationalError" in warnings[0]
    assert "database is down" not in " ".join(warnings)


async def test_a_full_queue_drops_new_records_and_counts_them(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """The records waiting were acknowledged first: a new one is dropped, not one of them;
    one recorded with ``keep`` (a call that already ran) goes past the bound."""
    log = AuditLog(db, batch_size=5, max_queue=10)
    for n in range(15):
        log.record(event_(n))
    assert (log.dropped, log.queued, log.full) == (5, 10, True)
    assert any("full" in r.getMessage() for r in caplog.records)
    log.record(event_(15), keep=True)
    assert (log.dropped, log.queued) == (5, 11)
    log.start()
    await log.flush()
    await log.close()
    assert [r["detail"]["n"] for r in await search(db)] == [*range(10), 15]
    assert (await verify(db)).ok


async def test_close_gives_up_after_its_timeout_while_the_database_is_down(db: Database) -> None:
    with Outage(db) as outage:
        outage.down = True
        log = outage.watch(AuditLog(db, flush_interval=0.001, max_backoff=0.01))
        log.start()
        for n in range(7):
            log.record(event_(n))
        await log.close(timeout=0.2)
        assert (log.committed, log.dropped, log.queued) == (0, 7, 0)


async def test_a_commit_that_looked_failed_is_not_written_twice(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, real_sync = audit_module.append_batch, audit_module.append_batch_sync
    calls = []

    def happened(written: bool) -> bool:
        calls.append(written)
        if len(calls) == 1:
            raise ConnectionResetError("lost after COMMIT")
        return written

    async def lossy(*args: Any) -> bool:
        return happened(await real(*args))

    def lossy_sync(*args: Any) -> bool:  # SQLite: written in a worker thread
        return happened(real_sync(*args))

    monkeypatch.setattr(audit_module, "append_batch", lossy)
    monkeypatch.setattr(audit_module, "append_batch_sync", lossy_sync)
    async with AuditLog(db, max_backoff=0.01) as log:
        for n in range(4):
            log.record(event_(n))
        await log.flush()
    assert calls == [True, False]
    assert log.committed == 4
    assert len(await rows(db)) == 4
    assert (await verify(db)).ok


async def test_two_writers_keep_one_chain(place: str) -> None:
    first, second = open_db(place), open_db(place)
    try:
        one = AuditLog(first, batch_size=3, flush_interval=0.001)
        two = AuditLog(second, batch_size=5, flush_interval=0.001)
        one.start()
        two.start()
        for n in range(300):
            (one if n % 3 else two).record(event_(n, actor="one" if n % 3 else "two"))
            if n % 7 == 0:
                await asyncio.sleep(0)
        await asyncio.gather(one.close(), two.close())
        assert one.committed + two.committed == 300
        report = await verify(first)
        assert (report.ok, report.records) == (True, 300)
        found = await search(first, limit=1000)
        assert sorted(r["detail"]["n"] for r in found) == list(range(300))
        actors = [r["actor"] for r in found]
        assert "one" in actors
        assert "two" in actors
    finally:
        await first.close()
        await second.close()


WRITER = textwrap.dedent(
    """
    import asyncio, logging, os, sys
    from catalyst_mcp.observability.audit import AuditEvent, AuditLog
    from catalyst_mcp.storage.db import Database
    from catalyst_mcp.storage.migrate import upgrade

    async def main(path: str, actor: str, limit: int, go: str) -> None:
        db = Database("sqlite:///" + path)
        await upgrade(db)
        print("ready", flush=True)
        while go and not os.path.exists(go):
            await asyncio.sleep(0.002)
        log = AuditLog(db, batch_size=50, flush_interval=0.005)
        log.start()
        n = 0
        while not limit or n < limit:
            for _ in range(20):
                n += 1
                log.record(AuditEvent(actor, "user", "tools/call", f"t{n}", "ok", 1.5, {"n": n}))
            await asyncio.sleep(0.001)
            print("committed", log.committed, flush=True)
        await log.close()
        await db.close()
        print("committed", log.committed, flush=True)

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    """
)


def start_writer(
    script: Path, path: Path, actor: str, limit: int, go: str = ""
) -> subprocess.Popen[str]:
    """The WRITER script on ``path``: it records ``limit`` events (0: until killed) once the
    file ``go`` exists (at once if none given), printing how many are committed."""
    return subprocess.Popen(
        [PYTHON, str(script), str(path), actor, str(limit), go],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def stop_writer(proc: subprocess.Popen[str]) -> str:
    """Kill ``proc`` by PID if it still runs; its stderr."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    stderr = proc.stderr.read() if proc.stderr else ""
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return stderr


@pytest.mark.subprocess
async def test_sigkill_loses_only_uncommitted_records(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER, encoding="utf-8")
    path = tmp_path / "killed.db"
    proc = start_writer(script, path, "k", 0)
    reported = 0
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.startswith("committed"):
                continue
            reported = int(line.split()[1])
            if reported >= 3000:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        stderr = stop_writer(proc)
    assert proc.returncode == -signal.SIGKILL, stderr
    assert reported >= 3000, stderr
    async with sqlite_database(path) as db:
        report = await verify(db)
        assert report.ok, report
        assert report.records >= reported
        async with db.engine.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(AuditRecord))).scalar()
        assert count == report.records
        # and the chain goes on from where it was cut
        await write(db, 5)
        assert (await verify(db)).records == report.records + 5


@pytest.mark.subprocess
async def test_two_processes_on_one_sqlite_file_keep_one_chain(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER, encoding="utf-8")
    path = tmp_path / "shared.db"
    async with sqlite_database(path):
        pass
    go = tmp_path / "go"
    procs = [start_writer(script, path, actor, 2000, str(go)) for actor in ("p1", "p2")]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
        go.touch()
        for proc in procs:
            proc.wait(30)
    finally:
        errors = [stop_writer(proc) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], errors
    assert errors == ["", ""]  # no retries were needed: no "cannot write" warning
    async with sqlite_database(path) as db:
        report = await verify(db)
        assert (report.ok, report.records) == (True, 4000)
        found = await search(db, limit=4000)
    assert [r["seq"] for r in found] == list(range(1, 4001))
    # Both ran at once (the go file), but SQLite's busy handler is not fair: one may well
    # write all its records before the other gets the lock, so the order is not checked.
    assert sorted(r["actor"] for r in found) == ["p1"] * 2000 + ["p2"] * 2000


def test_the_public_api_is_declared() -> None:
    assert set(audit_module.__all__) == {
        "OUTCOMES",
        "AuditEvent",
        "AuditLog",
        "DeferredDigest",
        "VerifyReport",
        "digest_arguments",
        "export",
        "search",
        "verify",
    }


async def test_deferred_digests_are_computed_when_written(db: Database) -> None:
    from catalyst_mcp.observability.audit import DeferredDigest, digest_arguments

    arguments = {"query": "canary-deferred-1", "limit": 5}
    async with AuditLog(db) as log:
        log.record(
            AuditEvent(
                "a",
                "user",
                "tools/call",
                "t",
                "ok",
                1.0,
                {"arguments": DeferredDigest(arguments, frozenset({"limit"}), b"k" * 32)},
            )
        )
    (record,) = await search(db)
    assert record["detail"]["arguments"] == digest_arguments(
        arguments, frozenset({"limit"}), key=b"k" * 32
    )
    assert record["detail"]["arguments"]["limit"] == {"value": 5}
    assert "canary-deferred-1" not in str(record)
    assert "canary" not in repr(DeferredDigest(arguments))


# ---- deferred digests: raw arguments are held only for a short queue --------------------------

KEY = b"k" * 32


class Arguments(dict[str, Any]):
    """Plain JSON arguments that a weak reference can watch."""


def deferred(arguments: Any) -> AuditEvent:
    return AuditEvent(
        "a", "user", "tools/call", "t", "ok", 1.0, {"arguments": DeferredDigest(arguments, key=KEY)}
    )


def waiting_arguments(log: AuditLog) -> list[bool]:
    return [isinstance(e.detail["arguments"], DeferredDigest) for _, _, e, _ in log._queue]


def test_small_arguments_wait_for_the_writer_large_ones_are_digested_at_once(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    log = AuditLog(db)
    large = {"doc": "x" * DEFER_MAX_BYTES}
    log.record(deferred({"q": "small"}))
    log.record(deferred(large))
    log.record(deferred({"odd": {1, 2}}))  # not plain JSON: its size is unknown, digested
    assert waiting_arguments(log) == [True, False, False]
    assert log._queue[1][2].detail["arguments"] == digest_arguments(large, key=KEY)
    asyncio.run(db.close())


def test_beyond_one_batch_arguments_are_digested_when_recorded(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    log = AuditLog(db, batch_size=4)  # not started: nothing is written
    kept = [Arguments(n=n) for n in range(10)]
    watch = [weakref.ref(arguments) for arguments in kept]
    for arguments in kept:
        log.record(deferred(arguments))
    assert waiting_arguments(log) == [True] * 4 + [False] * 6
    assert log._queue[9][2].detail["arguments"] == digest_arguments({"n": 9}, key=KEY)
    del kept, arguments
    gc.collect()
    assert [ref() is not None for ref in watch] == [True] * 4 + [False] * 6
    asyncio.run(db.close())


async def test_during_an_outage_arguments_are_digested_when_recorded(db: Database) -> None:
    """The database is down: the queue may grow to max_queue records, so none of them may
    hold raw arguments (up to 4 MiB each)."""
    with Outage(db) as outage:
        log = outage.watch(AuditLog(db, batch_size=50, flush_interval=0.001, max_backoff=0.02))
        async with log:
            outage.down = True
            log.record(event_(0))
            while not log._outage:  # the writer noticed
                await asyncio.sleep(0.005)
            arguments = Arguments(document="x" * 1000)
            watch = weakref.ref(arguments)
            log.record(deferred(arguments))
            del arguments
            gc.collect()
            assert watch() is None  # digested and let go, not queued
            assert waiting_arguments(log)[-1] is False
            outage.down = False
            await asyncio.wait_for(log.flush(), 10)
    found = await search(db)
    assert found[-1]["detail"]["arguments"] == digest_arguments({"document": "x" * 1000}, key=KEY)
    assert (await verify(db)).ok


# ---- close() giving up while a batch is being written -------------------------------------------


async def test_close_does_not_count_a_batch_still_being_written_as_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite: the batch is written in a worker thread, which a timeout cannot stop. It may
    commit after close() gave up: neither committed nor dropped, but unsettled."""
    caplog.set_level(logging.WARNING, "catalyst.audit")
    monkeypatch.setattr(audit_module, "CLOSE_GRACE", 0.05)
    entered, release = threading.Event(), threading.Event()
    real = audit_module.append_batch_sync

    def slow(*args: Any) -> bool:
        entered.set()
        release.wait(10)
        return real(*args)

    monkeypatch.setattr(audit_module, "append_batch_sync", slow)
    async with sqlite_database(tmp_path / "a.db") as db:
        log = AuditLog(db, flush_interval=0.001)
        log.start()
        for n in range(3):
            log.record(event_(n))
        await asyncio.to_thread(entered.wait, 10)
        await log.close(timeout=0.05)
        assert (log.committed, log.dropped, log.unsettled, log.queued) == (0, 0, 3, 0)
        assert "a batch of 3 records was being written: it may still be committed" in caplog.text
        release.set()
        for _ in range(500):
            if "committed after all" in caplog.text:
                break
            await asyncio.sleep(0.01)
        assert "the batch of 3 records being written at close was committed after all" in (
            caplog.text
        )
        assert (await verify(db)).records == 3


async def test_close_waits_a_moment_for_a_batch_being_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = audit_module.append_batch_sync

    def slow(*args: Any) -> bool:
        time.sleep(0.2)
        return real(*args)

    monkeypatch.setattr(audit_module, "append_batch_sync", slow)
    async with sqlite_database(tmp_path / "a.db") as db:
        log = AuditLog(db, flush_interval=0.001)
        log.start()
        for n in range(3):
            log.record(event_(n))
        await asyncio.sleep(0.05)  # the thread is writing
        await log.close(timeout=0.01)  # then CLOSE_GRACE (1 s) for the attempt under way
        assert (log.committed, log.dropped, log.unsettled) == (3, 0, 0)
        assert (await verify(db)).records == 3


async def test_close_cancelling_an_append_reports_it_unsettled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a worker thread (PostgreSQL; SQLite in memory) the append is cancelled: its
    COMMIT may already have been sent, so it is not counted as dropped either."""
    monkeypatch.setattr(audit_module, "CLOSE_GRACE", 0.05)
    started = asyncio.Event()

    async def hanging(*args: Any) -> bool:
        started.set()
        await asyncio.Event().wait()
        return True

    monkeypatch.setattr(audit_module, "append_batch", hanging)
    db = Database("sqlite:///:memory:")
    try:
        await upgrade(db)
        log = AuditLog(db, flush_interval=0.001)
        assert log._thread_engine is None
        log.start()
        for n in range(4):
            log.record(event_(n))
        await started.wait()
        log.record(event_(4))  # still queued: certainly not written
        await log.close(timeout=0.05)
        assert (log.committed, log.dropped, log.unsettled, log.queued) == (0, 1, 4, 0)
    finally:
        await db.close()
