"""``catalyst secrets``: store, list and remove sealed secrets; make and rotate the vault key.

A value is never taken from the command line (it would stay in the shell's history and show in
``ps``): ``set`` prompts for it, hidden and twice, or reads it from stdin with
``--value-from-stdin``. Values are never printed, logged or audited: listings show metadata,
audit records name the secret, its owner and scope. Every command but ``generate-key`` needs
``CATALYST_SECRET_KEY`` (exit 3 without it).

Rotating the key, with gateways still serving::

    1. catalyst secrets generate-key                      -> the new key
    2. CATALYST_SECRET_KEY=<new>  CATALYST_SECRET_KEY_PREVIOUS=<old>  on every gateway
    3. catalyst secrets rotate-key   (with the same two variables)
    4. drop CATALYST_SECRET_KEY_PREVIOUS everywhere
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from catalyst_mcp.cli.admin import Admin, iso, run_admin, shown_time
from catalyst_mcp.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    CliError,
    config_option,
    json_option,
    print_json,
    print_table,
)
from catalyst_mcp.errors import ConfigError, ConfigProblem, StorageError
from catalyst_mcp.security.secretstore import (
    ANY,
    NO_KEY,
    RotateReport,
    SecretStore,
    check_secret_name,
)
from catalyst_mcp.security.vault import ENV_ACTIVE, ENV_PREVIOUS, KeyRing, generate_key
from catalyst_mcp.storage.secrets import SecretRecord

__all__ = ["secrets"]

COLUMNS = ["owner", "scope", "name", "key_id", "created", "updated"]
PROGRESS_EVERY = 100


def _name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return check_secret_name(value)
    except StorageError as exc:
        raise click.BadParameter(exc.message) from None


def _owner(user: str | None, shared: bool) -> str:
    if user is not None and shared:
        raise click.UsageError("give --user or --shared, not both")
    if user is None and not shared:
        raise click.UsageError("give --user USER (that user's secret) or --shared (everyone's)")
    return ANY if shared else str(user)


def _require_key() -> None:
    """Exit 3, before anything is asked, when no valid vault key is configured."""
    try:
        if not os.environ.get(ENV_ACTIVE, "").strip():
            raise ConfigError([ConfigProblem("environment", None, NO_KEY)])
        KeyRing.from_environ(os.environ)
    except ConfigError as exc:
        raise CliError(f"invalid configuration:\n{exc}", EXIT_CONFIG) from exc


def _store(admin: Admin) -> SecretStore:
    return SecretStore.from_environ(admin.db, os.environ)


def _read_value(from_stdin: bool) -> str:
    value: str
    if from_stdin:
        value = sys.stdin.read()
        value = value.removesuffix("\n").removesuffix("\r")  # the one newline `echo` adds
    else:
        value = click.prompt("value", hide_input=True, confirmation_prompt=True, err=True)
    if not value:
        raise click.UsageError("the value is empty")
    return value


def secret_json(record: SecretRecord) -> dict[str, Any]:
    return {
        "owner": record.owner,
        "scope": record.scope,
        "name": record.name,
        "key_id": record.key_id,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
    }


def owner_options(func: Any) -> Any:
    """``--user``, ``--shared`` and ``--server``: which secret of that name."""
    options = [
        click.option("--user", help="The secret of this user."),
        click.option("--shared", is_flag=True, help="The secret shared by every user."),
        click.option("--server", help="Only for this server or pack (default: any, shown as '*')."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group()
def secrets() -> None:
    """Sealed secrets (per user or shared, per server or any) and the vault key."""


@secrets.command("set")
@click.argument("name", callback=_name)
@owner_options
@click.option(
    "--value-from-stdin",
    is_flag=True,
    help="Read the value from stdin (one trailing newline dropped) instead of prompting.",
)
@config_option
def set_secret(
    name: str,
    user: str | None,
    shared: bool,
    server: str | None,
    value_from_stdin: bool,
    config_path: Path | None,
) -> None:
    """Store secret NAME, sealed, replacing any value it had.

    The value is asked for, hidden and twice, or read from stdin: never given as an argument.
    """
    owner, scope = _owner(user, shared), server or ANY
    _require_key()
    value = _read_value(value_from_stdin)

    async def main(admin: Admin) -> SecretRecord:
        store = _store(admin)
        async with admin.change("admin.secrets.set", name, {"owner": owner, "scope": scope}) as d:
            if owner != ANY:
                await admin.users.get(owner)  # Missing: no such user
            record = await store.put(owner, scope, name, value)
            d.update(key_id=record.key_id, replaced=record.updated_at != record.created_at)
            return record

    record = run_admin(config_path, main)
    whose = "shared" if owner == ANY else f"of {owner!r}"
    where = "any server" if scope == ANY else f"server {scope!r}"
    click.echo(f"stored secret {name!r} ({whose}, for {where}), sealed with key {record.key_id}")


@secrets.command("list")
@click.option("--user", help="Only this user's secrets.")
@click.option("--shared", is_flag=True, help="Only the shared secrets.")
@click.option("--server", help="Only those stored for this server or pack.")
@config_option
@json_option
def list_secrets(
    user: str | None,
    shared: bool,
    server: str | None,
    config_path: Path | None,
    json_output: bool,
) -> None:
    """The stored secrets' owner, scope, name, key and dates; never their values."""
    owner = _owner(user, shared) if user is not None or shared else None
    _require_key()

    async def main(admin: Admin) -> list[SecretRecord]:
        return await _store(admin).list(owner, server)

    found = run_admin(config_path, main)
    if json_output:
        print_json([secret_json(record) for record in found])
        return
    rows = [
        {
            **secret_json(record),
            "created": shown_time(record.created_at),
            "updated": shown_time(record.updated_at),
        }
        for record in found
    ]
    print_table(rows, COLUMNS)


