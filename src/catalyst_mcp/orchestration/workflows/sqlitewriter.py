"""Run and step rows written to a SQLite file on a plain ``sqlite3`` connection, without the
ORM and without a thread hop per write (decision 022, "Measured").

The store's writer calls :meth:`SqliteRowWriter.write` with the rows of one batch: one
``BEGIN IMMEDIATE``, one prepared upsert per table (``sqlite3`` caches the statements), one
``COMMIT``; a batch of one row (a step's end, most often) is one upsert in autocommit, its own
transaction. The statements are compiled once from the models, so they follow the tables; the
values are converted as SQLAlchemy's types store them (``UtcDateTime`` as UTC text, JSON as
text, booleans as 0/1), so the store reads them back through SQLAlchemy unchanged.

``synchronous`` (``workflows.synchronous``):

* ``normal``: WAL with ``synchronous=NORMAL``. A commit only writes the WAL into the page
  cache (no fsync): it survives the gateway being killed (the OS holds the file), a power
  loss may take the last commits back. Cheap enough to run on the event loop's thread: the
  connection never waits for the write lock (``busy_timeout=0``: :meth:`write` reports
  :data:`BUSY` and the store tries again a moment later without blocking the loop) and never
  checkpoints on its own (``wal_autocheckpoint=0``): :meth:`checkpoint`, in a worker thread on
  a connection of its own, moves the WAL into the database file every
  :data:`CHECKPOINT_EVERY` commits.
* ``full``: every commit syncs the WAL to the disk and survives a power loss too. An fsync
  may take milliseconds, so the store calls :meth:`write` in a worker thread and this
  connection waits for the write lock as long as :data:`BUSY_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import contextlib
import operator
import sqlite3
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from sqlalchemy import JSON, Boolean, Table
from sqlalchemy.dialects import sqlite

from catalyst_mcp.errors import StorageError
from catalyst_mcp.storage.models import UtcDateTime
from catalyst_mcp.storage.workflow_model import WorkflowRun, WorkflowStep

__all__ = [
    "BUSY",
    "BUSY_TIMEOUT_SECONDS",
    "CHECKPOINT_EVERY",
    "RUN_UPDATED",
    "STEP_UPDATED",
    "SqliteRowWriter",
    "Synchronous",
]

Synchronous = Literal["normal", "full"]

# columns an upsert of an existing row changes (the rest are set when the row is created)
RUN_UPDATED = (
    "status",
    "output",
    "error",
    "updated_at",
    "finished_at",
    "instance",
    "heartbeat_at",
)
STEP_UPDATED = ("status", "attempts", "result", "is_error", "error", "started_at", "finished_at")

BUSY = False  # what write() answers when another connection holds the write lock
BUSY_TIMEOUT_SECONDS = 30.0  # how long a write waits for another connection's write lock
CHECKPOINT_EVERY = 500  # commits between two checkpoints of the normal connection's WAL
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def _busy(error: sqlite3.OperationalError) -> bool:
    """The lock is taken (or, in WAL, another commit made this snapshot stale): try again."""
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _BUSY_CODES


Rows = Iterable[dict[str, Any]]


class _Upsert:
    """One table's upsert: its SQL and how a row (a dict by column name) becomes its
    parameters."""

    def __init__(self, table: Table, keys: list[str], updated: tuple[str, ...]) -> None:
        statement = sqlite.insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=keys, set_={name: statement.excluded[name] for name in updated}
        )
        compiled = statement.compile(dialect=sqlite.dialect(paramstyle="qmark"))
        self.sql = str(compiled)
        assert compiled.positiontup is not None
        names = list(compiled.positiontup)
        self._values = operator.itemgetter(*names)
        self._converted = [
            (index, convert)
            for index, name in enumerate(names)
            if (convert := _converter(table.columns[name].type)) is not None
        ]

    def parameters(self, row: dict[str, Any]) -> list[Any]:
        values = list(self._values(row))
        for index, convert in self._converted:
            value = values[index]
            if value is not None:
                values[index] = convert(value)
        return values


def _converter(kind: Any) -> Callable[[Any], Any] | None:
    if isinstance(kind, UtcDateTime):
        return _timestamp
    if isinstance(kind, JSON):
        return _json
    if isinstance(kind, Boolean):
        return int
    return None


def _timestamp(value: datetime) -> str:
    """As SQLAlchemy stores ``UtcDateTime`` on SQLite: UTC without its zone, microseconds
    (``2026-01-31 12:00:00.000000``)."""
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("a stored time must be timezone-aware")
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _roll_back(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back on its own
            conn.execute("ROLLBACK")


_RUNS = _Upsert(WorkflowRun.__table__, ["id"], RUN_UPDATED)  # type: ignore[arg-type]
_STEPS = _Upsert(WorkflowStep.__table__, ["run_id", "key"], STEP_UPDATED)  # type: ignore[arg-type]


class SqliteRowWriter:
    """Writes batches of run and step rows to the SQLite file ``path``."""

    def __init__(self, path: Path, synchronous: Synchronous = "normal") -> None:
        self.path = path
        self.synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: sqlite3.Connection | None = None
        # one transaction at a time on the connection, even if a cancelled caller's worker
        # thread is still writing when the next batch starts
        self._writing = threading.Lock()
        self.commits = 0  # committed batches
        self.busy = 0  # batches that found the write lock taken (and were tried again)
        self.checkpoints = 0

    @property
    def inline(self) -> bool:
        """Whether :meth:`write` may run on the event loop's thread (no fsync, no waiting)."""
        return self.synchronous == "normal"

    def _connect(self, *, waits: bool) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_SECONDS if waits else 0.0,
                isolation_level=None,  # BEGIN IMMEDIATE and COMMIT are ours
                check_same_thread=False,  # the store's lock serializes its use
                cached_statements=16,
            )
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            if self.inline:
                conn.execute("PRAGMA wal_autocheckpoint=0")  # checkpoint() does it, off the loop
        except sqlite3.Error as error:
            raise StorageError(
                f"cannot open the SQLite database {self.path} for workflow runs: {error}"
            ) from error
        return conn

    def write(self, runs: Rows, steps: Rows) -> bool:
        """Commit ``runs`` (first: steps refer to them) and ``steps`` in one transaction; True,
        or :data:`BUSY` (nothing written) if the write lock is taken and this connection does
        not wait for it. StorageError if the database refuses the batch."""
        try:
            run_rows = [_RUNS.parameters(row) for row in runs]
            step_rows = [_STEPS.parameters(row) for row in steps]
        except (ValueError, TypeError) as error:  # a naive time, a value JSON cannot hold
            raise StorageError(f"cannot record workflow progress: {error}") from error
        statements = [
            (sql, rows) for sql, rows in ((_RUNS.sql, run_rows), (_STEPS.sql, step_rows)) if rows
        ]
        if not statements:
            return True
        with self._writing:
            conn = self._conn
            if conn is None:
                conn = self._conn = self._connect(waits=not self.inline)
            try:
                if len(statements) == 1 and len(statements[0][1]) == 1:
                    # one row (a step's end, most often): one statement is one transaction
                    [(sql, [row])] = statements
                    conn.execute(sql, row)
                else:
                    conn.execute("BEGIN IMMEDIATE")
                    for sql, rows in statements:
                        conn.executemany(sql, rows)
                    conn.execute("COMMIT")
            except BaseException as error:
                _roll_back(conn)
                if isinstance(error, sqlite3.OperationalError) and _busy(error):
                    self.busy += 1
                    return BUSY
                if isinstance(error, sqlite3.Error):
                    raise StorageError(f"cannot record workflow progress: {error}") from error
                raise
        self.commits += 1
        return True

    @property
    def checkpoint_due(self) -> bool:
        return self.inline and self.commits > 0 and self.commits % CHECKPOINT_EVERY == 0

    def checkpoint(self) -> None:
        """Move the WAL's committed pages into the database file (PASSIVE: writers go on);
        in a worker thread, as it syncs the file."""
        conn = self._checkpointer
        if conn is None:
            conn = self._checkpointer = self._connect(waits=True)
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self.checkpoints += 1

    def pragma(self, name: str) -> Any:
        """A PRAGMA's value on the writing connection (tests)."""
        with self._writing:
            conn = self._conn
            if conn is None:
                conn = self._conn = self._connect(waits=not self.inline)
            row = conn.execute(f"PRAGMA {name}").fetchone()
        return row[0] if row else None

    def close(self) -> None:
        with self._writing:
            self._close()

    def _close(self) -> None:
        for conn in (self._conn, self._checkpointer):
            if conn is not None:
                conn.close()
        self._conn = self._checkpointer = None
