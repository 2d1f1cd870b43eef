"""The database wrapper: URLs, SQLite connection settings, transactions and safe errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from catalyst_mcp.errors import Conflict, StorageError
from catalyst_mcp.storage.db import Database, database_url


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite+pysqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg2://u@h:5433/db", "postgresql+asyncpg://u@h:5433/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_urls_get_the_async_driver(raw: str, expected: str) -> None:
    assert database_url(raw).render_as_string() == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not a url", "not valid"),
        ("mysql://root:hunter2@db/x", "'mysql' is not supported"),
    ],
)
def test_bad_urls_are_refused_without_repeating_them(raw: str, message: str) -> None:
    with pytest.raises(StorageError, match=message) as info:
        database_url(raw)
    assert "hunter2" not in str(info.value)


async def test_redacted_url_and_repr_hide_the_password() -> None:
    db = Database("postgresql://admin:s3cret-pw@db.example.com:6543/gateway")
    try:
        assert db.dialect == "postgresql"
        assert "s3cret-pw" not in db.redacted_url
        assert db.redacted_url == "postgresql+asyncpg://admin:***@db.example.com:6543/gateway"
        assert "s3cret-pw" not in repr(db)
    finally:
        await db.close()


async def test_unreachable_postgres_names_host_and_database_but_not_the_password() -> None:
    db = Database("postgresql://postgres:hunter2-secret@127.0.0.1:9/test")
    try:
        with pytest.raises(StorageError) as info:
            await db.ping()
    finally:
        await db.close()
    message = str(info.value)
    assert (
        message
        == "cannot connect to the PostgreSQL database test on 127.0.0.1:9: connection refused"
    )
    assert "hunter2" not in message


async def test_sqlite_creates_its_folder_and_sets_its_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "catalyst.db"
    db = Database(f"sqlite:///{path}")
    try:
        assert path.parent.is_dir()
        assert db.dialect == "sqlite"
        async with db.session() as session:
            assert await session.scalar(text("PRAGMA foreign_keys")) == 1
            assert await session.scalar(text("PRAGMA journal_mode")) == "wal"
            assert await session.scalar(text("PRAGMA busy_timeout")) == 5000
            # every commit synced: an admin write survives a power loss (only the audit
            # writer's own connections run with NORMAL)
            assert await session.scalar(text("PRAGMA synchronous")) == 2  # FULL
    finally:
        await db.close()
    assert path.exists()


async def test_sqlite_that_cannot_be_opened_is_a_storage_error(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}")  # a folder, not a file
    try:
        with pytest.raises(StorageError, match=r"cannot connect to the SQLite database .*: unable"):
            await db.ping()
    finally:
        await db.close()


async def test_a_folder_that_cannot_be_made_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot create the folder"):
        Database(f"sqlite:///{blocker}/sub/catalyst.db")


async def test_in_memory_sqlite_is_one_shared_database() -> None:
    db = Database("sqlite+aiosqlite:///:memory:")
    try:
        async with db.session() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER)"))
            await session.execute(text("INSERT INTO t VALUES (1)"))
        async with db.session() as session:
            assert await session.scalar(text("SELECT count(*) FROM t")) == 1
    finally:
        await db.close()


async def test_a_session_commits_at_the_end_and_rolls_back_on_error(
    blank_database: Database,
) -> None:
    db = blank_database

    async def insert_then_fail() -> None:
        async with db.session() as session:
            await session.execute(text("INSERT INTO t VALUES (1)"))
            raise Conflict("stop")

    async with db.session() as session:
        await session.execute(text("CREATE TABLE t (x INTEGER)"))
    with pytest.raises(Conflict):
        await insert_then_fail()
    async with db.session() as session:
        await session.execute(text("INSERT INTO t VALUES (2)"))
    async with db.session() as session:
        assert list(await session.scalars(text("SELECT x FROM t"))) == [2]


async def test_ddl_is_transactional(blank_database: Database) -> None:
    """SQLite too: the driver's implicit transactions are replaced by an explicit BEGIN."""

    async def create_then_fail() -> None:
        async with blank_database.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(StorageError):
        await create_then_fail()
    async with blank_database.session() as session:
        await session.execute(text("CREATE TABLE t (x INTEGER)"))  # the first one was undone


async def test_statement_failures_become_storage_errors(blank_database: Database) -> None:
    async def failing() -> None:
        async with blank_database.session() as session:
            query = text("SELECT * FROM no_such_table WHERE x = :v")
            await session.execute(query, {"v": "s3cret"})

    with pytest.raises(StorageError, match=r"^a statement on the .* failed: ") as info:
        await failing()
    assert "s3cret" not in str(info.value)


async def test_the_sqlite_folder_is_created_for_its_owner_only(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/state/c.db")
    try:
        assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    finally:
        await db.close()
