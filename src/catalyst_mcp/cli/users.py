"""``catalyst users``: the people and service accounts API keys belong to, and their roles.

* ``add``, ``set-roles``, ``disable``, ``enable``, ``remove``: changes, each recorded in the
  audit trail (``admin.users.*``);
* ``list`` and ``show``: a table, or ``--json``.

A disabled user's keys are refused until they are enabled again; removing a user deletes
their API keys, role grants and the secrets they own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from catalyst_mcp.cli.admin import Admin, iso, run_admin, shown_time
from catalyst_mcp.cli.common import config_option, json_option, print_json, print_table
from catalyst_mcp.storage.keys import KeyRepo
from catalyst_mcp.storage.secrets import SecretRepo
from catalyst_mcp.storage.users import UserRecord

__all__ = ["users"]

COLUMNS = ["name", "kind", "roles", "status", "display_name", "email", "created"]


def user_json(user: UserRecord) -> dict[str, Any]:
    return {
        "name": user.name,
        "kind": user.kind,
        "display_name": user.display_name,
        "email": user.email,
        "disabled": user.disabled,
        "roles": list(user.roles),
        "created_at": iso(user.created_at),
        "updated_at": iso(user.updated_at),
    }


def _row(user: UserRecord) -> dict[str, Any]:
    return {
        "name": user.name,
        "kind": user.kind,
        "roles": ",".join(user.roles) or "-",
        "status": "disabled" if user.disabled else "enabled",
        "display_name": user.display_name or "-",
        "email": user.email or "-",
        "created": shown_time(user.created_at),
    }


@click.group()
def users() -> None:
    """Users and service accounts: who API keys belong to, and their roles."""


@users.command("add")
@click.argument("name")
@click.option("--service", is_flag=True, help="A service account (a program, not a person).")
@click.option("--display-name", help="The name to show, e.g. 'Ada Lovelace'.")
@click.option("--email", help="A contact address.")
@click.option("--role", "roles", multiple=True, help="Grant this role (repeat for more).")
@config_option
def add(
    name: str,
    service: bool,
    display_name: str | None,
    email: str | None,
    roles: tuple[str, ...],
    config_path: Path | None,
) -> None:
    """Create user NAME (exit 1 if the name is taken or a role does not exist)."""
    kind = "service" if service else "user"

    async def main(admin: Admin) -> UserRecord:
        detail = {"kind": kind, "roles": sorted(set(roles))}
        async with admin.change("admin.users.create", name, detail):
            return await admin.users.create(name, kind, display_name, email, roles)

    user = run_admin(config_path, main)
    granted = f" with roles {', '.join(user.roles)}" if user.roles else " without roles"
    click.echo(f"created {user.kind} {user.name!r}{granted}")


@users.command("list")
@config_option
@json_option
def list_users(config_path: Path | None, json_output: bool) -> None:
    """Every user, by name."""

    async def main(admin: Admin) -> list[UserRecord]:
        return await admin.users.list()

    found = run_admin(config_path, main)
    if json_output:
        print_json([user_json(user) for user in found])
    else:
        print_table([_row(user) for user in found], COLUMNS)


@users.command("show")
@click.argument("name")
@config_option
@json_option
def show(name: str, config_path: Path | None, json_output: bool) -> None:
    """One user: their details, API keys (prefixes, never the keys) and the names of the
    secrets they own."""

    async def main(admin: Admin) -> dict[str, Any]:
        user = await admin.users.get(name)
        keys = await KeyRepo(admin.db).list(name)
        owned = await SecretRepo(admin.db).list(owner=name)
        return {
            **user_json(user),
            "keys": [
                {"prefix": k.prefix, "name": k.name, "revoked": k.revoked_at is not None}
                for k in keys
            ],
            "secrets": [{"scope": s.scope, "name": s.name} for s in owned],
        }

    report = run_admin(config_path, main)
    if json_output:
        print_json(report)
        return
    keys = [f"{k['prefix']} ({k['name']}{', revoked' * k['revoked']})" for k in report["keys"]]
    owned = [f"{s['name']} (scope {s['scope']})" for s in report["secrets"]]
    fields = [
        ("name", report["name"]),
        ("kind", report["kind"]),
        ("display name", report["display_name"] or "-"),
        ("email", report["email"] or "-"),
        ("status", "disabled" if report["disabled"] else "enabled"),
        ("roles", ", ".join(report["roles"]) or "-"),
        ("created", report["created_at"]),
        ("keys", ", ".join(keys) or "-"),
        ("secrets", ", ".join(owned) or "-"),
    ]
    for label, value in fields:
        click.echo(f"{label + ':':14}{value}")


@users.command("set-roles")
@click.argument("name")
@click.argument("roles", nargs=-1)
@config_option
def set_roles(name: str, roles: tuple[str, ...], config_path: Path | None) -> None:
    """Replace the roles of user NAME with ROLES (none: take every role away)."""

    async def main(admin: Admin) -> UserRecord:
        repo = admin.users
        async with admin.change("admin.users.set_roles", name, {"roles": sorted(set(roles))}) as d:
            d["previous"] = list((await repo.get(name)).roles)
            return await repo.set_roles(name, roles)

    user = run_admin(config_path, main)
    click.echo(f"{user.name!r} now has roles: {', '.join(user.roles) or '(none)'}")


def _set_disabled(name: str, disabled: bool, config_path: Path | None) -> None:
    action = "admin.users.disable" if disabled else "admin.users.enable"

    async def main(admin: Admin) -> UserRecord:
        async with admin.change(action, name):
            return await admin.users.update(name, disabled=disabled)

    user = run_admin(config_path, main)
    click.echo(f"{user.name!r} is {'disabled' if user.disabled else 'enabled'}")


@users.command("disable")
@click.argument("name")
@config_option
def disable(name: str, config_path: Path | None) -> None:
    """Refuse every request of user NAME (their keys stay, for `enable`)."""
    _set_disabled(name, True, config_path)


@users.command("enable")
@click.argument("name")
@config_option
def enable(name: str, config_path: Path | None) -> None:
    """Accept the requests of user NAME again."""
    _set_disabled(name, False, config_path)


@users.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@config_option
def remove(name: str, yes: bool, config_path: Path | None) -> None:
    """Delete user NAME with their API keys, role grants and the secrets they own.

    Asks for confirmation first unless --yes.
    """

    async def main(admin: Admin) -> None:
        repo = admin.users
        await repo.get(name)  # Missing before asking
        keys = len(await KeyRepo(admin.db).list(name))
        owned = len(await SecretRepo(admin.db).list(owner=name))
        if not yes:
            click.confirm(
                f"delete user {name!r} with {keys} API key(s) and {owned} secret(s)?",
                abort=True,
                err=True,
            )
        async with admin.change("admin.users.delete", name, {"keys": keys, "secrets": owned}):
            await repo.delete(name)

    run_admin(config_path, main)
    click.echo(f"removed user {name!r}")
