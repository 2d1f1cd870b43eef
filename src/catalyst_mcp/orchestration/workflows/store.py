"""Workflow runs in the database: a write-behind writer for the engine, and the reads and
claims the CLI, the API, resume and schedules need.

Writes are queued: the latest state of each run and each step wins, and one transaction
writes everything queued (a step that started and finished between two batches is written
once). A caller that passes ``durable`` commits the queue at once and returns when it is
committed (if a batch is in flight, the next takes all that queued meanwhile: group commit);
the others are written behind, by a background task, on the next turn of the event loop.

On a SQLite file the batches go through :class:`~.sqlitewriter.SqliteRowWriter`: plain
``sqlite3``, prepared upserts, and with ``workflows.synchronous: normal`` (the default) WAL
with ``synchronous=NORMAL`` written on the event loop's thread: no ORM and no thread hop in
a durable step (a commit survives the gateway being killed; a power loss may take the last
ones back). ``full`` syncs every commit, in a worker thread. PostgreSQL goes through the
gateway's async engine (``full``: ``synchronous_commit`` on for these transactions, whatever
the role's default). Decision 022 has the measurements.

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

from sqlalchemy import and_, delete, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from catalyst_mcp.errors import CatalystError, StorageError
from catalyst_mcp.orchestration.workflows.runstate import (
    RunState,
    StepState,
    identity_from_json,
    identity_to_json,
)
from catalyst_mcp.orchestration.workflows.sqlitewriter import (
    BUSY_TIMEOUT_SECONDS,
    RUN_UPDATED,
    STEP_UPDATED,
    SqliteRowWriter,
    Synchronous,
)
from catalyst_mcp.storage.db import Database, sqlite_file
from catalyst_mcp.storage.models import utcnow
from catalyst_mcp.storage.workflow_model import WorkflowFire, WorkflowRun, WorkflowStep

__all__ = ["RunRecord", "RunStore", "StepRecord"]

log = logging.getLogger("catalyst.workflows")

BUSY_FIRST_DELAY = 0.0005  # the first wait for a write lock another connection holds
BUSY_MAX_DELAY = 0.002  # then every 2 ms: the lock is taken soon after it is free
DURABLE_COMMIT = "SET LOCAL synchronous_commit TO on"  # PostgreSQL, synchronous: full


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

    def __init__(self, db: Database, instance: str, *, synchronous: Synchronous = "normal") -> None:
        self.instance = instance
        self.db = db
        self.synchronous = synchronous
        path = sqlite_file(db.url) if db.dialect == "sqlite" else None
        # a SQLite file: plain sqlite3 (sqlitewriter); PostgreSQL and in-memory SQLite: the
        # gateway's async engine
        self.sqlite = SqliteRowWriter(path, synchronous) if path is not None else None
        self._runs: dict[str, dict[str, Any]] = {}
        self._steps: dict[tuple[str, str], dict[str, Any]] = {}
        self._stored: set[str] = set()  # running runs whose row is queued or committed
        self._waiters: list[asyncio.Future[None]] = []
        self._lock = asyncio.Lock()  # one batch at a time, in the order they were queued
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._checkpointing: asyncio.Task[None] | None = None
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
        """Stop writing behind, commit what is queued, close the connections."""
        task, self._task = self._task, None
        if task is not None:  # a batch it was writing goes back to the queue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()
        if self._checkpointing is not None:
            await self._checkpointing
        if self.sqlite is not None:
            await asyncio.to_thread(self.sqlite.close)

    async def save_run(self, run: RunState, *, durable: bool = False) -> None:
        """Queue the run's row (as it is now); with ``durable``, wait for its commit. The end
        of a run ends its steps still running (:meth:`RunState.settle`), in the same commit."""
        self._runs[run.id] = _run_row(run, self.instance)
        if run.done:
            for key in run.settle():
                self._steps[(run.id, key)] = _step_row(run.id, key, run.steps[key])
            self._stored.discard(run.id)
            if self.on_run_end is not None:
                self.on_run_end(run)
        else:
            self._stored.add(run.id)
        await self._queued(durable)

    async def step(self, run: RunState, key: str, state: StepState, *, durable: bool) -> None:
        """Queue the row of step ``key`` (one small write: the run's row only if this store
        never wrote it); with ``durable``, wait for its commit."""
        self._steps[(run.id, key)] = _step_row(run.id, key, state)
        if state.status != "running" and self.on_step_end is not None:
            self.on_step_end(run, key, state)
        if run.id not in self._stored:
            self._runs[run.id] = _run_row(run, self.instance)
            self._stored.add(run.id)
        await self._queued(durable)

    async def flush(self) -> None:
        """Wait until everything queued so far is committed (a batch in flight included)."""
        await self._commit()

    async def _queued(self, durable: bool) -> None:
        if durable:
            await self._commit()
        elif self._task is not None:
            self._wake.set()

    async def _commit(self) -> None:
        """Commit everything queued, ours included, and return once it is (group commit: a
        batch in flight is waited for, then the next one takes all that queued meanwhile)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with self._lock:
                if not waiter.done():
                    await self._write_batch()
        except asyncio.CancelledError:
            waiter.cancel()
            raise
        waiter.result()

    async def _write_loop(self) -> None:
        """The rows nobody waits for, written behind."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # let the writes of this turn of the loop join the batch
            try:
                async with self._lock:
                    await self._write_batch()
            except Exception:  # logged; the waiters are told
                log.exception("writing workflow runs failed")

    async def _write_batch(self) -> None:
        """Write what is queued (with :attr:`_lock` held) and tell its waiters."""
        runs, self._runs = self._runs, {}
        steps, self._steps = self._steps, {}
        waiters, self._waiters = self._waiters, []
        error: BaseException | None = None
        if runs or steps:
            try:
                await self._write(runs, steps)
                self.batches += 1
            except (CatalystError, OSError, SQLAlchemyError) as exc:
                error = exc
                self._stored.difference_update(runs)  # the next step writes its run again
            except BaseException:  # cancelled while waiting: queued again, behind newer rows
                self._runs = {**runs, **self._runs}
                self._steps = {**steps, **self._steps}
                self._waiters = [*waiters, *self._waiters]
                self._wake.set()
                raise
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(StorageError(f"cannot record workflow progress: {error}"))

    async def _write(
        self, runs: dict[str, dict[str, Any]], steps: dict[tuple[str, str], dict[str, Any]]
    ) -> None:
        writer = self.sqlite
        if writer is None:
            async with self.db.begin(write=True) as conn:
                if self.synchronous == "full" and self.db.dialect == "postgresql":
                    await conn.exec_driver_sql(DURABLE_COMMIT)
                for statement, rows in _statements(self.db.insert, runs, steps):
                    await conn.execute(statement, rows)
            return
        if not writer.inline:  # synchronous=full: the fsync happens in a worker thread
            if not await asyncio.to_thread(writer.write, runs.values(), steps.values()):
                raise StorageError(f"{self.db.location} stayed locked by another writer")
            return
        # synchronous=normal: on this thread, never waiting for the lock while holding it
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BUSY_TIMEOUT_SECONDS
        delay = BUSY_FIRST_DELAY
        while not writer.write(runs.values(), steps.values()):
            if loop.time() > deadline:
                raise StorageError(f"{self.db.location} stayed locked by another writer")
            await asyncio.sleep(delay)
            delay = min(delay * 2, BUSY_MAX_DELAY)
        if writer.checkpoint_due and (self._checkpointing is None or self._checkpointing.done()):
            self._checkpointing = loop.create_task(self._checkpoint(writer))

    async def _checkpoint(self, writer: SqliteRowWriter) -> None:
        try:
            await asyncio.to_thread(writer.checkpoint)
        except Exception:  # the next one tries again; SQLite's other writers checkpoint too
            log.warning("checkpointing the workflow runs' WAL failed", exc_info=True)

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
            cancel_requested=record.cancel_requested,
        )
        if not run.done:
            self._stored.add(run.id)
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
                    set_={name: statement.excluded[name] for name in RUN_UPDATED},
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
                    set_={name: statement.excluded[name] for name in STEP_UPDATED},
                ),
                list(steps.values()),
            )
        )
    return out


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
