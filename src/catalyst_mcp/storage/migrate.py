"""Schema migrations: Alembic, run programmatically from inside the running event loop.

The migration scripts ship inside the package (``storage/migrations``); there is no
``alembic.ini``. Each operation opens one connection in one transaction and hands it to Alembic
through ``config.attributes`` (``conn.run_sync``: no second event loop). Gateways that start
together apply migrations once, one after the other: on PostgreSQL an advisory lock orders
them, on SQLite the upgrade's ``BEGIN IMMEDIATE``.

On SQLite, migrations run with ``PRAGMA foreign_keys=OFF`` (set before the transaction begins,
``ON`` again after it): Alembic's batch mode recreates a table to alter it, and dropping the
old one with foreign keys on would delete, by ``ON DELETE CASCADE``, every API key and role
grant referring to it. Before the commit ``PRAGMA foreign_key_check`` must find nothing broken;
otherwise the upgrade is rolled back with an error naming the tables.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Connection, text

from catalyst_mcp.errors import StorageError
from catalyst_mcp.storage.db import Database

__all__ = ["MIGRATIONS", "current", "ensure_current", "pending", "revisions", "upgrade"]

log = logging.getLogger("catalyst.storage")

MIGRATIONS = Path(__file__).resolve().with_name("migrations")
# pg_advisory_xact_lock key: "catalyst" as a number (any constant; this one reads back)
_LOCK_KEY = int.from_bytes(b"catalyst", "big") & 0x7FFF_FFFF_FFFF_FFFF


def _config(connection: Connection | None = None, applied: list[str] | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    if applied is not None:

        def record(*, step: Any, **_: Any) -> None:
            if step.is_upgrade:
                applied.extend(step.up_revision_ids)

        config.attributes["on_version_apply"] = record
    return config


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def revisions() -> list[str]:
    """Every revision shipped with this version of Catalyst, oldest first."""
    return [script.revision for script in reversed(list(_script().walk_revisions()))]


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _pending(connection: Connection) -> list[str]:
    here = _current(connection)
    try:
        steps = list(_script().iterate_revisions("heads", here or "base"))
    except (CommandError, RevisionError) as error:
        raise StorageError(
            f"the database is at revision {here!r}, which this version of Catalyst does not "
            "know: was it upgraded by a newer version?"
        ) from error
    return [step.revision for step in reversed(steps) if step is not None]


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def _check_foreign_keys(connection: Connection, revision: str) -> None:
    """StorageError (the upgrade is rolled back) if rows refer to rows that do not exist."""
    if connection.dialect.name != "sqlite":
        return  # PostgreSQL checks every statement
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        tables = sorted({f"{row[0]} -> {row[2]}" for row in broken})
        raise StorageError(
            f"cannot upgrade the database to {revision!r}: the migration would leave "
            f"{len(broken)} row(s) referring to rows that do not exist ({', '.join(tables)}); "
            "nothing was changed"
        )


def _upgrade(connection: Connection, revision: str) -> list[str]:
    _lock(connection)
    _pending(connection)  # a database newer than this code: say so clearly
    applied: list[str] = []
    try:
        command.upgrade(_config(connection, applied), revision)
    except CommandError as error:
        raise StorageError(f"cannot upgrade the database to {revision!r}: {error}") from error
    _check_foreign_keys(connection, revision)
    return applied


async def upgrade(db: Database, revision: str = "head") -> list[str]:
    """Apply the migrations up to ``revision``, in one transaction; the revision ids applied,
    in order (empty when the database was already there). On SQLite foreign keys are off
    meanwhile and checked before the commit (see the module's documentation)."""
    async with db.begin(write=True, foreign_keys=False) as conn:
        applied = await conn.run_sync(_upgrade, revision)
    if applied:
        log.info("database %s upgraded: %s", db.redacted_url, ", ".join(applied))
    return applied


async def current(db: Database) -> str | None:
    """The revision the database is at; None when it has no schema yet."""
    async with db.begin() as conn:
        return await conn.run_sync(_current)


async def pending(db: Database) -> list[str]:
    """The revisions not applied yet, in the order :func:`upgrade` would apply them."""
    async with db.begin() as conn:
        return await conn.run_sync(_pending)


async def ensure_current(db: Database, auto_upgrade: bool) -> list[str]:
    """Make sure the schema is current before the gateway uses it.

    With ``auto_upgrade``, apply what is pending (the ids applied are returned); without, raise
    :class:`StorageError` if anything is pending (migrations are then a deployment step).
    """
    if auto_upgrade:
        return await upgrade(db)
    missing = await pending(db)
    if missing:
        raise StorageError(
            f"the database needs {len(missing)} migration(s) ({', '.join(missing)}) and "
            "storage.auto_upgrade is off: run `catalyst db upgrade` first"
        )
    return []
