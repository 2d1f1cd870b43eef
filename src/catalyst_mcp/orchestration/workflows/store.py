"""Workflow runs in the database: a write-behind writer for the engine, and the reads and
claims the CLI, the API, resume and schedules need.

Writes go through one background writer per gateway. Each batch is one transaction; within a
batch the latest state of each run and each step wins (a step that started and finished
between two batches is written once). A caller that passes ``durable`` waits until the batch
holding its write is committed (group commit); others go on at once. On a SQLite file the
store has its own connections with ``synchronous=NORMAL`` in WAL mode: a commit survives the
gateway being killed (it is in the WAL the OS holds), only a power loss may take the last
ones back (decision 022 has the measurements).

Instances: every running run names the instance executing it and that instance refreshes
``heartbeat_at``; :meth:`RunStore.claim_stale` lets another instance take over the runs of one
whose heartbeat stopped (compare-and-set on the old heartbeat, so only one takes each run).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, and_, create_engine, delete, event, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from catalyst_mcp.errors import CatalystError, StorageError
from catalyst_mcp.orchestration.workflows.runstate import (
    RunState,
    StepState,
    identity_from_json,
    identity_to_json,
)
from catalyst_mcp.storage.db import Database, sqlite_file
from catalyst_mcp.storage.models import utcnow
from catalyst_mcp.storage.workflow_model import WorkflowFire, WorkflowRun, WorkflowStep

__all__ = ["RunRecord", "RunStore", "StepRecord"]

log = logging.getLogger("catalyst.workflows")

_RUN_UPDATED = (
    "status",
    "output",
    "error",
    "updated_at",
    "finished_at",
    "instance",
    "heartbeat_at",
)
_STEP_UPDATED = ("status", "attempts", "result", "is_error", "error", "started_at", "finished_at")


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as stored (for lists and ``show``)."""

    id: str
    workflow: str
    status: str
    subject: str
    trigger: str
    task_era: str | None
    inputs: dict[str, Any]
    output: Any
    error: dict[str, Any] | None
    instance: str | None
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    identity: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workflow": self.workflow,
            "status": self.status,
            "subject": self.subject,
            "trigger": self.trigger,
            "inputs": self.inputs,
            "output": self.output,
            "error": self.error,
            "cancelRequested": self.cancel_requested,
            "createdAt": _iso(self.created_at),
            "updatedAt": _iso(self.updated_at),
            "finishedAt": _iso(self.finished_at) if self.finished_at else None,
        }


