"""Audit trail test helpers: a migrated SQLite file or PostgreSQL schema per test, events, a
database outage, the chain's write lock held by another connection."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import event, select, text
from sqlalchemy.exc import OperationalError

from catalyst_mcp.observability.audit import AuditEvent, AuditLog
from catalyst_mcp.storage.audit_model import AuditRecord
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.migrate import upgrade
from tests.storage.conftest import BACKENDS, PG_URL, pg_database, pg_schema

# ---- databases ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def sqlite_database(path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite:///{path}")
    try:
        await upgrade(db)
        yield db
    finally:
        await db.close()


@contextlib.asynccontextmanager
async def pg_migrated(schema: str) -> AsyncIterator[Database]:
    db = pg_database(schema)
    try:
        await upgrade(db)
        yield db
    finally:
        await db.close()


@contextlib.asynccontextmanager
async def migrated_place(backend: str, folder: Path) -> AsyncIterator[str]:
    """A migrated database of ``backend`` (in ``folder`` for SQLite), as :func:`place`."""
    if backend == "sqlite":
        path = folder / "audit.db"
        async with sqlite_database(path):
            pass
        yield str(path)
    else:
        async with pg_schema() as schema, pg_migrated(schema):
            yield f"pg:{schema}"


@pytest_asyncio.fixture(params=BACKENDS)
async def place(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Where a migrated database is: a SQLite file path or ``pg:`` and a PostgreSQL schema."""
    async with migrated_place(request.param, tmp_path) as where:
        yield where


def open_db(place: str) -> Database:
    """Another connection pool on the database at ``place`` (another gateway, say)."""
    if place.startswith("pg:"):
        return pg_database(place[3:])
    return Database(f"sqlite:///{place}")


@pytest_asyncio.fixture
async def db(place: str) -> AsyncIterator[Database]:
    database = open_db(place)
    try:
        yield database
    finally:
        await database.close()


@contextlib.asynccontextmanager
async def writes_held(place: str) -> AsyncIterator[None]:
    """Another connection holds the audit chain's write lock until the block ends, as a busy
    database would: an audit writer's transaction waits for it, readers do not (SQLite:
    ``BEGIN IMMEDIATE``; PostgreSQL: the chain head's table locked against writers)."""
    if place.startswith("pg:"):
        import asyncpg

        conn = await asyncpg.connect(
            PG_URL.replace("+asyncpg", ""), server_settings={"search_path": place[3:]}
        )
        held = conn.transaction()
        try:
            await held.start()
            await conn.execute("LOCK TABLE audit_chain IN EXCLUSIVE MODE")
            yield
            await held.rollback()
        finally:
            await conn.close()
        return
    lock = sqlite3.connect(place, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        yield
        lock.execute("ROLLBACK")
    finally:
        lock.close()


class Outage:
    """Makes every statement on ``db`` fail while ``down`` (as a lost database would), also
    those of the logs :meth:`watch`-ed (SQLite logs write through an engine of their own)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.down = False
        self.failures = 0
        self.engines: list[Any] = [db.engine.sync_engine]

    def watch(self, log: AuditLog) -> AuditLog:
        if log._thread_engine is not None:
            self.engines.append(log._thread_engine)
            event.listen(log._thread_engine, "before_cursor_execute", self._check)
        return log

    def __enter__(self) -> Outage:
        event.listen(self.db.engine.sync_engine, "before_cursor_execute", self._check)
        return self

    def __exit__(self, *exc: object) -> None:
        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self._check)

    def _check(self, *args: Any) -> None:
        if self.down:
            self.failures += 1
            raise OperationalError("SELECT", {}, ConnectionResetError("database is down"))


def event_(n: int, **overrides: Any) -> AuditEvent:
    fields: dict[str, Any] = {
        "actor": "alice" if n % 2 else "bob",
        "actor_kind": "user",
        "action": "tools/call",
        "target": f"github__tool_{n}",
        "outcome": "ok",
        "latency_ms": n / 3,
        "detail": {"n": n, "request_id": f"r{n}", "args": {"q": {"sha256": "00"}}},
    }
    return AuditEvent(**{**fields, **overrides})


async def write(db: Database, count: int, **kwargs: Any) -> None:
    async with AuditLog(db, **kwargs) as log:
        for n in range(1, count + 1):
            log.record(event_(n))


async def rows(db: Database) -> list[Any]:
    async with db.engine.connect() as conn:
        return list((await conn.execute(select(AuditRecord).order_by(AuditRecord.seq))).all())


async def execute(db: Database, *statements: str) -> None:
    async with db.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))


def _float(value: float) -> str:
    """A float as the documented form writes it (auditchain's docstring), from Python's own
    shortest round-trip digits."""
    text = repr(value)
    if "e" not in text and "inf" not in text and "nan" not in text:
        digits = text
    else:
        # Decimal of repr's digits: exact, and its exponent says where the point is
        digits = format(Decimal(text), "f")
        if "." not in digits:
            digits += ".0"
    magnitude = abs(value)
    if magnitude == 0 or 1e-5 <= magnitude < 1e16:
        return digits
    sign, number, exponent = Decimal(text).as_tuple()
    assert isinstance(exponent, int)  # a finite number
    mantissa = "".join(map(str, number)).rstrip("0") or "0"
    power = exponent + len(number) - 1
    head = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
    return f"{'-' if sign else ''}{head}e{'+' if power >= 0 else '-'}{abs(power)}"


def documented_json(value: Any) -> str:
    """The documented canonical JSON, written independently of orjson and auditchain."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        # json escapes exactly the documented set when ensure_ascii is off
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(documented_json(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items())  # str order is code point order
        return "{" + ",".join(f"{documented_json(k)}:{documented_json(v)}" for k, v in items) + "}"
    raise TypeError(f"not JSON: {value!r}")


def expected_hash(line: dict[str, Any]) -> str:
    """The documented chain hash of an exported line, computed independently of auditchain:
    the line without ``prev_hash`` and ``hash``, in the canonical form, after ``prev_hash``."""
    payload = {k: v for k, v in line.items() if k not in ("prev_hash", "hash")}
    canonical = documented_json(payload)
    return hashlib.sha256((line["prev_hash"] + canonical).encode("utf-8")).hexdigest()
