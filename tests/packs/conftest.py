"""Pack test helpers: pack files in a temporary folder, a SQLite database, PostgreSQL."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import PG_HOST, PG_PORT, pg_reachable, require_or_skip

PG_URL = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"
ROWS = [(1, "Ada", "ada@example.com"), (2, "Grace", "grace@example.com"), (3, "Alan", "a@x.org")]


def write_pack(folder: Path, name: str, data: dict[str, Any] | str) -> Path:
    path = folder / name
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def people_pack(url: str, table: str = "people", *, read_only: bool = True) -> dict[str, Any]:
    """A pack over a ``people(id, name, email)`` table."""
    return {
        "pack": "people",
        "connections": {"db": {"type": "sql", "url": url, "read_only": read_only}},
        "tools": [
            {
                "name": "find",
                "description": "People whose name contains a text",
                "parameters": {
                    "name": {"type": "string", "required": True},
                    "limit": {"type": "integer", "default": 10, "minimum": 1, "maximum": 100},
                },
                "sql": {
                    "connection": "db",
                    "statement": f"SELECT id, name FROM {table} "
                    "WHERE name LIKE '%' || :name || '%' ORDER BY id LIMIT :limit",
                },
            },
            {
                "name": "count",
                "description": "How many people there are",
                "sql": {"connection": "db", "statement": f"SELECT COUNT(*) AS n FROM {table}"},
            },
            {
                "name": "all",
                "description": "Everyone, two at most",
                "sql": {
                    "connection": "db",
                    "statement": f"SELECT id FROM {table} ORDER BY id",
                    "max_rows": 2,
                },
            },
            {
                "name": "rename",
                "description": "A write, which a read-only connection must refuse",
                "parameters": {"id": {"type": "integer", "required": True}},
                "sql": {
                    "connection": "db",
                    "statement": f"UPDATE {table} SET name = 'changed' WHERE id = :id",
                },
            },
        ],
    }


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    path = tmp_path / "people.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, email TEXT)")
        db.executemany("INSERT INTO people VALUES (?, ?, ?)", ROWS)
    db.close()
    return path


@contextlib.asynccontextmanager
async def pg_people_table() -> AsyncIterator[str]:
    """A uniquely named ``people`` table in PostgreSQL's ``test`` database, dropped afterwards."""
    require_or_skip(pg_reachable(), f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}")
    import asyncpg

    table = f"catalyst_people_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT, email TEXT)")
        await conn.executemany(f"INSERT INTO {table} VALUES ($1, $2, $3)", ROWS)
        yield table
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()
