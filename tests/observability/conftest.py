"""Audit trail test helpers: a migrated SQLite file or PostgreSQL schema per test, events."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select, text

from catalyst_mcp.observability.audit import AuditEvent, AuditLog
from catalyst_mcp.storage.audit_model import AuditRecord
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.migrate import upgrade
from tests.storage.conftest import BACKENDS, pg_database, pg_schema

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
