"""Migrations: applied once, in order, matching the models, refused clearly when turned off."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

import catalyst_mcp.storage
from catalyst_mcp.errors import StorageError
from catalyst_mcp.storage import migrate
from catalyst_mcp.storage.base import Base
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.keys import KeyRepo
from catalyst_mcp.storage.migrate import (
    MIGRATIONS,
    current,
    ensure_current,
    pending,
    revisions,
    upgrade,
)
from catalyst_mcp.storage.users import UserRepo
from tests.storage.conftest import pg_database, pg_schema

FIRST = "0001_identities"
IDENTITY_TABLES = {"users", "roles", "user_roles", "api_keys", "secrets"}


def _import_model_modules() -> None:
    """Every module of ``catalyst_mcp.storage``, so every model (the audit tables' too, when
    that module exists) is in ``Base.metadata``."""
    for info in pkgutil.iter_modules(catalyst_mcp.storage.__path__, "catalyst_mcp.storage."):
        if not info.ispkg:
            importlib.import_module(info.name)


async def test_a_new_database_has_everything_pending(blank_database: Database) -> None:
    assert await current(blank_database) is None
    todo = await pending(blank_database)
    assert todo[0] == FIRST
    assert todo == revisions()


async def test_upgrade_applies_in_order_then_nothing(blank_database: Database) -> None:
    applied = await upgrade(blank_database)
    assert applied == revisions()
    assert await current(blank_database) == applied[-1]
    assert await pending(blank_database) == []
    assert await upgrade(blank_database) == []  # idempotent
    assert await ensure_current(blank_database, auto_upgrade=True) == []


async def test_upgrade_to_a_named_revision(blank_database: Database) -> None:
    assert await upgrade(blank_database, FIRST) == [FIRST]
    assert await current(blank_database) == FIRST
    assert await pending(blank_database) == revisions()[1:]


async def test_the_identity_tables_exist(database: Database) -> None:
    def names(conn: Connection) -> set[str]:
        return set(inspect(conn).get_table_names())

    async with database.begin() as conn:
        tables = await conn.run_sync(names)
    assert tables >= IDENTITY_TABLES | {"alembic_version"}


async def test_the_models_match_the_migrated_schema(database: Database) -> None:
    _import_model_modules()

    def diff(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with database.begin() as conn:
        assert await conn.run_sync(diff) == []


async def test_auto_upgrade_off_with_pending_migrations_is_a_clear_error(
    blank_database: Database,
) -> None:
    with pytest.raises(StorageError, match=r"run `catalyst db upgrade`") as info:
        await ensure_current(blank_database, auto_upgrade=False)
    assert FIRST in str(info.value)
    assert await current(blank_database) is None  # nothing was applied


async def test_auto_upgrade_off_and_current_is_fine(database: Database) -> None:
    assert await ensure_current(database, auto_upgrade=False) == []


async def test_auto_upgrade_on_applies_what_is_pending(blank_database: Database) -> None:
    assert await ensure_current(blank_database, auto_upgrade=True) == revisions()


async def test_a_database_newer_than_the_code_is_named(database: Database) -> None:
    async with database.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    with pytest.raises(StorageError, match="revision '9999_future', which this version"):
        await pending(database)
    with pytest.raises(StorageError, match="9999_future"):
        await upgrade(database)


async def test_an_unknown_target_revision_is_a_storage_error(blank_database: Database) -> None:
    with pytest.raises(StorageError, match="cannot upgrade the database to 'nope'"):
        await upgrade(blank_database, "nope")


@pytest.mark.postgres
async def test_concurrent_upgrades_apply_each_migration_once() -> None:
    """Gateways starting together on PostgreSQL: the advisory lock serializes them."""
    async with pg_schema() as schema:
        gateways = [pg_database(schema) for _ in range(3)]
        try:
            results = await asyncio.gather(*(upgrade(db) for db in gateways))
        finally:
            for db in gateways:
                await db.close()
    assert sorted(results, key=len) == [[], [], revisions()]


def test_revisions_form_one_line_starting_with_the_identities() -> None:
    names = revisions()
    assert names[0] == FIRST
    assert len(names) == len(set(names))


def test_the_scripts_ship_inside_the_package() -> None:
    assert MIGRATIONS.is_dir()
    assert (MIGRATIONS / "env.py").is_file()
    assert (MIGRATIONS / "script.py.mako").is_file()
    assert (MIGRATIONS / "versions" / f"{FIRST}.py").is_file()
    assert not (MIGRATIONS.parent / "alembic.ini").exists()


# ---- a later revision that recreates a table (Alembic's batch mode on SQLite) ---------------

LATER = """
import sqlalchemy as sa
from alembic import op

revision = "9000_later"
down_revision = {head!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", recreate="always") as batch:
        batch.alter_column("email", type_=sa.String(400))
{extra}

def downgrade() -> None:
    pass
"""
ORPHAN = "    op.execute(\"INSERT INTO user_roles (user_id, role_name) VALUES (4242, 'ghost')\")"


@pytest.fixture
def later_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Ship a copy of the migrations plus one later revision written as ``extra`` says."""

    def add(extra: str = "") -> str:
        folder = tmp_path / "migrations"
        shutil.copytree(MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
        script = LATER.format(head=revisions()[-1], extra=extra)
        (folder / "versions" / "9000_later.py").write_text(textwrap.dedent(script))
        monkeypatch.setattr(migrate, "MIGRATIONS", folder)
        migrate._script.cache_clear()
        return "9000_later"

    yield add
    migrate._script.cache_clear()


async def _identities(db: Database) -> tuple[Any, ...]:
    keys = [(k.user, k.prefix) for k in await KeyRepo(db).list()]
    return keys, (await UserRepo(db).get("alice")).roles


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> Any:
    """A SQLite database migrated to the shipped head."""
    db = Database(f"sqlite:///{tmp_path / 'catalyst.db'}")
    try:
        await upgrade(db)
        yield db
    finally:
        await db.close()


async def test_a_recreated_table_keeps_the_rows_referring_to_it(
    sqlite_db: Database, later_revision: Any
) -> None:
    """SQLite drops the old table of a batch migration: with foreign keys on, that deleted every
    API key and role grant of every user (ON DELETE CASCADE)."""
    db = sqlite_db
    await UserRepo(db).create("alice", roles=["admin"])
    await KeyRepo(db).create("alice", "laptop", "abcdefgh", "0" * 64)
    before = await _identities(db)
    later = later_revision()
    assert await upgrade(db) == [later]
    assert await _identities(db) == before == ([("alice", "abcdefgh")], ("admin",))
    async with db.begin() as conn:  # the pooled connection has its foreign keys on again
        assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
    with pytest.raises(StorageError, match="FOREIGN KEY constraint failed"):  # and enforced
        async with db.begin() as conn:
            await conn.exec_driver_sql("INSERT INTO user_roles VALUES (4242, 'ghost')")


async def test_a_migration_breaking_foreign_keys_is_rolled_back(
    sqlite_db: Database, later_revision: Any
) -> None:
    db = sqlite_db
    head = await current(db)
    later_revision(ORPHAN)
    with pytest.raises(StorageError, match="cannot upgrade the database to 'head'") as info:
        await upgrade(db)
    assert "1 row(s) referring to rows that do not exist (user_roles -> users)" in str(info.value)
    assert "nothing was changed" in str(info.value)
    assert await current(db) == head
    async with db.begin() as conn:
        assert (await conn.exec_driver_sql("SELECT count(*) FROM user_roles")).scalar() == 0
        assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
