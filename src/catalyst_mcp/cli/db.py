"""``catalyst db``: apply and inspect the database's schema migrations.

The database is the configured ``storage.url``, else ``$CATALYST_DATABASE_URL``, else the
SQLite file ``catalyst/catalyst.db`` in the user's state folder. Exit code 4 when it cannot be
reached, 1 when a migration fails.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click

from catalyst_mcp.cli.admin import open_database
from catalyst_mcp.cli.common import (
    config_option,
    json_option,
    load_config,
    print_json,
    run_async,
)
from catalyst_mcp.storage import migrate
from catalyst_mcp.storage.db import Database

__all__ = ["db"]

T = TypeVar("T")


@click.group()
def db() -> None:
    """The gateway's database: apply and inspect schema migrations."""


async def _with_database(
    config_path: Path | None, operation: Callable[[Database], Awaitable[T]]
) -> T:
    """Run ``operation`` on the configured database (as it is: these commands migrate it);
    unreachable is exit code 4."""
    async with open_database(load_config(config_path), current=False) as database:
        return await operation(database)


@db.command("upgrade")
@click.argument("revision", default="head")
@config_option
@json_option
def upgrade(revision: str, config_path: Path | None, json_output: bool) -> None:
    """Apply the pending migrations (up to REVISION, default: the latest).

    Prints each revision applied, or that the database is already current. Safe to run
    again, and by several processes at once on PostgreSQL.
    """
    applied = run_async(_with_database(config_path, lambda d: migrate.upgrade(d, revision)))
    if json_output:
        print_json({"applied": applied})
    elif applied:
        for name in applied:
            click.echo(f"applied {name}")
    else:
        click.echo("already current")


@db.command("current")
@config_option
@json_option
def current(config_path: Path | None, json_output: bool) -> None:
    """The revision the database is at; '(none)' before the first upgrade."""
    revision = run_async(_with_database(config_path, migrate.current))
    if json_output:
        print_json({"current": revision})
    else:
        click.echo(revision or "(none)")


@db.command("pending")
@config_option
@json_option
def pending(config_path: Path | None, json_output: bool) -> None:
    """The migrations not applied yet, in the order `catalyst db upgrade` applies them."""
    names = run_async(_with_database(config_path, migrate.pending))
    if json_output:
        print_json({"pending": names})
    elif names:
        for name in names:
            click.echo(name)
    else:
        click.echo("(none): the database is current")
