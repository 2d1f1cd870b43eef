"""``catalyst audit``: verify, search and export the audit trail.

All three open the database of the configuration (``storage.url``, else
``$CATALYST_DATABASE_URL``, else the SQLite file) and bring its schema up to date first, as
``catalyst serve`` does (unless ``storage.auto_upgrade`` is off). Exit code 4 when the database
cannot be reached, 1 when the chain is broken or a query fails.

* ``verify``: walk the hash chain; exit 1 naming the first bad record and why;
* ``search``: matching records as a table or ``--json``;
* ``export``: matching records as JSON lines (stdout or ``-o FILE``), verifiable offline.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from catalyst_mcp.cli.admin import open_database
from catalyst_mcp.cli.common import (
    EXIT_FAILED,
    CliError,
    config_option,
    json_option,
    load_config,
    print_json,
    print_table,
    run_async,
    truncate,
)
from catalyst_mcp.observability.audit import OUTCOMES, export, search, verify

__all__ = ["audit"]

COLUMNS = ["seq", "at", "actor", "action", "target", "outcome", "latency_ms"]
RELATIVE = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
F = TypeVar("F", bound=Callable[..., Any])


def parse_when(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """A point in time: ISO 8601 (``2025-01-31``, ``2025-01-31T12:00:00+01:00``; no zone
    means UTC) or an age (``30m``, ``12h``, ``7d``: that long ago)."""
    if value is None:
        return None
    text = value.strip()
    age = RELATIVE.match(text)
    if age:
        return datetime.now(UTC) - timedelta(**{UNITS[age.group(2)]: int(age.group(1))})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a time: use e.g. 2025-01-31T12:00:00Z or 7d"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def filter_options(func: F) -> F:
    """The record filters shared by ``search`` and ``export``."""
    options = [
        click.option("--actor", help="Only this user name (exact)."),
        click.option("--action", help="Only this action, e.g. tools/call (exact)."),
        click.option("--outcome", type=click.Choice(OUTCOMES), help="Only this outcome."),
        click.option("--target", help="Only targets matching this glob, e.g. 'github__*'."),
        click.option(
            "--since", callback=parse_when, help="From this time on (ISO 8601, or an age: 7d)."
        ),
        click.option(
            "--until", callback=parse_when, help="Before this time (ISO 8601, or an age: 1h)."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group()
def audit() -> None:
    """The audit trail: every call, denial and admin change, hash-chained."""


@audit.command("verify")
@config_option
@json_option
def verify_command(config_path: Path | None, json_output: bool) -> None:
    """Check the whole hash chain: no record edited, deleted or reordered.

    Prints the number of records and the head hash (keep it elsewhere to anchor the chain).
    Exit 1 naming the first bad record and why.
    """
    settings = load_config(config_path)

    async def main() -> Any:
        async with open_database(settings) as db:
            return await verify(db)

    report = run_async(main())
    if json_output:
        print_json(asdict(report))
        if not report.ok:
            click.get_current_context().exit(EXIT_FAILED)
        return
    if not report.ok:
        raise CliError(
            f"the audit trail is broken at record {report.first_bad_seq}: {report.reason} "
            f"({report.records} records before it are intact)"
        )
    click.echo(f"ok: {report.records} records, chain intact; head hash {report.last_hash}")


@audit.command("search")
@filter_options
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--after", "after_seq", type=int, help="Page on: records after this seq.")
@click.option("--newest", is_flag=True, help="Newest first (--after then means older than).")
@config_option
@json_option
def search_command(
    config_path: Path | None,
    json_output: bool,
    limit: int,
    after_seq: int | None,
    newest: bool,
    **filters: Any,
) -> None:
    """Records matching every filter given, oldest first (or --newest), at most --limit."""
    settings = load_config(config_path)

    async def main() -> list[dict[str, Any]]:
        async with open_database(settings) as db:
            return await search(
                db, limit=limit, after_seq=after_seq, newest_first=newest, **filters
            )

    rows = run_async(main())
    if json_output:
        print_json(rows)
        return
    print_table([{**row, "target": truncate(row["target"], 48)} for row in rows], COLUMNS)


@audit.command("export")
@filter_options
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write to this file (replaced if it exists) instead of stdout.",
)
@config_option
def export_command(config_path: Path | None, output: Path | None, **filters: Any) -> None:
    """Matching records as JSON lines, oldest first, with their seq and hashes.

    Without filters the export holds the whole chain, which can be checked without the
    database: hash = sha256(prev_hash + canonical JSON of the record's fields).
    """
    settings = load_config(config_path)

    async def main() -> int:
        async with open_database(settings) as db:
            if output is None:
                return await export(db, sys.stdout, **filters)
            try:
                with output.open("w", encoding="utf-8", newline="\n") as file:
                    return await export(db, file, **filters)
            except OSError as error:
                raise CliError(f"cannot write {output}: {error.strerror}") from error

    count = run_async(main())
    where = "" if output is None else f" to {output}"
    click.echo(f"exported {count} records{where}", err=True)
