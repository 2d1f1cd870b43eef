r"""The hash chain of the audit trail: canonical form, appending a batch, verifying.

Each record's hash is ``sha256(prev_hash + canonical)`` in lowercase hex, where ``prev_hash``
is the previous record's hash (64 zeros for the first record) and ``canonical`` is the JSON of
the record's fields as exported, without ``prev_hash`` and ``hash``::

    {"v": 1, "seq", "at", "actor", "actor_kind", "action", "target", "outcome",
     "latency_ms", "detail"}

written as orjson writes it with sorted keys (:func:`canonical_json`), exactly:

* UTF-8, no whitespace, object keys sorted by code point at every level;
* strings escaped only where JSON must: ``\"``, ``\\``, ``\b \t \n \f \r`` and the other
  characters below U+0020 as ``\u00XX`` (lowercase hex); everything else, ``/``, DEL,
  U+2028 and all non-ASCII text included, as is;
* integers in decimal (stored values fit in 64 bits); ``true``, ``false``, ``null``;
* floats in the shortest digits that read back to the same double: plain decimal with at
  least one digit after the point when ``x`` is zero or ``1e-5 <= |x| < 1e16`` (``1.0``,
  ``0.00001``, ``-0.0``), else ``d[.ddd]e+N`` or ``d[.ddd]e-N`` with no leading zeros in ``N``
  (``1e+16``, ``1.5e-7``, ``5e-324``); NaN and infinities never occur (stored as strings);
* ``at``: UTC ISO 8601 with microseconds (``2025-01-31T12:00:00.000000+00:00``);
* ``v``: the version of this form, :data:`FORMAT` (1). A later form would carry another
  number, so a record is never checked against the wrong rules.

Anyone can recompute the chain from an unfiltered export: for each line, drop ``prev_hash``
and ``hash``, serialize the rest as above, and hash it after ``prev_hash``.

Appending locks the head row (``audit_chain``) for the whole transaction: ``SELECT ... FOR
UPDATE`` on PostgreSQL, a first write (``BEGIN IMMEDIATE`` semantics) on SQLite. So several
gateway instances sharing one database still write one chain, and a crash mid-batch commits all
of the batch or none of it.

The chain detects changes made through the database, not a rewrite of the whole chain by
someone who can also update the head: keep the head hash that ``verify`` reports somewhere
else (a log, a ticket) to anchor it.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

import orjson
from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from catalyst_mcp.errors import StorageError
from catalyst_mcp.storage.audit_model import HEAD_ID, AuditChain, AuditRecord

__all__ = [
    "FORMAT",
    "GENESIS",
    "Attempt",
    "HasEngine",
    "Pending",
    "VerifyReport",
    "append_batch",
    "canonical_json",
    "engine_of",
    "iso",
    "jsonable",
    "record_hash",
    "storage_errors",
    "verify",
]

GENESIS = "0" * 64
FORMAT = 1
"""The version of the canonical form: the ``v`` of every hashed (and exported) record."""
VERIFY_BATCH = 2000
LIMITS = {"actor": 128, "actor_kind": 16, "action": 64, "target": 512, "outcome": 16}
MAX_INT = 2**63
# PostgreSQL: a connection's synchronous_commit (its role's or database's, read once per
# connection), and raising it for one transaction when it is off
SYNC_COMMIT_SETTING = "catalyst_synchronous_commit"
SHOW_SYNC_COMMIT = "SHOW synchronous_commit"
DURABLE_COMMIT = "SET LOCAL synchronous_commit TO on"


class HasEngine(Protocol):
    """Anything that owns an :class:`AsyncEngine` (such as ``storage.db.Database``)."""

    @property
    def engine(self) -> AsyncEngine: ...


def engine_of(db: AsyncEngine | HasEngine) -> AsyncEngine:
    """The engine of ``db``: the engine itself or a ``Database`` holding one."""
    return db if isinstance(db, AsyncEngine) else db.engine


class Pending(NamedTuple):
    """A record taken but not yet written (fields already cleaned by :func:`jsonable`)."""

    at: datetime
    actor: str
    actor_kind: str
    action: str
    target: str
    outcome: str
    latency_ms: float | None
    detail: dict[str, Any]


@dataclass(slots=True)
class Attempt:
    """What the last try to append a batch got to; lets a retry notice that the commit it
    saw fail did in fact happen (a connection lost after COMMIT was sent)."""

    last_hash: str | None = None


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of :func:`verify`. ``records`` counts records checked good; on failure
    ``first_bad_seq`` names the first record that is wrong (or missing) and ``reason`` says
    why. ``last_hash`` is the head hash to keep elsewhere as an anchor."""

    ok: bool
    records: int
    first_bad_seq: int | None = None
    reason: str | None = None
    last_hash: str | None = None


@contextlib.contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Map database failures to :class:`StorageError` naming only the failure's class (a
    driver's message can carry a URL, a statement or a stored value)."""
    try:
        yield
    except (SQLAlchemyError, OSError) as exc:
        raise StorageError(
            f"{what}: database error ({type(exc).__name__}); is the database reachable and "
            "migrated (`catalyst db upgrade`)?"
        ) from exc


