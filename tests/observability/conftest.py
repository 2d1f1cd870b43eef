"""Audit trail test helpers: a migrated SQLite file or PostgreSQL schema per test, events."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select, text

from catalyst_mcp.observability.audit import AuditEvent, AuditLog
from catalyst_mcp.storage.audit_model import AuditRecord
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.migrate import upgrade
from tests.conftest import require_or_skip

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_URL = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"


# ---- databases ---------------------------------------------------------------------------


def _pg_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


@contextlib.asynccontextmanager
async def sqlite_database(path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite:///{path}")
    try:
        await upgrade(db)
        yield db
    finally:
        await db.close()


@contextlib.asynccontextmanager
async def pg_schema() -> AsyncIterator[str]:
    """A fresh schema in PostgreSQL's ``test`` database, dropped afterwards."""
    require_or_skip(_pg_reachable(), f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}")
    import asyncpg

    schema = f"catalyst_audit_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        yield schema
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


def pg_database(schema: str) -> Database:
    return Database(PG_URL, connect_args={"server_settings": {"search_path": schema}})


@contextlib.asynccontextmanager
async def pg_migrated(schema: str) -> AsyncIterator[Database]:
    db = pg_database(schema)
    try:
        await upgrade(db)
        yield db
    finally:
        await db.close()


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest_asyncio.fixture(params=BACKENDS)
async def place(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Where a migrated database is: a SQLite file path or a PostgreSQL schema name."""
    if request.param == "sqlite":
        path = tmp_path / "audit.db"
        async with sqlite_database(path):
            pass
        yield str(path)
    else:
        async with pg_schema() as schema, pg_migrated(schema):
            yield f"pg:{schema}"


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


def expected_hash(line: dict[str, Any]) -> str:
    """The documented chain hash, computed independently of auditchain."""
    fields = ("seq", "at", "actor", "actor_kind", "action", "target", "outcome")
    payload = {k: line[k] for k in (*fields, "latency_ms", "detail")}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256((line["prev_hash"] + canonical).encode()).hexdigest()
