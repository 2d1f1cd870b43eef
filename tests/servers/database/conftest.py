"""A small shop database on SQLite, the real PostgreSQL and the real MariaDB, one per test.

PostgreSQL tests get a schema of their own (``catalyst_t_<hex>``), MariaDB tests a database of
their own, each dropped afterwards; they are marked ``postgres`` / ``mariadb`` and skipped
(failed under CI=true) when the server is down.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import (
    MARIADB_HOST,
    MARIADB_PORT,
    PG_HOST,
    PG_PORT,
    mariadb_reachable,
    pg_reachable,
    require_or_skip,
)

PG_ADMIN = f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/test"
MARIADB_ADMIN = f"mysql+asyncmy://root@{MARIADB_HOST}:{MARIADB_PORT}/test"
BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]
SETUP = [
    "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL, price NUMERIC(10, 2))",
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, item_id INTEGER REFERENCES items (id))",
    "CREATE INDEX orders_item ON orders (item_id)",
    "INSERT INTO items VALUES (1, 'apple', 0.5), (2, 'pear', 0.75), (3, 'plum', NULL)",
    "INSERT INTO orders VALUES (10, 1), (11, 3)",
]
COUNT_TO_1000 = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) SELECT x FROM c"
)
RUNAWAY = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
    "SELECT count(*) FROM c",
    "postgresql": "SELECT pg_sleep(60)",
    "mariadb": "SELECT SLEEP(60)",
}


@dataclass(frozen=True)
class Shop:
    backend: str
    url: str  # as a user writes it in catalyst.yaml
    schema: str | None  # where the tables are, when not the connection's default

    def table(self, name: str) -> str:
        return f"{self.schema}.{name}" if self.schema else name


async def _run(url: str, statements: list[str]) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
async def shop(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Shop]:
    backend = request.param
    name = f"catalyst_t_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        path = tmp_path / "shop.db"
        await _run(f"sqlite+aiosqlite:///{path}", SETUP)
        yield Shop(backend, f"sqlite:///{path}", None)
        return
    if backend == "postgresql":
        require_or_skip(pg_reachable(), f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}")
        await _run(PG_ADMIN, [f"CREATE SCHEMA {name}", f"SET search_path TO {name}", *SETUP])
        try:
            yield Shop(backend, f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test", name)
        finally:
            await _run(PG_ADMIN, [f"DROP SCHEMA IF EXISTS {name} CASCADE"])
        return
    require_or_skip(
        mariadb_reachable(), f"MariaDB is not reachable on {MARIADB_HOST}:{MARIADB_PORT}"
    )
    await _run(MARIADB_ADMIN, [f"CREATE DATABASE {name}"])
    try:
        await _run(MARIADB_ADMIN.replace("/test", f"/{name}"), SETUP)
        yield Shop(backend, f"mariadb://root@{MARIADB_HOST}:{MARIADB_PORT}/{name}", None)
    finally:
        await _run(MARIADB_ADMIN, [f"DROP DATABASE IF EXISTS {name}"])