# ---- canonical form -------------------------------------------------------------------------


def _text(value: str) -> str:
    if not value.isascii():
        # Lone surrogates cannot be stored as UTF-8.
        value = value.encode("utf-8", "replace").decode("utf-8")
    # PostgreSQL refuses NUL in text.
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data that survives a database round trip unchanged: text
    cleaned for storage, tuples as lists, keys as strings, non-finite floats and 64-bit
    overflowing integers and anything else as strings."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, int):
        return value if -MAX_INT <= value < MAX_INT else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {_text(str(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return _text(str(value))


def canonical_json(value: Any) -> bytes:
    """The canonical form described in this module's documentation: orjson with sorted keys
    (the same bytes for the same data, and ten times faster than the json module)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def iso(at: datetime) -> str:
    """``at`` in UTC as ISO 8601 with microseconds; naive values (SQLite) are UTC."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.isoformat(timespec="microseconds")


def record_hash(prev_hash: str, seq: int, fields: Pending) -> str:
    """The chain hash of record ``seq`` following ``prev_hash``."""
    payload = {
        "v": FORMAT,
        "seq": seq,
        "at": iso(fields.at),
        "actor": fields.actor,
        "actor_kind": fields.actor_kind,
        "action": fields.action,
        "target": fields.target,
        "outcome": fields.outcome,
        "latency_ms": fields.latency_ms,
        "detail": fields.detail,
    }
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_json(payload)).hexdigest()


# ---- appending ------------------------------------------------------------------------------

# Built once: building a statement costs more CPU than running it (a strict batch of one
# record runs them all for one call). Compiled forms are cached by SQLAlchemy per dialect.
_TOUCH_HEAD = (
    update(AuditChain).where(AuditChain.id == HEAD_ID).values(last_seq=AuditChain.last_seq)
)
_READ_HEAD = (
    select(AuditChain.last_seq, AuditChain.last_hash)
    .where(AuditChain.id == HEAD_ID)
    .with_for_update()
)
_INSERT_RECORDS = insert(AuditRecord)
_MOVE_HEAD = (
    update(AuditChain)
    .where(AuditChain.id == HEAD_ID)
    .values(last_seq=bindparam("new_seq"), last_hash=bindparam("new_hash"))
)


def _lock_head(conn: Connection) -> tuple[int, str]:
    """Take the chain's write lock and read its head, creating the head row if it is missing."""
    if conn.dialect.name == "sqlite":
        # BEGIN IMMEDIATE semantics however the transaction was begun: a write as its first
        # statement takes SQLite's write lock (waiting up to the busy timeout) before anything
        # is read, so two writers never read the same head. (The seq primary key would refuse
        # a fork anyway; this avoids the failed attempt.)
        conn.execute(_TOUCH_HEAD)
    head = conn.execute(_READ_HEAD).first()
    if head is not None:
        return int(head.last_seq), str(head.last_hash)
    # No head (tables made without the migration): start from the last record, if any. A
    # concurrent writer doing the same makes one of the two inserts fail; it is retried.
    last = (
        conn.execute(
            select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)
        )
    ).first()
    seq, digest = (int(last.seq), str(last.hash)) if last is not None else (0, GENESIS)
    conn.execute(insert(AuditChain).values(id=HEAD_ID, last_seq=seq, last_hash=digest))
    return seq, digest


def _sync_commit_off(conn: Connection) -> bool:
    """Whether this PostgreSQL connection commits without waiting for the WAL flush (read
    once per connection: only a role or database setting can make it so, and nothing sets it
    on the gateway's connections later)."""
    setting = conn.info.get(SYNC_COMMIT_SETTING)
    if setting is None:
        setting = conn.info[SYNC_COMMIT_SETTING] = str(
            conn.exec_driver_sql(SHOW_SYNC_COMMIT).scalar()
        )
    return bool(setting == "off")


async def append_batch(
    engine: AsyncEngine,
    batch: Sequence[Pending],
    attempt: Attempt | None = None,
    durable: bool = False,
) -> bool:
    """Append ``batch`` to the chain in one transaction; False if ``attempt`` shows that an
    earlier try whose outcome was unknown committed it already (nothing is written again).
    ``durable``: on PostgreSQL the commit waits for the WAL flush even where the server or
    role turns ``synchronous_commit`` off (a stricter setting is left as it is; SQLite: see
    the audit writer's own connection)."""
    async with engine.connect() as conn:
        return await conn.run_sync(append_batch_sync, batch, attempt, durable)


def append_batch_sync(
    conn: Connection,
    batch: Sequence[Pending],
    attempt: Attempt | None = None,
    durable: bool = False,
) -> bool:
    """:func:`append_batch` on a synchronous connection (run in a worker thread for SQLite:
    one thread hop per batch instead of one per statement)."""
    if durable and conn.dialect.name == "postgresql" and _sync_commit_off(conn):
        conn.exec_driver_sql(DURABLE_COMMIT)
    seq, prev = _lock_head(conn)
    if attempt is not None and attempt.last_hash is not None:
        done = conn.execute(select(AuditRecord.seq).where(AuditRecord.hash == attempt.last_hash))
        if done.first() is not None:
            conn.rollback()
            return False
    rows = []
    for fields in batch:
        seq += 1
        digest = record_hash(prev, seq, fields)
        rows.append({**fields._asdict(), "seq": seq, "prev_hash": prev, "hash": digest})
        prev = digest
    if attempt is not None:
        attempt.last_hash = prev
    conn.execute(_INSERT_RECORDS, rows)
    conn.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": prev})
    conn.commit()
    return True


# ---- verifying ------------------------------------------------------------------------------

_COLUMNS = (
    AuditRecord.seq,
    AuditRecord.at,
    AuditRecord.actor,
    AuditRecord.actor_kind,
    AuditRecord.action,
    AuditRecord.target,
    AuditRecord.outcome,
    AuditRecord.latency_ms,
    AuditRecord.detail,
    AuditRecord.prev_hash,
    AuditRecord.hash,
)


async def _rows_after(engine: AsyncEngine, after: int) -> AsyncIterator[Any]:
    """Every record with ``seq > after`` in order, read in keyset-paged batches."""
    while True:
        async with engine.connect() as conn:
            page = (
                await conn.execute(
                    select(*_COLUMNS)
                    .where(AuditRecord.seq > after)
                    .order_by(AuditRecord.seq)
                    .limit(VERIFY_BATCH)
                )
            ).all()
        for row in page:
            yield row
        if len(page) < VERIFY_BATCH:
            return
        after = int(page[-1].seq)


async def _head(engine: AsyncEngine) -> tuple[int, str] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(AuditChain.last_seq, AuditChain.last_hash).where(AuditChain.id == HEAD_ID)
            )
        ).first()
    return None if row is None else (int(row.last_seq), str(row.last_hash))