@dataclass(frozen=True, slots=True)
class StepRecord:
    key: str
    status: str
    attempts: int
    result: Any
    is_error: bool
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": self.status,
            "attempts": self.attempts,
            "result": self.result,
            "isError": self.is_error,
            "error": self.error,
            "startedAt": _iso(self.started_at) if self.started_at else None,
            "finishedAt": _iso(self.finished_at) if self.finished_at else None,
        }


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RunStore:
    """Runs of one database, written by ``instance`` (this gateway process)."""

    def __init__(self, db: Database, instance: str) -> None:
        self.instance = instance
        self.db = db
        # SQLite file: batches are written by a plain sqlite3 connection in a worker thread
        # (one thread hop per batch instead of one per statement), synchronous=NORMAL
        self._sync: Engine | None = _thread_engine(db)
        self._runs: dict[str, dict[str, Any]] = {}
        self._steps: dict[tuple[str, str], dict[str, Any]] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # committed batches (tests and bench)
        # told of every step that ended and every run that ended, as they are saved (the
        # event bus: workflow.step_finished, workflow.run_finished)
        self.on_step_end: Callable[[RunState, str, StepState], None] | None = None
        self.on_run_end: Callable[[RunState], None] | None = None

    # ---- the writer --------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._write_loop(), name="catalyst-workflow-writer"
            )

    async def close(self) -> None:
        await self.flush()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._sync is not None:
            self._sync.dispose()

    async def save_run(self, run: RunState, *, durable: bool = False) -> None:
        """Queue the run's row (as it is now); with ``durable``, wait for its commit."""
        self._runs[run.id] = _run_row(run, self.instance)
        if run.done and self.on_run_end is not None:
            self.on_run_end(run)
        await self._queued(durable)

    async def step(self, run: RunState, key: str, state: StepState, *, durable: bool) -> None:
        self._steps[(run.id, key)] = _step_row(run.id, key, state)
        if state.status != "running" and self.on_step_end is not None:
            self.on_step_end(run, key, state)
        if run.id not in self._runs:
            self._runs[run.id] = _run_row(run, self.instance)
        await self._queued(durable)

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        if self._runs or self._steps:
            await self._queued(True)

    async def _queued(self, durable: bool) -> None:
        self._wake.set()
        if not durable:
            return
        if self._task is None:  # not started (tests, the CLI): write now
            await self._write_batch()
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # let the writes of this turn of the loop join the batch
            try:
                await self._write_batch()
            except Exception:  # logged; the waiters are told
                log.exception("writing workflow runs failed")

    async def _write_batch(self) -> None:
        runs, self._runs = self._runs, {}
        steps, self._steps = self._steps, {}
        waiters, self._waiters = self._waiters, []
        error: BaseException | None = None
        if runs or steps:
            try:
                if self._sync is not None:
                    await asyncio.to_thread(self._write_in_thread, runs, steps)
                else:
                    async with self.db.begin(write=True) as conn:
                        for statement, rows in _statements(self.db.insert, runs, steps):
                            await conn.execute(statement, rows)
                self.batches += 1
            except (CatalystError, OSError, SQLAlchemyError) as exc:
                error = exc
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(StorageError(f"cannot record workflow progress: {error}"))

    def _write_in_thread(
        self, runs: dict[str, dict[str, Any]], steps: dict[tuple[str, str], dict[str, Any]]
    ) -> None:
        assert self._sync is not None
        with self._sync.begin() as conn:
            conn.exec_driver_sql("SELECT 1")  # BEGIN IMMEDIATE happens on the first statement
            for statement, rows in _statements(lambda m: sqlite.insert(m), runs, steps):
                conn.execute(statement, rows)

    # ---- reads -------------------------------------------------------------------------------

    async def get(self, run_id: str) -> RunRecord | None:
        async with self.db.begin() as conn:
            row = (
                await conn.execute(select(WorkflowRun.__table__).where(WorkflowRun.id == run_id))
            ).first()
        return _record(row._mapping) if row is not None else None

    async def steps(self, run_id: str) -> list[StepRecord]:
        table = WorkflowStep.__table__
        async with self.db.begin() as conn:
            rows = (
                await conn.execute(
                    select(table)
                    .where(WorkflowStep.run_id == run_id)
                    .order_by(WorkflowStep.started_at, WorkflowStep.key)
                )
            ).all()
        return [
            StepRecord(
                key=r.key,
                status=r.status,
                attempts=r.attempts,
                result=_unwrap(r.result),
                is_error=r.is_error,
                error=r.error,
                started_at=r.started_at,
                finished_at=r.finished_at,
            )
            for r in rows
        ]

    async def load(self, run_id: str) -> RunState | None:
        """A run with its steps, as the engine resumes it."""
        record = await self.get(run_id)
        if record is None:
            return None
        run = RunState(
            id=record.id,
            workflow=record.workflow,
            inputs=record.inputs,
            identity=identity_from_json(record.identity),
            trigger=record.trigger,
            status="running" if record.status == "running" else record.status,  # type: ignore[arg-type]
            output=record.output,
            error=record.error,
            task_era=record.task_era,
            created_at=record.created_at,
            updated_at=record.updated_at,
            finished_at=record.finished_at,
        )
        for step in await self.steps(run_id):
            run.steps[step.key] = StepState(
                status=step.status,  # type: ignore[arg-type]
                attempts=step.attempts,
                result=step.result,
                is_error=step.is_error,
                error=step.error,
                started_at=step.started_at,
                finished_at=step.finished_at,
            )
        return run

    async def runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        subject: str | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """The newest runs first, narrowed by workflow, status and subject."""
        query = select(WorkflowRun.__table__)
        if workflow is not None:
            query = query.where(WorkflowRun.workflow == workflow)
        if status is not None:
            query = query.where(WorkflowRun.status == status)
        if subject is not None:
            query = query.where(WorkflowRun.subject == subject)
        query = query.order_by(WorkflowRun.created_at.desc(), WorkflowRun.id).limit(limit)
        async with self.db.begin() as conn:
            rows = (await conn.execute(query)).all()
        return [_record(r._mapping) for r in rows]

    # ---- cancellation, instances, schedules --------------------------------------------------

    async def request_cancel(self, run_id: str) -> bool:
        """Ask whoever runs ``run_id`` to cancel it; False if it is no running run."""
        async with self.db.begin(write=True) as conn:
            done = await conn.execute(
                update(WorkflowRun)
                .where(WorkflowRun.id == run_id, WorkflowRun.status == "running")
                .values(cancel_requested=True, updated_at=utcnow())
            )
        return bool(done.rowcount)

    async def cancels_for(self, run_ids: list[str]) -> list[str]:
        """Which of ``run_ids`` someone asked to cancel."""
        if not run_ids:
            return []
        async with self.db.begin() as conn:
            rows = await conn.execute(
                select(WorkflowRun.id).where(
                    WorkflowRun.id.in_(run_ids), WorkflowRun.cancel_requested.is_(True)
                )
            )
            return [r[0] for r in rows]

    async def heartbeat(self, run_ids: list[str]) -> None:
        if not run_ids:
            return
        async with self.db.begin(write=True) as conn:
            await conn.execute(
                update(WorkflowRun)
                .where(WorkflowRun.id.in_(run_ids), WorkflowRun.status == "running")
                .values(instance=self.instance, heartbeat_at=utcnow())
            )

    async def claim_stale(self, stale_before: datetime, limit: int = 50) -> list[str]:
        """Take over running runs whose heartbeat is older than ``stale_before`` (their
        instance died); the ids this instance now owns."""
        async with self.db.begin() as conn:
            rows = (
                await conn.execute(
                    select(WorkflowRun.id, WorkflowRun.heartbeat_at)
                    .where(
                        WorkflowRun.status == "running",
                        WorkflowRun.heartbeat_at < stale_before,
                    )
                    .limit(limit)
                )
            ).all()
        claimed = []
        for run_id, beat in rows:
            async with self.db.begin(write=True) as conn:
                done = await conn.execute(
                    update(WorkflowRun)
                    .where(
                        and_(WorkflowRun.id == run_id, WorkflowRun.heartbeat_at == beat),
                        WorkflowRun.status == "running",
                    )
                    .values(instance=self.instance, heartbeat_at=utcnow())
                )
            if done.rowcount:
                claimed.append(run_id)
        return claimed

    async def claim_fire(self, schedule: str, fire_at: datetime, run_id: str) -> bool:
        """Claim one due time of a schedule; False if another instance already did."""
        try:
            async with self.db.begin(write=True) as conn:
                await conn.execute(
                    self.db.insert(WorkflowFire).values(
                        schedule=schedule,
                        fire_at=fire_at,
                        instance=self.instance,
                        run_id=run_id,
                        claimed_at=utcnow(),
                    )
                )
        except StorageError as error:
            if isinstance(error.__cause__, IntegrityError):
                return False
            raise
        return True

    async def last_fire(self, schedule: str) -> datetime | None:
        async with self.db.begin() as conn:
            row = (
                await conn.execute(
                    select(WorkflowFire.fire_at)
                    .where(WorkflowFire.schedule == schedule)
                    .order_by(WorkflowFire.fire_at.desc())
                    .limit(1)
                )
            ).first()
        return row[0] if row is not None else None

    async def forget_fires(self, before: datetime) -> None:
        async with self.db.begin(write=True) as conn:
            await conn.execute(delete(WorkflowFire).where(WorkflowFire.fire_at < before))


