"""Migrations: applied once, in order, matching the models, refused clearly when turned off."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

import catalyst_mcp.storage
from catalyst_mcp.errors import StorageError
from catalyst_mcp.storage.base import Base
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.migrate import (
    MIGRATIONS,
    current,
    ensure_current,
    pending,
    revisions,
    upgrade,
)
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