def _check(row: Any, seq: int, prev: str) -> str | None:
    """Why record ``row`` does not follow record ``seq`` with hash ``prev`` (None: it does)."""
    if row.seq != seq + 1:
        if row.seq <= seq:
            return f"out of order: found record {row.seq} after record {seq}"
        if row.seq == seq + 2:
            return f"missing: record {seq + 1} was deleted (the next present is {row.seq})"
        return f"missing: records {seq + 1} to {row.seq - 1} were deleted"
    if row.prev_hash != prev:
        return "prev_hash does not match the previous record (records deleted or reordered)"
    fields = Pending(
        row.at,
        row.actor,
        row.actor_kind,
        row.action,
        row.target,
        row.outcome,
        row.latency_ms,
        row.detail,
    )
    if record_hash(prev, row.seq, fields) != row.hash:
        return "contents do not match its hash (the record was edited)"
    return None


async def verify(db: AsyncEngine | HasEngine) -> VerifyReport:
    """Walk the whole chain in ``seq`` order (in batches: fine for millions of records) and
    check every link, then that the head names the last record.

    Records appended while this runs are followed too. Detected: edited rows, deleted rows
    (anywhere: a gap, a broken link, or a head past the last row), reordered rows, and a head
    that disagrees with the last record.
    """
    with storage_errors("cannot verify the audit trail"):
        return await _verify(engine_of(db))


async def _verify(engine: AsyncEngine) -> VerifyReport:
    seq, prev, count = 0, GENESIS, 0
    while True:
        async for row in _rows_after(engine, seq):
            reason = _check(row, seq, prev)
            if reason is not None:
                bad = seq + 1 if row.seq > seq + 1 else int(row.seq)
                return VerifyReport(False, count, bad, reason)
            seq, prev, count = int(row.seq), str(row.hash), count + 1
        head = await _head(engine)
        if head is None:
            if count == 0:
                return VerifyReport(True, 0, last_hash=GENESIS)
            return VerifyReport(False, count, seq, "the chain head (audit_chain) is missing")
        head_seq, head_hash = head
        if head_seq > seq:
            more = await _has_rows_after(engine, seq)
            if more:  # appended while we read: follow them
                continue
            return VerifyReport(
                False,
                count,
                seq + 1,
                f"missing: the head names record {head_seq} but the last record is {seq} "
                "(records deleted from the end)",
            )
        if head_seq < seq:
            return VerifyReport(
                False, count, head_seq + 1, f"the head names record {head_seq}, not {seq}"
            )
        if head_hash != prev:
            return VerifyReport(
                False, count, seq, "the head's hash disagrees with the last record's"
            )
        return VerifyReport(True, count, last_hash=prev)


async def _has_rows_after(engine: AsyncEngine, seq: int) -> bool:
    async with engine.connect() as conn:
        found = await conn.execute(select(AuditRecord.seq).where(AuditRecord.seq > seq).limit(1))
        return found.first() is not None
