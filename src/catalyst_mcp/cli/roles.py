"""``catalyst roles``: RBAC roles stored in the database, and what they allow.

Roles come from two places: ``rbac.roles`` in the configuration and the database (these
commands). A stored role replaces a configured one of the same name; ``admin`` is built in
unless either defines it. Rules are validated exactly as the gateway validates them before
anything is stored. ``check`` answers, for one stored user, what the gateway would decide.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

import click
import yaml

from catalyst_mcp.cli.admin import Admin, iso, run_admin
from catalyst_mcp.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    CliError,
    config_option,
    json_option,
    print_json,
    print_table,
    truncate,
)
from catalyst_mcp.errors import ConfigError, Missing
from catalyst_mcp.security.rbac import (
    ADMIN_ROLE,
    KINDS,
    Decision,
    Kind,
    Policy,
    RoleSpec,
    load_roles,
)
from catalyst_mcp.settings import Settings
from catalyst_mcp.storage.roles import RoleRecord, RoleRepo

__all__ = ["roles"]

COLUMNS = ["name", "source", "rules", "holders", "description"]
BUILTIN = "built-in"
# what the policy gives a caller with role admin when no configuration defines one
BUILTIN_ADMIN = RoleSpec.model_validate(
    {
        "name": ADMIN_ROLE,
        "description": "Built-in: allows everything. Define a role named 'admin' to replace it.",
        "rules": [{"effect": "allow", "match": ["*"]}],
    }
)


def read_rules(name: str, file: TextIO, description: str | None) -> RoleSpec:
    """Role ``name`` from a YAML file holding its rules (a list), or a mapping with ``rules``
    and optionally ``description`` (``description`` wins over the file's). Exit 3, listing
    every problem, when it is not valid."""
    source = "<stdin>" if file.name in ("<stdin>", "-") else file.name
    try:
        data = yaml.safe_load(file.read())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise CliError(f"invalid rules file:\n{where}: not valid YAML", EXIT_CONFIG) from exc
    if not isinstance(data, list | dict):
        raise CliError(
            f"invalid rules file:\n{source}: expected a list of rules, or a mapping with "
            "'rules' (and optionally 'description')",
            EXIT_CONFIG,
        )
    spec: dict[str, Any] = {"rules": data} if isinstance(data, list) else data
    if description is not None:
        spec = {**spec, "description": description}
    try:
        return load_roles({name: spec}, source=source)[name]
    except ConfigError as exc:
        raise CliError(f"invalid rules file:\n{exc}", EXIT_CONFIG) from exc


def stored_rules(role: RoleSpec) -> list[dict[str, Any]]:
    """A validated role's rules as plain JSON (what the database stores)."""
    return [
        rule.model_dump(mode="json", by_alias=True, exclude_defaults=True) for rule in role.rules
    ]


def effective_roles(
    settings: Settings, stored: list[RoleRecord]
) -> dict[str, tuple[RoleSpec, str]]:
    """Every role the gateway knows, by name, with where it comes from: ``database``,
    ``config``, ``database (replaces config)`` or ``built-in``. ConfigError (exit 3) when a
    stored role is not valid."""
    roles: dict[str, tuple[RoleSpec, str]] = {
        name: (spec, "config") for name, spec in settings.rbac.roles.items()
    }
    data = {r.name: {"description": r.description, "rules": list(r.rules)} for r in stored}
    for name, spec in load_roles(data, source="stored roles").items():
        roles[name] = (spec, "database (replaces config)" if name in roles else "database")
    roles.setdefault(ADMIN_ROLE, (BUILTIN_ADMIN, BUILTIN))
    return dict(sorted(roles.items()))


def role_json(spec: RoleSpec, source: str, holders: list[str] | None) -> dict[str, Any]:
    return {
        "name": spec.name,
        "source": source,
        "description": spec.description,
        "rules": stored_rules(spec),
        "holders": holders,
    }


@click.group()
def roles() -> None:
    """RBAC roles: store, inspect and remove them, and check what a user may do."""


@roles.command("add")
@click.argument("name")
@click.option(
    "--rules",
    "rules_file",
    type=click.File("r", encoding="utf-8"),
    required=True,
    help="YAML file of the role's rules (a list, or a mapping with rules and description); "
    "'-' reads stdin.",
)
@click.option("--description", help="What the role is for (overrides the file's).")
@click.option("--replace", is_flag=True, help="Replace the role if it is already stored.")
@config_option
def add(
    name: str,
    rules_file: TextIO,
    description: str | None,
    replace: bool,
    config_path: Path | None,
) -> None:
    """Store role NAME with the rules of a YAML file, validated first (exit 3 listing every
    problem). Exit 1 if it exists, unless --replace."""
    spec = read_rules(name, rules_file, description)
    rules = stored_rules(spec)
    action = "admin.roles.replace" if replace else "admin.roles.create"

    async def main(admin: Admin) -> RoleRecord:
        repo = RoleRepo(admin.db)
        async with admin.change(action, name, {"rules": len(rules)}):
            if replace:
                return await repo.put(name, spec.description, rules)
            return await repo.create(name, spec.description, rules)

    role = run_admin(config_path, main)
    click.echo(f"stored role {role.name!r} with {len(role.rules)} rule(s)")


@roles.command("list")
@config_option
@json_option
def list_roles(config_path: Path | None, json_output: bool) -> None:
    """Every role: stored ones, configured ones (rbac.roles) and the built-in admin."""

    async def main(admin: Admin) -> list[dict[str, Any]]:
        repo = RoleRepo(admin.db)
        known = effective_roles(admin.settings, await repo.list())
        return [
            role_json(spec, source, await repo.holders(name) if source != BUILTIN else [])
            for name, (spec, source) in known.items()
        ]

    found = run_admin(config_path, main)
    if json_output:
        print_json(found)
        return
    rows = [
        {
            "name": role["name"],
            "source": role["source"],
            "rules": len(role["rules"]),
            "holders": len(role["holders"]),
            "description": truncate(role["description"], 60) or "-",
        }
        for role in found
    ]
    print_table(rows, COLUMNS)


@roles.command("show")
@click.argument("name")
@config_option
@json_option
def show(name: str, config_path: Path | None, json_output: bool) -> None:
    """Role NAME: where it comes from, its description, its rules (as YAML) and who holds it."""

    async def main(admin: Admin) -> dict[str, Any]:
        repo = RoleRepo(admin.db)
        known = effective_roles(admin.settings, await repo.list())
        if name not in known:
            raise Missing(f"no role named {name!r}")
        spec, source = known[name]
        report = role_json(spec, source, await repo.holders(name))
        stored = source.startswith("database")
        report["updated_at"] = iso((await repo.get(name)).updated_at) if stored else None
        return report

    report = run_admin(config_path, main)
    if json_output:
        print_json(report)
        return
    click.echo(f"role {report['name']!r} ({report['source']})")
    if report["description"]:
        click.echo(report["description"])
    click.echo(f"holders: {', '.join(report['holders']) or '(none)'}")
    click.echo("rules:")
    dumped = yaml.safe_dump(report["rules"], sort_keys=False, allow_unicode=True)
    click.echo("".join(f"  {line}\n" for line in dumped.splitlines()), nl=False)


@roles.command("remove")
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove it even while users hold it (from them too).")
@config_option
def remove(name: str, force: bool, config_path: Path | None) -> None:
    """Delete stored role NAME. Exit 1 while users hold it (they are named), unless --force."""

    async def main(admin: Admin) -> list[str]:
        repo = admin.roles
        async with admin.change("admin.roles.delete", name, {"force": force}) as detail:
            try:
                # a name that stays valid (configured, built in) keeps its holders' grants
                kept = name in repo.known_roles
                holders = [] if kept else await repo.holders(name)
                await repo.delete(name, force=force)
            except Missing as exc:
                if name in admin.settings.rbac.roles:
                    raise Missing(
                        f"no stored role named {name!r}: it is defined in the configuration "
                        "file (rbac.roles)"
                    ) from exc
                raise
            detail["holders"] = holders
        return holders

    holders = run_admin(config_path, main)
    taken = f" (taken from {', '.join(holders)})" if holders else ""
    click.echo(f"removed role {name!r}{taken}")


def _decide(
    policy: Policy, roles_held: tuple[str, ...], kind: Kind, name: str, server: str | None
) -> Decision:
    """What the gateway decides: a server a rule denies closes everything on it."""
    if server is not None:
        on_server = policy.decide(roles_held, "server", server, server)
        if not on_server.allowed and on_server.rule is not None:
            return on_server
    return policy.decide(roles_held, kind, name, server)


@roles.command("check")
@click.argument("user")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("name")
@click.option("--server", help="The server or pack NAME belongs to (for rules with servers:).")
@config_option
@json_option
def check(
    user: str,
    kind: Kind,
    name: str,
    server: str | None,
    config_path: Path | None,
    json_output: bool,
) -> None:
    """Whether USER may use the KIND object NAME, and why: the decision the gateway makes
    from the configured and stored roles. Exit 0 when allowed, 1 when denied."""

    async def main(admin: Admin) -> dict[str, Any]:
        record = await admin.users.get(user)
        known = effective_roles(admin.settings, await RoleRepo(admin.db).list())
        policy = Policy.compile(
            {n: spec for n, (spec, _) in known.items()}, admin.settings.rbac.default
        )
        decision = _decide(policy, record.roles, kind, name, server)
        allowed, reason = decision.allowed, decision.reason
        if record.disabled:
            allowed, reason = False, f"user {user!r} is disabled (roles aside: {reason})"
        return {
            "user": user,
            "roles": list(record.roles),
            "kind": kind,
            "name": name,
            "server": server,
            "allowed": allowed,
            "reason": reason,
            "role": decision.role,
            "rule": decision.rule,
            "undefined_roles": [r for r in record.roles if r not in known],
        }

    report = run_admin(config_path, main)
    if json_output:
        print_json(report)
    else:
        click.echo(f"{'allowed' if report['allowed'] else 'denied'}: {report['reason']}")
    if not report["allowed"]:
        click.get_current_context().exit(EXIT_FAILED)
