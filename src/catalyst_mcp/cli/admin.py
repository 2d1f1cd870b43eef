"""What the administration commands (``users``, ``keys``, ``roles``, ``secrets``) share.

Each command opens the configured database (``storage.url``, else ``$CATALYST_DATABASE_URL``,
else the SQLite file), exits 4 when it cannot be reached, brings its schema up to date (unless
``storage.auto_upgrade`` is off: then a pending migration is an error) and records every change
it makes in the audit trail, as ``cli:<login>`` of kind ``admin``. Failed changes are recorded
too, with the reason. Audit details name objects, never a secret value or an API key.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from catalyst_mcp.cli.common import EXIT_CONNECT, CliError, load_config, run_async
from catalyst_mcp.context import Identity
from catalyst_mcp.errors import CatalystError, StorageError
from catalyst_mcp.observability.audit import AuditEvent, AuditLog
from catalyst_mcp.security.rbac import ADMIN_ROLE
from catalyst_mcp.settings import Settings
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.migrate import ensure_current
from catalyst_mcp.storage.roles import RoleRepo
from catalyst_mcp.storage.users import UserRepo

__all__ = ["Admin", "admin_session", "cli_identity", "iso", "run_admin", "shown_time"]

T = TypeVar("T")


def cli_identity() -> Identity:
    """The local operator: ``cli:<OS login>``, kind ``admin``."""
    try:
        login = getpass.getuser()
    except Exception:  # no login name in the environment nor the password database
        login = f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return Identity(subject=f"cli:{login}", kind="admin")


def shown_time(when: datetime | None) -> str:
    """A stored time for a table: ``2025-01-31 12:00`` (UTC), ``-`` for none."""
    return "-" if when is None else when.strftime("%Y-%m-%d %H:%M")


def iso(when: datetime | None) -> str | None:
    """A stored time for JSON: ISO 8601 with its UTC offset, None for none."""
    return None if when is None else when.isoformat()


class Admin:
    """An open, current database and the audit trail changes are recorded in."""

    def __init__(self, db: Database, settings: Settings, audit: AuditLog | None) -> None:
        self.db = db
        self.settings = settings
        self.audit = audit
        self.identity = cli_identity()

    @property
    def users(self) -> UserRepo:
        """The users, with the roles of the settings (and the built-in admin) grantable too."""
        return UserRepo(self.db, known_roles={ADMIN_ROLE, *self.settings.rbac.roles})

    @property
    def roles(self) -> RoleRepo:
        """The stored roles; deleting one whose name stays valid (configured or built in)
        keeps its holders' grants."""
        return RoleRepo(self.db, known_roles={ADMIN_ROLE, *self.settings.rbac.roles})

    def record(
        self, action: str, target: str, outcome: str = "ok", detail: dict[str, Any] | None = None
    ) -> None:
        """Queue one audit record of this operator (nothing while auditing is off)."""
        if self.audit is not None:
            self.audit.record(AuditEvent.by(self.identity, action, target, outcome, detail=detail))

    @asynccontextmanager
    async def change(
        self, action: str, target: str, detail: dict[str, Any] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Record the change made in the block: ``ok`` with ``detail`` (which the block may
        add to), or ``error`` with the reason when it raises a Catalyst error."""
        facts: dict[str, Any] = dict(detail or {})
        try:
            yield facts
        except CatalystError as exc:
            self.record(action, target, "error", {**facts, "reason": exc.message})
            raise
        self.record(action, target, "ok", facts)
        if self.settings.redis.url is not None:  # running instances apply it at once
            from catalyst_mcp.cluster.announce import announce_from_cli

            try:
                await announce_from_cli(self.settings.redis, action, target)
            except CatalystError as exc:
                click.echo(
                    f"warning: the change is made, but the running gateways were not told "
                    f"({exc.message}); they pick it up at their next refresh",
                    err=True,
                )


@asynccontextmanager
async def open_database(settings: Settings, *, current: bool = True) -> AsyncIterator[Database]:
    """The configured database, reachable (else exit 4) and, with ``current``, migrated as
    ``storage.auto_upgrade`` says; closed when the block ends."""
    db = Database(settings.storage.database_url())
    try:
        try:
            await db.ping()
        except StorageError as exc:
            raise CliError(exc.message, EXIT_CONNECT) from exc
        if current:
            await ensure_current(db, settings.storage.auto_upgrade)
        yield db
    finally:
        await db.close()


@asynccontextmanager
async def admin_session(settings: Settings) -> AsyncIterator[Admin]:
    """:func:`open_database` with the audit log running; flushed and closed at the end."""
    async with open_database(settings) as db:
        audit = AuditLog(db) if settings.audit.enabled else None
        if audit is not None:
            audit.start()
        try:
            yield Admin(db, settings, audit)
        finally:
            if audit is not None:
                await audit.close()


def run_admin(config_path: Path | None, operation: Callable[[Admin], Awaitable[T]]) -> T:
    """Load the configuration, run ``operation`` in an :func:`admin_session`, and map its
    errors to exit codes (:func:`~catalyst_mcp.cli.common.run_async`)."""
    settings = load_config(config_path)

    async def main() -> T:
        async with admin_session(settings) as admin:
            return await operation(admin)

    return run_async(main())
