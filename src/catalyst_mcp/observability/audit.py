"""The audit trail: who did what, when, with what outcome, written off the hot path.

Callers build an :class:`AuditEvent` (argument values replaced by :func:`digest_arguments`)
and hand it to :meth:`AuditLog.record`, which only appends to an in-memory queue, or to
:meth:`AuditLog.commit`, which also waits until it is committed. A background task writes the
queue in batches, one transaction per batch, hash-chained (see
:mod:`~catalyst_mcp.observability.auditchain`); :func:`verify`, :func:`search` and
:func:`export` read the trail back.

Durability, buffered (:meth:`~AuditLog.record`): the writer lets a batch gather for up to
``flush_interval`` (unless ``batch_size`` records wait), then commits it; so a record is
committed within ``flush_interval`` plus the write of the batch ahead of it and of its own, as
long as the database keeps up. :meth:`~AuditLog.flush` waits for it. A process killed (even by
SIGKILL) loses only the records not yet committed; every committed batch is complete and the
chain of committed records stays valid. While the database is slow or down the log keeps
records in memory and retries with backoff; once ``max_queue`` records wait, a new record is
dropped and counted in :attr:`~AuditLog.dropped` (those waiting were acknowledged first: they
are kept), unless it is recorded with ``keep`` (a call that already ran: the caller bounds how
many of those there can be, waiting for :meth:`~AuditLog.room` before running a call).

Durability, strict (:meth:`~AuditLog.commit`): the record is queued like any other, the writer
skips the gathering wait, and the caller waits until the batch holding it is committed
durably (SQLite: ``synchronous=FULL`` for that transaction, so the WAL is synced; PostgreSQL:
``synchronous_commit`` on for it). Group commit: while one batch is being written, every
record queued meanwhile waits; the writer then takes them all (up to ``batch_size``) into the
next transaction and wakes all their callers at once, so N concurrent callers share far fewer
than N commits.

Memory: call arguments handed over as a :class:`DeferredDigest` are digested by the writer
only while the queue is short. They are digested at once, on :meth:`~AuditLog.record`, when
they are large (over ``auditevent.DEFER_MAX_BYTES`` as compact JSON), while the database cannot be
written, or once a whole batch is already waiting: at most one batch of small arguments is
ever held, never ``max_queue`` records' worth.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine

from catalyst_mcp.aio import cancel_and_wait
from catalyst_mcp.errors import AuditUnavailable
from catalyst_mcp.observability.auditchain import (
    Attempt,
    HasEngine,
    Pending,
    VerifyReport,
    append_batch,
    append_batch_sync,
    engine_of,
    verify,
)
from catalyst_mcp.observability.auditevent import (
    OUTCOMES,
    AuditEvent,
    DeferredDigest,
    digest_arguments,
    digested_now,
    safe_pending,
)
from catalyst_mcp.observability.auditsearch import export, search
from catalyst_mcp.storage.db import sqlite_file

__all__ = [
    "OUTCOMES",
    "AuditEvent",
    "AuditLog",
    "DeferredDigest",
    "VerifyReport",
    "digest_arguments",
    "export",
    "search",
    "verify",
]

logger = logging.getLogger("catalyst.audit")

# After close() times out, a batch being written gets this long to finish before it is given up.
CLOSE_GRACE = 1.0
FIRST_BACKOFF = 0.05
FULL = "the queue is full (is the database slow or down?): dropping new records"
CLOSED = "the audit log is closed"
SYNC_LEVEL = "catalyst_audit_synchronous"  # a SQLite connection's synchronous, as last set
# A strict record's fate: None once committed, else why it was not.
Fate = asyncio.Future[str | None]
# (number, time.time_ns(), event, the fate a strict caller waits for)
Queued = tuple[int, int, AuditEvent, Fate | None]


class AuditLog:
    """Writes audit records in the background, in batches, to one hash chain.

    ``db`` is an :class:`AsyncEngine` or a ``Database``; the log never disposes it. Use it as
    ``async with AuditLog(db) as log:`` or call :meth:`start` and :meth:`close`. Call
    :meth:`record` from the event loop's thread.
    """

    def __init__(
        self,
        db: AsyncEngine | HasEngine,
        *,
        batch_size: int = 200,
        flush_interval: float = 0.05,
        max_queue: int = 10_000,
        max_backoff: float = 5.0,
    ) -> None:
        if batch_size < 1 or max_queue < batch_size or flush_interval < 0:
            raise ValueError("need batch_size >= 1, max_queue >= batch_size, flush_interval >= 0")
        self._engine = engine_of(db)
        # SQLite: batches are written by a plain sqlite3 connection in a worker thread, one
        # thread hop per batch (through aiosqlite every statement is one: measured ~3 ms of
        # CPU per batch of one record against ~0.3 ms)
        self._thread_engine = _thread_engine(self._engine)
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_queue = max_queue
        self._max_backoff = max_backoff
        # numbers count every record() and commit() call from 1
        self._queue: deque[Queued] = deque()
        self._inflight: list[Pending] = []
        self._inflight_first = 0
        self._inflight_fates: list[Fate] = []
        self._strict_queued = 0  # queued records a caller waits for: no gathering wait
        self._room = asyncio.Event()
        self._commits = 0
        self._attempt = Attempt()
        self._recorded = 0
        self._committed = 0
        self._dropped = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._urgent = False
        self._closing = False
        self._closed = False
        self._outage = False
        self._dropping = False
        self._task: asyncio.Task[None] | None = None
        # while a batch is being appended: the writer is inside append_batch, or the worker
        # thread runs it (SQLite); close() then cannot tell whether it will commit
        self._writing = False
        self._give_up = False
        self._thread_write: concurrent.futures.Future[bool] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._unsettled = 0
        # told of each committed batch: (records, seconds its commit took) — for metrics
        self.on_written: Callable[[int, float], None] | None = None

    # ---- counters ----------------------------------------------------------------------

    @property
    def recorded(self) -> int:
        """Records handed to :meth:`record` so far."""
        return self._recorded

    @property
    def committed(self) -> int:
        """Records this log has committed to the database."""
        return self._committed

    @property
    def dropped(self) -> int:
        """Records lost: dropped from a full queue, recorded after close, or unwritten when
        :meth:`close` gave up."""
        return self._dropped

    @property
    def unsettled(self) -> int:
        """Records whose fate :meth:`close` could not learn: their batch was still being
        written when it gave up, and may yet be committed (``verify`` and ``search`` tell).
        Counted neither as committed nor as dropped."""
        return self._unsettled

    @property
    def queued(self) -> int:
        """Records waiting to be committed (including the batch being written)."""
        return len(self._queue) + len(self._inflight)

    @property
    def commits(self) -> int:
        """Transactions this log has committed (one per batch)."""
        return self._commits

    @property
    def full(self) -> bool:
        """Whether ``max_queue`` records wait: a new one would be dropped unless kept."""
        return len(self._queue) + len(self._inflight) >= self._max_queue

    @property
    def writable(self) -> bool:
        """False while the last attempt to write failed (the database is down or refuses),
        and once the log is closed or its writer stopped."""
        task = self._task
        return not (self._outage or self._closed or (task is not None and task.done()))

    # ---- the hot path ------------------------------------------------------------------

    def record(self, event: AuditEvent, *, keep: bool = False) -> None:
        """Queue ``event``, timestamped now. Never blocks, never awaits, O(1). When
        ``max_queue`` records wait it is dropped, unless ``keep`` (see the module's
        documentation)."""
        self._enqueue(event, None, keep)

    async def commit(
        self, event: AuditEvent, *, timeout: float | None = None, keep: bool = False
    ) -> None:
        """Queue ``event`` like :meth:`record`, then wait until it is committed durably (with
        every record queued meanwhile: group commit). :class:`AuditUnavailable` when it was
        dropped (full, closed) or is not committed within ``timeout`` seconds; in that case
        it stays queued and may still be written."""
        fate: Fate = asyncio.get_running_loop().create_future()
        if self._enqueue(event, fate, keep):
            self._strict_queued += 1
            self._wake.set()
        try:
            async with asyncio.timeout(timeout):
                why = await asyncio.shield(fate)  # a cancelled caller leaves the record be
        except TimeoutError:
            raise AuditUnavailable(
                f"not committed within {timeout:g} s (the database is slow or down); it "
                "stays queued and may still be written"
            ) from None
        if why is not None:
            raise AuditUnavailable(why)

    def _enqueue(self, event: AuditEvent, fate: Fate | None, keep: bool) -> bool:
        at = time.time_ns()
        if self._closed:
            self._drop("a record came after the audit log was closed: dropped", fate, CLOSED)
            return False
        self._recorded += 1
        queue = self._queue
        if event.detail:
            # raw arguments are only held for a short queue (see the module's documentation)
            event = digested_now(event, self._outage or len(queue) >= self._batch_size)
        if not keep and len(queue) + len(self._inflight) >= self._max_queue:
            self._drop(FULL, fate, f"dropped: {self._max_queue} audit records already wait")
            return False
        queue.append((self._recorded, at, event, fate))
        size = len(queue)
        if size == 1 or size == self._batch_size:
            self._wake.set()
        return True

    async def room(self, timeout: float | None = None) -> None:
        """Wait until fewer than ``max_queue`` records wait; :class:`AuditUnavailable` after
        ``timeout`` seconds or once the log is closed."""
        try:
            async with asyncio.timeout(timeout):
                while self.full and not self._closed:
                    self._room.clear()
                    await self._room.wait()
        except TimeoutError:
            raise AuditUnavailable(
                f"{self.queued} audit records still wait for the database after {timeout:g} s"
            ) from None
        if self._closed:
            raise AuditUnavailable(CLOSED)

    def _drop(self, why: str, fate: Fate | None = None, told: str = "") -> None:
        self._dropped += 1
        if not self._dropping:
            self._dropping = True
            logger.warning("audit trail: %s", why)
        if fate is not None:
            fate.set_result(told or why)
        if self._waiters:
            self._settle()

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the background writer (in the running event loop)."""
        if self._closed:
            raise RuntimeError("the audit log is closed")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="catalyst-audit-writer"
            )
            self._task.add_done_callback(self._writer_done)

    async def flush(self) -> None:
        """Wait until every record recorded so far is committed (or dropped). While the
        database is down that is when it is back: bound it with ``asyncio.wait_for``."""
        target = self._recorded
        if self._frontier() > target:
            return
        if self._task is None or self._task.done():
            raise RuntimeError("the audit log is not running: call start() first")
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        self._urgent = True
        self._wake.set()
        await future

    async def close(self, timeout: float | None = 30.0) -> None:
        """Commit everything recorded, then stop. After ``timeout`` seconds (the database is
        down; None: no limit), stop anyway: a batch being written gets ``CLOSE_GRACE`` more
        seconds to finish; records left unwritten are counted as dropped and logged, and
        those of a batch still being written then, which may yet commit, as
        :attr:`unsettled`."""
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        task = self._task
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                await self._stop(task)
        self._closed = True
        unsettled = self._settle_inflight()
        lost = len(self._queue) + len(self._inflight)
        unwritten = f"not written: {CLOSED} (is the database down?)"
        _tell(self._inflight_fates, unwritten)
        _tell((item[3] for item in self._queue), unwritten)
        self._queue.clear()
        self._inflight, self._inflight_fates, self._strict_queued = [], [], 0
        self._room.set()
        if lost:
            self._dropped += lost
            logger.warning("audit trail: closed with %d records not written", lost)
        if unsettled:
            self._unsettled += unsettled
            logger.warning(
                "audit trail: closed while a batch of %d records was being written: "
                "it may still be committed",
                unsettled,
            )
        self._release(unsettled)
        self._settle(everything=True)

    async def _stop(self, task: asyncio.Task[None]) -> None:
        """Stop the writer after the attempt under way (given ``CLOSE_GRACE`` seconds)."""
        self._give_up = True
        self._wake.set()
        if self._writing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), CLOSE_GRACE)
        if not task.done():
            await cancel_and_wait(task)

    def _settle_inflight(self) -> int:
        """After the writer stopped: how many records of the batch taken may still commit
        (they leave the in-flight list), the others being lost."""
        if not self._inflight or not self._writing:
            return 0  # none taken, or its last attempt failed: not written
        pending = self._thread_write
        if pending is not None and pending.done():  # the thread ended after all
            if pending.cancelled() or pending.exception() is not None:
                return 0
            self._committed += len(self._inflight)
            self._inflight = []
            _tell(self._inflight_fates, None)
            return 0
        count = len(self._inflight)  # cancelled mid-append, or its thread still runs
        self._inflight = []
        _tell(
            self._inflight_fates,
            f"{CLOSED} while its batch was being written: it may still be committed",
        )
        return count

    def _release(self, unsettled: int) -> None:
        """Dispose of the thread engine, once the worker thread is done with it."""
        engine, executor = self._thread_engine, self._executor
        if engine is None:
            return
        if executor is not None:
            executor.shutdown(wait=False)
        pending = self._thread_write
        if pending is None or pending.done():
            engine.dispose()
            return

        def finished(future: concurrent.futures.Future[bool]) -> None:
            ok = not future.cancelled() and future.exception() is None
            logger.warning(
                "audit trail: the batch of %d records being written at close was %s",
                unsettled,
                "committed after all" if ok else "not committed",
            )
            engine.dispose()

        pending.add_done_callback(finished)

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ---- the writer --------------------------------------------------------------------

    def _frontier(self) -> int:
        """The number of the oldest record not yet committed or dropped."""
        if self._inflight:
            return self._inflight_first
        if self._queue:
            return self._queue[0][0]
        return self._recorded + 1

    def _settle(self, *, everything: bool = False) -> None:
        frontier = self._frontier()
        waiting = []
        for target, future in self._waiters:
            if future.done():
                continue
            if everything or target < frontier:
                future.set_result(None)
            else:
                waiting.append((target, future))
        self._waiters = waiting
        self._urgent = bool(waiting)

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("audit trail: the writer stopped", exc_info=task.exception())
            stopped = "not written: the audit writer stopped (see the gateway's log)"
            _tell(self._inflight_fates, stopped)
            _tell((item[3] for item in self._queue), stopped)
        self._settle(everything=True)

    async def _wait(self, timeout: float | None) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _run(self) -> None:
        backoff = 0.0
        while True:
            if not self._inflight:
                if not self._queue:
                    if self._closing:
                        return
                    await self._wait(None)
                    continue
                if len(self._queue) < self._batch_size and not (
                    self._urgent or self._closing or self._strict_queued
                ):
                    await self._wait(self._flush_interval)  # let a batch gather
                self._take()
            self._writing = True
            began = time.perf_counter()
            try:
                written = await self._append()
            except Exception as exc:
                self._writing = False
                self._failed(exc)
                if self._give_up:
                    return
                backoff = min(self._max_backoff, backoff * 2 or FIRST_BACKOFF)
                await asyncio.sleep(backoff)
                continue
            self._writing = False
            backoff = 0.0
            if self.on_written is not None:
                self.on_written(len(self._inflight), time.perf_counter() - began)
            self._commits += 1
            self._committed += len(self._inflight)
            self._inflight = []
            _tell(self._inflight_fates, None)
            self._inflight_fates = []
            if not self.full:
                self._room.set()
            if not written:
                logger.info("audit trail: a batch whose commit looked failed was committed")
            if self._outage:
                self._outage = self._dropping = False
                logger.warning("audit trail: writing again (%d records dropped)", self._dropped)
            self._settle()
            if self._give_up:
                return

    async def _append(self) -> bool:
        """Append the batch taken: through the async engine, or (SQLite) in this log's worker
        thread, whose future :meth:`close` can still look at if it is cancelled meanwhile.
        Durably when a caller waits for one of its records."""
        durable = bool(self._inflight_fates)
        if self._thread_engine is None:
            return await append_batch(self._engine, self._inflight, self._attempt, durable)
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="catalyst-audit"
            )
        self._thread_write = self._executor.submit(
            self._append_in_thread, self._inflight, self._attempt, durable
        )
        return await asyncio.wrap_future(self._thread_write)

    def _append_in_thread(self, batch: list[Pending], attempt: Attempt, durable: bool) -> bool:
        assert self._thread_engine is not None
        with self._thread_engine.connect() as conn:
            # FULL syncs the WAL at this commit (and with it every earlier one); NORMAL
            # leaves that to checkpoints (see _sqlite_pragmas). Set before the transaction
            # begins, and only when it changes for this connection.
            level = "FULL" if durable else "NORMAL"
            if conn.info.get(SYNC_LEVEL) != level:
                conn.exec_driver_sql(f"PRAGMA synchronous={level}")
                conn.info[SYNC_LEVEL] = level
            return append_batch_sync(conn, batch, attempt)

    def _take(self) -> None:
        count = min(len(self._queue), self._batch_size)
        items = [self._queue.popleft() for _ in range(count)]
        self._inflight_first = items[0][0]
        self._inflight = [safe_pending(at, event) for _, at, event, _ in items]
        self._inflight_fates = [fate for *_, fate in items if fate is not None]
        self._strict_queued -= len(self._inflight_fates)
        self._attempt = Attempt()

    def _failed(self, exc: Exception) -> None:
        if not self._outage:
            self._outage = True
            # The class only: a driver's message may carry a URL or a stored value.
            logger.warning(
                "audit trail: cannot write to the database (%s); retrying with backoff, "
                "%d records waiting (at most %d kept)",
                type(exc).__name__,
                self.queued,
                self._max_queue,
            )