@secrets.command("remove")
@click.argument("name", callback=_name)
@owner_options
@config_option
def remove(
    name: str, user: str | None, shared: bool, server: str | None, config_path: Path | None
) -> None:
    """Delete secret NAME of --user or --shared, for --server (default: any). Exit 1 if it is
    not stored."""
    owner, scope = _owner(user, shared), server or ANY
    _require_key()

    async def main(admin: Admin) -> None:
        store = _store(admin)
        async with admin.change("admin.secrets.delete", name, {"owner": owner, "scope": scope}):
            await store.delete(owner, scope, name)

    run_admin(config_path, main)
    click.echo(f"removed secret {name!r} (owner {owner!r}, scope {scope!r})")


@secrets.command("generate-key")
def generate() -> None:
    """Print a new random vault key, for CATALYST_SECRET_KEY."""
    click.echo(generate_key())
    click.echo(
        f"set it as {ENV_ACTIVE} (during a rotation, keep the old key in {ENV_PREVIOUS}); "
        "keep it in your secret manager: without it the stored secrets cannot be read",
        err=True,
    )


def _progress(done: int, total: int) -> None:
    if done % PROGRESS_EVERY == 0 or done == total:
        click.echo(f"checked {done}/{total}", err=True)


def report_json(report: RotateReport) -> dict[str, Any]:
    return {
        "key_id": report.key_id,
        "ok": report.ok,
        "resealed": report.resealed,
        "already_current": report.already_current,
        "failed": [
            {"owner": f.owner, "scope": f.scope, "name": f.name, "reason": f.reason}
            for f in report.failed
        ],
    }


@secrets.command("rotate-key")
@config_option
@json_option
def rotate_key(config_path: Path | None, json_output: bool) -> None:
    """Reseal every stored value with the active key (CATALYST_SECRET_KEY), opening them with
    the keys in CATALYST_SECRET_KEY_PREVIOUS. Safe while gateways serve with both keys.

    Progress goes to stderr; values that cannot be opened are listed and make the exit code 1.
    """
    _require_key()

    async def main(admin: Admin) -> RotateReport:
        report = await _store(admin).rotate(None if json_output else _progress)
        detail = report_json(report)
        if not report.ok:
            detail["reason"] = f"{len(report.failed)} value(s) could not be resealed"
        admin.record("admin.secrets.rotate", report.key_id, "ok" if report.ok else "error", detail)
        return report

    report = run_admin(config_path, main)
    if json_output:
        print_json(report_json(report))
    else:
        click.echo(
            f"key {report.key_id}: {report.resealed} resealed, {report.already_current} already "
            f"current, {len(report.failed)} failed"
        )
        for failed in report.failed:
            click.echo(
                f"cannot reseal {failed.name!r} (owner {failed.owner!r}, scope "
                f"{failed.scope!r}): {failed.reason}",
                err=True,
            )
    if not report.ok:
        click.get_current_context().exit(EXIT_FAILED)