def _statements(
    insert: Any, runs: dict[str, dict[str, Any]], steps: dict[tuple[str, str], dict[str, Any]]
) -> list[tuple[Any, list[dict[str, Any]]]]:
    """The upserts of one batch: runs first (steps refer to them)."""
    out = []
    if runs:
        statement = insert(WorkflowRun)
        out.append(
            (
                statement.on_conflict_do_update(
                    index_elements=["id"],
                    set_={name: statement.excluded[name] for name in _RUN_UPDATED},
                ),
                list(runs.values()),
            )
        )
    if steps:
        statement = insert(WorkflowStep)
        out.append(
            (
                statement.on_conflict_do_update(
                    index_elements=["run_id", "key"],
                    set_={name: statement.excluded[name] for name in _STEP_UPDATED},
                ),
                list(steps.values()),
            )
        )
    return out


def _thread_engine(db: Database) -> Engine | None:
    """A synchronous engine on the same SQLite file, for the writer's thread; None for other
    databases and for SQLite databases that are no plain file."""
    if db.dialect != "sqlite" or sqlite_file(db.url) is None:
        return None
    engine = create_engine(
        db.url.set(drivername="sqlite"),
        hide_parameters=True,
        json_serializer=lambda value: orjson.dumps(value).decode(),
        json_deserializer=orjson.loads,
        connect_args={"timeout": 30.0, "check_same_thread": False},
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return engine


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    """WAL with ``synchronous=NORMAL``: a commit survives the process being killed (it is in
    the WAL the OS holds); only a power loss may take the last batches back."""
    dbapi_connection.isolation_level = None  # BEGIN IMMEDIATE is ours (see _thread_engine)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _wrap(value: Any) -> dict[str, Any] | None:
    """A JSON value kept as ``{"value": ...}``: SQLite's JSON columns have numeric affinity, so
    a bare number or numeric-looking text would not come back as the JSON it was."""
    return None if value is None else {"value": value}


def _unwrap(stored: Any) -> Any:
    return stored.get("value") if isinstance(stored, dict) else None


def _run_row(run: RunState, instance: str) -> dict[str, Any]:
    return {
        "id": run.id,
        "workflow": run.workflow,
        "status": run.status,
        "subject": run.identity.subject,
        "identity": identity_to_json(run.identity),
        "trigger": run.trigger,
        "task_era": run.task_era,
        "inputs": run.inputs,
        "output": _wrap(run.output),
        "error": run.error,
        "instance": None if run.done else instance,
        "heartbeat_at": None if run.done else utcnow(),
        "cancel_requested": False,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "finished_at": run.finished_at,
    }


def _step_row(run_id: str, key: str, state: StepState) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "key": key,
        "status": state.status,
        "attempts": state.attempts,
        "result": _wrap(state.result),
        "is_error": state.is_error,
        "error": state.error,
        "started_at": state.started_at,
        "finished_at": state.finished_at,
    }


def _record(row: Any) -> RunRecord:
    return RunRecord(
        id=row["id"],
        workflow=row["workflow"],
        status=row["status"],
        subject=row["subject"],
        trigger=row["trigger"],
        task_era=row["task_era"],
        inputs=row["inputs"],
        output=_unwrap(row["output"]),
        error=row["error"],
        instance=row["instance"],
        cancel_requested=bool(row["cancel_requested"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        identity=row["identity"],
    )