def _tell(fates: Iterable[Fate | None], why: str | None) -> None:
    """Resolve the strict callers' ``fates``: None (committed) or why not."""
    for fate in fates:
        if fate is not None and not fate.done():
            fate.set_result(why)


def _thread_engine(engine: AsyncEngine) -> Engine | None:
    """A synchronous engine on the same SQLite file; None for other databases and for SQLite
    databases that are not a plain file (in memory, ``file:`` URIs): a new connection from
    another thread might not reach the same one."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or sqlite_file(url) is None:
        return None
    sync = create_engine(
        url.set(drivername="sqlite"),
        hide_parameters=True,
        json_serializer=lambda value: orjson.dumps(value).decode(),
        json_deserializer=orjson.loads,
        connect_args={"timeout": 30.0, "check_same_thread": False},
    )
    event.listen(sync, "connect", _sqlite_pragmas)
    return sync


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL syncs at checkpoints, not at every commit: a committed batch survives
    # the process being killed (it is in the WAL, which the OS holds); only a power loss may
    # take the last ones back, never corrupting the file or breaking the chain. FULL would
    # cost an fsync per batch (measured: ~3 ms of a 2-core VM's time per commit): only a
    # batch a strict caller waits for is committed FULL (AuditLog._append_in_thread). The
    # gateway's other connections stay FULL (storage/db.py).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
