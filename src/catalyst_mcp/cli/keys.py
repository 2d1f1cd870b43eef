"""``catalyst keys``: create, list and revoke API keys.

A key is shown once, when it is created: only its visible prefix and its SHA-256 are stored.
Listings show prefixes, never a hash. Creating and revoking are recorded in the audit trail
(``admin.keys.create``, ``admin.keys.revoke``) by prefix, never with the key.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from catalyst_mcp.cli.admin import Admin, iso, run_admin, shown_time
from catalyst_mcp.cli.common import config_option, json_option, print_json, print_table
from catalyst_mcp.errors import Conflict
from catalyst_mcp.security import apikeys
from catalyst_mcp.storage.keys import KeyRecord, KeyRepo
from catalyst_mcp.storage.models import utcnow

__all__ = ["keys"]

COLUMNS = ["prefix", "name", "user", "scopes", "created", "expires", "last_used", "revoked"]
STORE_IT = "store it now: it cannot be shown again"
_AGE = re.compile(r"^(\d+)([hdw])$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
_SCOPE = re.compile(r"^(mcp|admin|(tool|resource|prompt|server):\S+)$")
_ATTEMPTS = 5  # a new key's random prefix is taken: generate another (40 bits: rare)


def parse_expires(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """``30d``, ``12h``, ``2w`` from now, or an ISO 8601 date or time (no zone: UTC); it must
    be in the future."""
    if value is None:
        return None
    text = value.strip()
    age = _AGE.match(text)
    if age:
        return utcnow() + timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither an age (30d, 12h, 2w) nor a date (2027-01-01)"
        ) from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if when <= utcnow():
        raise click.BadParameter(f"{text} is in the past")
    return when


def _scopes(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    for scope in value:
        if not _SCOPE.match(scope):
            raise click.BadParameter(
                f"{scope!r} is not a scope: use mcp, admin, tool:<glob>, resource:<glob>, "
                "prompt:<glob> or server:<glob>"
            )
    return value


def key_json(key: KeyRecord) -> dict[str, Any]:
    return {
        "prefix": key.prefix,
        "name": key.name,
        "user": key.user,
        "scopes": None if key.scopes is None else sorted(key.scopes),
        "created_at": iso(key.created_at),
        "expires_at": iso(key.expires_at),
        "last_used_at": iso(key.last_used_at),
        "revoked_at": iso(key.revoked_at),
    }


def _row(key: KeyRecord) -> dict[str, Any]:
    return {
        "prefix": key.prefix,
        "name": key.name,
        "user": key.user,
        "scopes": "(all)" if key.scopes is None else ",".join(sorted(key.scopes)),
        "created": shown_time(key.created_at),
        "expires": "never" if key.expires_at is None else shown_time(key.expires_at),
        "last_used": "never" if key.last_used_at is None else shown_time(key.last_used_at),
        "revoked": shown_time(key.revoked_at),
    }


@click.group()
def keys() -> None:
    """API keys: shown once at creation, stored only as a hash."""


@keys.command("create")
@click.argument("user")
@click.option("--name", default="default", show_default=True, help="What the key is for.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    callback=_scopes,
    help="Narrow the key to mcp, tool:<glob>, resource:<glob>, prompt:<glob> or "
    "server:<glob> (repeat for more; none: everything USER's roles allow).",
)
@click.option(
    "--expires",
    callback=parse_expires,
    help="When the key stops working: an age (30d, 12h, 2w) or a date (2027-01-01, UTC).",
)
@config_option
@json_option
def create(
    user: str,
    name: str,
    scopes: tuple[str, ...],
    expires: datetime | None,
    config_path: Path | None,
    json_output: bool,
) -> None:
    """Create an API key for USER and print it, once: it cannot be shown again."""

    async def main(admin: Admin) -> tuple[apikeys.NewKey, KeyRecord]:
        repo = KeyRepo(admin.db)
        detail = {
            "user": user,
            "name": name,
            "scopes": sorted(set(scopes)) if scopes else None,
            "expires_at": iso(expires),
        }
        collisions = 0
        while True:
            new = apikeys.generate()
            try:
                async with admin.change("admin.keys.create", new.prefix, detail):
                    record = await repo.create(
                        user, name, new.prefix, new.key_hash, scopes or None, expires
                    )
                return new, record
            except Conflict:  # the random prefix is taken: another key
                collisions += 1
                if collisions == _ATTEMPTS:
                    raise

    new, record = run_admin(config_path, main)
    if json_output:
        print_json({"token": new.token, **key_json(record), "note": STORE_IT})
        return
    expiry = (
        "never expires"
        if record.expires_at is None
        else "expires " + shown_time(record.expires_at) + " UTC"
    )
    click.echo(f"created key {record.prefix} ({record.name!r}) for {record.user!r}; {expiry}")
    click.echo("")
    click.echo(f"    {new.token}")
    click.echo("")
    click.echo(f"{STORE_IT}. Send it as 'Authorization: Bearer <key>'.")


@keys.command("list")
@click.option("--user", help="Only this user's keys.")
@config_option
@json_option
def list_keys(user: str | None, config_path: Path | None, json_output: bool) -> None:
    """Every key (or USER's): prefix, name, owner, scopes and dates; never the key or its hash."""

    async def main(admin: Admin) -> list[KeyRecord]:
        return await KeyRepo(admin.db).list(user)

    found = run_admin(config_path, main)
    if json_output:
        print_json([key_json(key) for key in found])
    else:
        print_table([_row(key) for key in found], COLUMNS)


@keys.command("revoke")
@click.argument("prefix")
@config_option
def revoke(prefix: str, config_path: Path | None) -> None:
    """Revoke the key with PREFIX, at once and for good (`cat_PREFIX` is accepted too)."""
    prefix = prefix.strip().removeprefix("cat_")

    async def main(admin: Admin) -> tuple[KeyRecord, bool]:
        started = utcnow()
        async with admin.change("admin.keys.revoke", prefix) as detail:
            record = await KeyRepo(admin.db).revoke(prefix)
            already = record.revoked_at is not None and record.revoked_at < started
            detail.update(user=record.user, name=record.name, already_revoked=already)
        return record, already

    record, already = run_admin(config_path, main)
    if already:
        click.echo(
            f"key {record.prefix} of {record.user!r} was already revoked ({iso(record.revoked_at)})"
        )
    else:
        click.echo(f"revoked key {record.prefix} ({record.name!r}) of {record.user!r}")
