"""Storage fixtures: every test runs on a SQLite file and on the real PostgreSQL.

PostgreSQL tests each get a freshly created schema (``catalyst_t_<hex>``), made the connection's
``search_path`` and dropped with everything in it afterwards, so they never see each other's
tables. They are marked ``postgres`` and skipped (failed under CI=true) when the server is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.migrate import upgrade
from tests.conftest import PG_HOST, PG_PORT, pg_reachable, require_or_skip

PG_URL = f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/test"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@contextlib.asynccontextmanager
async def pg_schema() -> AsyncIterator[str]:
    """A new, empty schema in PostgreSQL's ``test`` database, dropped (CASCADE) afterwards."""
    require_or_skip(pg_reachable(), f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}")
    import asyncpg

    schema = f"catalyst_t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        yield schema
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


def pg_database(schema: str, application_name: str | None = None) -> Database:
    """A Database whose connections work in ``schema`` (their ``search_path``), named
    ``application_name`` (see :func:`wait_until_blocked`)."""
    settings = {"search_path": schema}
    if application_name is not None:
        settings["application_name"] = application_name
    return Database(PG_URL, connect_args={"server_settings": settings})


async def wait_until_blocked(
    application_name: str, task: asyncio.Future[Any] | None = None, timeout: float = 10.0
) -> bool:
    """Wait until a connection named ``application_name`` waits for a lock (True), or until
    ``task`` is done without having had to (False)."""
    import asyncpg

    conn = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
    try:
        for _ in range(int(timeout / 0.01)):
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = $1 AND wait_event_type = 'Lock'",
                application_name,
            )
            if waiting:
                return True
            if task is not None and task.done():
                return False
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    raise AssertionError(f"{application_name} never waited for a lock")


@contextlib.asynccontextmanager
async def open_database(backend: str, folder: Path) -> AsyncIterator[Database]:
    """An empty database of ``backend`` (no schema yet), closed afterwards."""
    if backend == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{folder / 'data' / 'catalyst.db'}")
        try:
            yield db
        finally:
            await db.close()
        return
    async with pg_schema() as schema:
        db = pg_database(schema)
        try:
            yield db
        finally:
            await db.close()


@pytest.fixture(params=BACKENDS)
async def blank_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty database, before any migration."""
    async with open_database(request.param, tmp_path) as db:
        yield db


@pytest.fixture
async def database(blank_database: Database) -> Database:
    """A database migrated to the latest revision."""
    await upgrade(blank_database)
    return blank_database
